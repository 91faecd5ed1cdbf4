"""The six sales charts, one pure function ``(df) -> Figure`` per named query.

Each chart takes one named query's result from ``athena_queries.sql`` (the columns are
fixed in docs/interfaces.md). :data:`CHARTS` maps each PNG file name to its query and
chart function; :func:`render_all` runs every query once through an engine (local
DuckDB or Athena) and saves the PNGs. Figures are built without pyplot on an Agg
canvas, so importing this module never changes matplotlib's global state.
"""

from __future__ import annotations

import calendar
import functools
import itertools
import logging
import re
import textwrap
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

from pipeline.errors import NoDataError

logger = logging.getLogger(__name__)

FIGSIZE = (10.0, 6.0)
DPI = 130
# The customer_tiers and age_group_analysis queries name a transaction whose customer id
# matched no customer record UNKNOWN; one whose customer's record lacks the field, NO_TIER
# or NO_AGE_GROUP. A null or empty label, or the older 'unknown', reads as UNKNOWN.
UNKNOWN = "unknown customer"
NO_TIER = "no tier"
NO_AGE_GROUP = "no age group"
UNKNOWN_COLOR = "#9e9e9e"
NO_VALUE_COLOR = "#cfcfcf"
PALETTE = sns.color_palette("deep")
ACCENT = PALETTE[0]
# Up to this many regions stand as columns; more lie as rows so their names can be read.
VERTICAL_REGIONS = 8

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


def format_currency(value: float, _pos: int | None = None) -> str:
    """Return a compact dollar string: under $1,000 whole dollars or dollars and cents
    (``$950``, ``$7.50``, ``$12.35``), from $1,000 three significant digits and a suffix
    (``$12.3K``, ``$1.23M``)."""
    cents = round(abs(float(value)), 2)
    sign = "-" if value < 0 and cents else ""
    if cents < 1000:
        return f"{sign}${cents:.0f}" if cents == int(cents) else f"{sign}${cents:.2f}"
    amount = float(f"{cents:.3g}")  # round first so 999,999 becomes $1M, not $1000K
    threshold, suffix = next(
        (t, s) for t, s in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")) if amount >= t
    )
    return f"{sign}${amount / threshold:.3g}{suffix}"


def format_dollars(value: float) -> str:
    """Return a dollar amount with cents: ``$1,234.50``."""
    return f"${value:,.2f}"


def count_of(n: Any, noun: str) -> str:
    """Return ``"1 order"``, ``"1,234 orders"``."""
    return f"{int(n):,} {noun}{'' if int(n) == 1 else 's'}"


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
    """One palette color per category; grey for unknown customers, light grey for none."""
    colors = []
    known = 0
    for label in labels:
        if str(label).lower() == UNKNOWN:
            colors.append(UNKNOWN_COLOR)
        elif str(label).lower() in (NO_TIER, NO_AGE_GROUP):
            colors.append(NO_VALUE_COLOR)
        else:
            colors.append(PALETTE[known % len(PALETTE)])
            known += 1
    return colors


def _age_sort_key(label: Any) -> tuple[int, float, str]:
    """Order age groups by their first number ('18-25' < '56+'), then other names, then
    'no age group', then 'unknown customer'."""
    text = str(label)
    match = re.search(r"\d+", text)
    if text.lower() == UNKNOWN:
        return (3, 0.0, text)
    if text.lower() == NO_AGE_GROUP:
        return (2, 0.0, text)
    if match is None:
        return (1, 0.0, text)
    return (0, float(match.group()), text)


def short_label(text: Any, width: int = 28, max_lines: int = 2) -> str:
    """Return ``text`` wrapped to lines of at most ``width`` characters, ``max_lines`` at most.

    A name too long for that keeps its start and its end around an ellipsis
    (``"Ultra-wide curved gaming\\n…(34-inch, 2025 edition)"``), so names that differ
    only at the end stay distinguishable.
    """
    flat = " ".join(str(text).split())
    if not flat:
        return "(blank)"
    lines = textwrap.wrap(flat, width)
    if len(lines) <= max_lines:
        return "\n".join(lines)
    if max_lines == 1:
        head = width // 2
        return f"{flat[:head].rstrip()}…{flat[-(width - head - 1) :].lstrip()}"
    tail = flat[-(width - 1) :]
    space = tail.find(" ")
    if 0 <= space < len(tail) // 2:  # start the tail on a whole word when that costs little
        tail = tail[space:]
    return "\n".join([*lines[: max_lines - 1], f"…{tail.lstrip()}"])


