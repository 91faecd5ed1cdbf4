"""glue_etl_job.py end to end, as a subprocess, checked against DuckDB over the raw CSV.

One module fixture generates a small input (clean rows plus hand-labelled bad rows),
runs the job three times (first run, same input again: nothing new, another sales path
holding part of one month: a full rebuild from it alone) and keeps a snapshot after each
run; the tests then compare. The expected figures come from DuckDB
reading the clean rows and from the labels written here, never from the job's code.
The first run is the CLI as a process of its own: its exit code, its summary line and
the per-phase progress lines on its stderr are checked too.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lake_fixtures import run_glue_job

REPO = Path(__file__).resolve().parent.parent
JOB = REPO / "glue_etl_job.py"
HEADER = "transaction_id,date,customer_id,product,quantity,unit_price,region,total_amount"
MONTHS = ((2025, 7), (2025, 8), (2025, 9))
PRICES = {"Laptop": "1199.99", "Mouse": "25.50", "Desk, oak": "349.00", "Lamp": "45.25"}
REGIONS = ("North", "South", "East", "West")
KNOWN_CUSTOMERS = [f"C{i:04d}" for i in range(1, 31)]  # sales also use C0031..C0040

# Bad rows with the reason a reader would give them (written by hand).
BAD_ROWS: list[tuple[bytes, str]] = [
    (b"B01,2025-07-03,C0001,Mouse,0,25.50,North,0.00", "non_positive_quantity"),
    (b"B02,2025-07-03,C0001,Mouse,1,0.00,North,0.00", "non_positive_price"),
    (b"B03,2025-13-01,C0001,Mouse,1,25.50,North,25.50", "invalid_date"),
    (b"B04,2099-01-01,C0001,Mouse,1,25.50,North,25.50", "future_date"),
    (b"B05,2025-07-03,,Mouse,1,25.50,North,25.50", "missing_field"),
    (b"B06,2025-07-03,C0001,Mouse,one,25.50,North,25.50", "invalid_type"),
    (b"B07,2025-07-03,C0001,Mouse,2,25.50,North,60.00", "amount_mismatch"),
    (b"B08,2025-07-03,C0001,Mouse", "malformed_row"),
    (b"B09,2025-07-03,C0001,Caf\xe9 mug,1,25.50,North,25.50", "invalid_encoding"),
    (b"B10,2025-07-04,C0002,Lamp,1,45.25,East,45.25", "conflicting_duplicate"),
    (b"B10,2025-07-04,C0002,Lamp,2,45.25,East,90.50", "conflicting_duplicate"),
]
EXACT_COPIES = 5


def clean_rows(seed: int, n: int) -> list[list[str]]:
    """Valid sales rows over three months; total = quantity x price to the cent."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        year, month = MONTHS[i % len(MONTHS)]
        product = rng.choice(sorted(PRICES))
        quantity = rng.choice((1, 1, 1, 2, 2, 3, 5))
        price = Decimal(PRICES[product])
        rows.append(
            [
                f"T{i:06d}",
                f"{year}-{month:02d}-{rng.randint(1, 28):02d}",
                f"C{rng.randint(1, 40):04d}",
                product,
                str(quantity),
                str(price),
                rng.choice(REGIONS),
                str(price * quantity),
            ]
        )
    return rows


def csv_line(row: list[str]) -> bytes:
    return ",".join(f'"{v}"' if "," in v else v for v in row).encode()


def write_sales(path: Path, rows: list[list[str]], extra: list[bytes] = ()) -> None:
    """BOM + CRLF, as a spreadsheet export would write it."""
    lines = [HEADER.encode()] + [csv_line(r) for r in rows] + list(extra)
    path.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(lines) + b"\r\n")


def write_plain_csv(path: Path, rows: list[list[str]]) -> None:
    path.write_bytes(b"\n".join([HEADER.encode()] + [csv_line(r) for r in rows]) + b"\n")


def write_customers(path: Path) -> None:
    lines = [
        json.dumps(
            {
                "customer_id": cid,
                "age_group": ("18-25", "26-35", "36-45")[i % 3],
                "membership_tier": ("Gold", "Silver", "Bronze")[i % 3],
                "signup_date": f"2024-0{1 + i % 9}-15",
            }
        )
        for i, cid in enumerate(KNOWN_CUSTOMERS)
    ]
    lines += [lines[0], '{"customer_id": "C0099", broken']  # exact copy, invalid JSON
    path.write_text("\n".join(lines) + "\n")


