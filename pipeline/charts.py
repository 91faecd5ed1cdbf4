"""The six sales charts, one pure function ``(df) -> Figure`` per named query.

Each chart takes one named query's result from ``athena_queries.sql`` (the columns are
fixed in docs/interfaces.md). :data:`CHARTS` maps each PNG file name to its query and
chart function; :func:`render_all` runs every query once through an engine (local
DuckDB or Athena) and saves the PNGs. Figures are built without pyplot on an Agg
canvas, so importing this module never changes matplotlib's global state.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from cycler import cycler
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, StrMethodFormatter

logger = logging.getLogger(__name__)

FIGSIZE = (10.0, 6.0)
DPI = 130
UNKNOWN = "unknown"
UNKNOWN_COLOR = "#9e9e9e"
PALETTE = sns.color_palette("deep")
ACCENT = PALETTE[0]

# The seaborn "whitegrid" look, applied per figure through rc_context so importing
# this module never changes matplotlib's global state.
THEME_RC: dict[str, Any] = {
    **sns.axes_style("whitegrid"),
    **sns.plotting_context("notebook"),
    "axes.prop_cycle": cycler(color=PALETTE),
    "axes.titlesize": 15,
    "axes.titleweight": "bold",
    "axes.titlepad": 12,
    "figure.titlesize": 16,
    "figure.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
}


class NoDataError(RuntimeError):
    """A chart's query returned no rows: the lake holds no processed data."""


def format_currency(value: float, _pos: int | None = None) -> str:
    """Return a compact dollar string to 3 significant digits: ``$1.23M``, ``$12.3K``, ``$950``."""
    sign = "-" if value < 0 else ""
    amount = float(f"{abs(value):.3g}")  # round first so 999,999 becomes $1M, not $1000K
    for threshold, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if amount >= threshold:
            return f"{sign}${amount / threshold:.3g}{suffix}"
    return f"{sign}${amount:.3g}"


def format_dollars(value: float) -> str:
    """Return a dollar amount with cents: ``$1,234.50``."""
    return f"${value:,.2f}"


CURRENCY = FuncFormatter(format_currency)


def _themed(chart: Callable[[pd.DataFrame], Figure]) -> Callable[[pd.DataFrame], Figure]:
    """Build the figure under the shared theme (rc values are read at creation)."""

    @functools.wraps(chart)
    def wrapper(df: pd.DataFrame) -> Figure:
        with matplotlib.rc_context(THEME_RC):
            return chart(df)

    return wrapper


def _prepare(df: pd.DataFrame, columns: Iterable[str], numeric: Iterable[str]) -> pd.DataFrame:
    """Check the contract columns and coerce numbers (Decimal from DuckDB, str from pyathena)."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"query result lacks columns {missing}; got {list(df.columns)}")
    if df.empty:
        raise ValueError("query result has no rows")
    out = df.loc[:, list(columns)].copy()
    for column in numeric:
        out[column] = pd.to_numeric(out[column])
    return out.reset_index(drop=True)


def _new_figure(ncols: int = 1) -> tuple[Figure, list[Any]]:
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # an explicit Agg canvas: draw() and text extents without pyplot
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _category_colors(labels: Sequence[str]) -> list[Any]:
    """One palette color per category, with grey for the 'unknown' bucket."""
    colors = []
    known = 0
    for label in labels:
        if str(label).lower() == UNKNOWN:
            colors.append(UNKNOWN_COLOR)
        else:
            colors.append(PALETTE[known % len(PALETTE)])
            known += 1
    return colors


def _age_sort_key(label: Any) -> tuple[int, float, str]:
    """Order age groups by their first number ('18-25' < '56+'), 'unknown' last."""
    text = str(label)
    match = re.search(r"\d+", text)
    if text.lower() == UNKNOWN or match is None:
        return (1, 0.0, text)
    return (0, float(match.group()), text)


@_themed
def revenue_by_region_chart(df: pd.DataFrame) -> Figure:
    """Return a bar chart of total revenue per region, in the query's order."""
    data = _prepare(
        df,
        ["region", "total_revenue", "transaction_count"],
        ["total_revenue", "transaction_count"],
    )
    fig, (ax,) = _new_figure()
    labels = data["region"].astype(str).tolist()
    bars = ax.bar(labels, data["total_revenue"], color=_category_colors(labels), width=0.65)
    ax.bar_label(
        bars,
        labels=[
            f"{format_currency(r)}\n{int(n):,} orders"
            for r, n in zip(data["total_revenue"], data["transaction_count"], strict=True)
        ],
        padding=4,
        fontsize=10,
    )
    ax.set_title("Revenue by region")
    ax.set_xlabel("Region")
    ax.set_ylabel("Total revenue (USD)")
    ax.yaxis.set_major_formatter(CURRENCY)
    ax.margins(y=0.18)
    ax.grid(axis="x", visible=False)
    return fig


