"""create_visualizations.py: the CLI over pipeline.charts.

The tiny lake below is hand-written; the expected bars and points are read off its rows.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from matplotlib.patches import Rectangle

import create_visualizations as cv
from pipeline import charts


def bar_heights(ax) -> list[float]:
    return [p.get_height() for p in ax.patches if isinstance(p, Rectangle)]


def tick_labels(axis) -> list[str]:
    return [t.get_text() for t in axis.get_ticklabels()]


def test_cli_on_an_empty_lake_fails_with_one_line(tmp_path, capsys):
    code = cv.main(["--lake", str(tmp_path / "lake"), "--output", str(tmp_path / "out")])
    assert code != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "no processed data" in err
    assert not (tmp_path / "out").exists()


def write_enriched_lake(lake, prefix: str, more_october: tuple = ()) -> None:
    """Four enriched rows (and ``more_october``) in two month partitions, laid out as the
    job writes them."""
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.config import PipelineConfig

    money = pa.decimal128(12, 2)
    schema = pa.schema(
        [
            ("transaction_id", pa.string()),
            ("transaction_date", pa.date32()),
            ("customer_id", pa.string()),
            ("product", pa.string()),
            ("quantity", pa.int32()),
            ("unit_price", money),
            ("region", pa.string()),
            ("total_amount", money),
            ("age_group", pa.string()),
            ("membership_tier", pa.string()),
            ("signup_date", pa.date32()),
            ("day", pa.int32()),
        ]
    )
    d = Decimal
    rows = {
        9: [
            ("T1", dt.date(2025, 9, 3), "C1", "Laptop", 1, d("900"), "North", d("900"), "26-35", "Gold", None, 3),
            ("T2", dt.date(2025, 9, 20), "C2", "Mouse", 2, d("25"), "South", d("50"), "18-25", "Silver", None, 20),
        ],
        10: [
            ("T3", dt.date(2025, 10, 1), "C9", "Phone", 1, d("600"), "North", d("600"), None, None, None, 1),
            ("T4", dt.date(2025, 10, 9), "C1", "Mouse", 1, d("25"), "East", d("25"), "26-35", "Gold", None, 9),
            *more_october,
        ],
    }  # fmt: skip
    config = PipelineConfig(prefix=prefix, target="local", lake=lake)
    for month, month_rows in rows.items():
        folder = config.local_path(config.enriched_uri) / f"year=2025/month={month}"
        folder.mkdir(parents=True)
        table = pa.Table.from_pylist(
            [dict(zip(schema.names, r, strict=True)) for r in month_rows], schema
        )
        pq.write_table(table, folder / "part-00000.snappy.parquet")


def test_cli_renders_the_real_queries_over_a_tiny_local_lake(tmp_path):
    from pipeline.config import PipelineConfig
    from pipeline.targets import make_target

    lake, out = tmp_path / "lake", tmp_path / "out"
    write_enriched_lake(lake, "charts")

    assert cv.main(["--lake", str(lake), "--prefix", "charts", "--output", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(charts.CHARTS)

    engine = make_target(PipelineConfig(prefix="charts", target="local", lake=lake)).engine()
    engine.setup_tables()
    (ax,) = charts.revenue_by_region_chart(engine.run_named("revenue_by_region").df).axes
    assert tick_labels(ax.xaxis) == ["North", "South", "East"]
    assert bar_heights(ax) == pytest.approx([1500.0, 50.0, 25.0])
    (ax,) = charts.monthly_trend_chart(engine.run_named("monthly_trend").df).axes
    assert tick_labels(ax.xaxis) == ["2025-09", "2025-10"]
    assert list(ax.lines[0].get_ydata()) == pytest.approx([950.0, 625.0])
    revenue_ax, _avg_ax = charts.age_group_analysis_chart(
        engine.run_named("age_group_analysis").df
    ).axes
    assert tick_labels(revenue_ax.xaxis) == ["18-25", "26-35", "unknown customer"]
    assert bar_heights(revenue_ax) == pytest.approx([50.0, 925.0, 600.0])


def test_the_queries_tell_a_customer_without_a_value_from_an_unknown_customer(tmp_path):
    import datetime as dt

    from pipeline.config import PipelineConfig
    from pipeline.targets import make_target

    d = Decimal
    lake = tmp_path / "lake"
    write_enriched_lake(
        lake,
        "charts",
        more_october=(
            # C3 has a record with an age group and a signup date but no tier; C4 a
            # record with a tier but no age group. C9 (T3) matched no record at all.
            ("T5", dt.date(2025, 10, 20), "C3", "Mouse", 1, d("25"), "West", d("25"), "36-45", None, dt.date(2025, 1, 2), 20),
            ("T6", dt.date(2025, 10, 21), "C4", "Mouse", 2, d("25"), "West", d("50"), None, "Silver", None, 21),
        ),
    )  # fmt: skip
    engine = make_target(PipelineConfig(prefix="charts", target="local", lake=lake)).engine()
    engine.setup_tables()

    tiers = engine.run_named("customer_tiers").df
    assert tiers["membership_tier"].tolist() == ["Gold", "unknown customer", "Silver", "no tier"]
    assert tiers["total_revenue"].astype(float).tolist() == [925.0, 600.0, 100.0, 25.0]
    assert tiers["transaction_count"].tolist() == [2, 1, 2, 1]

    ages = engine.run_named("age_group_analysis").df
    assert ages["age_group"].tolist() == [
        "18-25", "26-35", "36-45", "no age group", "unknown customer"
    ]  # fmt: skip
    assert ages["total_revenue"].astype(float).tolist() == [50.0, 925.0, 25.0, 50.0, 600.0]

    # September's sales fall on days 3 and 20, October's on days 1 to 21.
    months = engine.run_named("monthly_trend").df
    assert months[["month", "first_day", "last_day"]].values.tolist() == [[9, 3, 20], [10, 1, 21]]
