"""pipeline.charts: the six charts plot exactly the rows their query returned.

Inputs are small hand-written frames with the contract columns of docs/interfaces.md;
every expected value below is read off those frames, never from the code under test.
"""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle, Wedge
from PIL import Image

from pipeline import charts


def bar_heights(ax) -> list[float]:
    return [p.get_height() for p in ax.patches if isinstance(p, Rectangle)]


def tick_labels(axis) -> list[str]:
    return [t.get_text() for t in axis.get_ticklabels()]


def all_text(fig: Figure) -> str:
    return "\n".join(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")))


def assert_labelled(ax, *, x_unit: str | None = None, y_unit: str | None = None) -> None:
    assert ax.get_title()
    assert ax.get_xlabel() and ax.get_ylabel()
    if x_unit:
        assert x_unit in ax.get_xlabel()
    if y_unit:
        assert y_unit in ax.get_ylabel()


# Numbers arrive as Decimal (DuckDB) or str (pyathena); the frames mix both on purpose.
REGIONS = pd.DataFrame(
    {
        "region": ["North", "South", "East"],
        "total_revenue": [Decimal("1500000.00"), Decimal("820000.50"), Decimal("12345.67")],
        "transaction_count": [3000, 1640, 25],
        "avg_transaction_value": [Decimal("500.00"), Decimal("500.00"), Decimal("493.83")],
    }
)

PRODUCTS = pd.DataFrame(
    {
        "product": ["Laptop", "Phone", "Mouse"],
        "total_revenue": ["90000.00", "45000.50", "1200.00"],
        "units_sold": ["90", "150", "60"],
        "transaction_count": ["80", "120", "50"],
    }
)

MONTHS = pd.DataFrame(
    {
        "year": [2025, 2025, 2026],
        "month": [9, 12, 1],
        "total_revenue": [Decimal("100.00"), Decimal("300.00"), Decimal("200.00")],
        "transaction_count": [1, 3, 2],
    }
)

TIERS = pd.DataFrame(
    {
        "membership_tier": ["Gold", "Silver", "unknown customer"],
        "total_revenue": [Decimal("500.00"), Decimal("300.00"), Decimal("200.00")],
        "transaction_count": [5, 3, 2],
        "revenue_share_pct": [Decimal("50.00"), Decimal("30.00"), Decimal("20.00")],
    }
)

# Deliberately out of age order, with 'unknown customer' first.
AGES = pd.DataFrame(
    {
        "age_group": ["unknown customer", "56+", "26-35", "18-25"],
        "total_revenue": [
            Decimal("40.00"),
            Decimal("300.00"),
            Decimal("500.00"),
            Decimal("200.00"),
        ],
        "transaction_count": [1, 3, 4, 2],
        "avg_transaction_value": [
            Decimal("40.00"),
            Decimal("100.00"),
            Decimal("125.00"),
            Decimal("100.00"),
        ],
    }
)

BINS = pd.DataFrame(
    {
        "bin_lower": [Decimal("10"), Decimal("100"), Decimal("1000")],
        "bin_upper": [Decimal("100"), Decimal("1000"), Decimal("10000")],
        "transaction_count": [5, 12, 3],
        "mean_amount": [Decimal("131.50")] * 3,
        "median_amount": [Decimal("120.25")] * 3,
    }
)

FRAMES = {
    "revenue_by_region": REGIONS,
    "top_products": PRODUCTS,
    "monthly_trend": MONTHS,
    "customer_tiers": TIERS,
    "age_group_analysis": AGES,
    "transaction_distribution": BINS,
}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "$0"),
        (950, "$950"),
        (7.5, "$7.50"),
        (0.5, "$0.50"),
        (12.3, "$12.30"),
        (999.99, "$999.99"),
        (999.999, "$1K"),  # rounds to $1,000.00
        (-7.5, "-$7.50"),
        (-0.001, "$0"),
        (12_345.6, "$12.3K"),
        (1_234_567, "$1.23M"),
        (1_500_000, "$1.5M"),
        (999_999, "$1M"),
        (-2_500, "-$2.5K"),
    ],
)
def test_currency_reads_as_money_cents_below_a_thousand_then_compact(value, text):
    assert charts.format_currency(value) == text