@_themed
def top_products_chart(df: pd.DataFrame) -> Figure:
    """Return a horizontal bar chart of the top products by revenue, largest on top."""
    data = _prepare(df, ["product", "total_revenue", "units_sold"], ["total_revenue", "units_sold"])
    fig, (ax,) = _new_figure()
    bars = ax.barh(data["product"].astype(str).tolist(), data["total_revenue"], color=ACCENT)
    ax.invert_yaxis()  # first row (the query's #1) at the top
    ax.bar_label(
        bars,
        labels=[
            f"{format_currency(r)} ({int(u):,} units)"
            for r, u in zip(data["total_revenue"], data["units_sold"], strict=True)
        ],
        padding=4,
        fontsize=10,
    )
    ax.set_title(f"Top {len(data)} products by revenue")
    ax.set_xlabel("Total revenue (USD)")
    ax.set_ylabel("Product")
    ax.xaxis.set_major_formatter(CURRENCY)
    ax.margins(x=0.22)
    ax.grid(axis="y", visible=False)
    return fig


@_themed
def monthly_trend_chart(df: pd.DataFrame) -> Figure:
    """Return a line chart of revenue per calendar month, labelled ``YYYY-MM``."""
    data = _prepare(
        df,
        ["year", "month", "total_revenue", "transaction_count"],
        ["year", "month", "total_revenue", "transaction_count"],
    )
    data = data.sort_values(["year", "month"], kind="stable").reset_index(drop=True)
    labels = [
        f"{int(y):04d}-{int(m):02d}" for y, m in zip(data["year"], data["month"], strict=True)
    ]
    positions = list(range(len(data)))
    fig, (ax,) = _new_figure()
    ax.plot(positions, data["total_revenue"], marker="o", linewidth=2.5, markersize=8, color=ACCENT)
    ax.fill_between(positions, data["total_revenue"], alpha=0.12, color=ACCENT)
    for x, revenue, count in zip(
        positions, data["total_revenue"], data["transaction_count"], strict=True
    ):
        ax.annotate(
            f"{format_currency(revenue)}\n{int(count):,} orders",
            (x, revenue),
            textcoords="offset points",
            xytext=(0, 10),
            ha="center",
            fontsize=10,
            bbox={
                "boxstyle": "round,pad=0.2",
                "facecolor": "white",
                "edgecolor": "none",
                "alpha": 0.85,
            },
        )
    ax.set_xticks(positions, labels, rotation=45 if len(labels) > 12 else 0)
    ax.set_title("Monthly revenue trend")
    ax.set_xlabel("Month")
    ax.set_ylabel("Total revenue (USD)")
    ax.yaxis.set_major_formatter(CURRENCY)
    ax.set_ylim(bottom=0, top=data["total_revenue"].max() * 1.2)
    ax.margins(x=0.06)
    return fig


