"""glue_etl_job.py reading sales files in parallel: the line-by-line fast path, the
multiLine slow path for files with quoted line breaks, the read plan in the metrics and
removal of crash leftovers. Every run is in this process, on the shared Spark session.

Every expectation is computed here from the rows this file writes (or, for generated data,
by pandas over the raw CSV), never from the job's code. Split sizes are forced small with
``spark.sql.files.maxPartitionBytes`` (16 KiB for most files) so that a file of a few
hundred KB is read by many tasks, and the awkward lines are placed at exact byte offsets:
straddling a split boundary, ending exactly on one, a CRLF pair cut in two by one, a
boundary inside a UTF-8 character. (The per-phase progress lines of a run: in
tests/test_glue_etl_e2e.py, on the stderr of its run of the CLI.)
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import shutil
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from etl_expectations import expected_from_raw

from sales_etl import (
    arguments,
    context,
    contracts,
    duplicates,
    inputs,
    raw_files,
    run,
    sales_pass,
    session,
)

HEADER = "transaction_id,date,customer_id,product,quantity,unit_price,region,total_amount"
BOM = b"\xef\xbb\xbf"
KIB = 1024
MAX_PARTITION_BYTES = "spark.sql.files.maxPartitionBytes"

MONTHS = ((2025, 3), (2025, 4), (2025, 5))
# Two products need quoting (a comma; doubled quotes), but neither spans a line.
PRICES = {
    "Laptop": "1199.99",
    "Mouse": "25.50",
    "Desk, oak": "349.00",
    'Chair "Ergo", black': "219.00",
    "Lamp": "45.25",
    "Headphones": "149.99",
}
REGIONS = ("North", "South", "East", "West", "Central")
KNOWN_CUSTOMERS = [f"C{i:04d}" for i in range(1, 51)]  # sales also use C0051..C0060


# --- writing the input ----------------------------------------------------------------------


def clean_rows(seed: int, prefix: str) -> Iterator[list[str]]:
    """Endless valid sales rows over three months; total = quantity x price to the cent."""
    rng = random.Random(seed)
    for i in itertools.count():
        year, month = MONTHS[i % len(MONTHS)]
        product = rng.choice(sorted(PRICES))
        quantity = rng.choice((1, 1, 1, 2, 2, 3, 5))
        price = Decimal(PRICES[product])
        yield [
            f"{prefix}{i:07d}",
            f"{year}-{month:02d}-{rng.randint(1, 28):02d}",
            f"C{rng.randint(1, 60):04d}",
            product,
            str(quantity),
            str(price),
            rng.choice(REGIONS),
            str(price * quantity),
        ]


def csv_text(row: list[str]) -> str:
    """One CSV record; fields with a comma, quote or line break are quoted (quotes doubled)."""
    return ",".join(
        '"' + v.replace('"', '""') + '"' if any(c in v for c in ',"\r\n') else v for v in row
    )


def conflicting(row: list[str]) -> list[str]:
    """A still valid row with the same transaction_id and different content."""
    quantity = int(row[4]) + 1
    return [*row[:4], str(quantity), row[5], row[6], str(Decimal(row[5]) * quantity)]


class SalesFile:
    """A sales CSV built line by line, with chosen lines placed at exact byte offsets.

    ``rows`` are the valid rows written, with the values the job must read back;
    ``lines`` maps a transaction_id to the exact bytes of its (first) line, no line end;
    ``copies`` to every line written with it (more than one: ``add_conflict``).
    """

    MAX_ROW = 160  # longer than any natural clean line: leaves room to pad and place

    def __init__(self, eol: bytes, rows: Iterator[list[str]], bom: bool = False) -> None:
        self.eol = eol
        self.clean = rows
        self.data = bytearray((BOM if bom else b"") + HEADER.encode() + eol)
        self.rows: list[list[str]] = []
        self.lines: dict[str, bytes] = {}
        self.copies: dict[str, list[bytes]] = {}
        self.offsets: dict[str, int] = {}

    def add(self, row: list[str], pad: int = 0) -> None:
        """A valid row; ``pad`` spaces after the region (the job trims fields)."""
        line = csv_text([*row[:6], row[6] + " " * pad, row[7]]).encode()
        self._append(row[0], line)
        self.rows.append(row)

    def add_conflict(self, row: list[str]) -> list[str]:
        """A valid row with the id of a row of this file and other content (a conflict
        within one file); returns it."""
        assert row[0] in self.lines
        other = conflicting(row)
        line = csv_text(other).encode()
        self.data += line + self.eol
        self.copies[row[0]].append(line)
        self.rows.append(other)
        return other

    def add_bad(self, line: bytes) -> None:
        self._append(line.split(b",", 1)[0].decode(), line)

    def add_blank(self) -> None:
        """An empty line: not a record."""
        self.data += self.eol

    def add_clean(self, n: int) -> None:
        for _ in range(n):
            self.add(next(self.clean))

    def _append(self, tid: str, line: bytes) -> None:
        assert tid not in self.lines or self.lines[tid] == line
        self.offsets[tid] = len(self.data)
        self.lines[tid] = line
        self.copies.setdefault(tid, []).append(line)
        self.data += line + self.eol

    def _gap_to(self, target: int) -> int:
        while len(self.data) + 2 * self.MAX_ROW < target:
            self.add(next(self.clean))
        gap = target - len(self.data)
        assert self.MAX_ROW < gap <= 2 * self.MAX_ROW, "targets too close together"
        return gap

    def _pad_next(self, length: int) -> None:
        """Add the next clean row padded so that its line plus line end is ``length`` bytes."""
        row = next(self.clean)
        pad = length - len(csv_text(row).encode()) - len(self.eol)
        assert pad >= 0
        self.add(row, pad)

    def straddle(self, target: int, item: list[str] | bytes, cut: int | None = None) -> None:
        """Place a row (valid) or raw line (bad) so that byte ``target`` is ``cut`` bytes into it."""
        line = csv_text(item).encode() if isinstance(item, list) else item
        cut = len(line) // 2 if cut is None else cut
        assert 0 < cut < len(line)
        self._pad_next(self._gap_to(target) - cut)
        if isinstance(item, list):
            self.add(item)
        else:
            self.add_bad(item)
        assert self.data[target - cut : target - cut + len(line)] == line

    def end_at(self, target: int) -> None:
        """A clean line whose line end is the last byte before ``target``."""
        self._pad_next(self._gap_to(target))
        assert len(self.data) == target

    def split_eol(self, target: int) -> None:
        """A clean CRLF line whose \\r is the last byte before ``target`` and \\n the first after."""
        assert self.eol == b"\r\n"
        self._pad_next(self._gap_to(target) + 1)
        assert self.data[target - 1 : target + 1] == b"\r\n" and len(self.data) == target + 1

    def write(self, path: Path, final_eol: bool = True) -> Path:
        path.write_bytes(bytes(self.data if final_eol else self.data[: -len(self.eol)]))
        return path


def write_customers(path: Path) -> Path:
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
    path.write_text("\n".join(lines) + "\n")
    return path


# --- running the job and reading what it wrote ----------------------------------------------


@contextlib.contextmanager
def max_partition_bytes(spark, size: int | None) -> Iterator[None]:
    """Set the split size for one run; the session is shared by the whole suite."""
    if size is None:
        yield
        return
    with session.sql_conf(spark, MAX_PARTITION_BYTES, str(size)):
        yield


def run_in_process(
    spark, sales: Path, customers: Path, out: Path, run_id: str, split: int | None = None
) -> dict:
    args = arguments.JobArgs(
        sales_path=str(sales), customers_path=str(customers), output_path=str(out)
    )
    plan = inputs.plan_inputs(args, None)
    with max_partition_bytes(spark, split):
        return run.run_job(spark, args, plan, run_id=run_id, started=context.utc_now())


def by_month(rows: list[list[str]]) -> list[tuple]:
    """(year, month, rows, revenue) from the rows as written."""
    acc: dict[tuple[int, int], tuple[int, Decimal]] = {}
    for r in rows:
        key = (int(r[1][:4]), int(r[1][5:7]))
        n, total = acc.get(key, (0, Decimal(0)))
        acc[key] = (n + 1, total + Decimal(r[7]))
    return sorted((y, m, n, total) for (y, m), (n, total) in acc.items())


def enriched_by_month(out: Path) -> list[tuple]:
    return duckdb.sql(
        "select year, month, count(*), sum(total_amount) from "
        f"read_parquet('{out}/enriched/**/*.parquet', hive_partitioning = true) "
        "group by all order by all"
    ).fetchall()


def summary_by_month(out: Path) -> list[tuple]:
    return duckdb.sql(
        "select year, month, sum(transaction_count), sum(total_revenue) from "
        f"read_parquet('{out}/sales_summary/**/*.parquet', hive_partitioning = true) "
        "group by all order by all"
    ).fetchall()


def enriched_rows(out: Path, ids: list[str]) -> dict[str, dict]:
    rel = duckdb.sql(
        "select transaction_id, cast(transaction_date as varchar) as date, customer_id, product, "
        "quantity, cast(unit_price as varchar) as unit_price, region, "
        "cast(total_amount as varchar) as total_amount from "
        f"read_parquet('{out}/enriched/**/*.parquet', hive_partitioning = true) "
        f"where transaction_id in ({', '.join('?' for _ in ids)})",
        params=ids,
    )
    names = rel.columns
    return {r[0]: dict(zip(names, r, strict=True)) for r in rel.fetchall()}


def as_read(row: list[str]) -> dict:
    """A written row as the enriched table must hold it."""
    return {
        "transaction_id": row[0],
        "date": row[1],
        "customer_id": row[2],
        "product": row[3],
        "quantity": int(row[4]),
        "unit_price": row[5],
        "region": row[6],
        "total_amount": row[7],
    }


def quarantine(out: Path, run_id: str) -> list[dict]:
    return pq.read_table(
        next((out / "quarantine").glob(f"run_date=*/{run_id}.parquet"))
    ).to_pylist()


def unknown(rows: list[list[str]]) -> int:
    return sum(1 for r in rows if r[2] not in KNOWN_CUSTOMERS)


def read_plan(metrics: dict) -> tuple[int, list[str], list[str]]:
    """(tasks, parallel file names, multiLine file names) from the metrics."""
    plan = metrics["read_plan"]["sales"]
    return (
        plan["tasks"],
        sorted(os.path.basename(p) for p in plan["parallel_files"]),
        sorted(os.path.basename(p) for p in plan["multiline_files"]),
    )


def assert_reconciled(m: dict) -> None:
    assert m["status"] == "succeeded"
    assert m["reconciliation"]["sales"]["ok"] and m["reconciliation"]["customers"]["ok"]


# --- 1. a quoted line break deep in a file ----------------------------------------------------

SPLIT_1 = 32 * KIB


@pytest.fixture(scope="module")
def quoted_break(spark, tmp_path_factory):
    """~180 KB of CRLF rows in 32 KiB splits; two records with a quoted line break past
    the first two splits and past the head the header check reads, each straddling a
    split boundary (CRLF file: a line break inside quotes becomes \\n)."""
    work = tmp_path_factory.mktemp("quoted_break")
    f = SalesFile(b"\r\n", clean_rows(seed=11, prefix="T"))
    f.add_clean(100)
    lf = ["M1", "2025-04-10", "C0001", "Desk\nlamp", "2", "45.25", "North", "90.50"]
    crlf = ["M2", "2025-05-11", "C0055", "Gadget\r\nXL", "1", "1199.99", "East", "1199.99"]
    commas = ["Q1", "2025-03-12", "C0002", 'Sofa, "Big", grey', "1", "999.00", "West", "999.00"]
    # the boundary falls on the first byte after the quoted line break
    f.straddle(3 * SPLIT_1, lf, cut=csv_text(lf).encode().index(b"\n") + 1)
    f.straddle(4 * SPLIT_1, crlf)
    f.straddle(5 * SPLIT_1, commas)
    f.add_clean(200)
    sales = f.write(work / "sales.csv")
    assert sales.stat().st_size > 5 * SPLIT_1
    assert f.offsets["M1"] > max(2 * SPLIT_1, raw_files.SALES_HEAD_BYTES)  # far in
    m = run_in_process(
        spark, sales, write_customers(work / "customers.ndjson"), work / "out", "qb", SPLIT_1
    )
    return {"m": m, "file": f, "out": work / "out"}


def test_quoted_line_break_deep_in_a_file_every_row_read_and_reconciled(quoted_break):
    m, f, out = quoted_break["m"], quoted_break["file"], quoted_break["out"]
    assert_reconciled(m)
    assert m["rows_read"]["sales"] == len(f.rows)
    assert m["rows_quarantined"] == {}
    assert m["duplicates_dropped"] == 0
    assert m["rows_written"]["enriched"] == len(f.rows)
    assert m["unknown_customers"] == unknown(f.rows)
    assert enriched_by_month(out) == by_month(f.rows)
    assert summary_by_month(out) == by_month(f.rows)


def test_quoted_line_break_is_kept_in_the_product(quoted_break):
    f = quoted_break["file"]
    got = enriched_rows(quoted_break["out"], ["M1", "M2", "Q1"])
    written = {r[0]: r for r in f.rows if r[0] in ("M1", "M2", "Q1")}
    assert got["M1"] == as_read(written["M1"])
    assert got["M1"]["product"] == "Desk\nlamp"
    assert got["M2"] == {**as_read(written["M2"]), "product": "Gadget\nXL"}  # CRLF normalised
    assert got["Q1"] == as_read(written["Q1"])
    assert got["Q1"]["product"] == 'Sofa, "Big", grey'


def test_read_plan_sends_a_file_with_a_quoted_line_break_to_multiline(quoted_break):
    tasks, parallel, multiline = read_plan(quoted_break["m"])
    assert multiline == ["sales.csv"]
    assert parallel == []
    assert tasks >= 1


# --- 2. a BOM + CRLF file without quoted line breaks --------------------------------------------

SPLIT_2 = 4 * KIB  # an awkward line on each of six boundaries in a row
FIRST = ["F0000001", "2025-03-01", "C0001", 'Chair "Ergo", black', "2", "219.00", "North", "438.00"]
NON_UTF8 = (
    b"E1,2025-04-02,C0002,Caf\xe9 cr\xe8me mug \xff\xfe latin-1 bytes in a long product name,"
    b"1,25.50,South,25.50"
)
SHORT = b"S1,2025-04-03,C0003,Mouse pad with a long enough name to straddle a split"
CUT_CHAR = [
    "U1",
    "2025-05-04",
    "C0004",
    "Cr\u00e8me br\u00fbl\u00e9e",
    "1",
    "45.25",
    "West",
    "45.25",
]


@pytest.fixture(scope="module")
def bom_file(spark, tmp_path_factory):
    work = tmp_path_factory.mktemp("bom_crlf")
    f = SalesFile(b"\r\n", clean_rows(seed=22, prefix="P"), bom=True)
    f.add(FIRST)
    f.add_clean(50)
    f.straddle(2 * SPLIT_2, next(f.clean))  # an ordinary line across a boundary
    f.end_at(3 * SPLIT_2)  # a line ending exactly on a boundary
    f.add_blank()  # and a blank line right after it
    f.add_blank()
    f.split_eol(4 * SPLIT_2)  # \r | \n across a boundary
    f.straddle(5 * SPLIT_2, NON_UTF8)
    line = csv_text(CUT_CHAR).encode()
    f.straddle(6 * SPLIT_2, CUT_CHAR, cut=line.index("\u00e8".encode()) + 1)  # inside the è
    f.straddle(7 * SPLIT_2, SHORT)
    f.add_clean(100)
    sales = f.write(work / "sales.csv")
    assert sales.stat().st_size > 8 * SPLIT_2
    assert [t for t, ln in f.lines.items() if ln.count(b'"') % 2] == []  # no line break in quotes
    m = run_in_process(
        spark, sales, write_customers(work / "customers.ndjson"), work / "out", "bom", SPLIT_2
    )
    return {"m": m, "file": f, "out": work / "out"}


def test_bom_crlf_file_rows_and_reasons(bom_file):
    m, f, out = bom_file["m"], bom_file["file"], bom_file["out"]
    assert_reconciled(m)
    assert m["rows_read"]["sales"] == len(f.rows) + 2  # header skipped, E1 and S1 counted
    assert m["rows_quarantined"] == {"invalid_encoding": 1, "malformed_row": 1}
    assert m["duplicates_dropped"] == 0
    assert m["rows_written"]["enriched"] == len(f.rows)
    assert m["unknown_customers"] == unknown(f.rows)
    assert enriched_by_month(out) == by_month(f.rows)
    assert summary_by_month(out) == by_month(f.rows)


def test_bom_crlf_file_quarantine_keeps_exact_bytes_and_text(bom_file):
    q = {r["record_id"]: r for r in quarantine(bom_file["out"], "bom")}
    assert sorted(q) == ["E1", "S1"]
    assert q["E1"]["reason"] == "invalid_encoding"
    assert q["E1"]["raw_bytes"] == NON_UTF8  # byte-exact, no line end
    assert q["S1"]["reason"] == "malformed_row"
    assert q["S1"]["raw_record"] == SHORT.decode()
    assert q["S1"]["raw_bytes"] is None
    assert all(r["source_file"].endswith("/sales.csv") for r in q.values())


def test_bom_crlf_file_first_row_and_boundary_rows_read_exactly(bom_file):
    f, out = bom_file["file"], bom_file["out"]
    rows = {r[0]: r for r in f.rows}
    got = enriched_rows(out, ["F0000001", "U1"])
    assert got["F0000001"] == as_read(FIRST)  # right after the BOM header
    assert got["U1"] == as_read(rows["U1"])  # a split boundary inside a UTF-8 character
    ids = duckdb.sql(
        f"select transaction_id from read_parquet('{out}/enriched/**/*.parquet') "
        "where transaction_id like '%transaction_id%' or transaction_id like '%\ufeff%' "
        "or region like '%\r%' or total_amount is null"
    ).fetchall()
    assert ids == []


def test_read_plan_reads_a_bom_crlf_file_in_parallel(bom_file):
    tasks, parallel, multiline = read_plan(bom_file["m"])
    assert parallel == ["sales.csv"]
    assert multiline == []
    assert tasks > 1


def test_read_plan_is_in_the_metrics_file(bom_file):
    m = bom_file["m"]
    on_disk = json.loads((bom_file["out"] / "_runs" / "bom.json").read_text())
    assert on_disk["read_plan"] == m["read_plan"]
    assert set(m["read_plan"]["sales"]) == {"tasks", "parallel_files", "multiline_files"}
    assert isinstance(m["read_plan"]["sales"]["tasks"], int)


# --- 3. a folder mixing files with and without quoted line breaks -------------------------------

SPLIT_3 = 16 * KIB


@pytest.fixture(scope="module")
def mixed_folder(spark, tmp_path_factory):
    """a.csv (LF, no line end after its last row) and c.csv (BOM + CRLF) plain, b.csv (LF)
    with a quoted line break; modified in that order (a.csv oldest, c.csv newest).

    Exact copies: A0000100 of a.csv in b.csv (fast/slow), A0000200 of a.csv in c.csv
    (fast/fast). Other versions in another file, the newest file's loaded and the older
    one superseded: C0000300 of c.csv in b.csv (c.csv's stays), A0000400 of a.csv in
    c.csv (c.csv's replaces it). Conflicting copies within one file, all quarantined:
    A0000500 in a.csv, B0000050 in b.csv (read whole), C0000600 in c.csv.
    One row breaking a row rule in a.csv (read line by line) and one in b.csv (read whole).
    """
    work = tmp_path_factory.mktemp("mixed")
    folder = work / "sales"
    folder.mkdir()
    a = SalesFile(b"\n", clean_rows(seed=31, prefix="A"))
    a.add_clean(700)
    b = SalesFile(b"\n", clean_rows(seed=32, prefix="B"))
    c = SalesFile(b"\r\n", clean_rows(seed=33, prefix="C"), bom=True)
    c.add_clean(700)
    rows_a = {r[0]: r for r in a.rows}
    rows_c = {r[0]: r for r in c.rows}
    b.add_clean(100)
    rows_b = {r[0]: r for r in b.rows}
    b.add(rows_a["A0000100"])
    c_0300_in_b = conflicting(rows_c["C0000300"])
    b.add(c_0300_in_b)
    b.add_conflict(rows_b["B0000050"])
    b.add_clean(100)
    b.add(["ML1", "2025-04-20", "C0005", "Desk\nlamp", "1", "45.25", "South", "45.25"])
    b.add(["BQ1", "2025-04-21", "C0005", "Lamp", "0", "45.25", "South", "0.00"])
    b.add_clean(50)
    a.add_conflict(rows_a["A0000500"])
    a.add(["AQ1", "2025-04-22", "C0005", "Lamp", "1", "45.25", "South", "99.00"])
    c.add_conflict(rows_c["C0000600"])
    c.add(rows_a["A0000200"])
    a_0400_in_c = conflicting(rows_a["A0000400"])
    c.add(a_0400_in_c)
    a.write(folder / "a.csv", final_eol=False)  # the last line has no line end
    b.write(folder / "b.csv")
    c.write(folder / "c.csv")
    for i, name in enumerate(("a.csv", "b.csv", "c.csv")):  # which file is newer, for sure
        os.utime(folder / name, (1_750_000_000 + 60 * i, 1_750_000_000 + 60 * i))
    assert (folder / "a.csv").stat().st_size > 2 * SPLIT_3  # three splits
    m = run_in_process(
        spark, folder, write_customers(work / "customers.ndjson"), work / "out", "mix", SPLIT_3
    )
    every = a.rows + b.rows + c.rows
    rejected = {"BQ1", "AQ1"}
    in_one_file = {"A0000500": "a.csv", "B0000050": "b.csv", "C0000600": "c.csv"}
    newest = {"C0000300": rows_c["C0000300"], "A0000400": a_0400_in_c}  # both c.csv's
    superseded = {  # (id, file, replaced by): the older file's version
        ("C0000300", "b.csv", "c.csv"): c_0300_in_b,
        ("A0000400", "a.csv", "c.csv"): rows_a["A0000400"],
    }
    versions: dict[str, set[tuple]] = {}
    for r in every:
        versions.setdefault(r[0], set()).add(tuple(r))
    kept = []
    for tid, v in versions.items():
        if tid in rejected or tid in in_one_file:
            continue
        if tid in newest:
            kept.append(newest[tid])
            continue
        assert len(v) == 1, tid
        kept.append(list(v.pop()))
    files = {"a.csv": a, "b.csv": b, "c.csv": c}
    return {
        "m": m,
        "every": every,
        "kept": kept,
        "out": work / "out",
        "files": files,
        "in_one_file": in_one_file,
        "newest": newest,
        "superseded": superseded,
    }


def test_mixed_folder_rows_reconcile_with_duplicates_across_paths(mixed_folder):
    m, kept, out = mixed_folder["m"], mixed_folder["kept"], mixed_folder["out"]
    assert_reconciled(m)
    read = len(mixed_folder["every"])
    assert m["rows_read"]["sales"] == read
    assert m["rows_quarantined"] == {
        "non_positive_quantity": 1,
        "amount_mismatch": 1,
        "conflicting_duplicate": 6,  # 3 ids, 2 copies each, each pair within one file
    }
    assert m["rows_quarantined_by_source"]["sales"] == m["rows_quarantined"]
    assert m["duplicates_dropped"] == 2
    assert m["rows_superseded"] == {"sales": 2, "customers": 0}
    # 2 rejected, 6 conflicting, 2 exact copies, 2 superseded
    assert m["rows_written"]["enriched"] == len(kept) == read - 12
    assert m["reconciliation"]["sales"] == {
        "read": read,
        "written": read - 12,
        "quarantined": 8,
        "duplicates_dropped": 2,
        "superseded": 2,
        "ok": True,
    }
    assert m["unknown_customers"] == unknown(kept)
    assert enriched_by_month(out) == by_month(kept)
    assert summary_by_month(out) == by_month(kept)
    ids = ["A0000100", "A0000200", "C0000300", "A0000400", *mixed_folder["in_one_file"], "ML1"]
    got = enriched_rows(out, ids)
    assert sorted(got) == ["A0000100", "A0000200", "A0000400", "C0000300", "ML1"]
    assert got["ML1"]["product"] == "Desk\nlamp"
    # Across files the newest file's version is the one loaded.
    for tid, row in mixed_folder["newest"].items():
        assert got[tid] == as_read(row)


def test_mixed_folder_conflicting_copies_within_a_file_are_all_quarantined(mixed_folder):
    q = quarantine(mixed_folder["out"], "mix")
    files = {}
    for r in q:
        if r["reason"] == "conflicting_duplicate":
            files.setdefault(r["record_id"], []).append(os.path.basename(r["source_file"]))
    assert {k: sorted(v) for k, v in files.items()} == {
        "A0000500": ["a.csv", "a.csv"],
        "B0000050": ["b.csv", "b.csv"],
        "C0000600": ["c.csv", "c.csv"],
    }
    others = {(r["record_id"], os.path.basename(r["source_file"]), r["reason"]) for r in q}
    assert others - {(k, f, "conflicting_duplicate") for k, v in files.items() for f in v} == {
        ("BQ1", "b.csv", "non_positive_quantity"),
        ("AQ1", "a.csv", "amount_mismatch"),
    }


def test_mixed_folder_conflicting_copies_keep_their_exact_lines(mixed_folder):
    """Read again by row id (a.csv, c.csv: CRLF) or whole (b.csv: a quoted line break)."""
    files = mixed_folder["files"]
    got = sorted(
        (r["record_id"], os.path.basename(r["source_file"]), r["raw_record"])
        for r in quarantine(mixed_folder["out"], "mix")
        if r["reason"] == "conflicting_duplicate"
    )
    assert got == sorted(
        (tid, name, line.decode())
        for tid, name in mixed_folder["in_one_file"].items()
        for line in files[name].copies[tid]
    )
    assert len(got) == 6


def test_mixed_folder_older_versions_in_other_files_are_superseded_not_quarantined(
    mixed_folder,
):
    """The newest file with a clean copy wins; an older file's other version is recorded
    in superseded/run_date=<date>/<run>.parquet, with its fields, and is neither loaded
    nor quarantined. pyarrow reads the folder plainly: no column clashes with a folder."""
    out = mixed_folder["out"]
    rows = pq.read_table(out / "superseded").to_pylist()
    got = {
        (
            r["record_id"],
            os.path.basename(r["source_file"]),
            os.path.basename(r["superseded_by"]),
        ): json.loads(r["record"], parse_float=Decimal)
        for r in rows
    }
    assert {(r["run_id"], r["source"]) for r in rows} == {("mix", "sales")}
    assert len(rows) == 2
    assert got == {
        key: {
            "transaction_id": row[0],
            "transaction_date": row[1],
            "customer_id": row[2],
            "product": row[3],
            "quantity": int(row[4]),
            "unit_price": Decimal(row[5]),
            "region": row[6],
            "total_amount": Decimal(row[7]),
        }
        for key, row in mixed_folder["superseded"].items()
    }
    quarantined = {r["record_id"] for r in quarantine(out, "mix")}
    assert not quarantined & {"C0000300", "A0000400"}


def test_conflicting_rows_found_by_row_id_or_by_checking_every_line_agree(spark, tmp_path, caplog):
    """The re-read by row id, and the whole re-read it falls back to when its count is off.

    Conflicting copies are within one file (across files the newest file's wins)."""
    folder = tmp_path / "sales"
    folder.mkdir()
    a = SalesFile(b"\n", clean_rows(seed=71, prefix="A"))
    c = SalesFile(b"\r\n", clean_rows(seed=72, prefix="C"), bom=True)
    a.add_clean(150)
    c.add_clean(150)
    a.add_conflict(a.rows[5])
    c.add_conflict(c.rows[7])
    a.write(folder / "a.csv")
    c.write(folder / "c.csv")
    args = arguments.JobArgs(
        sales_path=str(folder),
        customers_path=str(write_customers(tmp_path / "customers.ndjson")),
        output_path=str(tmp_path / "out"),
    )
    plan = inputs.plan_inputs(args, None)
    with max_partition_bytes(spark, 4 * KIB):  # several splits per file
        read = sales_pass.read_and_check_sales(spark, plan, date(2026, 1, 1))
        _, outcome, counts = duplicates.resolve_sales_duplicates(read)
        conflicts = counts.by_reason[contracts.CONFLICTING_DUPLICATE]
        found = {}
        for how, expected in (("by_row_id", conflicts), ("every_line", conflicts + 1)):
            df = duplicates.conflicting_rows_with_raw(
                spark, read, outcome, plan.sales_headers, date(2026, 1, 1), expected
            )
            found[how] = sorted(
                (r["transaction_id"], os.path.basename(r["_source_file"]), r["_raw_record"])
                for r in df.collect()
            )
            df.unpersist()
    for df in [*read.persisted, outcome]:
        df.unpersist()
    tid_a, tid_c = a.rows[5][0], c.rows[7][0]
    assert conflicts == 4
    assert (
        found["by_row_id"]
        == found["every_line"]
        == sorted(
            (tid, name, line.decode())
            for tid, name, f in ((tid_a, "a.csv", a), (tid_c, "c.csv", c))
            for line in f.copies[tid]
        )
    )
    assert "checking every line" in caplog.text


def test_read_plan_of_a_mixed_folder(mixed_folder):
    tasks, parallel, multiline = read_plan(mixed_folder["m"])
    assert parallel == ["a.csv", "c.csv"]
    assert multiline == ["b.csv"]
    assert tasks >= 3  # a.csv and c.csv span several splits each


# --- a data line equal to the header --------------------------------------------------------


@pytest.fixture(scope="module")
def repeated_header(spark, tmp_path_factory):
    """A second header line in the middle of a file is a data row (and the file goes slow)."""
    work = tmp_path_factory.mktemp("repeated_header")
    f = SalesFile(b"\n", clean_rows(seed=41, prefix="H"))
    f.add_clean(20)
    f.add_bad(HEADER.encode())
    f.add_clean(20)
    sales = f.write(work / "sales.csv")
    m = run_in_process(
        spark, sales, write_customers(work / "customers.ndjson"), work / "out", "rh", KIB
    )
    return {"m": m, "file": f, "out": work / "out"}


def test_a_repeated_header_line_is_a_quarantined_data_row(repeated_header):
    m, f = repeated_header["m"], repeated_header["file"]
    assert_reconciled(m)
    assert m["rows_read"]["sales"] == len(f.rows) + 1
    assert m["rows_quarantined"] == {"invalid_type": 1}  # quantity "quantity"
    assert m["rows_written"]["enriched"] == len(f.rows) == 40
    (q,) = quarantine(repeated_header["out"], "rh")
    assert q["raw_record"] == HEADER and q["record_id"] == "transaction_id"


def test_read_plan_sends_a_file_with_a_repeated_header_to_multiline(repeated_header):
    _tasks, parallel, multiline = read_plan(repeated_header["m"])
    assert (parallel, multiline) == ([], ["sales.csv"])


# --- 4. 10,000 dirty rows from the project's generators, in a folder of two files -------------------

GENERATED_ROWS = 10_000  # about 600 KB: two files of two 256 KiB splits each
REASONS_GENERATED = (
    "missing_field",
    "invalid_date",
    "non_positive_quantity",
    "amount_mismatch",
    "conflicting_duplicate",
)


@pytest.fixture(scope="module")
def generated(spark, tmp_path_factory):
    """The generators' CLIs (their ``main``, in this process) write the input, cut in two
    files of one folder (between rows 4,999 and 5,000: a generated duplicate copies the
    row before it, at an even position, so no pair is cut); the job reads it with
    generated code, as it runs an input past ``SMALL_INPUT_BYTES`` (the threshold is
    lowered here: the size itself is not what is tested). The small inputs of every
    other run here and of tests/test_glue_etl_e2e.py are interpreted."""
    import generate_customer_data
    import generate_sample_data

    work = tmp_path_factory.mktemp("generated")
    sales, customers = work / "generated.csv", work / "customers.ndjson"
    assert generate_sample_data.main(
        ["--rows", str(GENERATED_ROWS), "--customers", "500", "--seed", "7",
         "--dirty-rate", "0.01", "--no-progress", "--output", str(sales)]
    ) == 0  # fmt: skip
    assert generate_customer_data.main(
        ["--customers", "450", "--seed", "7", "--output", str(customers)]
    ) == 0  # fmt: skip
    known = {json.loads(line)["customer_id"] for line in customers.read_text().splitlines()}
    header, *body = sales.read_bytes().splitlines(keepends=True)
    folder = work / "sales"
    folder.mkdir()
    half = GENERATED_ROWS // 2
    (folder / "part-1.csv").write_bytes(header + b"".join(body[:half]))
    (folder / "part-2.csv").write_bytes(header + b"".join(body[half:]))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(session, "SMALL_INPUT_BYTES", 0)
        m = run_in_process(spark, folder, customers, work / "out", "gen", 256 * KIB)
    return {"m": m, "expected": expected_from_raw(sales, known), "rows": len(body)}


def test_generated_rows_match_pandas(generated):
    m, expected = generated["m"], generated["expected"]
    assert_reconciled(m)
    assert m["rows_read"]["sales"] == generated["rows"] == GENERATED_ROWS  # headers skipped
    assert m["rows_quarantined_by_source"]["sales"] == {
        r: expected[r] for r in REASONS_GENERATED if expected[r]
    }
    assert all(expected[r] > 0 for r in REASONS_GENERATED)
    assert m["duplicates_dropped_by_source"]["sales"] == expected["duplicates_dropped"] > 0
    assert m["rows_superseded"]["sales"] == 0  # no id in both files
    assert m["rows_written"]["enriched"] == expected["enriched"]
    assert m["unknown_customers"] == expected["unknown_customers"] > 0


def test_read_plan_reads_the_generated_files_in_parallel(generated):
    tasks, parallel, multiline = read_plan(generated["m"])
    assert parallel == ["part-1.csv", "part-2.csv"]
    assert multiline == []
    assert tasks > 2
    # Past the size the job interprets (lowered for this run): it compiles.
    assert generated["m"]["read_plan"]["evaluation"] == "generated code"


# --- counting as the rows stream by (observed metrics) and by a scan per file ----------------


def observed(files: list[str], headers: int, odd: int, valid: int, **reasons: int) -> dict:
    """The metrics ``_line_metrics`` observes, written by hand (file i has name hash i)."""
    counts = {r: reasons.get(r, 0) for r in contracts.SALES_REASONS}
    return {
        "valid": valid,
        **counts,
        "_records": valid + sum(counts.values()),
        "_headers": headers,
        "_odd_quotes": odd,
        "_header_files": json.dumps(
            [{"_file_hash": i, "_source_file": f} for i, f in enumerate(files)]
        ),
    }


def test_observed_counts_give_every_file_one_header_and_the_records_by_outcome():
    seen, outcomes, names = sales_pass._lines_by_observation(
        observed(["file:/a.csv", "file:/b.csv"], 2, 0, 7, invalid_type=2, future_date=1), 2
    )
    assert names == {0: "file:/a.csv", 1: "file:/b.csv"}
    assert seen == {
        "file:/a.csv": {"headers": 1, "odd_quotes": 0},
        "file:/b.csv": {"headers": 1, "odd_quotes": 0},
    }
    assert {reason: n for _, reason, n in outcomes if n} == {
        None: 7,
        "invalid_type": 2,
        "future_date": 1,
    }
    assert {f for f, _, _ in outcomes} == {None}


@pytest.mark.parametrize(
    "metrics",
    [
        observed(["a", "b"], 2, 1, 7),  # a quoted line break somewhere
        observed(["a", "b"], 3, 0, 7),  # a data line equal to a header
        observed(["a"], 2, 0, 7),  # one file with two header lines, one with none
        {**observed(["a", "b"], 2, 0, 7), "_records": 8},  # an outcome not counted
        {  # two file names with one hash
            **observed(["a", "b"], 2, 0, 7),
            "_header_files": json.dumps(
                [{"_file_hash": 5, "_source_file": "a"}, {"_file_hash": 5, "_source_file": "b"}]
            ),
        },
        {},  # nothing observed
    ],
    ids=[
        "odd_quotes",
        "extra_header",
        "headers_in_one_file",
        "records_unaccounted",
        "hash_collision",
        "none",
    ],
)
def test_observed_counts_are_not_enough_when_a_file_may_need_the_multiline_reader(metrics):
    assert sales_pass._lines_by_observation(metrics, 2) is None


def test_the_scan_per_file_names_files_by_their_header_rows_and_refuses_a_hash_collision(spark):
    """Persisted rows keep the file name on rejected rows (header lines included) only."""
    schema = (
        "_file_hash long, reason string, _header boolean, _odd_quotes boolean, _source_file string"
    )
    rows = [
        (1, "invalid_type", True, False, "file:/a.csv"),  # a's header line
        (1, None, False, False, None),
        (1, None, False, True, None),
        (2, "invalid_type", True, False, "file:/b.csv"),
        (2, "invalid_date", False, False, "file:/b.csv"),
        (2, None, False, False, None),
    ]
    seen, outcomes, names = sales_pass._lines_by_file(spark.createDataFrame(rows, schema))
    assert names == {1: "file:/a.csv", 2: "file:/b.csv"}
    assert seen == {
        "file:/a.csv": {"headers": 1, "odd_quotes": 1},
        "file:/b.csv": {"headers": 1, "odd_quotes": 0},
    }
    assert sorted(outcomes, key=str) == sorted(
        [
            ("file:/a.csv", "invalid_type", 0),
            ("file:/a.csv", None, 2),
            ("file:/b.csv", "invalid_type", 0),
            ("file:/b.csv", "invalid_date", 1),
            ("file:/b.csv", None, 1),
        ],
        key=str,
    )
    clash = [*rows, (2, "invalid_type", True, False, "file:/c.csv")]
    with pytest.raises(contracts.JobFailedError, match="same 64-bit name hash"):
        sales_pass._lines_by_file(spark.createDataFrame(clash, schema))


def test_a_file_with_no_repeated_id_is_counted_from_the_observed_metrics(
    spark, tmp_path, monkeypatch
):
    """No transaction id repeats, so the action's result is empty: the metrics must
    survive that (adaptive execution's rule for empty relations drops the plan that
    holds them; the job runs that action without adaptive execution)."""
    f = SalesFile(b"\n", clean_rows(seed=61, prefix="O"))
    f.add_clean(500)
    f.add_bad(b"OQ1,2025-04-22,C0005,Lamp,0,45.25,South,0.00")
    sales = f.write(tmp_path / "sales.csv")

    def no_scan(rows):
        raise AssertionError("counted by a scan of the persisted rows")

    monkeypatch.setattr(sales_pass, "_lines_by_file", no_scan)
    args = arguments.JobArgs(
        sales_path=str(sales),
        customers_path=str(write_customers(tmp_path / "customers.ndjson")),
        output_path=str(tmp_path / "out"),
    )
    read = sales_pass.read_and_check_sales(spark, inputs.plan_inputs(args, None), date(2026, 1, 1))
    try:
        assert read.repeated_count == 0
        assert read.outcomes == {None: 500, "non_positive_quantity": 1}
        assert [os.path.basename(p) for p in read.parallel_files] == ["sales.csv"]
        assert read.multiline_files == []
    finally:
        for df in read.persisted:
            df.unpersist()


PLAIN_ROWS = 400  # per file: two 16 KiB splits each


@pytest.fixture(scope="module")
def plain_folder(spark, tmp_path_factory):
    """Three files read line by line (LF; BOM + CRLF; LF), counted twice: from the metrics
    observed while the rows were persisted, and (``_ran_once`` false, as after a stage
    was run again) by a scan per file. One rejected row in each of the first two files and
    an exact copy of a.csv's row in c.csv."""
    work = tmp_path_factory.mktemp("plain_folder")
    folder = work / "sales"
    folder.mkdir()
    a = SalesFile(b"\n", clean_rows(seed=51, prefix="A"))
    b = SalesFile(b"\r\n", clean_rows(seed=52, prefix="B"), bom=True)
    c = SalesFile(b"\n", clean_rows(seed=53, prefix="C"))
    for f in (a, b, c):
        f.add_clean(PLAIN_ROWS)
    a.add_bad(b"AQ1,2025-04-22,C0005,Lamp,0,45.25,South,0.00")
    b.add_bad(b"BQ1,2025-04-22,C0005,Lamp,1,45.25,South,99.00")
    c.add(a.rows[10])
    for name, f in (("a.csv", a), ("b.csv", b), ("c.csv", c)):
        f.write(folder / name)
    customers = write_customers(work / "customers.ndjson")
    runs = {"observed": run_in_process(spark, folder, customers, work / "out1", "p1", SPLIT_3)}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sales_pass, "ran_once", lambda spark, group: False)
        runs["scanned"] = run_in_process(spark, folder, customers, work / "out2", "p2", SPLIT_3)
    return runs


@pytest.mark.parametrize("how", ["observed", "scanned"])
def test_plain_folder_counts_and_read_plan(plain_folder, how):
    m = plain_folder[how]
    assert_reconciled(m)
    assert m["rows_read"]["sales"] == 3 * PLAIN_ROWS + 3
    assert m["rows_quarantined_by_source"]["sales"] == {
        "non_positive_quantity": 1,
        "amount_mismatch": 1,
    }
    assert m["duplicates_dropped"] == 1
    assert m["rows_written"]["enriched"] == 3 * PLAIN_ROWS
    tasks, parallel, multiline = read_plan(m)
    assert (parallel, multiline) == (["a.csv", "b.csv", "c.csv"], [])
    assert tasks >= 3


# --- 5. leftovers of a crashed run ----------------------------------------------------------------

# What a run killed before its commit leaves: its staged output (real Parquet, rows that
# no commit published), under _state/staging/<run_id>/.
KILLED_RUN = "killed"
NOT_LEFTOVERS = (  # outside _state/staging/<run>/: not the job's to remove
    "enriched/year=2024/month=1/.spark-staging-nested/x",
    "quarantine/.spark-staging-q/x",
    ".spark-staging-root/x",
    "enriched/_archive/x",
)


def snapshot(out: Path) -> dict:
    def table(name: str) -> list[tuple]:
        return duckdb.sql(
            f"select * from read_parquet('{out}/{name}/year=*/month=*/*.parquet', "
            "hive_partitioning = true) order by all"
        ).fetchall()

    return {
        "enriched": table("enriched"),
        "summary": table("sales_summary"),
        "folders": sorted(
            str(p.relative_to(out))
            for p in out.glob("*/year=*/month=*")
            if any(p.glob("*.parquet"))
        ),
        "quarantine": sorted(str(p.relative_to(out)) for p in out.glob("quarantine/**/*.parquet")),
        "manifest": (out / "_state" / "manifest.json").read_text(),
    }


def published_files(out: Path) -> list[str]:
    """The Parquet files a reader of the lake sees (not _state/)."""
    return sorted(
        str(p.relative_to(out))
        for p in out.rglob("*.parquet")
        if p.relative_to(out).parts[0] != "_state"
    )


@pytest.fixture(scope="module")
def crashed(spark, tmp_path_factory):
    work = tmp_path_factory.mktemp("crashed")
    f = SalesFile(b"\n", clean_rows(seed=51, prefix="R"))
    f.add_clean(300)
    sales = f.write(work / "sales.csv")
    customers = write_customers(work / "customers.ndjson")
    out = work / "out"
    first = run_in_process(spark, sales, customers, out, "first")
    before, published_before = snapshot(out), published_files(out)
    staged = out / "_state" / "staging" / KILLED_RUN
    shutil.copytree(out / "enriched", staged / "enriched")
    shutil.copytree(out / "sales_summary", staged / "summary")
    shutil.copytree(out / "enriched", staged / "rewrite")
    staged_files = sorted(str(p.relative_to(staged)) for p in staged.rglob("*.parquet"))
    for rel in NOT_LEFTOVERS:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(b"left by a killed run")
    second = run_in_process(spark, sales, customers, out, "second")
    return {
        "first": first,
        "second": second,
        "before": before,
        "after": snapshot(out),
        "out": out,
        "staged_files": staged_files,
        "published_before": published_before,
    }


def test_rerun_after_a_crash_gives_the_first_runs_output(crashed):
    """The same input again: nothing new to read, and the killed run's rows stay unseen."""
    second = crashed["second"]
    assert second["status"] == "succeeded" and second["mode"] == "no_new_input"
    assert second["rows_read"] == {"sales": 0, "customers": 0}
    assert second["rows_written"] == {"enriched": 0, "sales_summary": 0}
    assert crashed["after"] == crashed["before"]
    assert len(crashed["after"]["enriched"]) == crashed["first"]["rows_written"]["enriched"] == 300


def test_rerun_removes_the_staged_output_of_a_killed_run(crashed):
    out = crashed["out"]
    assert len(crashed["staged_files"]) > 3  # real Parquet files were left
    assert not (out / "_state" / "staging" / KILLED_RUN).exists()
    assert [p for p in (out / "_state").rglob("*") if "staging" in p.parts and p.is_file()] == []
    # Nothing of it reached a table: the same Parquet files as before it, no row twice.
    assert published_files(out) == crashed["published_before"]
    assert crashed["after"]["enriched"] == crashed["before"]["enriched"]


def test_rerun_keeps_everything_else(crashed):
    out = crashed["out"]
    assert [rel for rel in NOT_LEFTOVERS if not (out / rel).is_file()] == []
    assert (out / "quarantine").is_dir() and (out / "_runs" / "first.json").is_file()
