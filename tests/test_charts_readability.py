"""pipeline.charts stays readable whatever the shape of the data.

Every chart is rendered (Agg canvas) for each shape that applies to it: 1 to 120
months, product names up to 100 characters, 1 to 20 regions, every customer
demographic missing, a single row. Two checks on every figure:

* layout: after ``fig.canvas.draw()``, the window extent of every text that was
  drawn (titles, tick labels, axis labels, annotations, legend texts) lies inside the
  figure (and inside its clip box, if it has one), and no two of them overlap;
* values: what the chart draws (bar lengths, line points, wedge angles) equals the
  input frame, computed here with pandas from that frame alone.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from matplotlib.patches import Rectangle, Wedge
from matplotlib.text import Annotation, Text

from pipeline import charts

# ---------------------------------------------------------------------------------------
# Layout: every drawn text inside the figure, no two overlapping


@contextlib.contextmanager
def recording_drawn_texts() -> Iterator[list[Text]]:
    """Collect every Text matplotlib actually draws (visible, non-empty, in view)."""
    drawn: dict[int, Text] = {}
    original = Text.draw

    def draw(self, renderer):
        if self.get_visible() and self.get_text().strip():
            drawn[id(self)] = self
        return original(self, renderer)

    Text.draw = draw
    try:
        yield drawn
    finally:
        Text.draw = original


def drawn_text_boxes(fig) -> list[tuple[str, object]]:
    with recording_drawn_texts() as drawn:
        fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return [(t, t.get_window_extent(renderer)) for t in drawn.values()]


def overlap(a, b) -> bool:
    return min(a.x1, b.x1) - max(a.x0, b.x0) > 0 and min(a.y1, b.y1) - max(a.y0, b.y0) > 0


def inside(box, outer) -> bool:
    return box.x0 >= outer.x0 and box.x1 <= outer.x1 and box.y0 >= outer.y0 and box.y1 <= outer.y1


def assert_readable(fig) -> list[Text]:
    """Assert the layout rules above; return the drawn texts for further checks."""
    boxes = drawn_text_boxes(fig)
    assert boxes, "nothing was drawn"
    problems = []
    for text, box in boxes:
        if not inside(box, fig.bbox):
            problems.append(f"outside the figure: {text.get_text()!r} {box.bounds}")
        clip = text.get_clip_box()
        if text.get_clip_on() and clip is not None and not inside(box, clip):
            problems.append(f"clipped: {text.get_text()!r}")
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1 :]:
            if overlap(box_a, box_b):
                problems.append(f"overlap: {a.get_text()!r} and {b.get_text()!r}")
    assert not problems, "\n".join(problems)
    return [t for t, _ in boxes]


# ---------------------------------------------------------------------------------------
# Values: what is drawn, read back from the artists


def bars_in_reading_order(ax) -> list[Rectangle]:
    """The bars, left to right for columns, top to bottom for rows."""
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    vertical = is_vertical(ax)

    def centre(bar):
        return ax.transData.transform((bar.get_x() + bar.get_width() / 2,
                                       bar.get_y() + bar.get_height() / 2))  # fmt: skip

    if vertical:
        return sorted(bars, key=lambda b: centre(b)[0])
    return sorted(bars, key=lambda b: -centre(b)[1])


def is_vertical(ax) -> bool:
    return ax.containers[0].orientation == "vertical"


def bar_lengths(ax) -> list[float]:
    vertical = is_vertical(ax)
    return [b.get_height() if vertical else b.get_width() for b in bars_in_reading_order(ax)]


def label_at(ax, bar) -> str:
    """The category tick label drawn at ``bar``'s position."""
    vertical = is_vertical(ax)
    axis = ax.xaxis if vertical else ax.yaxis
    where = bar.get_x() + bar.get_width() / 2 if vertical else bar.get_y() + bar.get_height() / 2
    for loc, label in zip(axis.get_ticklocs(), axis.get_ticklabels(), strict=True):
        if math.isclose(loc, where):
            return label.get_text()
    raise AssertionError(f"no tick label at {where}")


