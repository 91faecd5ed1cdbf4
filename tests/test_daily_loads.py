"""Daily loads: a run reads only the raw files no earlier run read, and the lake it leaves
equals what one run over every raw file gives.

Every expected value here is written by hand or computed by DuckDB over the Parquet
outputs of a fresh full run (a new, empty output folder): never by the job's own code.
Runs call ``glue_etl_job.main`` in this process, on the shared Spark session.

``scenario`` runs hand-written days, one case each (copies, a correction, a late
customer, a changed customer, a replaced file, a deleted file, no new input, a rebuild),
and keeps a copy of the lake after each run. The property over generated data is in
test_daily_loads_equivalence.py, the lock and crash tests in test_daily_loads_crash.py.
"""

from __future__ import annotations

import json
import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from daily_runs import (
    CUSTOMERS_DAY0,
    CUSTOMERS_DAY3,
    ENRICHED,
    QUARANTINE,
    SALES_DAY1,
    SALES_DAY2,
    SALES_DAY2_REPLACED,
    SALES_DAY3,
    SUMMARY,
    assert_same_lake,
    enriched_by_id,
    except_all,
    job_argv,
    land,
    listing,
    metrics,
    month_files,
    quarantine_files,
    rows,
    run_captured,
    run_here,
    sales_text,
    summary_of,
)
from lake_fixtures import run_glue_job

pytestmark = pytest.mark.slow

SILVER = ("36-45", "Silver", date(2023, 7, 1))
PLATINUM = ("36-45", "Platinum", date(2023, 7, 1))
CL_RECORD = ("18-25", "Bronze", date(2024, 5, 5))
CA_RECORD = ("26-35", "Gold", date(2022, 3, 14))


def demographics(row: dict) -> tuple:
    return (row["age_group"], row["membership_tier"], row["signup_date"])


@pytest.fixture(scope="module")
def scenario(tmp_path_factory, spark):
    """r1 (day 1, first run), r2 (day 2: a copy and a correction), r3 (day 3: a late and
    a changed customer, a conflict), r4 (same files again), then from a copy of the lake
    after r4 a --full_rebuild run and a fresh full run, then r5 (day 2's file replaced)
    and r6 (day 3's file deleted). Keeps a copy of the lake after each run."""
    work = tmp_path_factory.mktemp("scenario")
    sales, customers, out = work / "raw" / "sales", work / "raw" / "customers", work / "out"
    result: dict = {"work": work, "out": out, "sales": sales, "stdout": {}}

    def run(run_id: str, *extra: str, target: Path = out) -> None:
        rc, stdout = run_captured(spark, sales, customers, target, run_id, *extra)
        assert rc == 0, stdout
        result["stdout"][run_id] = stdout
        if target == out:
            shutil.copytree(out, work / f"after_{run_id}")
            result[run_id] = {"out": work / f"after_{run_id}", "metrics": metrics(out, run_id)}

    result["customers"] = customers
    land(customers / "c0.ndjson", "\n".join(CUSTOMERS_DAY0) + "\n", 0)
    land(sales / "d1.csv", sales_text(*SALES_DAY1), 1)
    run("r1")
    land(sales / "d2.csv", sales_text(*SALES_DAY2), 2)
    run("r2")
    land(customers / "c3.json", "[" + ",".join(CUSTOMERS_DAY3) + "]\n", 3)  # a JSON array
    land(sales / "d3.csv", sales_text(*SALES_DAY3), 3)
    run("r3")
    result["before_r4"] = listing(out, "enriched")
    run("r4")
    result["after_r4"] = listing(out, "enriched")
    # A rebuild asked for, on a copy of the lake after several daily runs; and a fresh run.
    shutil.copytree(out, work / "rebuilt")
    run("rb", "--full_rebuild", "true", target=work / "rebuilt")
    run("fresh", target=work / "fresh")
    result["rebuilt"], result["fresh"] = work / "rebuilt", work / "fresh"
    land(sales / "d2.csv", sales_text(*SALES_DAY2_REPLACED), 5)
    run("r5")
    (sales / "d3.csv").unlink()
    run("r6")
    return result


