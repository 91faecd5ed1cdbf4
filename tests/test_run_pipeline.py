"""run_pipeline.py end to end on a small dataset in a temporary lake.

The summary's figures must be the job's own (the metrics file) and must agree with
what is in the lake, counted here independently with DuckDB and the raw CSV. (A stage
that fails, naming itself and keeping the earlier output and charts, is in
test_own_exports.py: a bad file in raw fails the etl stage.)
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "e2e-test"
CHARTS = [
    "01_revenue_by_region.png",
    "02_top_products.png",
    "03_monthly_trend.png",
    "04_customer_tiers.png",
    "05_age_group_analysis.png",
    "06_transaction_distribution.png",
]

pytestmark = pytest.mark.slow


def run_pipeline(lake: Path, charts: Path, run_id: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable, "run_pipeline.py", "--lake", str(lake), "--prefix", PREFIX,
            "--charts-dir", str(charts), "--run-id", run_id, "--rows", "4000",
            "--customers", "150", "--seed", "11", "--dirty-rate", "0.05", *extra,
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def summary_figure(stdout: str, label: str) -> int:
    match = re.search(rf"^\s+{re.escape(label)}\s+([\d,]+)\s*$", stdout, re.MULTILINE)
    assert match, f"{label!r} not in summary:\n{stdout}"
    return int(match.group(1).replace(",", ""))


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("pipeline")
    lake, charts = base / "lake", base / "charts"
    result = run_pipeline(lake, charts, "first")
    assert result.returncode == 0, result.stderr[-3000:]
    return lake, charts, result


def test_six_charts_are_written(first_run):
    _, charts, _ = first_run
    for name in CHARTS:
        png = charts / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert png.stat().st_size > 10_000, name


def test_summary_figures_are_the_jobs_metrics_and_match_the_lake(first_run):
    lake, _, result = first_run
    out = result.stdout
    metrics = json.loads((lake / f"{PREFIX}-processed" / "_runs" / "first.json").read_text())
    raw_csv = lake / f"{PREFIX}-raw" / "input" / "sales_data_csv" / "sales_data.csv"
    enriched = lake / f"{PREFIX}-processed" / "enriched"

    # Independent counts: lines in the raw file, rows in the Parquet lake.
    raw_rows = len(raw_csv.read_text().splitlines()) - 1
    lake_rows = duckdb.sql(
        f"select count(*) from read_parquet('{enriched}/**/*.parquet', hive_partitioning = true)"
    ).fetchall()[0][0]
    assert raw_rows == 4000

    assert summary_figure(out, "sales read") == metrics["rows_read"]["sales"] == raw_rows
    assert (
        summary_figure(out, "enriched rows written")
        == metrics["rows_written"]["enriched"]
        == lake_rows
    )
    assert summary_figure(out, "quarantined") == metrics["quarantined_total"] > 0
    assert summary_figure(out, "exact duplicates dropped") == metrics["duplicates_dropped"] > 0
    assert raw_rows == lake_rows + metrics["quarantined_total"] + metrics["duplicates_dropped"]
    quarantine = lake / f"{PREFIX}-processed" / "quarantine"
    lines = out.splitlines()
    for source, reasons in metrics["rows_quarantined_by_source"].items():
        for reason, count in reasons.items():
            line = next(x for x in lines if x.strip().startswith(f"{source}: {reason} "))
            # The count, then one of the reason's raw records, as the quarantine holds it.
            figure, sample = line.split(None, 3)[2:]
            assert int(figure.replace(",", "")) == count
            records = duckdb.sql(
                f"select raw_record from read_parquet('{quarantine}/*/*.parquet') "
                f"where source = '{source}' and reason = '{reason}'"
            ).fetchall()
            shown = sample.removeprefix("e.g. ").removesuffix("...")
            assert any(r[0].replace("\n", "\\n").startswith(shown) for r in records), line
    where = next(x for x in lines if "rejected rows of this run" in x).split()[-1]
    assert Path(where).parent.parent == quarantine and Path(where).name == "first.parquet"

    partitions = sorted(
        f"{p.parent.name}/{p.name}"
        for p in enriched.glob("year=*/month=*")
        if any(p.glob("*.parquet"))
    )
    line = next(line for line in out.splitlines() if "partitions (year/month)" in line)
    assert int(line.split()[2]) == len(partitions) == 4
    for partition in partitions:
        assert partition in line


LAKE_BY_MONTH = (
    "select year, month, count(*) as n, count(distinct transaction_id) as ids, sum(total_amount) as s "
    "from read_parquet('{enriched}/**/*.parquet', hive_partitioning = true) group by all order by all"
)


@pytest.fixture(scope="module")
def second_run(first_run):
    """The same pipeline rebuilt on the first run's lake (--full-rebuild: the same
    generated bytes are not new input), with a quarantine threshold the first run's 5%
    dirty rows exceed: one full re-run serves both the idempotence test and the threshold
    test (the verdict only sets the exit code, after every stage has run)."""
    lake, charts, _ = first_run
    enriched = lake / f"{PREFIX}-processed" / "enriched"
    before = duckdb.sql(LAKE_BY_MONTH.format(enriched=enriched)).fetchall()
    result = run_pipeline(
        lake, charts, "strict", "--max-quarantine-rate", "0.001", "--full-rebuild"
    )
    after = duckdb.sql(LAKE_BY_MONTH.format(enriched=enriched)).fetchall()
    return before, after, result


def test_second_run_leaves_the_same_lake_without_duplicates(second_run):
    before, after, result = second_run
    assert result.returncode == 3, result.stderr[-3000:]  # over the threshold (see below)
    stages = result.stdout.split("Stage durations")[1].split("\n\n")[0]
    assert all(name in stages for name in ("upload", "crawl", "etl", "charts")), stages
    assert after == before
    assert all(n == ids for _, _, n, ids, _ in after)


def test_quarantined_share_over_the_threshold_exits_3_after_writing(first_run, second_run):
    lake, charts, first = first_run
    metrics = json.loads((lake / f"{PREFIX}-processed" / "_runs" / "first.json").read_text())
    read = metrics["rows_read"]["sales"] + metrics["rows_read"]["customers"]
    share = metrics["quarantined_total"] / read
    # The first run (5% dirty rows) passes the default 5% threshold and says so.
    assert f"= {share:.2%} (threshold 5.00%): OK" in first.stdout

    _, _, result = second_run  # the same input again, with --max-quarantine-rate 0.001
    assert result.returncode == 3
    assert f"= {share:.2%} (threshold 0.10%): OVER THE THRESHOLD" in result.stdout
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: data quality: quarantined "), last
    # Everything was still written: the verdict is for a scheduler to act on.
    strict = json.loads((lake / f"{PREFIX}-processed" / "_runs" / "strict.json").read_text())
    assert strict["status"] == "succeeded"
    assert strict["quarantined_total"] == metrics["quarantined_total"]