def table_rows(path: Path) -> list[tuple]:
    """Every row of a hive-partitioned Parquet folder, sorted (DuckDB)."""
    return duckdb.sql(
        "select * exclude (year, month), year, month "
        f"from read_parquet('{path}/**/*.parquet', hive_partitioning = true) "
        "order by all"
    ).fetchall()


def snapshot(out: Path) -> dict:
    return {
        "enriched": table_rows(out / "enriched"),
        "summary": table_rows(out / "sales_summary"),
        "files": sorted(str(p.relative_to(out)) for p in out.rglob("*.parquet")),
        # Every file of the output, with its bytes (the lock is gone once a run ends).
        "all_files": {
            str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()
        },
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory, spark):
    """Run 1 as a subprocess (the real CLI, its own JVM); runs 2 and 3 call ``main`` in
    this process on the shared Spark session (same local code path, no second JVM)."""
    import glue_etl_job

    work = tmp_path_factory.mktemp("e2e")
    clean = clean_rows(seed=7, n=600)
    copies = [csv_line(r) for r in clean[:EXACT_COPIES]]
    write_sales(work / "sales.csv", clean, extra=copies + [b for b, _ in BAD_ROWS])
    write_plain_csv(work / "clean.csv", clean)
    write_customers(work / "customers.ndjson")
    september = [r for r in clean if r[1].startswith("2025-09")][:10]
    (work / "september").mkdir()
    write_sales(work / "september" / "sales.csv", september)
    out = work / "processed"
    common = ["--customers_path", "customers.ndjson", "--output_path", "processed"]
    result: dict = {"work": work, "september": september}
    for run_id, sales in (("r1", "sales.csv"), ("r2", "sales.csv"), ("r3", "september")):
        argv = ["--sales_path", sales, *common, "--run_id", run_id]
        if run_id == "r1":
            proc = run_glue_job(*argv, cwd=work)
            assert proc.returncode == 0, proc.stderr[-3000:]
        else:
            absolute = [str(work / a) if a in (sales, *common[1::2]) else a for a in argv]
            assert glue_etl_job.main([str(JOB), *absolute]) == 0
            proc = None
        shutil.copytree(out, work / f"after_{run_id}")  # the state each test looks at
        result[run_id] = {
            "out": work / f"after_{run_id}",
            "proc": proc,
            "metrics": json.loads((out / "_runs" / f"{run_id}.json").read_text()),
            **snapshot(out),
        }
    spark.conf.set("spark.sql.shuffle.partitions", "2")  # main() applied the job's settings
    return result


def duck_expected(clean_csv: Path) -> duckdb.DuckDBPyRelation:
    return duckdb.sql(
        f"""
        select
            cast("date" as date) as d,
            region,
            product,
            cast(total_amount as decimal(12, 2)) as total_amount,
            customer_id,
        from read_csv('{clean_csv}', header = true, all_varchar = true)
        """
    )


def test_partitions_hold_the_rows_and_sums_duckdb_computes_from_the_raw_csv(runs):
    expected = duck_expected(runs["work"] / "clean.csv")
    want = expected.query(
        "expected",
        "select year(d), month(d), count(*), sum(total_amount) from expected "
        "group by all order by all",
    ).fetchall()
    enriched = runs["r1"]["out"] / "enriched"
    got = duckdb.sql(
        f"select year, month, count(*), sum(total_amount) from "
        f"read_parquet('{enriched}/**/*.parquet', hive_partitioning = true) "
        "group by all order by all"
    ).fetchall()
    assert got == want
    assert [r[2] for r in got] == [200, 200, 200]