def _demographic_rows(data: pd.DataFrame, column: str) -> pd.DataFrame:
    """Fold missing categories into 'unknown customer' and merge rows that then share a label.

    The queries already name an unmatched customer 'unknown customer'; an engine or
    caller that hands over nulls, or the older 'unknown', instead gets the same chart.
    """
    labels = data[column].astype("string").str.strip()
    missing = labels.isna() | (labels == "") | (labels.str.lower() == "unknown")
    data = data.assign(**{column: labels.mask(missing, UNKNOWN)})
    if not data[column].duplicated().any():
        return data
    merged = data.groupby(column, sort=False, as_index=False)[
        ["total_revenue", "transaction_count"]
    ].sum()
    if "avg_transaction_value" in data:
        merged["avg_transaction_value"] = merged["total_revenue"] / merged["transaction_count"]
    return merged


def _nothing_known(data: pd.DataFrame, column: str, no_value: str) -> bool:
    """True when no transaction has a value: every row is unknown customers or ``no_value``."""
    return bool(data[column].str.lower().isin([UNKNOWN, no_value]).all())


def _with_article(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def _no_demographics_message(data: pd.DataFrame, column: str, what: str) -> str:
    """What is true when no transaction has a ``what``: no customer matched, or the
    customers that matched have none (their records leave it empty)."""
    unmatched = data[column].str.lower() == UNKNOWN
    transactions = int(data["transaction_count"].sum())
    revenue = float(data["total_revenue"].sum())
    matched = int(data.loc[~unmatched, "transaction_count"].sum())
    if matched == 0:
        return (
            f"None of the {transactions:,} transactions ({format_dollars(revenue)}) matched\n"
            f"a customer record, so every {what} is unknown."
        )
    if matched == transactions:
        return (
            f"All {transactions:,} transactions ({format_dollars(revenue)}) matched a customer\n"
            f"record, but no customer record has {_with_article(what)}."
        )
    return (
        f"{matched:,} of the {transactions:,} transactions ({format_dollars(revenue)}) matched a\n"
        f"customer record, but none of those records has {_with_article(what)};\n"
        f"the other {transactions - matched:,} matched no customer record."
    )


def _no_demographics_figure(data: pd.DataFrame, title: str, column: str, what: str) -> Figure:
    """A figure that says, in words, why no transaction has a ``what`` to chart."""
    fig, (ax,) = _new_figure()
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.56, f"No {what}s to show", transform=ax.transAxes,
            ha="center", va="bottom", fontsize=17, fontweight="bold")  # fmt: skip
    ax.text(
        0.5,
        0.5,
        _no_demographics_message(data, column, what),
        transform=ax.transAxes,
        ha="center",
        va="top",
        fontsize=13,
        linespacing=1.5,
        color="#444444",
    )
    return fig


def _fit_inside(fig: Figure, ax: Any, texts: Sequence[Any], axis: str, pad: float = 8.0) -> None:
    """Raise the upper ``axis`` limit ('x' or 'y') until every text lies inside ``ax``.

    Each text is an annotation hanging off a data point (a bar's end); the limit is
    solved from the text's measured reach in pixels, then checked again after the
    layout settles, because new tick labels can resize the axes.
    """
    if not texts:
        return
    vertical = axis == "y"
    for _ in range(4):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        box = ax.get_window_extent(renderer)
        lo, hi = ax.get_ylim() if vertical else ax.get_xlim()
        start, size = (box.y0, box.height) if vertical else (box.x0, box.width)
        wanted = hi
        for text in texts:
            extent = text.get_window_extent(renderer)
            end = extent.y1 if vertical else extent.x1
            if end <= start + size - pad:
                continue
            anchor = float(text.xy[1] if vertical else text.xy[0])
            anchor_px = start + (anchor - lo) / (hi - lo) * size
            reach = end - anchor_px + pad
            if reach >= size:  # cannot fit whatever the limit; leave it to the layout
                continue
            wanted = max(wanted, lo + (anchor - lo) * size / (size - reach))
        if wanted <= hi:
            return
        if vertical:
            ax.set_ylim(lo, wanted)
        else:
            ax.set_xlim(lo, wanted)