def test_first_run_loads_the_clean_rows_and_quarantines_the_rest(scenario):
    m = scenario["r1"]["metrics"]
    assert (m["mode"], m["status"]) == ("full_rebuild", "succeeded")
    assert set(enriched_by_id(scenario["r1"]["out"])) == {"T01", "T02", "T03", "T04", "T05"}
    got = rows(scenario["r1"]["out"] / "quarantine", QUARANTINE)
    assert got == [
        ("customers", "CZ", "duplicate_customer", CUSTOMERS_DAY0[3]),  # Bronze < Gold
        ("customers", "CZ", "duplicate_customer", CUSTOMERS_DAY0[2]),
        ("sales", "T06", "conflicting_duplicate", SALES_DAY1[5]),
        ("sales", "T06", "conflicting_duplicate", SALES_DAY1[6]),
        ("sales", "T07", "non_positive_quantity", SALES_DAY1[7]),
    ]
    assert m["quarantined_total"] == 5


def test_cross_day_exact_copy_is_dropped_and_counted_not_quarantined(scenario):
    m = scenario["r2"]["metrics"]
    assert m["mode"] == "incremental" and m["full_rebuild_reason"] is None
    assert m["duplicates_dropped"] == 1
    assert m["reconciliation"]["sales"] == {
        "read": 3, "written": 2, "quarantined": 0, "duplicates_dropped": 1, "superseded": 0,
        "ok": True,
    }  # fmt: skip
    loaded = enriched_by_id(scenario["r2"]["out"])
    assert sorted(loaded) == ["T01", "T02", "T03", "T04", "T05", "T08"]
    assert "r2.parquet" not in quarantine_files(scenario["r2"]["out"])


def test_a_clean_day_after_a_dirty_day_has_a_quarantine_rate_of_zero(scenario):
    assert scenario["r1"]["metrics"]["quarantined_total"] > 0
    assert scenario["r2"]["metrics"]["quarantined_total"] == 0
    assert scenario["r2"]["metrics"]["rows_quarantined"] == {}


def test_correction_replaces_the_loaded_row_and_moves_it_to_its_new_month(scenario):
    before, after = scenario["r1"]["out"], scenario["r2"]["out"]
    loaded = enriched_by_id(after)
    t01 = loaded["T01"]
    assert (t01["transaction_date"], t01["quantity"], t01["total_amount"]) == (
        date(2025, 3, 7),
        2,
        Decimal("2000.00"),
    )
    assert (t01["year"], t01["month"]) == (2025, 3)
    assert demographics(t01) == CA_RECORD
    assert rows(after / "enriched", ("transaction_id",), "month = 1") == [("T02",)]
    # Only January's file was rewritten; February's files are the very same.
    assert month_files(after, 2025, 2) == month_files(before, 2025, 2)
    assert set(month_files(after, 2025, 1)).isdisjoint(month_files(before, 2025, 1))
    m = scenario["r2"]["metrics"]["lake"]
    assert m["months_rewritten"] == ["year=2025/month=1"]
    assert m["months_appended"] == ["year=2025/month=3"]
    assert m["rows_replaced"] == 1
    assert m["bytes_read_back"] == sum(size for size, _ in month_files(before, 2025, 1).values())
    assert scenario["r2"]["metrics"]["rows_superseded"]["sales"] == 1


def test_correction_is_recorded_in_superseded_with_the_file_that_replaced_it(scenario):
    superseded = scenario["r2"]["out"] / "superseded"
    got = duckdb.sql(
        f"select run_id, source, record_id, superseded_by, record from "
        f"read_parquet('{superseded}/**/*.parquet', hive_partitioning = false)"
    ).fetchall()
    assert len(got) == 1
    run_id, source, record_id, by, record = got[0]
    assert (run_id, source, record_id) == ("r2", "sales", "T01")
    assert by.endswith("/d2.csv")
    assert json.loads(record)["quantity"] == 1
    assert json.loads(record)["transaction_date"] == "2025-01-05"
    assert [p.name for p in superseded.glob("run_date=*/*")] == ["r2.parquet"]