def test_summary_groups_match_duckdb_with_half_up_average(runs):
    expected = duck_expected(runs["work"] / "clean.csv")
    groups = expected.query(
        "expected",
        "select year(d), month(d), region, product, sum(total_amount), count(*) "
        "from expected group by all order by all",
    ).fetchall()
    cent = Decimal("0.01")
    want = [
        (y, m, reg, prod, total, n, (total / n).quantize(cent, ROUND_HALF_UP))
        for y, m, reg, prod, total, n in groups
    ]
    summary = runs["r1"]["out"] / "sales_summary"
    got = duckdb.sql(
        "select year, month, region, product, total_revenue, transaction_count, "
        f"avg_transaction_value from read_parquet('{summary}/**/*.parquet', "
        "hive_partitioning = true) order by all"
    ).fetchall()
    assert got == want


def test_unknown_customers_stay_with_null_demographics(runs):
    unknown = [r for r in runs["r1"]["enriched"] if r[2] not in KNOWN_CUSTOMERS]
    clean = clean_rows(seed=7, n=600)
    assert len(unknown) == sum(1 for r in clean if r[2] not in KNOWN_CUSTOMERS) > 0
    assert all(r[8] is None and r[9] is None and r[10] is None for r in unknown)
    assert runs["r1"]["metrics"]["unknown_customers"] == len(unknown)


def test_parquet_types_are_date_and_decimal_snappy_few_files(runs):
    out = runs["r1"]["out"]
    enriched_file = next((out / "enriched").rglob("*.parquet"))
    schema = pq.read_schema(enriched_file)
    assert schema.field("transaction_date").type == pa.date32()
    assert schema.field("signup_date").type == pa.date32()
    assert schema.field("unit_price").type == pa.decimal128(12, 2)
    assert schema.field("total_amount").type == pa.decimal128(12, 2)
    assert schema.field("quantity").type == pa.int32()
    assert schema.field("day").type == pa.int32()
    assert "year" not in schema.names  # a partition column, in the path
    summary = pq.read_schema(next((out / "sales_summary").rglob("*.parquet")))
    assert summary.field("total_revenue").type == pa.decimal128(18, 2)
    assert summary.field("transaction_count").type == pa.int64()
    assert summary.field("avg_transaction_value").type == pa.decimal128(12, 2)
    meta = pq.ParquetFile(enriched_file).metadata
    assert meta.row_group(0).column(0).compression == "SNAPPY"
    for folder in (out / "enriched").glob("year=*/month=*"):
        assert 1 <= len(list(folder.glob("*.parquet"))) <= 2


def test_metrics_account_for_every_row(runs):
    m = runs["r1"]["metrics"]
    clean = 600
    expected_reasons = {}
    for _, reason in BAD_ROWS:
        expected_reasons[reason] = expected_reasons.get(reason, 0) + 1
    assert m["status"] == "succeeded"
    assert m["rows_read"] == {"sales": clean + EXACT_COPIES + len(BAD_ROWS), "customers": 32}
    assert m["rows_written"]["enriched"] == clean
    assert m["rows_quarantined_by_source"]["sales"] == expected_reasons
    assert m["rows_quarantined_by_source"]["customers"] == {"invalid_json": 1}
    assert m["rows_quarantined"] == {
        **expected_reasons,
        "invalid_json": 1,
    }
    assert m["quarantined_total"] == len(BAD_ROWS) + 1
    assert m["duplicates_dropped"] == EXACT_COPIES + 1
    assert m["reconciliation"]["sales"] == {
        "read": clean + EXACT_COPIES + len(BAD_ROWS),
        "written": clean,
        "quarantined": len(BAD_ROWS),
        "duplicates_dropped": EXACT_COPIES,
        "superseded": 0,
        "ok": True,
    }
    assert m["reconciliation"]["customers"]["ok"] is True
    assert (m["mode"], m["full_rebuild_reason"]) == (
        "full_rebuild",
        "no earlier run's state (first run)",
    )
    assert m["rows_superseded"] == {"sales": 0, "customers": 0}
    # An input this small is run with its expressions interpreted (big ones: generated
    # code, tests/test_glue_etl_parallel.py::test_generated_rows_match_pandas).
    assert m["read_plan"]["evaluation"] == "interpreted"
    assert m["partitions_written"] == [
        "year=2025/month=7",
        "year=2025/month=8",
        "year=2025/month=9",
    ]
    assert m["bytes_read"]["sales"] == (runs["work"] / "sales.csv").stat().st_size
    assert all(m["bytes_written"][k] > 0 for k in ("enriched", "sales_summary", "quarantine"))
    for key in (
        "run_id", "job_name", "started_at", "finished_at", "inputs", "durations_seconds",
    ):  # fmt: skip
        assert key in m
    assert m["durations_seconds"]["total"] > 0
    assert runs["r1"]["proc"].stdout.strip().splitlines()[-1].startswith("run r1 succeeded")