def _label_spots() -> list[tuple[tuple[float, float], str, str]]:
    """Where a point's label may go, nearest first: (offset in points, ha, va)."""
    spots = []
    for distance in (10, 36, 62):
        for dy, va in ((distance, "bottom"), (-distance - 2, "top")):
            spots += [((0, dy), "center", va), ((-6, dy), "right", va), ((6, dy), "left", va)]
        if distance == 10:
            spots += [((12, 0), "left", "center"), ((-12, 0), "right", "center")]
    return spots


_LABEL_SPOTS = _label_spots()
_LABEL_BOX = {"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none", "alpha": 0.85}


def _label_points(fig: Figure, ax: Any, points: Sequence[tuple[float, float, str]]) -> list[Any]:
    """Annotate each ``(x, y, text)`` inside ``ax``, no label over another.

    Every spot of :data:`_LABEL_SPOTS` is measured for every label; of the
    combinations that keep all labels inside the axes and apart, the one with the
    nearest spots wins. Each label names its month, so one set further off still
    reads as that month's.
    """
    fig.canvas.draw()  # the layout fixes the axes' size before any label is measured
    renderer = fig.canvas.get_renderer()
    inside = ax.get_window_extent(renderer).padded(-4)

    def annotate(x: float, y: float, text: str, offset: Any, ha: str, va: str) -> Any:
        return ax.annotate(text, (x, y), xytext=offset, textcoords="offset points", ha=ha,
                           va=va, fontsize=10, bbox=_LABEL_BOX)  # fmt: skip

    options = []  # per label: (rank, spot, padded extent) of each spot inside the axes
    for x, y, text in points:
        fitting = []
        for rank, spot in enumerate(_LABEL_SPOTS):
            candidate = annotate(x, y, text, *spot)
            extent = candidate.get_window_extent(renderer)
            candidate.remove()
            if (
                inside.x0 <= extent.x0
                and extent.x1 <= inside.x1
                and inside.y0 <= extent.y0
                and extent.y1 <= inside.y1
            ):
                fitting.append((rank, spot, extent.padded(2)))
        options.append(fitting or [(len(_LABEL_SPOTS), _LABEL_SPOTS[0], None)])
    best: tuple[int, Any] | None = None
    for combo in itertools.product(*options):
        cost = sum(rank for rank, _, _ in combo)
        if best is not None and cost >= best[0]:
            continue
        boxes = [extent for _, _, extent in combo if extent is not None]
        if not any(a.overlaps(b) for a, b in itertools.combinations(boxes, 2)):
            best = (cost, combo)
    chosen = best[1] if best is not None else [choices[0] for choices in options]
    return [
        annotate(x, y, text, *spot)
        for (x, y, text), (_, spot, _) in zip(points, chosen, strict=True)
    ]


def _category_span(ax: Any, count: int, axis: str, slots: int = 4) -> None:
    """Give ``count`` bars at 0..count-1 room for at least ``slots``, so a lone bar stays slim.

    On the y axis the first position is at the top (the query's first row).
    """
    extra = max(0.0, (slots - count) / 2)
    low, high = -0.5 - extra, count - 0.5 + extra
    if axis == "x":
        ax.set_xlim(low, high)
    else:
        ax.set_ylim(high, low)