def names_the(label: str, name: str) -> bool:
    """Whether a (wrapped or shortened) label stands for ``name``: its start and its end."""
    squash = "".join(name.split())
    if "…" not in label:
        return "".join(label.split()) == squash
    head, tail = ("".join(part.split()) for part in label.split("…"))
    return bool(head) and bool(tail) and squash.startswith(head) and squash.endswith(tail)


def assert_bars_are(ax, names: list[str], values: list[float]) -> None:
    bars = bars_in_reading_order(ax)
    assert bar_lengths(ax) == pytest.approx(values)
    for bar, name in zip(bars, names, strict=True):
        label = label_at(ax, bar)
        assert names_the(label, name), (label, name)
        assert max(len(line) for line in label.splitlines()) <= 40, label
    assert all(b.get_x() == 0 for b in bars) or all(b.get_y() == 0 for b in bars)


def texts_of(drawn: list[Text]) -> str:
    return "\n".join(t.get_text() for t in drawn)


# ---------------------------------------------------------------------------------------
# The shapes

RNG = np.random.default_rng(7)

REGION_NAMES = [
    "North", "South", "East", "West", "Central", "Greater London Metropolitan Area",
    "Pacific Northwest", "Rhine-Ruhr", "Île-de-France and the Northern Departments",
    "Lombardy", "Greater Tokyo", "Sao Paulo State", "Southeast Asia (Singapore hub)",
    "Scandinavia", "Baltic States", "Iberian Peninsula", "Anatolia",
    "Gulf Cooperation Council Countries", "Benelux", "Australia and New Zealand",
]  # fmt: skip


def region_frame(n: int) -> pd.DataFrame:
    revenue = np.sort(RNG.uniform(1_000, 5_000_000, n).round(2))[::-1]
    return pd.DataFrame(
        {
            "region": REGION_NAMES[:n],
            "total_revenue": revenue,
            "transaction_count": RNG.integers(2, 20_000, n),
            "avg_transaction_value": RNG.uniform(10, 900, n).round(2),
        }
    )


LONG_NAMES = [
    "Ultra-wide curved 49-inch QHD gaming monitor with 240 Hz refresh, HDR1000 and a "
    "built-in KVM switch",
    "Ultra-wide curved 49-inch QHD gaming monitor with 240 Hz refresh, HDR1000 and a "
    "built-in USB-C dock",
    "x" * 100,  # one word: no space to wrap at
    "Laptop",
    "Noise-cancelling over-ear wireless headphones, graphite, with travel case and "
    "two-year warranty",
    "Smartphone 15 Pro Max (512 GB, titanium blue) with magnetic wallet and screen guard",
    "A" + " very" * 17 + " long name",
    "Tablet",
    "Robot vacuum and mop combination with self-emptying base, lidar mapping and app "
    "control (EU plug)",
    "Mechanical keyboard, 75% layout, hot-swappable tactile switches, per-key RGB, "
    "aluminium case, ISO-DE",
]
assert all(len(name) <= 100 for name in LONG_NAMES)


def product_frame(names: list[str]) -> pd.DataFrame:
    n = len(names)
    return pd.DataFrame(
        {
            "product": names,
            "total_revenue": np.sort(RNG.uniform(500, 2_000_000, n).round(2))[::-1],
            "units_sold": RNG.integers(2, 50_000, n),
            "transaction_count": RNG.integers(2, 40_000, n),
        }
    )


def month_frame(months: list[tuple[int, int]], revenue=None) -> pd.DataFrame:
    n = len(months)
    if revenue is None:
        revenue = RNG.uniform(10_000, 3_000_000, n).round(2)
    return pd.DataFrame(
        {
            "year": [y for y, _ in months],
            "month": [m for _, m in months],
            "total_revenue": revenue,
            "transaction_count": RNG.integers(2, 100_000, n),
        }
    )