def test_quarantine_keeps_raw_rows_with_reason_source_and_run(runs):
    qdir = runs["r1"]["out"] / "quarantine"
    started = runs["r1"]["metrics"]["started_at"]
    qfile = qdir / f"run_date={started[:10]}" / "r1.parquet"
    assert sorted(qdir.rglob("*.parquet")) == [qfile]
    rows = duckdb.sql(
        f"select source, reason, record_id, raw_record, raw_bytes, source_file, run_id "
        f"from read_parquet('{qfile}')"
    ).fetchall()
    assert len(rows) == len(BAD_ROWS) + 1
    sales = {(r[1], r[2]) for r in rows if r[0] == "sales"}
    assert ("malformed_row", "B08") in sales and ("conflicting_duplicate", "B10") in sales
    encoding = [r for r in rows if r[1] == "invalid_encoding"]
    assert len(encoding) == 1 and b"Caf\xe9 mug" in encoding[0][4]
    malformed = next(r for r in rows if r[1] == "malformed_row")
    assert malformed[3] == "B08,2025-07-03,C0001,Mouse"
    assert all(r[5].endswith(("sales.csv", "customers.ndjson")) and r[6] == "r1" for r in rows)


def test_the_quarantine_folder_reads_plainly_with_pandas_pyarrow_and_duckdb(runs):
    """No column clashes with a partition key: each reader takes the folder as it is."""
    qdir = runs["r1"]["out"] / "quarantine"
    day = runs["r1"]["metrics"]["started_at"][:10]
    want = sorted(
        duckdb.sql(f"select record_id, reason from read_parquet('{qdir}/*/*.parquet')").fetchall(),
        key=str,
    )
    frame = pd.read_parquet(qdir)
    table = pq.read_table(qdir)
    hive = duckdb.sql(
        f"select record_id, reason, run_id, run_date "
        f"from read_parquet('{qdir}/**/*.parquet', hive_partitioning = true)"
    ).fetchall()
    assert sorted(zip(frame["record_id"], frame["reason"], strict=True), key=str) == want
    picked = table.select(["record_id", "reason"]).to_pydict()
    assert sorted(zip(picked["record_id"], picked["reason"], strict=True), key=str) == want
    assert sorted(((r[0], r[1]) for r in hive), key=str) == want
    assert {str(v) for v in frame["run_date"]} == {day} and set(frame["run_id"]) == {"r1"}
    assert {(r[2], str(r[3])) for r in hive} == {("r1", day)}


def test_second_run_on_the_same_input_gives_identical_output(runs):
    """Every raw file was read by run 1: run 2 reads nothing, writes only its metrics."""
    first, second = runs["r1"], runs["r2"]
    m = second["metrics"]
    assert m["status"] == "succeeded"
    assert m["mode"] == "no_new_input"
    assert m["rows_read"] == {"sales": 0, "customers": 0}
    assert m["rows_written"] == {"enriched": 0, "sales_summary": 0}
    assert m["partitions_written"] == []
    assert m["inputs"]["sales"]["files_skipped"] == 1
    assert m["inputs"]["customers"]["files_skipped"] == 1
    assert second["enriched"] == first["enriched"]
    assert second["summary"] == first["summary"]
    assert second["files"] == first["files"]
    # Byte for byte the same output; the one new file is run 2's metrics.
    added = sorted(set(second["all_files"]) - set(first["all_files"]))
    assert added == ["_runs/r2.json"]
    assert {k: second["all_files"][k] for k in first["all_files"]} == first["all_files"]
    assert not list((second["out"] / "quarantine").rglob("r2.parquet"))


