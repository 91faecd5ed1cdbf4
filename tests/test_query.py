"""query.py: SQL, named and all queries on the job-built lake; bad SQL is one line, exit 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from lake_fixtures import REPO, shared_lake

import query
from pipeline.config import PipelineConfig
from pipeline.sql import analytic_names


@pytest.fixture(scope="session")
def lake(tmp_path_factory: pytest.TempPathFactory) -> PipelineConfig:
    return shared_lake(tmp_path_factory)


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


def test_unknown_name_is_one_line_error(tmp_path: Path, capsys) -> None:
    assert query.main(["--name", "nope", "--lake", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no query named 'nope'") and err.count("\n") == 1


def test_bad_sql_gives_engine_message_on_one_line_and_nonzero_exit(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "query.py", "select * from no_such_table", "--lake", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: Catalog Error: Table with name no_such_table")


def test_unparseable_sql_gives_parser_message_on_one_line(tmp_path: Path, capsys) -> None:
    assert query.main(["selec x from", "--lake", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err and "Line 1" in err