def consecutive_months(n: int, year: int = 2016, month: int = 3) -> list[tuple[int, int]]:
    start = year * 12 + month - 1
    return [((start + i) // 12, (start + i) % 12 + 1) for i in range(n)]


MONTH_SHAPES = {
    "1 month": month_frame(consecutive_months(1)),
    "2 months": month_frame(consecutive_months(2)),
    "3 close months": month_frame(consecutive_months(3), [1_000_000.0, 1_010_000.0, 990_000.0]),
    "12 months": month_frame(consecutive_months(12)),
    "13 months": month_frame(consecutive_months(13)),
    "36 months rising": month_frame(consecutive_months(36), np.linspace(1e5, 2e6, 36)),
    "37 months": month_frame(consecutive_months(37)),
    "120 months": month_frame(consecutive_months(120, 2015, 1)),
    "120 months, peak and trough last": month_frame(
        consecutive_months(120, 2015, 1), [5e5] * 117 + [9e5, 1e4, 8.9e5]
    ),
    "45 of 120 months (gaps)": month_frame(
        sorted(RNG.choice(np.array(consecutive_months(120)), 45, replace=False).tolist())
    ),
}

TIER_NAMES = ["Bronze", "Silver", "Gold", "Platinum", "unknown customer"]


def tier_frame(names: list, revenue: list[float]) -> pd.DataFrame:
    total = sum(revenue)
    return pd.DataFrame(
        {
            "membership_tier": names,
            "total_revenue": revenue,
            "transaction_count": RNG.integers(2, 5_000, len(names)),
            "revenue_share_pct": [round(100 * r / total, 2) for r in revenue],
        }
    )


TIER_SHAPES = {
    "five tiers, thin unknown": tier_frame(TIER_NAMES, [450e3, 300e3, 180e3, 70e3, 12e3]),
    "four thin slices": tier_frame(TIER_NAMES, [900e3, 45e3, 41e3, 40e3, 5e3]),
    "one tier (single row)": tier_frame(["Gold"], [1234.5]),
}

AGE_ORDER = ["18-25", "26-35", "36-45", "46-55", "56-65", "65+", "unknown customer"]


def age_frame(names: list) -> pd.DataFrame:
    n = len(names)
    return pd.DataFrame(
        {
            "age_group": names,
            "total_revenue": RNG.uniform(100, 3_000_000, n).round(2),
            "transaction_count": RNG.integers(2, 10_000, n),
            "avg_transaction_value": RNG.uniform(10, 12_000, n).round(2),
        }
    )


AGE_SHAPES = {
    "seven groups, shuffled": age_frame(
        ["unknown customer", "65+", "26-35", "18-25", "56-65", "46-55", "36-45"]
    ),  # fmt: skip
    "one group (single row)": age_frame(["36-45"]),
}

# Every demographic missing: no transaction matched a customer. The query says 'unknown
# customer'; a null, or the older 'unknown', must read the same.
MISSING_DEMOGRAPHICS = {
    "unknown": ["unknown"],
    "null": [None],
    "null and unknown": [None, "unknown"],
}


def missing_frame(column: str, labels: list) -> pd.DataFrame:
    n = len(labels)
    return pd.DataFrame(
        {
            column: labels,
            "total_revenue": [123_456.78, 1_000.00][:n],
            "transaction_count": [1_234, 7][:n],
            "avg_transaction_value": [100.05, 142.86][:n],
            "revenue_share_pct": [100.0, 0.0][:n],
        }
    )


def histogram_frame(lower, upper, counts, mean=131.5, median=120.25) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "bin_lower": lower,
            "bin_upper": upper,
            "transaction_count": counts,
            "mean_amount": [mean] * len(counts),
            "median_amount": [median] * len(counts),
        }
    )


def log_bins(low: float, high: float, counts) -> pd.DataFrame:
    edges = np.exp(np.linspace(np.log(low), np.log(high), len(counts) + 1)).round(2)
    amounts = np.repeat(edges[:-1], counts)
    return histogram_frame(edges[:-1], edges[1:], counts, amounts.mean(), np.median(amounts))


