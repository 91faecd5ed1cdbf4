"""What the daily-loads tests share: landing files with a modification time, running the
job (in this process on the shared Spark session, or as a process of its own), reading
its outputs with DuckDB, and the hand-written days the case and crash tests load.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb

import glue_etl_job

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


def run_process(
    sales: Path, customers: Path, out: Path, run_id: str, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """One run as its own process group (so a kill takes its JVM too); ``env`` adds to
    this process's environment."""
    return subprocess.Popen(
        [sys.executable, *job_argv(sales, customers, out, run_id)],
        cwd=REPO,
        env=None if env is None else {**os.environ, **env},
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


# --- hand-written days ---------------------------------------------------------------------

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

BAD_DAY2 = "T13,2025-03-31,CA,Mouse,1,25.50,North,99.00"  # amount_mismatch
