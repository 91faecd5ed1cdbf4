"""query.py: SQL, named and all queries on the job-built lake; bad SQL is one line saying
where and what, exit 1; money prints to the cent."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lake_fixtures import REPO, SALES_CSV

import query
from pipeline.catalog import crawl_local
from pipeline.config import PipelineConfig
from pipeline.engines import QueryResult
from pipeline.sql import analytic_names


def flags(lake: PipelineConfig) -> list[str]:
    return ["--target", "local", "--lake", str(lake.lake), "--prefix", lake.prefix]


@pytest.mark.slow
def test_named_query_prints_table_and_stats(lake: PipelineConfig, capsys) -> None:
    assert query.main(["--name", "revenue_by_region", *flags(lake)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "== revenue_by_region"
    assert out[1].split() == [
        "region",
        "total_revenue",
        "transaction_count",
        "avg_transaction_value",
    ]
    assert out[2].split() == ["North", "1670.00", "3", "556.67"]
    assert out[-1].startswith("-- 4 rows in ") and "files read: 3;" in out[-1]
    assert "bytes read: " in out[-1]


@pytest.mark.slow
def test_sql_argument_runs_athena_sql(lake: PipelineConfig, capsys) -> None:
    sql = "select product, sum(quantity) as units from enriched_sales where month = 1 group by product order by product"
    assert query.main([sql, *flags(lake)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split() for line in out[:4]] == [
        ["product", "units"],
        ["Keyboard", "2"],
        ["Laptop", "1"],
        ["Mouse", "3"],
    ]
    assert "files read: 1;" in out[-1]  # only January's partition


@pytest.mark.slow
def test_all_runs_every_analytic_query(lake: PipelineConfig, capsys) -> None:
    assert query.main(["--all", *flags(lake)]) == 0
    out = capsys.readouterr().out
    assert [line[3:] for line in out.splitlines() if line.startswith("== ")] == analytic_names()


def test_list_names_each_query_with_its_question(capsys) -> None:
    assert query.main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == analytic_names()
    assert "revenue" in lines[0]


def test_unknown_name_is_one_line_usage_error_with_the_closest_names(
    tmp_path: Path, capsys
) -> None:
    assert query.main(["--name", "revenue_by_regoin", "--lake", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        "error: no query named 'revenue_by_regoin' (closest: revenue_by_region); "
        "python query.py --list names them all\n"
    )
    assert query.main(["--name", "zzz", "--lake", str(tmp_path)]) == 2
    assert "(none is close)" in capsys.readouterr().err


def test_a_lake_that_does_not_exist_is_a_usage_error(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nonexistent"
    assert query.main(["--lake", str(missing), "--name", "revenue_by_region"]) == 2
    assert capsys.readouterr().err == (
        f"error: lake {missing} does not exist: give --lake the folder a run wrote "
        "(python run_pipeline.py makes ./lake; your own files go to ./own-lake)\n"
    )
    assert not missing.exists()


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "query.py", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _raw_sales_lake(root: Path) -> PipelineConfig:
    """A lake with the hand-written sales CSV crawled into the catalog (no job run)."""
    config = PipelineConfig(prefix="cli", target="local", lake=root)
    folder = config.local_path(config.raw_sales_uri)
    folder.mkdir(parents=True)
    (folder / "sales_data.csv").write_text(SALES_CSV)
    crawl_local(config)
    return config


def test_misspelled_keyword_is_one_line_with_place_and_keyword(tmp_path: Path) -> None:
    # The issue's example: sqlglot alone said "Required keyword: 'expression' missing
    # for <class 'sqlglot.expressions.core.Mul'>".
    result = _run_cli("selec * from enriched_sales", "--lake", str(tmp_path))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        'error: line 1, column 1: "selec" is not a keyword; did you mean SELECT?\n'
    )


def test_unknown_table_lists_the_tables_there_are(tmp_path: Path) -> None:
    config = _raw_sales_lake(tmp_path / "lake")
    result = _run_cli(
        "select count(*) from sales_data", "--lake", str(config.lake), "--prefix", config.prefix
    )
    assert result.returncode == 1
    assert result.stdout == ""
    # The DDL's tables and the crawled one; no DuckDB internals ("duckdb_tables").
    assert result.stderr == (
        'error: line 1, column 22: there is no table "sales_data"; tables in '
        "sales_analytics_db_cli: enriched_sales, quarantine, sales_data_csv, sales_summary\n"
    )


def test_unknown_column_says_where_and_suggests_the_near_one(tmp_path: Path, capsys) -> None:
    config = _raw_sales_lake(tmp_path / "lake")
    sql = "select region,\n  sum(totl_amount) as revenue\nfrom sales_data_csv\ngroup by region"
    assert query.main([sql, "--lake", str(config.lake), "--prefix", config.prefix]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(
        'error: line 2, column 7: there is no column "totl_amount" in the tables this query '
        "reads; closest: total_amount"
    )


def test_unparseable_sql_gives_place_and_plain_words(tmp_path: Path, capsys) -> None:
    assert query.main(["select (quantity from enriched_sales", "--lake", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err == 'error: line 1, column 18: expected ")", found "from"\n'


def test_decimal_sum_over_a_billion_prints_to_the_cent(tmp_path: Path, capsys) -> None:
    config = PipelineConfig(prefix="cli", target="local", lake=tmp_path)
    folder = config.local_path(config.enriched_uri) / "year=2024" / "month=1"
    folder.mkdir(parents=True)
    amounts = [Decimal("999999999.99"), Decimal("23026123.45"), Decimal("0.01")]
    table = pa.table(
        {
            "region": ["North", "North", "South"],
            "total_amount": pa.array(amounts, pa.decimal128(12, 2)),
        }
    )
    pq.write_table(table, folder / "part-0.parquet")
    sql = (
        "select sum(total_amount) as revenue, max(total_amount) as top, "
        "min(total_amount) as low from enriched_sales"
    )
    assert query.main([sql, "--lake", str(tmp_path), "--prefix", "cli"]) == 0
    out = capsys.readouterr().out.splitlines()
    # 999,999,999.99 + 23,026,123.45 + 0.01 = 1,023,026,123.45 (pandas printed 1.023026e+09)
    assert out[0].split() == ["revenue", "top", "low"]
    assert out[1].split() == ["1023026123.45", "999999999.99", "0.01"]


def test_decimals_print_exactly_beyond_what_a_float_holds(tmp_path: Path, capsys) -> None:
    sql = (
        "select sum(amount) as total from (values cast(9999999999999999.99 as decimal(18,2)), "
        "cast(0.02 as decimal(18,2))) as t(amount)"
    )
    assert query.main([sql, "--lake", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    # As a float the sum is 1e16 exactly: the last cent would be lost.
    assert out[:2] == ["               total", "10000000000000000.01"]


def test_format_result_prints_decimals_from_their_exact_values() -> None:
    df = pd.DataFrame({"region": ["North", "South"], "revenue": [1023026123.45, float("nan")]})
    exact = pa.chunked_array([pa.array([Decimal("1023026123.45"), None], pa.decimal128(38, 2))])
    result = QueryResult("r", "select 1", df, 2, 0.5, None, 7, {1: exact})
    assert query.format_result(result).splitlines() == [
        "== r",
        "region       revenue",
        " North 1023026123.45",
        " South           NaN",
        "-- 2 rows in 0.500s; files read: n/a; bytes read: 7",
    ]