@_themed
def revenue_by_region_chart(df: pd.DataFrame) -> Figure:
    """Return a bar chart of total revenue per region, in the query's order.

    Up to :data:`VERTICAL_REGIONS` regions stand as columns; more lie as rows, first
    on top, so twenty names still read.
    """
    data = _prepare(
        df,
        ["region", "total_revenue", "transaction_count"],
        ["total_revenue", "transaction_count"],
    )
    fig, (ax,) = _new_figure()
    names = data["region"].astype(str).tolist()
    positions = list(range(len(data)))
    colors = _category_colors(names)
    orders = [count_of(n, "order") for n in data["transaction_count"]]
    amounts = [format_currency(r) for r in data["total_revenue"]]
    if len(data) <= VERTICAL_REGIONS:
        width = max(10, min(30, 120 // len(data)))
        bars = ax.bar(positions, data["total_revenue"], color=colors, width=0.65)
        ax.set_xticks(positions, [short_label(n, width) for n in names])
        _category_span(ax, len(data), "x")
        labels = ax.bar_label(
            bars, labels=[f"{a}\n{o}" for a, o in zip(amounts, orders, strict=True)],
            padding=4, fontsize=10,
        )  # fmt: skip
        ax.set_xlabel("Region")
        ax.set_ylabel("Total revenue (USD)")
        ax.yaxis.set_major_formatter(CURRENCY)
        ax.set_ylim(0, float(data["total_revenue"].max()) * 1.1 or 1.0)
        ax.grid(axis="x", visible=False)
        _fit_inside(fig, ax, labels, "y")
    else:
        lines = 2 if len(data) <= 12 else 1
        bars = ax.barh(positions, data["total_revenue"], color=colors, height=0.7)
        ax.set_yticks(positions, [short_label(n, 26, lines) for n in names], fontsize=10)
        _category_span(ax, len(data), "y")  # first row (the query's #1) at the top
        labels = ax.bar_label(
            bars, labels=[f"{a} · {o}" for a, o in zip(amounts, orders, strict=True)],
            padding=4, fontsize=9,
        )  # fmt: skip
        ax.set_xlabel("Total revenue (USD)")
        ax.set_ylabel("Region")
        ax.xaxis.set_major_formatter(CURRENCY)
        ax.set_xlim(0, float(data["total_revenue"].max()) * 1.05 or 1.0)
        ax.grid(axis="y", visible=False)
        _fit_inside(fig, ax, labels, "x")
    ax.set_title("Revenue by region")
    return fig


@_themed
def top_products_chart(df: pd.DataFrame) -> Figure:
    """Return a horizontal bar chart of the top products by revenue, largest on top.

    Long names wrap onto two lines; longer still, they keep their start and end
    around an ellipsis.
    """
    data = _prepare(df, ["product", "total_revenue", "units_sold"], ["total_revenue", "units_sold"])
    fig, (ax,) = _new_figure()
    positions = list(range(len(data)))
    lines = 2 if len(data) <= 12 else 1
    names = [short_label(p, 38, lines) for p in data["product"]]
    bars = ax.barh(positions, data["total_revenue"], color=ACCENT, height=0.7)
    ax.set_yticks(positions, names, fontsize=10)
    _category_span(ax, len(data), "y")  # first row (the query's #1) at the top
    labels = ax.bar_label(
        bars,
        labels=[
            f"{format_currency(r)} ({count_of(u, 'unit')})"
            for r, u in zip(data["total_revenue"], data["units_sold"], strict=True)
        ],
        padding=4,
        fontsize=10,
    )
    ax.set_title(f"Top {len(data)} products by revenue" if len(data) > 1 else "Top product")
    ax.set_xlabel("Total revenue (USD)")
    ax.set_ylabel("Product")
    ax.xaxis.set_major_formatter(CURRENCY)
    ax.set_xlim(0, float(data["total_revenue"].max()) * 1.05 or 1.0)
    ax.grid(axis="y", visible=False)
    _fit_inside(fig, ax, labels, "x")
    return fig


def _month_index(year: Any, month: Any) -> int:
    """Months since year 0: the x position of ``year``-``month`` on the trend chart."""
    return int(year) * 12 + int(month) - 1


def _month_name(index: int) -> str:
    """``YYYY-MM`` for a :func:`_month_index`."""
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _month_ticks(first: int, last: int) -> tuple[list[int], list[str]]:
    """Tick positions and labels for months ``first..last``: monthly, quarterly or yearly."""
    span = last - first + 1
    if span <= 12:
        ticks = list(range(first, last + 1))
    elif span <= 36:
        ticks = [m for m in range(first, last + 1) if m % 3 == 0]
    else:  # every January, labelled with the year (every 2nd, 3rd... year past 12 years)
        every = 1 + (span - 1) // 144
        ticks = [m for m in range(first, last + 1) if m % 12 == 0 and (m // 12) % every == 0]
        return ticks, [f"{m // 12:04d}" for m in ticks]
    return ticks, [_month_name(m) for m in ticks]


def _partial_months(data: pd.DataFrame) -> dict[int, str]:
    """Row -> the days it covers, for a first or last month the data cover only in part.

    The first month is partial when its first day with sales is after the 1st, the last
    when its last day with sales is before the month's end (``first_day``/``last_day``
    of the monthly_trend query); without those columns no month is marked.
    """
    if not {"first_day", "last_day"} <= set(data.columns):
        return {}
    partial = {}
    last = len(data) - 1
    for row in sorted({0, last}):
        year, month = int(data.loc[row, "year"]), int(data.loc[row, "month"])
        first_day, last_day = data.loc[row, "first_day"], data.loc[row, "last_day"]
        if pd.isna(first_day) or pd.isna(last_day):
            continue
        month_days = calendar.monthrange(year, month)[1]
        if (row == 0 and int(first_day) > 1) or (row == last and int(last_day) < month_days):
            partial[row] = f"days {int(first_day)}-{int(last_day)} of {month_days}"
    return partial


def _key_months(revenue: pd.Series, partial: Iterable[int] = ()) -> dict[int, str]:
    """Row -> role for the months worth a label: highest, lowest, latest (roles merged).

    A ``partial`` month (first or last) is never the highest or lowest; it is labelled
    "First (partial)" or "Latest (partial)".
    """
    partial = set(partial)
    if len(revenue) == 1:
        return {0: "Only month (partial)" if partial else "Only month"}
    whole = revenue.drop(index=list(partial))
    ranked = (
        [(int(whole.idxmax()), "Highest"), (int(whole.idxmin()), "Lowest")] if len(whole) else []
    )
    roles: dict[int, list[str]] = {}
    for row, role in [*([(0, "First")] if 0 in partial else []), *ranked,
                      (len(revenue) - 1, "Latest")]:  # fmt: skip
        roles.setdefault(row, []).append(role)
    return {
        row: " & ".join([names[0], *(n.lower() for n in names[1:])])
        + (" (partial)" if row in partial else "")
        for row, names in sorted(roles.items())
    }


@_themed
def monthly_trend_chart(df: pd.DataFrame) -> Figure:
    """Return a line chart of revenue per calendar month on a month axis.

    Months are placed by date (a month with no sales leaves a gap in the spacing),
    ticks thin from every month to quarters (over 12 months) to years (over 36), and
    only the highest, the lowest and the latest month carry a value label. A first or
    last month the data cover only in part (see :func:`_partial_months`) has a hollow
    marker, is labelled "(partial)" with its days, and is never the highest or lowest.
    """
    columns = ["year", "month", "total_revenue", "transaction_count"]
    columns += [c for c in ("first_day", "last_day") if c in df.columns]
    data = _prepare(df, columns, columns)
    data = data.sort_values(["year", "month"], kind="stable").reset_index(drop=True)
    x = [_month_index(y, m) for y, m in zip(data["year"], data["month"], strict=True)]
    revenue = data["total_revenue"].astype(float)
    partial = _partial_months(data)
    key_months = _key_months(revenue, partial)
    fig, (ax,) = _new_figure()
    marker = {"marker": "o", "markersize": 7} if len(data) <= 24 else {}
    ax.plot(x, revenue, linewidth=2.5, color=ACCENT, **marker)
    ax.fill_between(x, revenue, alpha=0.12, color=ACCENT)
    ax.plot([x[i] for i in key_months if i not in partial],
            [revenue[i] for i in key_months if i not in partial], linestyle="none",
            marker="o", markersize=8, color=ACCENT)  # fmt: skip
    if partial:
        ax.plot([x[i] for i in partial], [revenue[i] for i in partial], linestyle="none",
                marker="o", markersize=9, markerfacecolor="white", markeredgewidth=2,
                color=ACCENT)  # fmt: skip

    ticks, tick_labels = _month_ticks(x[0], x[-1])
    ax.set_xticks(ticks, tick_labels)
    pad = 0.5 + (x[-1] - x[0]) * 0.01  # end points (and their markers) clear of the frame
    ax.set_xlim(x[0] - pad, x[-1] + pad)
    ax.set_title("Monthly revenue trend")
    ax.set_xlabel("Month")
    ax.set_ylabel("Total revenue (USD)")
    ax.yaxis.set_major_formatter(CURRENCY)
    ax.set_ylim(bottom=min(0.0, float(revenue.min())), top=float(revenue.max()) * 1.3 or 1.0)
    _label_points(
        fig,
        ax,
        [
            (
                x[i],
                revenue[i],
                f"{role}: {format_currency(revenue[i])}\n{_month_name(x[i])}"
                + (f" ({partial[i]})" if i in partial else "")
                + f", {count_of(data.loc[i, 'transaction_count'], 'order')}",
            )
            for i, role in key_months.items()
        ],
    )
    return fig


@_themed
def customer_tiers_chart(df: pd.DataFrame) -> Figure:
    """Return a donut of each membership tier's share of revenue.

    'no tier' (a customer record without a tier) and 'unknown customer' (no record
    matched) are wedges of their own, in greys. When no transaction has a tier, the
    chart says why in words instead of drawing a single grey ring.
    """
    data = _prepare(df, ["membership_tier", "total_revenue", "transaction_count"],
                    ["total_revenue", "transaction_count"])  # fmt: skip
    data = _demographic_rows(data, "membership_tier")
    if _nothing_known(data, "membership_tier", NO_TIER):
        return _no_demographics_figure(
            data, "Share of revenue by membership tier", "membership_tier", "membership tier"
        )
    total = float(data["total_revenue"].sum())
    shares = [100.0 * float(r) / total for r in data["total_revenue"]]
    labels = data["membership_tier"].tolist()
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
    for wedge, pct in zip(wedges, shares, strict=True):
        if pct >= 4:
            angle = np.deg2rad((wedge.theta1 + wedge.theta2) / 2)
            ax.text(0.79 * np.cos(angle), 0.79 * np.sin(angle), f"{pct:.0f}%", ha="center",
                    va="center", fontsize=11, color="white", fontweight="bold")  # fmt: skip
    ax.legend(
        wedges,
        [
            f"{short_label(tier, 24, 1)}: {format_currency(r)} ({pct:.1f}%)"
            for tier, r, pct in zip(labels, data["total_revenue"], shares, strict=True)
        ],
        title="Membership tier",
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        frameon=False,
        fontsize=11,
    )
    ax.text(0, 0, f"Total revenue\n{format_currency(total)}", ha="center", va="center",
            fontsize=13, fontweight="bold")  # fmt: skip
    ax.set_title("Share of revenue by membership tier")
    ax.set_aspect("equal", anchor="W")  # the legend beside the ring, inside the figure
    return fig


@_themed
def age_group_analysis_chart(df: pd.DataFrame) -> Figure:
    """Return two panels by age group: total revenue and average transaction value.

    'no age group' (a customer record without one) and 'unknown customer' (no record
    matched) stand last, in greys. When no transaction has an age group, the chart says
    why in words instead.
    """
    data = _prepare(
        df,
        ["age_group", "total_revenue", "transaction_count", "avg_transaction_value"],
        ["total_revenue", "transaction_count", "avg_transaction_value"],
    )
    data = _demographic_rows(data, "age_group")
    if _nothing_known(data, "age_group", NO_AGE_GROUP):
        return _no_demographics_figure(
            data, "Spending by customer age group", "age_group", "age group"
        )
    order = sorted(range(len(data)), key=lambda i: _age_sort_key(data.loc[i, "age_group"]))
    data = data.loc[order].reset_index(drop=True)
    names = data["age_group"].tolist()
    colors = _category_colors(names)
    positions = list(range(len(data)))
    tick_labels = [short_label(n, max(8, 60 // len(data))) for n in names]
    fig, (revenue_ax, avg_ax) = _new_figure(ncols=2)

    panels = (
        (revenue_ax, "total_revenue", format_currency, "Total revenue", "Total revenue (USD)"),
        (avg_ax, "avg_transaction_value", format_dollars, "Average transaction value",
         "Average transaction (USD)"),
    )  # fmt: skip
    bar_labels = []
    for ax, column, fmt, title, ylabel in panels:
        bars = ax.bar(positions, data[column], color=colors, width=0.65)
        ax.set_xticks(positions, tick_labels)
        _category_span(ax, len(data), "x")
        labels = ax.bar_label(bars, labels=[fmt(v) for v in data[column]], padding=3,
                              fontsize=10)  # fmt: skip
        ax.set_title(title)
        ax.set_xlabel("Age group")
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, float(data[column].max()) * 1.1 or 1.0)
        ax.grid(axis="x", visible=False)
        bar_labels.append((ax, labels))
    revenue_ax.yaxis.set_major_formatter(CURRENCY)
    avg_ax.yaxis.set_major_formatter(StrMethodFormatter("${x:,.0f}"))
    fig.suptitle("Spending by customer age group")
    for ax, labels in bar_labels:
        _fit_inside(fig, ax, labels, "y")
    return fig


@_themed
def transaction_distribution_chart(df: pd.DataFrame) -> Figure:
    """Return a histogram of transaction amounts from pre-binned rows, mean and median marked.

    When every transaction has the same amount the query's bins have no width; the
    chart then shows one bar at that amount and says so.
    """
    data = _prepare(
        df,
        ["bin_lower", "bin_upper", "transaction_count", "mean_amount", "median_amount"],
        ["bin_lower", "bin_upper", "transaction_count", "mean_amount", "median_amount"],
    )
    data = data.sort_values("bin_lower", kind="stable").reset_index(drop=True)
    mean = float(data["mean_amount"].iloc[0])
    median = float(data["median_amount"].iloc[0])
    low, high = float(data["bin_lower"].min()), float(data["bin_upper"].max())
    fig, (ax,) = _new_figure()
    bar_style = {"color": ACCENT, "alpha": 0.85, "edgecolor": "white", "linewidth": 0.8}
    if high <= low:  # every transaction has one amount: the query's bins have no width
        count = int(data["transaction_count"].sum())
        amount = format_dollars(low)
        # One bar a fifth of a decade wide, centred on the amount, in a decade-wide view.
        ax.bar(low, count, width=low * (10**0.1 - 10**-0.1), **bar_style)
        low, high = low / 10**0.5, low * 10**0.5
        note = (
            f"One transaction, of {amount}"
            if count == 1
            else f"All {count:,} transactions are {amount}"
        )
        ax.text(0.02, 0.97, note, transform=ax.transAxes, ha="left", va="top", fontsize=11,
                bbox=_LABEL_BOX)  # fmt: skip
        ax.set_ylim(0, count * 1.3)
    else:
        ax.bar(data["bin_lower"], data["transaction_count"],
               width=data["bin_upper"] - data["bin_lower"], align="edge", **bar_style)  # fmt: skip
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
    if np.log10(high / low) <= 4:  # 2x and 5x labels too, unless they would crowd
        ax.xaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
        ax.xaxis.set_minor_formatter(CURRENCY)
    ax.tick_params(axis="x", which="both", length=0, pad=8)  # major and minor labels on one line
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 0.5-transaction ticks
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    ax.set_xlim(low, high)
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