HISTOGRAM_SHAPES = {
    "20 bins over 3 decades": log_bins(10, 10_000, RNG.integers(0, 2_000, 20)),
    "20 bins over 6 decades": log_bins(0.5, 500_000, RNG.integers(0, 2_000, 20)),
    "20 bins within $1.50-$2.10": log_bins(1.5, 2.1, RNG.integers(0, 50, 20)),
    "one bin (single row)": histogram_frame([10.0], [100.0], [5], 40.0, 35.0),
}
# One transaction (or many of one amount): the query's 20 bins all have zero width.
ONE_AMOUNT = {
    "one transaction": histogram_frame([49.99] * 20, [49.99] * 20, [1] + [0] * 19, 49.99, 49.99),
    "300 of one amount": histogram_frame([5.0] * 20, [5.0] * 20, [300] + [0] * 19, 5.0, 5.0),
}


# ---------------------------------------------------------------------------------------
# revenue_by_region: 1 to 20 regions


@pytest.mark.parametrize("n", [1, 2, 5, 8, 9, 12, 13, 20])
def test_revenue_by_region_reads_with_1_to_20_regions(n):
    df = region_frame(n)
    fig = charts.revenue_by_region_chart(df)
    (ax,) = fig.axes
    drawn = assert_readable(fig)
    assert_bars_are(ax, df["region"].tolist(), df["total_revenue"].tolist())
    # Every bar carries its order count.
    text = texts_of(drawn)
    for count in df["transaction_count"]:
        assert f"{count:,} orders" in text


# ---------------------------------------------------------------------------------------
# top_products: names up to 100 characters, 1 to 10 rows


@pytest.mark.parametrize(
    "names",
    [LONG_NAMES, LONG_NAMES[:3], LONG_NAMES[:1], ["Laptop"]],
    ids=["10 long names", "3 long names", "one long name", "one short name"],
)
def test_top_products_reads_with_names_up_to_100_characters(names):
    df = product_frame(names)
    fig = charts.top_products_chart(df)
    (ax,) = fig.axes
    drawn = assert_readable(fig)
    assert_bars_are(ax, df["product"].tolist(), df["total_revenue"].tolist())
    # The two monitors differ only at the end: their labels must differ too.
    labels = [label_at(ax, bar) for bar in bars_in_reading_order(ax)]
    assert len(set(labels)) == len(labels)
    text = texts_of(drawn)
    for units in df["units_sold"]:
        assert f"({units:,} units)" in text


# ---------------------------------------------------------------------------------------
# monthly_trend: 1 to 120 months


def month_of(x: float) -> tuple[int, int]:
    return int(x) // 12, int(x) % 12 + 1


@pytest.mark.parametrize("shape", MONTH_SHAPES)
def test_monthly_trend_reads_with_1_to_120_months(shape):
    df = MONTH_SHAPES[shape]
    fig = charts.monthly_trend_chart(df.sample(frac=1, random_state=1))  # any row order
    (ax,) = fig.axes
    drawn = assert_readable(fig)

    ordered = df.sort_values(["year", "month"]).reset_index(drop=True)
    line = ax.lines[0]
    assert [month_of(x) for x in line.get_xdata()] == list(
        zip(ordered["year"], ordered["month"], strict=True)
    )
    assert list(line.get_ydata()) == pytest.approx(ordered["total_revenue"].tolist())

    # Ticks: each label names the month it stands at; thinned as the span grows.
    first = ordered["year"].iloc[0] * 12 + ordered["month"].iloc[0] - 1
    last = ordered["year"].iloc[-1] * 12 + ordered["month"].iloc[-1] - 1
    span = last - first + 1
    shown = [
        (loc, t.get_text()) for loc, t in zip(ax.get_xticks(), ax.get_xticklabels(), strict=True)
    ]
    assert 1 <= len(shown) <= 13
    for loc, label in shown:
        assert first <= loc <= last
        year, month = month_of(loc)
        if span > 36:
            assert (month, label) == (1, f"{year}")
        else:
            assert label == f"{year}-{month:02d}"
            assert span <= 12 or month in (1, 4, 7, 10)

    # Only the points that matter carry a label: the highest, the lowest, the latest.
    revenue = ordered["total_revenue"]
    x = ordered["year"] * 12 + ordered["month"] - 1
    points = sorted({revenue.idxmax(), revenue.idxmin(), len(ordered) - 1})
    annotations = sorted((t for t in drawn if isinstance(t, Annotation)), key=lambda a: a.xy)
    assert [a.xy[0] for a in annotations] == [x[i] for i in points]
    assert [a.xy[1] for a in annotations] == pytest.approx([revenue[i] for i in points])
    for a in annotations:
        year, month = month_of(a.xy[0])
        assert f"{year}-{month:02d}" in a.get_text()