def test_summary_revenue_follows_the_correction(scenario):
    assert summary_of(scenario["r2"]["out"]) == {
        (2025, 1, "North", "Mouse"): (Decimal("51.00"), 1),
        (2025, 2, "South", "Desk"): (Decimal("300.00"), 1),
        (2025, 2, "East", "Lamp"): (Decimal("40.00"), 1),
        (2025, 2, "West", "Chair"): (Decimal("120.00"), 1),
        (2025, 3, "North", "Laptop"): (Decimal("2000.00"), 1),
        (2025, 3, "North", "Mouse"): (Decimal("25.50"), 1),
    }


def test_conflicting_copies_inside_a_daily_file_are_still_quarantined(scenario):
    out = scenario["r3"]["out"]
    got = rows(out / "quarantine", QUARANTINE, "run_id = 'r3'")
    assert got == [
        ("sales", "T09", "conflicting_duplicate", SALES_DAY3[0]),
        ("sales", "T09", "conflicting_duplicate", SALES_DAY3[1]),
    ]
    assert "T09" not in enriched_by_id(out)
    assert scenario["r3"]["metrics"]["quarantined_total"] == 2


def test_customers_in_two_files_newest_wins_without_quarantine(scenario):
    out, m = scenario["r3"]["out"], scenario["r3"]["metrics"]
    assert demographics(enriched_by_id(out)["T10"]) == PLATINUM
    assert m["rows_quarantined_by_source"]["customers"] == {}
    assert rows(out / "quarantine", QUARANTINE, "source = 'customers' and record_id = 'CK'") == []
    state = duckdb.sql(
        f"select customer_id, membership_tier from read_parquet('{out}/_state/customers/*.parquet') "
        "order by all"
    ).fetchall()
    assert state == [("CA", "Gold"), ("CK", "Platinum"), ("CL", "Bronze")]
    # One run over both files: the same winner, the older record superseded.
    fresh = metrics(scenario["fresh"], "fresh")
    assert fresh["rows_quarantined_by_source"]["customers"] == {"duplicate_customer": 2}
    assert fresh["rows_superseded"]["customers"] == 1
    assert demographics(enriched_by_id(scenario["fresh"])["T10"]) == PLATINUM


def test_a_late_customer_fills_in_the_sales_loaded_without_it(scenario):
    before, after = scenario["r2"]["out"], scenario["r3"]["out"]
    assert demographics(enriched_by_id(before)["T04"]) == (None, None, None)
    loaded = enriched_by_id(after)
    assert demographics(loaded["T04"]) == CL_RECORD
    assert demographics(loaded["T11"]) == CL_RECORD
    # A sale of a known customer keeps what it was loaded with.
    assert demographics(loaded["T03"]) == SILVER
    m = scenario["r3"]["metrics"]
    assert m["lake"]["rows_reenriched"] == 1
    assert m["lake"]["months_rewritten"] == ["year=2025/month=2"]
    assert month_files(after, 2025, 1) == month_files(before, 2025, 1)
    assert m["unknown_customers"] == 0


def test_daily_lake_differs_from_a_fresh_run_only_by_the_demographics_kept(scenario):
    """By design a sale keeps the demographics it was loaded with; a full run enriches
    with the newest record. T03 is the only row where the two differ."""
    extra, missing = except_all(
        scenario["r3"]["out"] / "enriched", scenario["fresh"] / "enriched", ENRICHED
    )
    assert [(r[0], r[9]) for r in extra] == [("T03", "Silver")]
    assert [(r[0], r[9]) for r in missing] == [("T03", "Platinum")]
    extra, missing = except_all(
        scenario["r3"]["out"] / "sales_summary", scenario["fresh"] / "sales_summary", SUMMARY
    )
    assert (extra, missing) == ([], [])


def test_no_new_input_reads_and_writes_nothing(scenario):
    m = scenario["r4"]["metrics"]
    assert (m["status"], m["mode"]) == ("succeeded", "no_new_input")
    assert m["bytes_read"]["sales"] == 0
    assert m["rows_read"] == {"sales": 0, "customers": 0}
    assert m["inputs"]["sales"]["files_skipped"] == 3
    assert scenario["after_r4"] == scenario["before_r4"]
    assert listing(scenario["r4"]["out"], "sales_summary") == listing(
        scenario["r3"]["out"], "sales_summary"
    )
    assert "r4.parquet" not in quarantine_files(scenario["r4"]["out"])
    assert "no new input" in scenario["stdout"]["r4"]
    assert sorted(p.name for p in (scenario["r4"]["out"] / "_runs").iterdir()) == [
        "r1.json", "r2.json", "r3.json", "r4.json",
    ]  # fmt: skip