@pytest.mark.parametrize(
    ("n", "noun", "text"),
    [(1, "order", "1 order"), (2, "order", "2 orders"), (1234, "unit", "1,234 units")],
)
def test_counts_read_as_words(n, noun, text):
    assert charts.count_of(n, noun) == text


NAME_100 = (
    "Ultra-wide curved 49-inch QHD gaming monitor with 240 Hz refresh, HDR1000 and a "
    "built-in KVM switch"
)


@pytest.mark.parametrize(
    ("text", "width", "lines", "label"),
    [
        ("Laptop", 28, 2, "Laptop"),
        ("  Gaming   Console ", 28, 2, "Gaming Console"),
        ("Noise-cancelling over-ear wireless headphones", 28, 2,
         "Noise-cancelling over-ear\nwireless headphones"),
        # Too long for two lines: the start, then an ellipsis and the end from a word.
        (NAME_100, 38, 2, "Ultra-wide curved 49-inch QHD gaming\n…HDR1000 and a built-in KVM switch"),
        (NAME_100, 26, 1, "Ultra-wide cu…n KVM switch"),
        ("x" * 100, 10, 2, "xxxxxxxxxx\n…xxxxxxxxx"),
        ("", 10, 2, "(blank)"),
    ],
)  # fmt: skip
def test_short_label_wraps_then_keeps_start_and_end(text, width, lines, label):
    assert charts.short_label(text, width, lines) == label
    assert all(len(line) <= width for line in label.splitlines())


def test_revenue_by_region_bars_are_the_query_rows_in_order():
    fig = charts.revenue_by_region_chart(REGIONS)
    (ax,) = fig.axes
    assert bar_heights(ax) == pytest.approx([1_500_000.00, 820_000.50, 12_345.67])
    assert tick_labels(ax.xaxis) == ["North", "South", "East"]
    assert_labelled(ax, y_unit="USD")
    assert ax.yaxis.get_major_formatter()(2_000_000, 0) == "$2M"
    bar_texts = [t.get_text() for t in ax.texts]
    assert bar_texts == ["$1.5M\n3,000 orders", "$820K\n1,640 orders", "$12.3K\n25 orders"]


def test_top_products_are_horizontal_bars_with_the_first_row_on_top():
    fig = charts.top_products_chart(PRODUCTS)
    (ax,) = fig.axes
    assert [p.get_width() for p in ax.patches] == pytest.approx([90000.00, 45000.50, 1200.00])
    # Horizontal: every bar starts at x=0.
    assert [p.get_x() for p in ax.patches] == [0, 0, 0]
    assert tick_labels(ax.yaxis) == ["Laptop", "Phone", "Mouse"]
    assert ax.yaxis_inverted()  # so "Laptop" (row 1) is drawn at the top
    assert_labelled(ax, x_unit="USD")
    assert "Top 3" in ax.get_title()
    assert [t.get_text() for t in ax.texts][1] == "$45K (150 units)"


def test_monthly_trend_places_months_by_date_with_year_month_labels():
    fig = charts.monthly_trend_chart(MONTHS)
    (ax,) = fig.axes
    line = ax.lines[0]
    assert list(line.get_ydata()) == pytest.approx([100.0, 300.0, 200.0])
    # 2025-09, 2025-12, 2026-01 as months since year 0: October and November (no sales)
    # keep their place on the axis.
    assert list(line.get_xdata()) == [2025 * 12 + 8, 2025 * 12 + 11, 2026 * 12 + 0]
    assert tick_labels(ax.xaxis) == ["2025-09", "2025-10", "2025-11", "2025-12", "2026-01"]
    assert list(ax.get_xticks()) == list(range(2025 * 12 + 8, 2026 * 12 + 1))
    assert_labelled(ax, y_unit="USD")
    assert ax.get_ylim()[0] == 0
    # Highest (2025-12), lowest (2025-09) and latest (2026-01): here every month.
    labels = sorted(ax.texts, key=lambda t: t.xy[0])
    assert [t.get_text() for t in labels] == [
        "Lowest: $100\n2025-09, 1 order",
        "Highest: $300\n2025-12, 3 orders",
        "Latest: $200\n2026-01, 2 orders",
    ]