# ---------------------------------------------------------------------------------------
# customer_tiers and age_group_analysis: all demographics missing, a single row


def wedge_spans(ax) -> list[float]:
    return [abs(w.theta2 - w.theta1) for w in ax.patches if isinstance(w, Wedge)]


@pytest.mark.parametrize("shape", TIER_SHAPES)
def test_customer_tiers_reads_with_thin_slices_and_a_single_tier(shape):
    df = TIER_SHAPES[shape]
    fig = charts.customer_tiers_chart(df)
    (ax,) = fig.axes
    drawn = assert_readable(fig)
    revenue = df["total_revenue"]
    assert wedge_spans(ax) == pytest.approx((360 * revenue / revenue.sum()).tolist())
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert [label.split(":")[0] for label in legend] == df["membership_tier"].tolist()
    text = texts_of(drawn)
    for pct in df["revenue_share_pct"]:
        assert f"({pct:.1f}%)" in text


@pytest.mark.parametrize("shape", AGE_SHAPES)
def test_age_groups_read_in_age_order_and_with_a_single_row(shape):
    df = AGE_SHAPES[shape]
    fig = charts.age_group_analysis_chart(df)
    revenue_ax, avg_ax = fig.axes
    assert_readable(fig)
    ordered = df.set_index("age_group").loc[[a for a in AGE_ORDER if a in set(df["age_group"])]]
    names = ordered.index.tolist()
    assert_bars_are(revenue_ax, names, ordered["total_revenue"].tolist())
    assert_bars_are(avg_ax, names, ordered["avg_transaction_value"].tolist())


@pytest.mark.parametrize(
    ("chart", "column"),
    [
        (charts.customer_tiers_chart, "membership_tier"),
        (charts.age_group_analysis_chart, "age_group"),
    ],
)
@pytest.mark.parametrize("labels", MISSING_DEMOGRAPHICS.values(), ids=MISSING_DEMOGRAPHICS)
def test_no_demographics_is_said_in_words(chart, column, labels):
    df = missing_frame(column, labels)
    fig = chart(df)
    drawn = assert_readable(fig)
    # Nothing plotted: no empty ring, no lone grey bar.
    for ax in fig.axes:
        assert not ax.patches and not ax.lines and not ax.axison
    text = texts_of(drawn)
    assert (
        f"No {'membership tier' if column == 'membership_tier' else 'age group'}s to show" in text
    )
    transactions = int(df["transaction_count"].sum())
    revenue = float(df["total_revenue"].sum())
    assert f"None of the {transactions:,} transactions (${revenue:,.2f})" in text


def test_customers_without_an_age_group_are_not_called_unmatched():
    # Every customer matched, but no record has an age group: the summary's 0 unknown
    # customers and the chart agree.
    df = pd.DataFrame(
        {
            "age_group": ["no age group"],
            "total_revenue": [123_456.50],
            "transaction_count": [9_994],
            "avg_transaction_value": [12.35],
        }
    )
    text = texts_of(assert_readable(charts.age_group_analysis_chart(df)))
    assert "No age groups to show" in text
    assert (
        "All 9,994 transactions ($123,456.50) matched a customer\n"
        "record, but no customer record has an age group." in text
    )
    assert "None of" not in text


def test_tierless_customers_and_unmatched_ones_are_told_apart_in_words():
    df = pd.DataFrame(
        {
            "membership_tier": ["no tier", "unknown customer"],
            "total_revenue": [900.0, 100.0],
            "transaction_count": [90, 10],
            "revenue_share_pct": [90.0, 10.0],
        }
    )
    text = texts_of(assert_readable(charts.customer_tiers_chart(df)))
    assert (
        "90 of the 100 transactions ($1,000.00) matched a\n"
        "customer record, but none of those records has a membership tier;\n"
        "the other 10 matched no customer record." in text
    )