def test_another_sales_path_rebuilds_the_lake_from_that_path_alone(runs):
    """Run 3 names a folder holding 10 September rows: the lake equals one run over the
    raw files given, so run 1's sales.csv counts as deleted and the lake is rebuilt with
    September's rows only (every earlier output replaced, run 1's quarantine too)."""
    after, work = runs["r3"], runs["work"]
    september = runs["september"]
    m = after["metrics"]
    assert m["status"] == "succeeded"
    assert m["mode"] == "full_rebuild"
    assert m["full_rebuild_reason"] == f"sales file no longer there: {work / 'sales.csv'}"
    assert m["partitions_written"] == ["year=2025/month=9"]
    assert m["rows_read"] == {"sales": 10, "customers": 32}
    assert m["rows_written"]["enriched"] == 10
    # enriched columns: transaction_id (index 0), total_amount (7), year (12), month (13)
    assert sorted((r[0], r[7], r[12], r[13]) for r in after["enriched"]) == sorted(
        (r[0], Decimal(r[7]), 2025, 9) for r in september
    )
    assert {(r[5], r[6]) for r in after["summary"]} == {(2025, 9)}
    assert sum(r[2] for r in after["summary"]) == sum(Decimal(r[7]) for r in september)
    assert sum(r[3] for r in after["summary"]) == 10
    assert after["metrics"]["quarantined_total"] == 1  # only the customers' bad line
    assert sorted(p.name for p in (after["out"] / "quarantine").rglob("*.parquet")) == [
        "r3.parquet"
    ]
    assert [f for f in after["files"] if f.startswith("enriched/")] == [
        f for f in after["files"] if f.startswith("enriched/year=2025/month=9/")
    ]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda w: None, "sales input not found"),
        (lambda w: (w / "sales.csv").write_bytes(b""), "sales input is empty"),
        (lambda w: (w / "sales.csv").write_text("id,day,amount\n1,2,3\n"), "header mismatch"),
    ],
)
def test_fatal_input_ends_with_one_clear_line_and_touches_no_output(tmp_path, setup, message):
    write_customers(tmp_path / "customers.ndjson")
    setup(tmp_path)
    earlier = tmp_path / "processed" / "enriched" / "year=2025" / "month=1" / "part-0.parquet"
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"earlier output")
    proc = run_glue_job(
        "--sales_path", "sales.csv", "--customers_path", "customers.ndjson",
        "--output_path", "processed",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ERROR: ") and message in last, proc.stderr
    assert "Traceback" not in proc.stderr
    assert [p.name for p in (tmp_path / "processed").rglob("*") if p.is_file()] == [
        "part-0.parquet"
    ]
    assert earlier.read_bytes() == b"earlier output"


def test_missing_required_argument_is_a_one_line_error(tmp_path):
    proc = run_glue_job("--sales_path", "x.csv", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("ERROR: bad arguments")


# --- one progress line when each phase starts and one when it ends (run 1's stderr) ---------

# The phases of a run that reads new input, in order: ``commit`` publishes what was staged.
PHASES = (
    "read_and_check",
    "write_enriched",
    "write_summary",
    "write_quarantine",
    "verify",
    "commit",
)
PHASE_RE = re.compile(r"phase (\w+): (started|done in (\d+(?:\.\d+)?) s(?:, ([\d,]+) rows)?)\s*$")


def test_progress_lines_one_start_and_one_end_per_phase_in_order(runs):
    stderr = runs["r1"]["proc"].stderr
    events = []
    for line in stderr.splitlines():
        found = PHASE_RE.search(line)
        if found:
            assert "sales_etl" in line and "INFO" in line, line
            events.append((found[1], "started" if found[2] == "started" else "done"))
    assert events == [(p, e) for p in PHASES for e in ("started", "done")], stderr


def test_progress_lines_are_few(runs):
    stderr = runs["r1"]["proc"].stderr
    job_lines = [ln for ln in stderr.splitlines() if "sales_etl" in ln]
    # Besides the phases: the JVM's compiler, why a full rebuild, how expressions are
    # evaluated, the summary line, and within read_and_check what was read and checked
    # of each source and what the new rows met in the lake. No line per task or per file.
    assert len(job_lines) <= 2 * len(PHASES) + 7, stderr
    assert not [ln for ln in job_lines if re.search(r"\btask\b", ln, re.IGNORECASE)]