def test_a_partial_first_and_last_month_are_marked_and_never_lowest_or_highest():
    # The data start on 15 September and end on 13 December: both ends are partial, and
    # September's $50 is not the lowest month, nor December's the latest full one.
    months = pd.DataFrame(
        {
            "year": [2025, 2025, 2025, 2025],
            "month": [9, 10, 11, 12],
            "total_revenue": [Decimal("50.00"), Decimal("300.00"), Decimal("280.00"),
                              Decimal("120.00")],
            "transaction_count": [5, 30, 28, 12],
            "first_day": [15, 1, 1, 1],
            "last_day": [30, 31, 30, 13],
        }
    )  # fmt: skip
    (ax,) = charts.monthly_trend_chart(months).axes
    labels = sorted(ax.texts, key=lambda t: t.xy[0])
    assert [t.get_text() for t in labels] == [
        "First (partial): $50\n2025-09 (days 15-30 of 30), 5 orders",
        "Highest: $300\n2025-10, 30 orders",
        "Lowest: $280\n2025-11, 28 orders",
        "Latest (partial): $120\n2025-12 (days 1-13 of 31), 12 orders",
    ]
    # The partial months' markers are hollow.
    hollow = [line for line in ax.lines if line.get_markerfacecolor() == "white"]
    assert [list(h.get_xdata()) for h in hollow] == [[2025 * 12 + 8, 2025 * 12 + 11]]


def test_whole_first_and_last_months_are_not_partial():
    # Days 1-30 of September and 1-31 of October: both whole (February 2024 has 29 days).
    months = pd.DataFrame(
        {"year": [2024, 2025, 2025], "month": [2, 9, 10],
         "total_revenue": [10.0, 20.0, 30.0], "transaction_count": [1, 2, 3],
         "first_day": [1, 1, 1], "last_day": [29, 30, 31]}
    )  # fmt: skip
    (ax,) = charts.monthly_trend_chart(months).axes
    assert [t.get_text().split(":")[0] for t in sorted(ax.texts, key=lambda t: t.xy[0])] == [
        "Lowest",
        "Highest & latest",
    ]


def test_a_single_partial_month_says_so():
    month = pd.DataFrame(
        {"year": [2025], "month": [12], "total_revenue": [7.5], "transaction_count": [1],
         "first_day": [2], "last_day": [2]}
    )  # fmt: skip
    (ax,) = charts.monthly_trend_chart(month).axes
    assert [t.get_text() for t in ax.texts] == [
        "Only month (partial): $7.50\n2025-12 (days 2-2 of 31), 1 order"
    ]


def test_monthly_trend_orders_months_even_if_rows_arrive_shuffled():
    shuffled = MONTHS.iloc[[2, 0, 1]]
    (ax,) = charts.monthly_trend_chart(shuffled).axes
    assert tick_labels(ax.xaxis)[0] == "2025-09" and tick_labels(ax.xaxis)[-1] == "2026-01"
    assert list(ax.lines[0].get_ydata()) == pytest.approx([100.0, 300.0, 200.0])


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [
        ((2025, 9), (2025, 9), ["2025-09"]),
        ((2025, 2), (2026, 1), [f"2025-{m:02d}" for m in range(2, 13)] + ["2026-01"]),
        ((2025, 2), (2026, 2), ["2025-04", "2025-07", "2025-10", "2026-01"]),  # 13 months
        (
            (2023, 1),
            (2025, 12),
            [f"{y}-{m:02d}" for y in (2023, 2024, 2025) for m in (1, 4, 7, 10)],
        ),  # fmt: skip
        ((2023, 1), (2026, 1), ["2023", "2024", "2025", "2026"]),  # 37 months
        ((2015, 1), (2024, 12), [str(y) for y in range(2015, 2025)]),  # 120 months
    ],
)
def test_month_ticks_thin_to_quarters_then_years(first, last, expected):
    months = pd.DataFrame(
        {"year": [first[0], last[0]], "month": [first[1], last[1]],
         "total_revenue": [1.0, 2.0], "transaction_count": [1, 2]}
    ).drop_duplicates(["year", "month"])  # fmt: skip
    (ax,) = charts.monthly_trend_chart(months).axes
    assert tick_labels(ax.xaxis) == expected