@_themed
def customer_tiers_chart(df: pd.DataFrame) -> Figure:
    """Return a donut of each membership tier's share of revenue (query's share %)."""
    data = _prepare(
        df,
        ["membership_tier", "total_revenue", "revenue_share_pct"],
        ["total_revenue", "revenue_share_pct"],
    )
    labels = data["membership_tier"].astype(str).tolist()
    fig, (ax,) = _new_figure()
    wedges, _ = ax.pie(
        data["total_revenue"],
        colors=_category_colors(labels),
        startangle=90,
        counterclock=False,
        wedgeprops={"width": 0.42, "edgecolor": "white", "linewidth": 2},
    )
    # Percentages sit on wedges big enough to hold them; the legend names every tier,
    # so thin slices (unknown customers, say) never overlap their neighbours' labels.
    for wedge, pct in zip(wedges, data["revenue_share_pct"], strict=True):
        if pct >= 4:
            angle = np.deg2rad((wedge.theta1 + wedge.theta2) / 2)
            ax.text(0.79 * np.cos(angle), 0.79 * np.sin(angle), f"{pct:.0f}%", ha="center",
                    va="center", fontsize=11, color="white", fontweight="bold")  # fmt: skip
    ax.legend(
        wedges,
        [
            f"{tier}: {format_currency(r)} ({pct:.1f}%)"
            for tier, r, pct in zip(
                labels, data["total_revenue"], data["revenue_share_pct"], strict=True
            )
        ],
        title="Membership tier",
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        frameon=False,
        fontsize=11,
    )
    ax.text(
        0,
        0,
        f"Total revenue\n{format_currency(data['total_revenue'].sum())}",
        ha="center",
        va="center",
        fontsize=13,
        fontweight="bold",
    )
    ax.set_title("Share of revenue by membership tier")
    ax.set_aspect("equal")
    return fig


@_themed
def age_group_analysis_chart(df: pd.DataFrame) -> Figure:
    """Return two panels by age group: total revenue and average transaction value."""
    data = _prepare(
        df,
        ["age_group", "total_revenue", "transaction_count", "avg_transaction_value"],
        ["total_revenue", "transaction_count", "avg_transaction_value"],
    )
    order = sorted(range(len(data)), key=lambda i: _age_sort_key(data.loc[i, "age_group"]))
    data = data.loc[order].reset_index(drop=True)
    labels = data["age_group"].astype(str).tolist()
    colors = _category_colors(labels)
    fig, (revenue_ax, avg_ax) = _new_figure(ncols=2)

    bars = revenue_ax.bar(labels, data["total_revenue"], color=colors, width=0.65)
    revenue_ax.bar_label(
        bars, labels=[format_currency(v) for v in data["total_revenue"]], padding=3, fontsize=10
    )
    revenue_ax.set_title("Total revenue")
    revenue_ax.set_ylabel("Total revenue (USD)")
    revenue_ax.yaxis.set_major_formatter(CURRENCY)

    bars = avg_ax.bar(labels, data["avg_transaction_value"], color=colors, width=0.65)
    avg_ax.bar_label(
        bars,
        labels=[format_dollars(v) for v in data["avg_transaction_value"]],
        padding=3,
        fontsize=10,
    )
    avg_ax.set_title("Average transaction value")
    avg_ax.set_ylabel("Average transaction (USD)")
    avg_ax.yaxis.set_major_formatter(StrMethodFormatter("${x:,.0f}"))

    for ax in (revenue_ax, avg_ax):
        ax.set_xlabel("Age group")
        ax.margins(y=0.12)
        ax.grid(axis="x", visible=False)
    fig.suptitle("Spending by customer age group")
    return fig


