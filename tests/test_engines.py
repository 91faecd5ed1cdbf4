"""Engines: every named query on a lake written by the real job, against pandas; pruning
measured; the Athena path through pyathena against moto."""

from __future__ import annotations

import datetime as dt
import json
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
from botocore.stub import Stubber
from lake_fixtures import CUSTOMERS_NDJSON, SALES_CSV, expected_enriched, raw_frames
from moto import mock_aws
from moto_fixtures import REGION

from pipeline.catalog import crawl_local
from pipeline.config import PipelineConfig
from pipeline.engines import AthenaEngine, LocalEngine, athena_message
from pipeline.errors import QueryError
from pipeline.sql import analytic_names
from pipeline.targets import make_target


@pytest.fixture(scope="module")
def engine(lake: PipelineConfig) -> LocalEngine:
    engine = LocalEngine(lake)
    engine.setup_tables()
    yield engine
    engine.close()


# --- expected results, computed in pandas from the raw input --------------------------


def _unknown(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(
        membership_tier=df["membership_tier"].fillna("unknown"),
        age_group=df["age_group"].fillna("unknown"),
    )


def _chart_demographics(df: pd.DataFrame) -> pd.DataFrame:
    """The chart queries' labels: 'unknown customer' when every demographic is empty (no
    record matched), 'no tier' / 'no age group' when the matched record lacks it."""
    unmatched = df["membership_tier"].isna() & df["age_group"].isna() & df["signup_date"].isna()
    return df.assign(
        membership_tier=df["membership_tier"].fillna(
            unmatched.map({True: "unknown customer", False: "no tier"})
        ),
        age_group=df["age_group"].fillna(
            unmatched.map({True: "unknown customer", False: "no age group"})
        ),
    )


def _cents(values: pd.Series) -> pd.Series:
    """Round money half-up to cents, as Athena and DuckDB round decimals."""
    return values.map(
        lambda v: float(Decimal(str(round(v, 9))).quantize(Decimal("0.01"), ROUND_HALF_UP))
    )


def _share(values: pd.Series, digits: int = 2) -> pd.Series:
    return (100 * values / values.sum()).round(digits)


def expect_revenue_by_region(df: pd.DataFrame) -> pd.DataFrame:
    g = df.groupby("region")["total_amount"]
    out = pd.DataFrame(
        {
            "total_revenue": g.sum(),
            "transaction_count": g.count(),
            "avg_transaction_value": _cents(g.mean()),
        }
    ).reset_index()
    return out.sort_values(["total_revenue", "region"], ascending=[False, True])


def expect_top_products(df: pd.DataFrame) -> pd.DataFrame:
    out = (
        df.groupby("product")
        .agg(
            total_revenue=("total_amount", "sum"),
            units_sold=("quantity", "sum"),
            transaction_count=("transaction_id", "count"),
        )
        .reset_index()
    )
    return out.sort_values(["total_revenue", "product"], ascending=[False, True]).head(10)


def expect_monthly_trend(df: pd.DataFrame) -> pd.DataFrame:
    return (
        df.assign(day=df["date"].dt.day)
        .groupby(["year", "month"])
        .agg(
            total_revenue=("total_amount", "sum"),
            transaction_count=("transaction_id", "count"),
            first_day=("day", "min"),
            last_day=("day", "max"),
        )
        .reset_index()
    )


def expect_customer_tiers(df: pd.DataFrame) -> pd.DataFrame:
    out = (
        _chart_demographics(df)
        .groupby("membership_tier")
        .agg(total_revenue=("total_amount", "sum"), transaction_count=("transaction_id", "count"))
        .reset_index()
    )
    out["revenue_share_pct"] = _share(out["total_revenue"])
    return out.sort_values(["total_revenue", "membership_tier"], ascending=[False, True])


def expect_age_group_analysis(df: pd.DataFrame) -> pd.DataFrame:
    out = (
        _chart_demographics(df)
        .groupby("age_group")
        .agg(
            total_revenue=("total_amount", "sum"),
            transaction_count=("transaction_id", "count"),
            avg_transaction_value=("total_amount", "mean"),
        )
        .reset_index()
    )
    out["avg_transaction_value"] = _cents(out["avg_transaction_value"])
    return out.sort_values("age_group")


def expect_transaction_distribution(df: pd.DataFrame) -> pd.DataFrame:
    amounts = df["total_amount"].to_numpy(dtype=float)
    # 20 bins of equal width in log(amount), from the smallest to the largest amount.
    low, high = np.log(amounts.min()), np.log(amounts.max())
    width = (high - low) / 20
    bins = np.minimum(np.floor((np.log(amounts) - low) / width), 19).astype(int)
    return pd.DataFrame(
        {
            "bin_lower": np.round(np.exp(low + np.arange(20) * width), 2),
            "bin_upper": np.round(np.exp(low + np.arange(1, 21) * width), 2),
            "transaction_count": np.bincount(bins, minlength=20),
            "mean_amount": round(amounts.mean(), 2),
            "median_amount": round(float(np.median(amounts)), 2),
        }
    )


def expect_high_value_transactions(df: pd.DataFrame) -> pd.DataFrame:
    out = _unknown(df).sort_values(["total_amount", "transaction_id"], ascending=[False, True])
    out = out.head(20).assign(amount_rank=range(1, min(20, len(out)) + 1))
    out["revenue_share_pct"] = (100 * out["total_amount"] / df["total_amount"].sum()).round(4)
    out = out.rename(columns={"date": "transaction_date"})
    return out[
        [
            "amount_rank",
            "transaction_id",
            "transaction_date",
            "customer_id",
            "membership_tier",
            "region",
            "product",
            "quantity",
            "total_amount",
            "revenue_share_pct",
        ]
    ]


def expect_repeat_customers(df: pd.DataFrame) -> pd.DataFrame:
    per = df.groupby("customer_id").agg(n=("transaction_id", "count"), rev=("total_amount", "sum"))
    per["customer_type"] = np.where(per["n"] > 1, "repeat", "one_time")
    out = (
        per.groupby("customer_type")
        .agg(customers=("n", "size"), transaction_count=("n", "sum"), total_revenue=("rev", "sum"))
        .reset_index()
    )
    out["transactions_per_customer"] = (out["transaction_count"] / out["customers"]).round(2)
    out["revenue_share_pct"] = _share(out["total_revenue"])
    out["total_revenue"] = out["total_revenue"].round(2)
    return out.sort_values("customer_type", ascending=False)


def expect_avg_basket_by_tier(df: pd.DataFrame) -> pd.DataFrame:
    out = (
        _unknown(df)
        .groupby("membership_tier")
        .agg(
            transaction_count=("transaction_id", "count"),
            avg_units=("quantity", "mean"),
            avg_basket_value=("total_amount", "mean"),
            max_basket_value=("total_amount", "max"),
        )
        .reset_index()
        .round({"avg_units": 2, "avg_basket_value": 2, "max_basket_value": 2})
    )
    return out.sort_values(["avg_basket_value", "membership_tier"], ascending=[False, True])


def expect_month_over_month_growth(df: pd.DataFrame) -> pd.DataFrame:
    out = df.groupby(["year", "month"])["total_amount"].sum().reset_index(name="total_revenue")
    out["previous_revenue"] = out["total_revenue"].shift(1)
    out["revenue_change"] = (out["total_revenue"] - out["previous_revenue"]).round(2)
    out["growth_pct"] = (100 * out["revenue_change"] / out["previous_revenue"]).round(2)
    return out


def expect_product_mix_by_region(df: pd.DataFrame) -> pd.DataFrame:
    out = (
        df.groupby(["region", "product"])
        .agg(total_revenue=("total_amount", "sum"), transaction_count=("transaction_id", "count"))
        .reset_index()
    )
    out["region_share_pct"] = (
        100 * out["total_revenue"] / out.groupby("region")["total_revenue"].transform("sum")
    ).round(2)
    return out.sort_values(["region", "total_revenue", "product"], ascending=[True, False, True])


def expect_unknown_customer_share(df: pd.DataFrame) -> pd.DataFrame:
    unknown = df["membership_tier"].isna()
    revenue = df["total_amount"].sum()
    return pd.DataFrame(
        {
            "transaction_count": [len(df)],
            "unknown_transactions": [int(unknown.sum())],
            "unknown_transaction_pct": [round(100 * unknown.mean(), 2)],
            "unknown_revenue": [round(df.loc[unknown, "total_amount"].sum(), 2)],
            "unknown_revenue_pct": [
                round(100 * df.loc[unknown, "total_amount"].sum() / revenue, 2)
            ],
        }
    )


def expect_signup_cohorts(df: pd.DataFrame) -> pd.DataFrame:
    known = df[df["signup_date"].notna()].assign(signup_year=lambda d: d["signup_date"].dt.year)
    out = (
        known.groupby("signup_year")
        .agg(
            customers=("customer_id", "nunique"),
            transaction_count=("transaction_id", "count"),
            total_revenue=("total_amount", "sum"),
        )
        .reset_index()
    )
    out["revenue_per_customer"] = (out["total_revenue"] / out["customers"]).round(2)
    return out


def expect_summary_region_month(df: pd.DataFrame) -> pd.DataFrame:
    return (
        df.groupby(["year", "month", "region"])
        .agg(total_revenue=("total_amount", "sum"), transaction_count=("transaction_id", "count"))
        .reset_index()
    )


def expect_raw_vs_enriched_counts(df: pd.DataFrame) -> pd.DataFrame:
    sales, _ = raw_frames()
    return pd.DataFrame(
        {
            "raw_sales_rows": [len(sales)],
            "enriched_rows": [len(df)],
            "rows_not_enriched": [len(sales) - len(df)],
        }
    )


def expect_customers_by_tier(df: pd.DataFrame) -> pd.DataFrame:
    _, customers = raw_frames()
    out = (
        customers.groupby("membership_tier")["customer_id"].nunique().reset_index(name="customers")
    )
    return out.sort_values(["customers", "membership_tier"], ascending=[False, True])


# The fixture's input has no bad row: its quarantine is empty (the table exists, with its
# columns). The quarantine queries on rejected rows: test_quarantine_queries_...
QUARANTINE_QUERIES = {
    "quarantine_by_reason": ["source", "reason", "last_run_rows", "all_runs_rows", "runs"],
    "quarantine_rows": [
        "run_id", "source", "reason", "detail", "source_file", "record_id", "raw_record",
    ],
}  # fmt: skip


def expect_quarantine_by_reason(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(columns=QUARANTINE_QUERIES["quarantine_by_reason"])


def expect_quarantine_rows(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(columns=QUARANTINE_QUERIES["quarantine_rows"])


EXPECTED = {
    name.removeprefix("expect_"): fn for name, fn in globals().items() if name.startswith("expect_")
}


def _comparable(df: pd.DataFrame) -> pd.DataFrame:
    """Plain floats and ISO date strings, so engine and pandas frames compare."""
    out = df.reset_index(drop=True).copy()
    for col in out.columns:
        values = out[col]
        if pd.api.types.is_datetime64_any_dtype(values):
            out[col] = values.dt.strftime("%Y-%m-%d")
        elif values.map(lambda v: isinstance(v, dt.date)).any():
            out[col] = values.map(lambda v: pd.Timestamp(v).strftime("%Y-%m-%d"))
        elif not values.map(lambda v: isinstance(v, str)).any():
            out[col] = pd.to_numeric(values).astype(float)
    return out


def test_every_analytic_query_has_an_independent_expectation() -> None:
    assert sorted(EXPECTED) == sorted(analytic_names())


def test_hand_checked_totals_match_the_pandas_model() -> None:
    # The pandas model itself, checked by hand on the ten input rows.
    df = expected_enriched()
    assert df["total_amount"].sum() == pytest.approx(5111.99)
    assert df.loc[df["region"] == "North", "total_amount"].sum() == pytest.approx(1670.00)
    assert int(df["membership_tier"].isna().sum()) == 2  # CUST0009 twice


@pytest.mark.slow
@pytest.mark.parametrize("name", analytic_names())
def test_named_query_returns_the_values_computed_in_pandas(engine: LocalEngine, name: str) -> None:
    result = engine.run_named(name)
    expected = EXPECTED[name](expected_enriched())

    assert list(result.df.columns) == list(expected.columns)
    assert result.rows == len(expected) == len(result.df)
    pd.testing.assert_frame_equal(
        # Within a cent: rounding an exact half of a double may go either way.
        _comparable(result.df),
        _comparable(expected),
        check_dtype=False,
        atol=0.0101,
        rtol=0,
    )
    assert result.name == name and result.seconds > 0
    if name not in QUARANTINE_QUERIES:  # an empty quarantine is no file at all
        assert result.files_read >= 1 and result.bytes_read > 0


@pytest.mark.slow
def test_query_filtered_to_one_month_reads_only_that_months_files(
    engine: LocalEngine, lake: PipelineConfig
) -> None:
    enriched = lake.local_path(lake.enriched_uri)
    all_files = sorted(enriched.glob("year=*/month=*/*.parquet"))
    february = sorted(enriched.glob("year=2024/month=2/*.parquet"))
    assert len(all_files) > len(february) >= 1

    full = engine.run("select count(*) as n, sum(total_amount) as revenue from enriched_sales")
    one_month = engine.run(
        "select count(*) as n, sum(total_amount) as revenue from enriched_sales "
        "where year = 2024 and month = 2"
    )

    assert one_month.df["n"].tolist() == [3]
    assert full.df["n"].tolist() == [10]
    assert full.files_read == len(all_files)
    assert one_month.files_read == len(february)
    assert one_month.bytes_read < full.bytes_read
    # DuckDB answers a bare count(*) from Parquet metadata while planning; still measured.
    count_only = engine.run(
        "select count(*) as n from enriched_sales where year = 2024 and month = 2"
    )
    assert count_only.df["n"].tolist() == [3]
    assert count_only.files_read == len(february)


@pytest.mark.slow
def test_tables_have_the_declared_types(engine: LocalEngine) -> None:
    types = dict(row[:2] for row in engine.con.execute("describe enriched_sales").fetchall())
    assert types["unit_price"] == "DECIMAL(12,2)"
    assert types["transaction_date"] == "DATE"
    assert types["quantity"] == "INTEGER"
    assert types["year"] == "INTEGER" and types["month"] == "INTEGER"
    raw = dict(row[:2] for row in engine.con.execute("describe sales_data_csv").fetchall())
    assert raw["date"] == "DATE" and raw["quantity"] == "BIGINT"


@pytest.mark.slow
def test_bad_sql_raises_one_line_engine_message(engine: LocalEngine) -> None:
    with pytest.raises(QueryError) as parse_error:
        engine.run("selec region from")
    with pytest.raises(QueryError, match="no_such_table") as missing:
        engine.run("select * from no_such_table")
    for error in (parse_error, missing):
        assert "\n" not in str(error.value) and str(error.value)


# --- registration details on tiny lakes written here ----------------------------------


def _write_partition(lake: PipelineConfig, year: int, month: int) -> None:
    folder = lake.local_path(lake.enriched_uri) / f"year={year}" / f"month={month}"
    folder.mkdir(parents=True)
    table = pa.table(
        {
            "transaction_id": ["T1"],
            "total_amount": pa.array([1.5], pa.float64()),  # the DDL says decimal(12,2)
        }
    )
    pq.write_table(table, folder / "part-0.parquet")


def test_projection_range_and_declared_types_are_honoured(tmp_path: Path) -> None:
    config = PipelineConfig(prefix="proj", target="local", lake=tmp_path)
    _write_partition(config, 2024, 5)
    _write_partition(config, 1999, 1)  # outside projection.year.range: Athena never reads it
    engine = LocalEngine(config)

    result = engine.run("select year, month, total_amount, customer_id from enriched_sales")

    assert result.df[["year", "month"]].values.tolist() == [[2024, 5]]
    assert result.files_read == 1
    described = dict(row[:2] for row in engine.con.execute("describe enriched_sales").fetchall())
    assert described["total_amount"] == "DECIMAL(12,2)"


def _quarantine_file(config: PipelineConfig, day: str, run_id: str, rows: list[tuple]) -> None:
    """One run's quarantine file as the job lays it out: run_date=<day>/<run_id>.parquet."""
    folder = config.local_path(config.quarantine_uri) / f"run_date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    names = ["source", "reason", "detail", "source_file", "record_id", "raw_record"]
    columns = {name: [r[i] for r in rows] for i, name in enumerate(names)}
    table = pa.table(
        {
            "run_id": [run_id] * len(rows),
            "run_started": [f"{day}T09:00:00Z"] * len(rows),
            **columns,
            "raw_bytes": pa.array([None] * len(rows), pa.binary()),
        }
    )
    pq.write_table(table, folder / f"{run_id}.parquet")


def test_quarantine_queries_count_the_last_run_and_all_runs_within_the_projection(
    tmp_path: Path,
) -> None:
    config = PipelineConfig(prefix="q", target="local", lake=tmp_path)
    today = dt.datetime.now(dt.UTC).date()
    earlier, now = (today - dt.timedelta(days=3)).isoformat(), today.isoformat()
    sales = ("sales", "missing_field", "product is empty", "s3://r/a.csv")
    _quarantine_file(
        config,
        earlier,
        "r1",
        [
            (*sales, "T1", "T1,2025-01-01,C1,,1,1,N,1"),
            (*sales, "T2", "T2,2025-01-01,C1,,1,1,N,1"),
            ("customers", "invalid_json", "not JSON", "s3://r/c.json", None, "{oops"),
        ],
    )
    _quarantine_file(config, now, "r2", [(*sales, "T3", "T3,2025-01-02,C1,,1,1,N,1")])
    # Older than the projection's range (the last two years): Athena never reads it.
    _quarantine_file(config, "2019-01-01", "r0", [(*sales, "T0", "T0,old")])
    engine = LocalEngine(config)
    engine.setup_tables()

    by_reason = engine.run_named("quarantine_by_reason").df
    assert by_reason.values.tolist() == [
        ["sales", "missing_field", 1, 3, 2],
        ["customers", "invalid_json", 0, 1, 1],
    ]
    rows = engine.run_named("quarantine_rows").df
    assert rows[["run_id", "record_id", "raw_record"]].values.tolist() == [
        ["r2", "T3", "T3,2025-01-02,C1,,1,1,N,1"],
        ["r1", None, "{oops"],
        ["r1", "T1", "T1,2025-01-01,C1,,1,1,N,1"],
        ["r1", "T2", "T2,2025-01-01,C1,,1,1,N,1"],
    ]
    assert list(rows.columns) == QUARANTINE_QUERIES["quarantine_rows"]
    assert set(rows["detail"]) == {"product is empty", "not JSON"}
    dates = engine.run("select distinct run_date from quarantine order by run_date").df
    assert dates["run_date"].tolist() == [earlier, now]


def test_empty_lake_gives_empty_tables_not_errors(tmp_path: Path) -> None:
    engine = make_target(PipelineConfig(prefix="empty", target="local", lake=tmp_path)).engine()
    assert isinstance(engine, LocalEngine)
    result = engine.run_named("revenue_by_region")
    assert result.rows == 0
    assert list(result.df.columns) == [
        "region",
        "total_revenue",
        "transaction_count",
        "avg_transaction_value",
    ]
    assert engine.run_named("create_database").rows == 0


# --- aws: pyathena against moto -------------------------------------------------------


def _queue_results(url: str, columns: list[tuple[str, str]], rows: list[list[str]]) -> None:
    """Queue one Athena result in moto: header row first, full column info."""
    info = [
        {
            "CatalogName": "hive",
            "SchemaName": "",
            "TableName": "",
            "Name": name,
            "Label": name,
            "Type": kind,
            "Precision": 38 if kind == "decimal" else 0,
            "Scale": 2 if kind == "decimal" else 0,
            "Nullable": "UNKNOWN",
            "CaseSensitive": kind == "varchar",
        }
        for name, kind in columns
    ]
    header = {"Data": [{"VarCharValue": name} for name, _ in columns]}
    data = [{"Data": [{"VarCharValue": v} for v in row]} for row in rows]
    payload = {"region": REGION, "results": [{"rows": [header, *data], "column_info": info}]}
    response = requests.post(f"{url}/moto-api/static/athena/query-results", json=payload)
    assert response.status_code == 201


REGION_COLUMNS = [
    ("region", "varchar"),
    ("total_revenue", "decimal"),
    ("transaction_count", "bigint"),
    ("avg_transaction_value", "decimal"),
]


def test_athena_engine_runs_ddl_and_named_query_through_pyathena(aws_env) -> None:  # noqa: F811
    config = PipelineConfig(prefix="athena", target="aws", region=REGION, endpoint_url=None)
    with mock_aws():
        athena = boto3.client("athena", region_name=REGION)
        athena.create_work_group(
            Name=config.workgroup,
            Configuration={"ResultConfiguration": {"OutputLocation": config.athena_results_uri}},
        )
        engine = make_target(config).engine()
        assert isinstance(engine, AthenaEngine)
        engine.setup_tables()
        _queue_results(
            "http://motoapi.amazonaws.com",
            REGION_COLUMNS,
            [["North", "1670.00", "3", "556.67"], ["South", "1226.50", "2", "613.25"]],
        )

        result = engine.run_named("revenue_by_region")

        executions = athena.list_query_executions(WorkGroup=config.workgroup)["QueryExecutionIds"]
        sent = [
            athena.get_query_execution(QueryExecutionId=i)["QueryExecution"]["Query"]
            for i in executions
        ]
    assert list(result.df.columns) == [c for c, _ in REGION_COLUMNS]
    assert result.df.values.tolist() == [["North", 1670, 3, 556.67], ["South", 1226.5, 2, 613.25]]
    assert result.rows == 2 and result.files_read is None
    assert result.bytes_read == 0  # moto's DataScannedInBytes
    # The DDL went out rendered: database, then the three projected tables.
    assert any(
        q.split()[:6] == "create database if not exists sales_analytics_db_athena".split()
        for q in sent
    )
    ddl = [q for q in sent if "create external table" in q]
    assert len(ddl) == 3 and all("s3://athena-processed/" in q for q in ddl)
    assert [("year=${year}/month=${month}" in q, "run_date=${run_date}/" in q) for q in ddl] == [
        (True, False),
        (True, False),
        (False, True),
    ]


def test_athena_engine_uses_the_endpoint_url(moto_server: str) -> None:  # noqa: F811
    config = PipelineConfig(prefix="athena", target="aws", region=REGION, endpoint_url=moto_server)
    boto3.client("athena", region_name=REGION, endpoint_url=moto_server).create_work_group(
        Name=config.workgroup,
        Configuration={"ResultConfiguration": {"OutputLocation": config.athena_results_uri}},
    )
    _queue_results(moto_server, [("n", "bigint")], [["42"]])
    result = AthenaEngine(config, poll_interval=0.01).run(
        "select count(*) as n from enriched_sales"
    )
    assert result.df.to_dict("records") == [{"n": 42}]


# --- errors in the user's terms, on a lake of crawled raw files (no job) --------------


def _raw_lake(root: Path, customers: dict[str, str] | None = None) -> PipelineConfig:
    """A lake holding only the hand-written raw input, crawled; no Spark job runs.

    ``customers`` maps file names to their text (default: the NDJSON of the fixture).
    """
    config = PipelineConfig(prefix="raw", target="local", lake=root / "lake")
    sales = config.local_path(config.raw_sales_uri)
    sales.mkdir(parents=True)
    (sales / "sales_data.csv").write_text(SALES_CSV)
    folder = config.local_path(config.raw_customers_uri)
    folder.mkdir(parents=True)
    for name, text in (customers or {"customer_demographics.json": CUSTOMERS_NDJSON}).items():
        (folder / name).write_bytes(text.encode("utf-8"))
    crawl_local(config)
    return config


@pytest.fixture(scope="module")
def raw_engine(tmp_path_factory: pytest.TempPathFactory) -> LocalEngine:
    engine = LocalEngine(_raw_lake(tmp_path_factory.mktemp("raw-lake")))
    engine.setup_tables()
    yield engine
    engine.close()


def _error(engine: LocalEngine, sql: str) -> str:
    with pytest.raises(QueryError) as caught:
        engine.run(sql)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_misspelled_keyword_says_where_and_which_keyword(raw_engine: LocalEngine) -> None:
    assert _error(raw_engine, "selec * from enriched_sales") == (
        'line 1, column 1: "selec" is not a keyword; did you mean SELECT?'
    )
    assert _error(
        raw_engine, "select region, count(*) as n\nfrom sales_data_csv\ngruop by region"
    ) == ('line 3, column 1: "gruop" is not a keyword; did you mean GROUP?')


def test_unknown_table_lists_the_catalogs_tables_not_duckdbs(raw_engine: LocalEngine) -> None:
    message = _error(raw_engine, "select *\nfrom   no_such_table")
    # The DDL's three tables (empty: no job ran) and the crawler's two raw tables.
    assert message == (
        'line 2, column 8: there is no table "no_such_table"; tables in sales_analytics_db_raw: '
        "customer_demographics_json, enriched_sales, quarantine, sales_data_csv, sales_summary"
    )
    assert _error(raw_engine, "select * from nodb.enriched_sales").startswith(
        'line 1, column 15: there is no table "nodb.enriched_sales"; tables in'
    )


def test_unknown_column_says_where_and_the_closest_column(raw_engine: LocalEngine) -> None:
    message = _error(raw_engine, "select region,\n       totl_amount\nfrom sales_data_csv")
    assert message.startswith(
        'line 2, column 8: there is no column "totl_amount" in the tables this query reads; '
        "closest: total_amount"
    )
    # The second "amount" is the bad one: the place is that occurrence's, not the first's.
    message = _error(
        raw_engine, "select s.total_amount, s.amount from sales_data_csv s where s.quantity > 1"
    )
    assert message == 'line 1, column 24: "s" has no column "amount"'


def test_other_engine_errors_keep_duckdbs_words_on_one_line(raw_engine: LocalEngine) -> None:
    message = _error(raw_engine, "select region, sum(quantity) as units from sales_data_csv")
    assert message.startswith('line 1, column 8: Binder Error: column "region" must appear')


# --- money stays exact -----------------------------------------------------------------


def test_decimal_columns_are_kept_exact_beside_the_float_frame(tmp_path: Path) -> None:
    config = PipelineConfig(prefix="money", target="local", lake=tmp_path)
    folder = config.local_path(config.enriched_uri) / "year=2024" / "month=5"
    folder.mkdir(parents=True)
    money = pa.array(
        [Decimal("999999999.99"), Decimal("23026123.45"), Decimal("0.01")], pa.decimal128(12, 2)
    )
    pq.write_table(
        pa.table({"transaction_id": ["T1", "T2", "T3"], "total_amount": money}),
        folder / "p.parquet",
    )
    engine = LocalEngine(config)

    result = engine.run(
        "select count(*) as n, sum(total_amount) as revenue, max(total_amount) as top "
        "from enriched_sales"
    )

    # 999,999,999.99 + 23,026,123.45 + 0.01, added by hand.
    assert result.decimals[1].to_pylist() == [Decimal("1023026123.45")]
    assert result.decimals[2].to_pylist() == [Decimal("999999999.99")]
    assert sorted(result.decimals) == [1, 2]  # n is no decimal
    assert result.df["revenue"].dtype == float  # the frame keeps floats for charts
    assert result.df["revenue"].tolist() == [pytest.approx(1023026123.45)]


# --- both customer layouts -------------------------------------------------------------

CUSTOMER_RECORDS = [json.loads(line) for line in CUSTOMERS_NDJSON.splitlines()]
AS_ARRAY = "\ufeff[\n" + ",\n".join("  " + json.dumps(r) for r in CUSTOMER_RECORDS) + "\n]\n"
HALF_ARRAY = json.dumps(CUSTOMER_RECORDS[:2], indent=2)
HALF_LINES = "".join(json.dumps(r) + "\n" for r in CUSTOMER_RECORDS[2:])

LAYOUTS = {
    "ndjson": {"customer_demographics.json": CUSTOMERS_NDJSON},
    "json_array": {"customer_demographics.json": AS_ARRAY},
    "both_in_one_folder": {"a.json": HALF_ARRAY, "b.json": HALF_LINES},
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_raw_customers_read_the_same_from_either_layout(tmp_path: Path, layout: str) -> None:
    engine = LocalEngine(_raw_lake(tmp_path, LAYOUTS[layout]))

    tiers = engine.run_named("customers_by_tier")
    rows = engine.run(
        "select customer_id, age_group, year(signup_date) as signup_year "
        "from customer_demographics_json order by customer_id"
    )

    # CUST0001 and CUST0004 are Gold, CUST0003 Bronze, CUST0002 Silver (lake_fixtures).
    assert tiers.df.values.tolist() == [["Gold", 2], ["Bronze", 1], ["Silver", 1]]
    assert rows.df.values.tolist() == [
        ["CUST0001", "26-35", 2022],
        ["CUST0002", "36-45", 2023],
        ["CUST0003", "26-35", 2023],
        ["CUST0004", "18-25", 2024],
    ]
    described = dict(
        row[:2] for row in engine.con.execute("describe customer_demographics_json").fetchall()
    )
    assert described["signup_date"] == "DATE"
    assert rows.files_read == len(LAYOUTS[layout])


# --- aws: Athena's errors as one line, and exact decimals -----------------------------

TRINO_SYNTAX_ERROR = (
    "line 1:1: mismatched input 'selec'. Expecting: 'ALTER', 'ANALYZE', 'CALL', 'COMMIT', "
    "'CREATE', 'DEALLOCATE', 'DELETE', 'DENY', 'DESC', 'DESCRIBE', 'DROP', 'EXECUTE', "
    "'EXPLAIN', 'GRANT', 'INSERT', 'MERGE', 'PREPARE', 'REFRESH', 'RESET', 'REVOKE', "
    "'ROLLBACK', 'SELECT', 'SET', 'SHOW', 'START', 'TABLE', 'TRUNCATE', 'UPDATE', 'USE', "
    "'VALUES', 'WITH', <query>"
)


def test_athena_messages_become_line_and_column_in_plain_words() -> None:
    assert athena_message(
        RuntimeError(
            "TABLE_NOT_FOUND: line 1:15: Table "
            "'awsdatacatalog.sales_analytics_db.no_such_table' does not exist"
        )
    ) == (
        "line 1, column 15: Table 'awsdatacatalog.sales_analytics_db.no_such_table' "
        "does not exist (TABLE_NOT_FOUND)"
    )
    assert athena_message(
        RuntimeError(
            "An error occurred (InvalidRequestException) when calling the "
            f"StartQueryExecution operation: {TRINO_SYNTAX_ERROR}"
        )
    ) == (
        "line 1, column 1: unexpected \"selec\"; expected one of 'ALTER', 'ANALYZE', 'CALL', "
        "'COMMIT', 'CREATE', 'DEALLOCATE', 'DELETE', 'DENY', ... (InvalidRequestException)"
    )
    assert athena_message(RuntimeError("Query exhausted resources\nat this scale factor")) == (
        "Query exhausted resources at this scale factor"
    )


def _athena_with_replies(config: PipelineConfig) -> tuple[AthenaEngine, Stubber]:
    """An AthenaEngine on a real pyathena connection whose Athena client is stubbed."""
    from pyathena import connect

    connection = connect(
        s3_staging_dir=config.athena_results_uri,
        region_name=REGION,
        work_group=config.workgroup,
        schema_name=config.database,
        poll_interval=0.01,
    )
    return AthenaEngine(config, connection=connection), Stubber(connection.client)


def test_athena_errors_reach_the_user_as_one_readable_line(aws_env) -> None:  # noqa: F811
    config = PipelineConfig(prefix="athena", target="aws", region=REGION)
    engine, stubber = _athena_with_replies(config)
    # Rejected at submission (a syntax error) ...
    stubber.add_client_error(
        "start_query_execution",
        service_error_code="InvalidRequestException",
        service_message=TRINO_SYNTAX_ERROR,
    )
    # ... and failed while running (a missing table), as Athena reports them.
    stubber.add_response("start_query_execution", {"QueryExecutionId": "q-2"})
    stubber.add_response(
        "get_query_execution",
        {
            "QueryExecution": {
                "QueryExecutionId": "q-2",
                "Query": "select *\nfrom no_such_table",
                "StatementType": "DML",
                "WorkGroup": config.workgroup,
                "Status": {
                    "State": "FAILED",
                    "StateChangeReason": "TABLE_NOT_FOUND: line 2:6: Table "
                    "'awsdatacatalog.sales_analytics_db.no_such_table' does not exist",
                },
            }
        },
    )
    with stubber:
        with pytest.raises(QueryError) as syntax:
            engine.run("selec * from enriched_sales")
        with pytest.raises(QueryError) as missing:
            engine.run("select *\nfrom no_such_table")
    assert str(syntax.value).startswith('line 1, column 1: unexpected "selec"; expected one of')
    assert str(missing.value) == (
        "line 2, column 6: Table 'awsdatacatalog.sales_analytics_db.no_such_table' "
        "does not exist (TABLE_NOT_FOUND)"
    )


def test_athena_decimals_are_kept_exact(aws_env) -> None:  # noqa: F811
    config = PipelineConfig(prefix="athena", target="aws", region=REGION, endpoint_url=None)
    with mock_aws():
        boto3.client("athena", region_name=REGION).create_work_group(
            Name=config.workgroup,
            Configuration={"ResultConfiguration": {"OutputLocation": config.athena_results_uri}},
        )
        _queue_results(
            "http://motoapi.amazonaws.com",
            [("region", "varchar"), ("total_revenue", "decimal")],
            [["North", "1023026123.45"], ["South", "0.05"]],
        )
        result = AthenaEngine(config, poll_interval=0.01).run(
            "select region, sum(total_amount) as total_revenue from enriched_sales group by region"
        )
    assert result.df["total_revenue"].tolist() == [pytest.approx(1023026123.45), 0.05]
    assert list(result.decimals) == [1]
    assert result.decimals[1].to_pylist() == [Decimal("1023026123.45"), Decimal("0.05")]