def test_no_tier_and_unknown_customer_are_wedges_of_their_own():
    df = pd.DataFrame(
        {
            "membership_tier": ["Gold", "no tier", "unknown customer"],
            "total_revenue": [700.0, 200.0, 100.0],
            "transaction_count": [7, 2, 1],
            "revenue_share_pct": [70.0, 20.0, 10.0],
        }
    )
    fig = charts.customer_tiers_chart(df)
    (ax,) = fig.axes
    assert_readable(fig)
    assert wedge_spans(ax) == pytest.approx([252.0, 72.0, 36.0])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [
        "Gold: $700 (70.0%)",
        "no tier: $200 (20.0%)",
        "unknown customer: $100 (10.0%)",
    ]


def test_a_null_tier_next_to_known_ones_joins_the_unknown_customers():
    df = pd.DataFrame(
        {
            "membership_tier": ["Gold", None, "unknown"],
            "total_revenue": [600.0, 300.0, 100.0],
            "transaction_count": [6, 3, 1],
            "revenue_share_pct": [60.0, 30.0, 10.0],
        }
    )
    fig = charts.customer_tiers_chart(df)
    (ax,) = fig.axes
    assert_readable(fig)
    assert wedge_spans(ax) == pytest.approx([216.0, 144.0])  # 600 and 300 + 100 of 1000
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["Gold: $600 (60.0%)", "unknown customer: $400 (40.0%)"]


def test_a_null_age_group_next_to_known_ones_joins_the_unknown_customers():
    df = pd.DataFrame(
        {
            "age_group": ["unknown", "26-35", None],
            "total_revenue": [100.0, 600.0, 300.0],
            "transaction_count": [2, 6, 2],
            "avg_transaction_value": [50.0, 100.0, 150.0],
        }
    )
    fig = charts.age_group_analysis_chart(df)
    revenue_ax, avg_ax = fig.axes
    assert_readable(fig)
    # unknown customer = 100 + 300 over 2 + 2 transactions: $400, $100 a transaction
    assert_bars_are(revenue_ax, ["26-35", "unknown customer"], [600.0, 400.0])
    assert_bars_are(avg_ax, ["26-35", "unknown customer"], [100.0, 100.0])


# ---------------------------------------------------------------------------------------
# transaction_distribution: bins of any range, a single row, a single amount


@pytest.mark.parametrize("shape", HISTOGRAM_SHAPES)
def test_transaction_histogram_reads_for_any_bins(shape):
    df = HISTOGRAM_SHAPES[shape]
    fig = charts.transaction_distribution_chart(df)
    (ax,) = fig.axes
    drawn = assert_readable(fig)
    bars = bars_in_reading_order(ax)
    assert [b.get_x() for b in bars] == pytest.approx(df["bin_lower"].tolist())
    assert [b.get_width() for b in bars] == pytest.approx(
        (df["bin_upper"] - df["bin_lower"]).tolist()
    )
    assert [b.get_height() for b in bars] == df["transaction_count"].tolist()
    marks = sorted(line.get_xdata()[0] for line in ax.lines)
    assert marks == pytest.approx(sorted([df["mean_amount"][0], df["median_amount"][0]]))
    # At least two amounts are labelled on the x axis, whatever the range.
    amounts = [t for t in drawn if t in ax.get_xticklabels(which="both")]
    assert len(amounts) >= 2


@pytest.mark.parametrize("shape", ONE_AMOUNT)
def test_transaction_histogram_of_a_single_amount_is_one_bar_there(shape):
    df = ONE_AMOUNT[shape]
    fig = charts.transaction_distribution_chart(df)
    (ax,) = fig.axes
    drawn = assert_readable(fig)
    (bar,) = bars_in_reading_order(ax)
    amount = df["bin_lower"][0]
    count = int(df["transaction_count"].sum())
    assert bar.get_height() == count
    assert bar.get_x() < amount < bar.get_x() + bar.get_width()
    note = "One transaction, of" if count == 1 else f"All {count:,} transactions are"
    assert f"{note} ${amount:,.2f}" in texts_of(drawn)