def test_customer_tiers_wedges_are_each_tiers_share_of_revenue():
    fig = charts.customer_tiers_chart(TIERS)
    (ax,) = fig.axes
    wedges = [p for p in ax.patches if isinstance(p, Wedge)]
    spans = [abs(w.theta2 - w.theta1) for w in wedges]
    # 500 / 300 / 200 of 1000 revenue -> 50%, 30%, 20% of the circle
    assert spans == pytest.approx([180.0, 108.0, 72.0])
    text = all_text(fig)
    for label in ("Gold", "Silver", "unknown customer", "50.0%", "30.0%", "20.0%", "$1K"):
        assert label in text
    assert ax.get_title()


def test_age_group_chart_has_two_panels_in_age_order_with_unknown_last():
    fig = charts.age_group_analysis_chart(AGES)
    revenue_ax, avg_ax = fig.axes
    order = ["18-25", "26-35", "56+", "unknown\ncustomer"]  # wrapped to fit under its bar
    assert tick_labels(revenue_ax.xaxis) == order
    assert tick_labels(avg_ax.xaxis) == order
    assert bar_heights(revenue_ax) == pytest.approx([200.0, 500.0, 300.0, 40.0])
    assert bar_heights(avg_ax) == pytest.approx([100.0, 125.0, 100.0, 40.0])
    for ax in (revenue_ax, avg_ax):
        assert_labelled(ax, y_unit="USD")
    assert "revenue" in revenue_ax.get_ylabel().lower()
    assert "average" in avg_ax.get_ylabel().lower()
    assert fig.get_suptitle()


def test_transaction_histogram_uses_the_bins_and_marks_mean_and_median():
    fig = charts.transaction_distribution_chart(BINS)
    (ax,) = fig.axes
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert [b.get_height() for b in bars] == [5, 12, 3]
    assert [b.get_x() for b in bars] == [10, 100, 1000]
    assert [b.get_width() for b in bars] == [90, 900, 9000]
    assert ax.get_xscale() == "log"
    vertical_x = sorted(line.get_xdata()[0] for line in ax.lines)
    assert vertical_x == pytest.approx([120.25, 131.50])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["Mean $131.50", "Median $120.25"]
    assert_labelled(ax, x_unit="USD")


def test_missing_contract_column_names_it():
    with pytest.raises(ValueError, match="total_revenue"):
        charts.revenue_by_region_chart(REGIONS.drop(columns=["total_revenue"]))


class FakeEngine:
    """Stands in for pipeline.engines: setup_tables() and run_named(name).df."""

    def __init__(self, frames: dict[str, pd.DataFrame]):
        self.frames = frames
        self.calls: list[str] = []

    def setup_tables(self) -> None:
        self.calls.append("setup_tables")

    def run_named(self, name: str) -> SimpleNamespace:
        self.calls.append(name)
        return SimpleNamespace(df=self.frames[name])


def test_render_all_runs_each_query_once_and_writes_six_pngs(tmp_path):
    engine = FakeEngine(FRAMES)
    paths = charts.render_all(engine, tmp_path / "shots")

    assert [p.name for p in paths] == [
        "01_revenue_by_region.png",
        "02_top_products.png",
        "03_monthly_trend.png",
        "04_customer_tiers.png",
        "05_age_group_analysis.png",
        "06_transaction_distribution.png",
    ]
    assert engine.calls == ["setup_tables", *FRAMES]
    for path in paths:
        assert path.parent == tmp_path / "shots"
        assert path.stat().st_size > 10_000
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert 1200 <= image.width <= 1600  # 10 in at 120-150 dpi


def test_render_all_with_an_empty_query_result_writes_nothing(tmp_path):
    frames = {**FRAMES, "top_products": PRODUCTS.iloc[0:0]}
    with pytest.raises(charts.NoDataError, match="top_products"):
        charts.render_all(FakeEngine(frames), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_render_all_writes_nothing_if_the_last_chart_cannot_be_drawn(tmp_path):
    frames = {**FRAMES, "transaction_distribution": BINS.drop(columns=["median_amount"])}
    with pytest.raises(ValueError, match="median_amount"):
        charts.render_all(FakeEngine(frames), tmp_path)
    assert list(tmp_path.iterdir()) == []