def test_no_new_input_starts_no_spark(scenario, tmp_path):
    """With nothing new, a run from a shell finishes without a JVM: here Spark cannot
    start at all (no Spark home, no Java), and the run still succeeds."""
    out = tmp_path / "out"
    shutil.copytree(scenario["out"], out)
    before = listing(out, "enriched")
    done = run_glue_job(
        *job_argv(scenario["sales"], scenario["customers"], out, "again")[1:],  # no script
        env={"SPARK_HOME": str(tmp_path / "no-spark"), "JAVA_HOME": str(tmp_path)},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "no new input" in done.stdout
    assert metrics(out, "again")["mode"] == "no_new_input"
    assert listing(out, "enriched") == before


def test_a_sales_path_without_files_is_bad_input(tmp_path, spark):
    (tmp_path / "sales").mkdir()
    land(tmp_path / "customers" / "c.ndjson", CUSTOMERS_DAY0[0] + "\n", 0)
    assert run_here(spark, tmp_path / "sales", tmp_path / "customers", tmp_path / "out", "x") == 2
    assert not (tmp_path / "out").exists()


def test_full_rebuild_after_daily_runs_equals_a_fresh_lake(scenario):
    rebuilt = scenario["rebuilt"]
    m = metrics(rebuilt, "rb")
    assert (m["mode"], m["full_rebuild_reason"]) == ("full_rebuild", "asked for (--full_rebuild)")
    assert_same_lake(rebuilt, scenario["fresh"])
    assert quarantine_files(rebuilt) == ["rb.parquet"]
    extra, missing = except_all(
        rebuilt / "quarantine", scenario["fresh"] / "quarantine", QUARANTINE
    )
    assert (extra, missing) == ([], [])
    assert [p.name for p in (rebuilt / "superseded").glob("*/*")] in ([], ["rb.parquet"])


def test_a_file_replaced_under_the_same_name_rebuilds_the_lake(scenario):
    m, out = scenario["r5"]["metrics"], scenario["r5"]["out"]
    assert m["mode"] == "full_rebuild"
    assert m["full_rebuild_reason"].startswith("sales file changed since it was read: ")
    assert m["full_rebuild_reason"].endswith("/d2.csv")
    loaded = enriched_by_id(out)
    assert sorted(loaded) == ["T01", "T02", "T03", "T04", "T05", "T10", "T11", "T12"]
    assert (loaded["T01"]["month"], loaded["T01"]["quantity"]) == (1, 1)  # the correction left
    assert quarantine_files(out) == ["r5.parquet"]


def test_an_automatic_rebuild_reads_a_json_array_customers_file_as_an_array(scenario):
    """r5 rebuilds because d2.csv changed; c3.json (a JSON array, read as one by r3 and
    by the fresh run) is unchanged, and must still be read as an array."""
    m, out = scenario["r5"]["metrics"], scenario["r5"]["out"]
    assert m["rows_quarantined_by_source"]["customers"] == {"duplicate_customer": 2}
    loaded = enriched_by_id(out)
    assert demographics(loaded["T04"]) == CL_RECORD
    assert demographics(loaded["T03"]) == PLATINUM  # a rebuild takes the newest record


def test_a_deleted_file_takes_its_rows_with_it(scenario):
    m, out = scenario["r6"]["metrics"], scenario["r6"]["out"]
    assert m["mode"] == "full_rebuild"
    assert m["full_rebuild_reason"] == (
        f"sales file no longer there: {scenario['sales'].resolve() / 'd3.csv'}"
    )
    assert sorted(enriched_by_id(out)) == ["T01", "T02", "T03", "T04", "T05", "T12"]
    assert rows(out / "quarantine", QUARANTINE, "record_id = 'T09'") == []
    assert summary_of(out)[(2025, 3, "North", "Lamp")] == (Decimal("80.00"), 1)
    assert (2025, 3, "South", "Desk") not in summary_of(out)