@_themed
def transaction_distribution_chart(df: pd.DataFrame) -> Figure:
    """Return a histogram of transaction amounts from pre-binned rows, mean and median marked."""
    data = _prepare(
        df,
        ["bin_lower", "bin_upper", "transaction_count", "mean_amount", "median_amount"],
        ["bin_lower", "bin_upper", "transaction_count", "mean_amount", "median_amount"],
    )
    data = data.sort_values("bin_lower", kind="stable").reset_index(drop=True)
    mean = float(data["mean_amount"].iloc[0])
    median = float(data["median_amount"].iloc[0])
    fig, (ax,) = _new_figure()
    ax.bar(
        data["bin_lower"],
        data["transaction_count"],
        width=data["bin_upper"] - data["bin_lower"],
        align="edge",
        color=ACCENT,
        alpha=0.85,
        edgecolor="white",
        linewidth=0.8,
    )
    ax.axvline(
        mean, color=PALETTE[3], linestyle="--", linewidth=2.2, label=f"Mean {format_dollars(mean)}"
    )
    ax.axvline(
        median,
        color=PALETTE[2],
        linestyle=":",
        linewidth=2.6,
        label=f"Median {format_dollars(median)}",
    )
    ax.legend(loc="upper right", frameon=True, fontsize=11)
    ax.set_title("Distribution of transaction amounts")
    # The query's bins are equal on a log scale: amounts span three orders of magnitude.
    ax.set_xscale("log")
    ax.set_xlabel("Transaction amount (USD, log scale)")
    ax.set_ylabel("Number of transactions")
    ax.xaxis.set_major_formatter(CURRENCY)
    ax.xaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
    ax.xaxis.set_minor_formatter(CURRENCY)
    ax.tick_params(axis="x", which="both", length=0)  # major and minor labels on one line
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 0.5-transaction ticks
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    ax.set_xlim(data["bin_lower"].min(), data["bin_upper"].max())
    ax.margins(y=0.08)
    ax.grid(axis="x", visible=False)
    return fig


ChartFunction = Callable[[pd.DataFrame], Figure]

# PNG file name -> (named query in athena_queries.sql, chart function)
CHARTS: dict[str, tuple[str, ChartFunction]] = {
    "01_revenue_by_region.png": ("revenue_by_region", revenue_by_region_chart),
    "02_top_products.png": ("top_products", top_products_chart),
    "03_monthly_trend.png": ("monthly_trend", monthly_trend_chart),
    "04_customer_tiers.png": ("customer_tiers", customer_tiers_chart),
    "05_age_group_analysis.png": ("age_group_analysis", age_group_analysis_chart),
    "06_transaction_distribution.png": ("transaction_distribution", transaction_distribution_chart),
}


class _Result(Protocol):
    df: pd.DataFrame


class ChartEngine(Protocol):
    """The part of pipeline.engines.Engine the charts need."""

    def setup_tables(self) -> None: ...

    def run_named(self, name: str) -> _Result: ...


def render_all(engine: ChartEngine, out_dir: Path, *, setup_tables: bool = True) -> list[Path]:
    """Run each chart's named query once, save the PNGs in ``out_dir``, return their paths.

    Every figure is built before any file is written, and each PNG is written to a
    temporary name then renamed, so a failure never leaves a half-drawn chart behind.
    Raises :class:`NoDataError` (writing nothing) if any query returns no rows. Pass
    ``setup_tables=False`` when the caller has already set the engine's tables up.
    """
    if setup_tables:
        engine.setup_tables()
    figures: dict[str, Figure] = {}
    for file_name, (query, chart) in CHARTS.items():
        df = engine.run_named(query).df
        logger.info("query %s: %d rows", query, len(df))
        if df.empty:
            raise NoDataError(f"query {query!r} returned no rows (needed for {file_name})")
        figures[file_name] = chart(df)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, fig in figures.items():
        path = out_dir / file_name
        partial = path.with_name(f".{file_name}.partial")
        # Figures are built without pyplot, so no global registry keeps them open.
        fig.savefig(partial, format="png", dpi=DPI, facecolor="white")
        partial.replace(path)
        logger.info("wrote %s", path)
        written.append(path)
    return written
