"""Daily loads: a run reads only the raw files no earlier run read, and the lake it leaves
equals what one run over every raw file gives.

Every expected value here is written by hand or computed by DuckDB over the Parquet
outputs of a fresh full run (a new, empty output folder): never by the job's own code.
Runs call ``glue_etl_job.main`` in this process, on the shared Spark session, except the
lock and kill tests, which need a process of their own.

Module fixtures run one sequence of runs each and keep what every test looks at:

- ``generated``: the generator's dirty data set, split into days (three seeds);
- ``scenario``: hand-written days, one case each (copies, a correction, a late customer,
  a changed customer, a replaced file, a deleted file, no new input, a rebuild);
- ``crash_base``: a lake after day 1 and the full run over days 1 and 2, from which
  each crash test starts its own copy.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

import glue_etl_job
from sales_etl import files as job_files
from sales_etl import writing

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
JOB = REPO / "glue_etl_job.py"
HEADER = "transaction_id,date,customer_id,product,quantity,unit_price,region,total_amount"
EPOCH = 1_760_000_000  # a file landed on day d gets modification time EPOCH + d hours

ENRICHED = (
    "transaction_id",
    "transaction_date",
    "customer_id",
    "product",
    "quantity",
    "unit_price",
    "region",
    "total_amount",
    "age_group",
    "membership_tier",
    "signup_date",
    "day",
    "year",
    "month",
)
SUMMARY = (
    "region",
    "product",
    "total_revenue",
    "transaction_count",
    "avg_transaction_value",
    "year",
    "month",
)
QUARANTINE = ("source", "record_id", "reason", "raw_record")


# --- helpers --------------------------------------------------------------------------------


def land(path: Path, text: str, day: int) -> Path:
    """Write a raw file as if it landed on ``day`` (strictly increasing mtimes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    stamp = EPOCH + day * 3600
    os.utime(path, (stamp, stamp))
    return path


def sales_text(*rows: str) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


def customer(cid: str, age: str, tier: str, signup: str) -> str:
    return json.dumps(
        {"customer_id": cid, "age_group": age, "membership_tier": tier, "signup_date": signup}
    )


def job_argv(sales: Path, customers: Path, out: Path, run_id: str, *extra: str) -> list[str]:
    return [
        str(JOB),
        "--sales_path",
        str(sales),
        "--customers_path",
        str(customers),
        "--output_path",
        str(out),
        "--run_id",
        run_id,
        *extra,
    ]


def run_here(spark, sales: Path, customers: Path, out: Path, run_id: str, *extra: str) -> int:
    """One run in this process (the job's local path, on the shared Spark session)."""
    try:
        return glue_etl_job.main(job_argv(sales, customers, out, run_id, *extra))
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", "2")  # main() applied the job's


def run_captured(spark, *args: str) -> tuple[int, str]:
    """``run_here`` with its stdout captured (module fixtures have no capsys)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        rc = run_here(spark, *args)
    return rc, buffer.getvalue()


def run_process(sales: Path, customers: Path, out: Path, run_id: str) -> subprocess.Popen:
    """One run as its own process group (so a kill takes its JVM too)."""
    return subprocess.Popen(
        [sys.executable, *job_argv(sales, customers, out, run_id)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def metrics(out: Path, run_id: str) -> dict:
    return json.loads((out / "_runs" / f"{run_id}.json").read_text())


def parquet(root: Path, columns: tuple[str, ...]) -> str:
    """A DuckDB query of a hive-partitioned Parquet folder, columns by name."""
    return (
        f"(select {', '.join(columns)} from read_parquet('{root}/**/*.parquet', "
        "hive_partitioning = true, union_by_name = true))"
    )


def rows(root: Path, columns: tuple[str, ...], where: str = "true") -> list[tuple]:
    """The rows of a Parquet folder (columns by name) where ``where`` holds, sorted."""
    if not list(root.rglob("*.parquet")):
        return []
    every = parquet(root, ("*",))
    return duckdb.sql(
        f"select {', '.join(columns)} from {every} where {where} order by all"
    ).fetchall()


def quarantine_files(out: Path) -> list[str]:
    """The quarantine's files: one per run that rejected rows, under its run's date."""
    return sorted(p.name for p in (out / "quarantine").glob("run_date=*/*.parquet"))


def except_all(a: Path, b: Path, columns: tuple[str, ...]) -> tuple[list, list]:
    """Rows of ``a`` not in ``b`` and of ``b`` not in ``a``, as multisets."""
    qa, qb = parquet(a, columns), parquet(b, columns)
    only_a = duckdb.sql(f"{qa} except all {qb} order by all").fetchall()
    only_b = duckdb.sql(f"{qb} except all {qa} order by all").fetchall()
    return only_a, only_b


def assert_same_lake(got: Path, want: Path) -> None:
    """enriched and sales_summary equal as multisets (EXCEPT ALL both ways)."""
    for table, columns in (("enriched", ENRICHED), ("sales_summary", SUMMARY)):
        extra, missing = except_all(got / table, want / table, columns)
        assert (extra, missing) == ([], []), f"{table}: extra {extra[:5]}, missing {missing[:5]}"
        assert rows(want / table, columns), f"{table} of the full run is empty"


def enriched_by_id(out: Path) -> dict[str, dict]:
    """Every enriched row by transaction_id (a test fails if one id is there twice)."""
    found = duckdb.sql(f"select * from {parquet(out / 'enriched', ENRICHED)}")
    names = found.columns
    result: dict[str, dict] = {}
    for row in found.fetchall():
        record = dict(zip(names, row, strict=True))
        assert record["transaction_id"] not in result, f"twice: {record['transaction_id']}"
        result[record["transaction_id"]] = record
    return result


def summary_of(out: Path) -> dict[tuple, tuple]:
    """(year, month, region, product) -> (total_revenue, transaction_count)."""
    return {(r[5], r[6], r[0], r[1]): (r[2], r[3]) for r in rows(out / "sales_summary", SUMMARY)}


def listing(root: Path, under: str) -> dict[str, tuple[int, int]]:
    """Files under ``root/under`` -> (size, mtime_ns)."""
    base = root / under
    if not base.exists():
        return {}
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(base.rglob("*"))
        if p.is_file()
    }


def lake_listing(out: Path) -> dict[str, tuple[int, int]]:
    """Everything a reader or the next run sees (not staging, the lock or _runs)."""
    found = {}
    for under in ("enriched", "sales_summary", "quarantine", "superseded", "_state/customers"):
        found.update(listing(out, under))
    manifest = out / "_state" / "manifest.json"
    if manifest.exists():
        found["_state/manifest.json"] = (manifest.stat().st_size, manifest.stat().st_mtime_ns)
    return found


def month_files(out: Path, year: int, month: int) -> dict[str, tuple[int, int]]:
    return listing(out, f"enriched/year={year}/month={month}")


# --- 1. property: daily runs over a generated dirty data set equal one full run ---------------

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def clean_line(line: str) -> bool:
    """The row rules, by hand, for the generator's plain (unquoted) lines."""
    f = line.split(",")
    if len(f) != 8 or any(v.strip() == "" for v in f) or not _DATE.match(f[1]):
        return False
    try:
        day = date.fromisoformat(f[1])
        quantity, price, total = int(f[4]), Decimal(f[5]), Decimal(f[7])
    except ValueError:
        return False
    return day <= date.today() and quantity > 0 and price > 0 and total == quantity * price


@pytest.fixture(scope="module")
def generated_input(tmp_path_factory):
    """One dirty data set from the generators (600 rows, 10% dirty, 60 customer ids of
    which 50 have a record)."""
    work = tmp_path_factory.mktemp("generated")
    for script, args in (
        (
            "generate_sample_data.py",
            ["--rows", "600", "--dirty-rate", "0.1", "--seed", "5", "--customers", "60"],
        ),
        ("generate_customer_data.py", ["--customers", "50"]),
    ):
        output = work / ("sales.csv" if script.startswith("generate_sample") else "c.ndjson")
        subprocess.run(
            [sys.executable, script, *args, "--output", str(output)],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
    lines = (work / "sales.csv").read_text().splitlines()
    assert lines[0] == HEADER and '"' not in "".join(lines)
    return lines[1:], (work / "c.ndjson").read_text()


def split_into_days(lines: list[str], seed: int) -> tuple[list[list[str]], dict]:
    """2-4 days at random cut points, plus two cross-day exact copies and one correction
    of clean rows whose transaction id occurs once, each in a later day."""
    rng = random.Random(seed)
    days_n = rng.randint(2, 4)
    cuts = sorted(rng.sample(range(1, len(lines)), days_n - 1))
    bounds = [0, *cuts, len(lines)]
    days = [lines[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    ids = [line.split(",")[0] for line in lines]
    once = {i for i in ids if ids.count(i) == 1}
    candidates = [
        (d, line)
        for d, day in enumerate(days[:-1])
        for line in day
        if clean_line(line) and line.split(",")[0] in once
    ]
    picked = rng.sample(candidates, 3)
    extras: dict = {"copies": [], "correction": None}
    for n, (origin, line) in enumerate(picked):
        target = rng.randint(origin + 1, days_n - 1)
        if n < 2:
            days[target].append(line)
            extras["copies"].append((line.split(",")[0], target))
        else:
            f = line.split(",")
            quantity = int(f[4]) + 1
            f[4], f[7] = str(quantity), str(Decimal(f[5]) * quantity)
            corrected = ",".join(f)
            assert clean_line(corrected)
            days[target].insert(rng.randint(0, len(days[target])), corrected)
            extras["correction"] = (f[0], quantity, Decimal(f[7]), target)
    return days, extras


# Seeds whose splits have 2, 4 and 3 days.
@pytest.fixture(scope="module", params=[100, 101, 109], ids=lambda s: f"seed{s}")
def generated(request, generated_input, tmp_path_factory, spark):
    """Day k's file lands, then a run (k = 0, 1, ...); then one full run over all files
    into a fresh output folder."""
    lines, customers_text = generated_input
    days, extras = split_into_days(lines, request.param)
    work = tmp_path_factory.mktemp(f"gen{request.param}")
    sales, customers = work / "raw" / "sales", work / "raw" / "customers"
    land(customers / "customers.ndjson", customers_text, 0)
    daily, full = work / "daily", work / "full"
    run_ids = []
    for k, day in enumerate(days):
        land(sales / f"day{k}.csv", sales_text(*day), k + 1)
        run_ids.append(f"day{k}")
        assert run_here(spark, sales, customers, daily, run_ids[-1]) == 0
    assert run_here(spark, sales, customers, full, "full") == 0
    return {
        "daily": daily,
        "full": full,
        "days": days,
        "extras": extras,
        "run_ids": run_ids,
        "metrics": [metrics(daily, r) for r in run_ids],
    }


def test_daily_runs_equal_one_full_run(generated):
    assert_same_lake(generated["daily"], generated["full"])


def test_daily_runs_read_each_file_once_and_reconcile(generated):
    for k, m in enumerate(generated["metrics"]):
        assert m["status"] == "succeeded"
        assert m["mode"] == ("full_rebuild" if k == 0 else "incremental")
        assert [Path(f).name for f in m["inputs"]["sales"]["files"]] == [f"day{k}.csv"]
        assert m["inputs"]["sales"]["files_skipped"] == k
        assert m["rows_read"]["sales"] == len(generated["days"][k])
        assert m["bytes_read"]["sales"] == len(sales_text(*generated["days"][k]).encode())
        for source, r in m["reconciliation"].items():
            assert r["ok"], (source, r)
            assert r["read"] == (
                r["written"] + r["quarantined"] + r["duplicates_dropped"] + r["superseded"]
            )
    first = generated["metrics"][0]
    assert first["full_rebuild_reason"] == "no earlier run's state (first run)"


def test_cross_day_copies_and_correction_land_once(generated):
    loaded = enriched_by_id(generated["daily"])
    quarantined = {r[1] for r in rows(generated["daily"] / "quarantine", QUARANTINE)}
    for tid, target in generated["extras"]["copies"]:
        assert tid in loaded and tid not in quarantined
        m = generated["metrics"][target]
        assert m["lake"]["copies_of_loaded_rows"] >= 1
        assert m["duplicates_dropped"] >= m["lake"]["copies_of_loaded_rows"]
    tid, quantity, total, target = generated["extras"]["correction"]
    assert (loaded[tid]["quantity"], loaded[tid]["total_amount"]) == (quantity, total)
    m = generated["metrics"][target]
    assert m["lake"]["rows_replaced"] >= 1
    assert m["rows_superseded"]["sales"] >= 1


def test_quarantine_of_daily_runs_equals_the_full_runs(generated):
    daily_q = generated["daily"] / "quarantine"
    extra, missing = except_all(daily_q, generated["full"] / "quarantine", QUARANTINE)
    assert (extra, missing) == ([], [])
    assert rows(daily_q, QUARANTINE)
    twice = duckdb.sql(
        f"select {', '.join(QUARANTINE)}, count(distinct run_id) as runs "
        f"from {parquet(daily_q, (*QUARANTINE, 'run_id'))} group by all having runs > 1"
    ).fetchall()
    assert twice == []
    # Each run's quarantine folder holds its own rows only.
    per_run = duckdb.sql(
        f"select run_id, count(*) from {parquet(daily_q, ('run_id',))} group by all order by all"
    ).fetchall()
    by_metrics = [
        (r, m["quarantined_total"])
        for r, m in zip(generated["run_ids"], generated["metrics"], strict=True)
        if m["quarantined_total"]
    ]
    assert per_run == sorted(by_metrics)


# --- 2-4. hand-written days, one case each -----------------------------------------------------

CUSTOMERS_DAY0 = [
    customer("CA", "26-35", "Gold", "2022-03-14"),
    customer("CK", "36-45", "Silver", "2023-07-01"),
    customer("CZ", "18-25", "Gold", "2024-01-01"),
    customer("CZ", "18-25", "Bronze", "2024-01-01"),  # conflicts with the line above
]
SALES_DAY1 = [
    "T01,2025-01-05,CA,Laptop,1,1000.00,North,1000.00",  # corrected on day 2 (to March)
    "T02,2025-01-10,CA,Mouse,2,25.50,North,51.00",
    "T03,2025-02-03,CK,Desk,1,300.00,South,300.00",  # CK changes on day 3: keeps Silver
    "T04,2025-02-14,CL,Lamp,1,40.00,East,40.00",  # CL unknown until day 3
    "T05,2025-02-20,CA,Chair,1,120.00,West,120.00",  # copied on day 2
    "T06,2025-02-21,CA,Mouse,1,25.50,West,25.50",  # T06: two versions in one file
    "T06,2025-02-21,CA,Mouse,2,25.50,West,51.00",
    "T07,2025-02-22,CA,Mouse,0,25.50,West,0.00",  # non_positive_quantity
]
SALES_DAY2 = [
    "T05,2025-02-20,CA,Chair,1,120.00,West,120.00",  # exact copy of a loaded row
    "T01,2025-03-07,CA,Laptop,2,1000.00,North,2000.00",  # correction, January -> March
    "T08,2025-03-10,CA,Mouse,1,25.50,North,25.50",
]
CUSTOMERS_DAY3 = [  # landed as one JSON array
    customer("CL", "18-25", "Bronze", "2024-05-05"),  # late: T04 was loaded without it
    customer("CK", "36-45", "Platinum", "2023-07-01"),  # newer than day 0's CK
]
SALES_DAY3 = [
    "T09,2025-03-12,CA,Lamp,1,40.00,East,40.00",  # T09: two versions in one file
    "T09,2025-03-12,CA,Lamp,3,40.00,East,120.00",
    "T10,2025-03-15,CK,Desk,1,300.00,South,300.00",
    "T11,2025-03-16,CL,Mouse,1,25.50,East,25.50",
]
SALES_DAY2_REPLACED = [  # day 2's file uploaded again with other content
    "T05,2025-02-20,CA,Chair,1,120.00,West,120.00",
    "T12,2025-03-20,CA,Lamp,2,40.00,North,80.00",
]

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
    assert [p.name for p in superseded.iterdir()] == ["run_id=r2"]


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
    assert sorted(p.name for p in (rebuilt / "superseded").iterdir()) in ([], ["run_id=rb"])


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


# --- 5-6. one run at a time; crash safety --------------------------------------------------------

BAD_DAY2 = "T13,2025-03-31,CA,Mouse,1,25.50,North,99.00"  # amount_mismatch


@pytest.fixture(scope="module")
def crash_base(tmp_path_factory, spark):
    """Raw days 1 and 2, a lake after day 1 (each crash test copies it) and one full run
    over both days. Day 2 has a copy, a correction to another month, a late customer
    (its sale's February file is rewritten) and a bad row: its commit has many moves."""
    work = tmp_path_factory.mktemp("crash")
    sales, customers = work / "raw" / "sales", work / "raw" / "customers"
    land(customers / "c0.ndjson", "\n".join(CUSTOMERS_DAY0) + "\n", 0)
    land(sales / "d1.csv", sales_text(*SALES_DAY1), 1)
    assert run_here(spark, sales, customers, work / "base", "r1") == 0
    land(sales / "d2.csv", sales_text(*SALES_DAY2, BAD_DAY2), 2)
    land(customers / "c2.ndjson", CUSTOMERS_DAY3[0] + "\n", 2)
    assert run_here(spark, sales, customers, work / "full", "full") == 0
    return {"work": work, "sales": sales, "customers": customers, "full": work / "full"}


def lake_copy(crash_base, tmp_path: Path, name: str = "base") -> Path:
    out = tmp_path / "out"
    shutil.copytree(crash_base["work"] / name, out)
    return out


def assert_converged(out: Path, crash_base) -> None:
    assert_same_lake(out, crash_base["full"])
    extra, missing = except_all(out / "quarantine", crash_base["full"] / "quarantine", QUARANTINE)
    assert (extra, missing) == ([], [])
    assert not (out / "_state" / "journal.json").exists()
    assert not list((out / "_state" / "staging").glob("*"))
    assert not (out / "_state" / "lock").exists()


def test_a_second_run_stops_while_another_holds_the_lock(crash_base, tmp_path):
    out = lake_copy(crash_base, tmp_path)
    lock = out / "_state" / "lock"
    held = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    lock.write_text(json.dumps(held))
    before = lake_listing(out)
    proc = run_process(crash_base["sales"], crash_base["customers"], out, "second")
    _, stderr = proc.communicate(timeout=480)
    assert proc.returncode == 2
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"ERROR: another run (pid {os.getpid()} on {socket.gethostname()}, ")
    assert lake_listing(out) == before
    assert json.loads(lock.read_text()) == held
    assert not (out / "_runs" / "second.json").exists()


def test_a_lock_left_by_a_dead_run_is_taken_over(crash_base, tmp_path, spark, caplog):
    out = lake_copy(crash_base, tmp_path, "full")  # nothing new: a quick run
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = {"pid": int(gone.stdout), "host": socket.gethostname(), "started": time.time()}
    (out / "_state" / "lock").write_text(json.dumps(dead))
    with caplog.at_level(logging.WARNING, logger="sales_etl"):
        rc = run_here(spark, crash_base["sales"], crash_base["customers"], out, "takeover")
    assert rc == 0
    assert "taking over the lock of a run that is gone" in caplog.text
    assert metrics(out, "takeover")["mode"] == "no_new_input"
    assert not (out / "_state" / "lock").exists()


def test_a_run_that_fails_before_its_commit_leaves_the_lake_as_it_was(
    crash_base, tmp_path, spark, monkeypatch, caplog
):
    out = lake_copy(crash_base, tmp_path)
    before = lake_listing(out)

    def no_commit(*args, **kwargs):
        raise OSError("the machine went away before the commit (test)")

    monkeypatch.setattr(writing, "commit", no_commit)  # writing's name for state.commit
    args = (crash_base["sales"], crash_base["customers"], out)
    assert run_here(spark, *args, "crashed") == 1
    assert lake_listing(out) == before
    assert list((out / "_state" / "staging" / "crashed").iterdir())
    assert not (out / "_state" / "journal.json").exists()
    monkeypatch.undo()
    with caplog.at_level(logging.WARNING, logger="sales_etl"):
        assert run_here(spark, *args, "next") == 0
    assert "removing the staged output of a run that did not finish" in caplog.text
    assert metrics(out, "next")["mode"] == "incremental"
    assert_converged(out, crash_base)


@pytest.mark.parametrize(
    "crash_at", ["daily_second_move", "daily_last_move", "rebuild_second_move"]
)
def test_a_run_stopped_while_publishing_is_finished_by_the_next(
    crash_base, tmp_path, spark, monkeypatch, caplog, crash_at
):
    out = lake_copy(crash_base, tmp_path)
    real_move = job_files.LocalFiles.move
    moves: list[str] = []
    planned: list[int] = []

    def move(self, src: str, dst: str) -> None:
        if not planned:
            journal = json.loads((out / "_state" / "journal.json").read_text())
            planned.append(len(journal["moves"]))
        stop_at = planned[0] if crash_at == "daily_last_move" else 2
        if len(moves) + 1 == stop_at:
            raise OSError("killed while publishing (test)")
        moves.append(dst)
        real_move(self, src, dst)

    monkeypatch.setattr(job_files.LocalFiles, "move", move)
    args = (crash_base["sales"], crash_base["customers"], out)
    rebuild = ("--full_rebuild", "true") if crash_at.startswith("rebuild") else ()
    assert run_here(spark, *args, "halted", *rebuild) == 1
    assert planned[0] >= 6  # enriched, rewrites, summaries, quarantine, superseded, customers
    assert (out / "_state" / "journal.json").exists()
    # Half published: rows may be missing, none is there twice.
    seen = duckdb.sql(
        f"select count(*), count(distinct transaction_id) from {parquet(out / 'enriched', ENRICHED)}"
    ).fetchall()
    assert seen[0][0] == seen[0][1]
    monkeypatch.undo()
    with caplog.at_level(logging.WARNING, logger="sales_etl"):
        assert run_here(spark, *args, "next") == 0
    assert "run halted stopped while publishing its output: finishing it" in caplog.text
    assert metrics(out, "next")["mode"] == "no_new_input"
    assert_converged(out, crash_base)


def test_a_run_killed_mid_write_is_cleaned_up_by_the_next(crash_base, tmp_path, spark, caplog):
    out = lake_copy(crash_base, tmp_path)
    staging = out / "_state" / "staging" / "killed"
    proc = run_process(crash_base["sales"], crash_base["customers"], out, "killed")
    deadline = time.monotonic() + 480
    try:
        while not staging.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run never started to write"
            time.sleep(0.02)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the run and its JVM: a power cut
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert json.loads((out / "_state" / "lock").read_text())["pid"] == proc.pid
    with caplog.at_level(logging.WARNING, logger="sales_etl"):
        rc = run_here(spark, crash_base["sales"], crash_base["customers"], out, "after_kill")
    assert rc == 0
    assert "taking over the lock of a run that is gone" in caplog.text
    assert_converged(out, crash_base)
