#!/usr/bin/env python
"""Benchmark the job's daily loads: one run per day's new file, then a full rebuild.

    python benchmarks/bench_incremental.py                  # 20 days of 500,000 rows
    python benchmarks/bench_incremental.py --days 3 --rows-per-day 20000 --keep
    python benchmarks/bench_incremental.py --out /tmp/incremental.md

Inputs, made once by the project's generators and cached in
benchmarks/.cache/incremental_<days>x<rows>_seed<seed>/:

- ``sales_<date>.csv``, one file per day, day k dated 2025-09-21 + (k - 1) days, so 20
  days run from September into October. Day k's file is ``generate_sample_data.py
  --rows <rows-per-day> --days 3 --start-date <date - 2 days> --seed <seed*1000+k>
  --customers 500``: its sales are dated on its own day and the two before (late
  arrivals), so each day's run appends to at most two months. The generator numbers
  transaction ids from 1 in every file; they are made unique across days by putting the
  file's date after ``TXN`` (``TXN20250921`` + the generator's digits).
- On the correction days (``--correction-days``, default 5 10 15; never day 1 nor the
  last day, whose run the bars compare with the second day's) the day's file ends with
  3 exact copies of rows of the file 3 days earlier (the job drops them as duplicates)
  and 3 corrections: another 3 rows of that file with the same transaction id and date
  but quantity + 1 and ``total_amount = quantity x unit_price``, so the row rules accept
  them. A correction replaces the row it corrects, which forces the month holding that
  row to be rewritten; the months the corrections touch are kept in ``manifest.json``
  and are the months a day's run is expected to rewrite (no other day should rewrite
  any month).
- ``customers.ndjson``: ``generate_customer_data.py --customers 500 --seed 42``.

Runs, each ``python glue_etl_job.py --sales_path <work>/raw/sales --customers_path
<work>/raw/customers --output_path <work>/processed --run_id day<k>`` in a child
process from the repository root, one after the other, in a fresh temporary work
folder (deleted at the end unless ``--keep``):

1. the customers file is copied to raw/customers/ before day 1;
2. for each day k, day k's file is copied into raw/sales/ (written under another name
   and renamed in, with a fresh modification time as an upload gets; the times are set
   to strictly increasing values, an hour ago + k seconds, so the files' order is
   deterministic), then the job runs; its metrics are read from
   processed/_runs/day<k>.json;
3. after the last day, a full rebuild over all the files: the same command with
   ``--full_rebuild true --run_id full --output_path <work>/processed_full``.

Per run the table shows what the job read (files, raw sales bytes and the new file's
bytes beside them, rows), wrote (enriched rows, months appended, months rewritten),
read back from the lake, and its wall seconds (the child process, JVM start included).
A metric the job does not report shows as n/a. The verdict below the table checks the
issue's bars: the last day's wall time within 1.5x the second day's and at most 1/4 of
the full rebuild's; raw bytes read equal to the new file's on every day; months
rewritten only on the correction days, exactly the corrected rows' months. Then DuckDB
compares the day-by-day lake with the full rebuild's: the enriched and sales_summary
tables as multisets of rows (``EXCEPT ALL`` both ways, columns by name).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".cache"
CUSTOMERS = 500
CUSTOMER_SEED = 42
FIRST_DAY = dt.date(2025, 9, 21)
WINDOW_DAYS = 3  # a day's file holds sales of its own date and the two days before
CORRECTION_DAYS = (5, 10, 15)
CORRECTION_LAG = 3  # a correction day copies and corrects rows of the file this many days earlier
COPIES = 3
CORRECTIONS = 3
SALES_HEADER = b"transaction_id,date,customer_id,product,quantity,unit_price,region,total_amount\n"
TABLES = ("enriched", "sales_summary")
NA = "n/a"
# The bars.
BAR_LAST_OVER_SECOND = 1.5
BAR_LAST_OVER_FULL = 0.25


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_quiet(args: list[str]) -> None:
    """Run a project CLI with this Python; stop the bench if it fails (no input, no bench)."""
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(args)}\n{done.stderr[-2000:]}")


# --- inputs ------------------------------------------------------------------------------


def day_date(day: int) -> dt.date:
    return FIRST_DAY + dt.timedelta(days=day - 1)


def day_file_name(day: int) -> str:
    return f"sales_{day_date(day).isoformat()}.csv"


def month_of(date_text: str) -> str:
    d = dt.date.fromisoformat(date_text)
    return f"year={d.year}/month={d.month}"


def cents_text(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def generate_day(day: int, rows: int, seed: int, dest: Path) -> None:
    """Day ``day``'s file: the generator's rows with ids made unique across days."""
    raw = dest.with_name(dest.name + ".gen")
    run_quiet(
        [
            "generate_sample_data.py",
            "--rows",
            str(rows),
            "--days",
            str(WINDOW_DAYS),
            "--start-date",
            (day_date(day) - dt.timedelta(days=WINDOW_DAYS - 1)).isoformat(),
            "--seed",
            str(seed * 1000 + day),
            "--customers",
            str(CUSTOMERS),
            "--no-progress",
            "--output",
            str(raw),
        ]
    )
    stamp = b"TXN" + day_date(day).strftime("%Y%m%d").encode()
    with raw.open("rb") as src, dest.open("wb") as out:
        header = src.readline()
        if header != SALES_HEADER:
            raise SystemExit(f"unexpected header from the generator: {header!r}")
        out.write(header)
        for line in src:
            if not line.startswith(b"TXN"):
                raise SystemExit(f"unexpected transaction id in {raw}: {line[:40]!r}")
            out.write(stamp + line[3:])
    raw.unlink()


def data_lines(path: Path, limit: int) -> list[bytes]:
    """The first ``limit`` data lines of ``path`` (the generator's rows, before any extra)."""
    with path.open("rb") as fh:
        fh.readline()
        return [line for _, line in zip(range(limit), fh, strict=False)]


def corrected(line: bytes) -> bytes:
    """The same transaction (id, date, ...) with quantity + 1 and a matching total."""
    fields = line.rstrip(b"\r\n").decode().split(",")
    quantity = int(fields[4]) + 1
    unit_cents = int(Decimal(fields[5]) * 100)
    fields[4] = str(quantity)
    fields[7] = cents_text(quantity * unit_cents)
    return (",".join(fields) + "\n").encode()


def add_extras(day: int, rows: int, seed: int, folder: Path) -> dict[str, Any]:
    """Append exact copies and corrections of an earlier day's rows to day ``day``'s file."""
    source_day = max(1, day - CORRECTION_LAG)
    rng = random.Random(seed * 1000 + day)
    lines = data_lines(folder / day_file_name(source_day), rows)
    picked = rng.sample(range(len(lines)), min(len(lines), COPIES + CORRECTIONS))
    copies = [lines[i] for i in picked[:COPIES]]
    fixes = [corrected(lines[i]) for i in picked[COPIES:]]
    with (folder / day_file_name(day)).open("ab") as out:
        out.writelines(copies + fixes)

    def ids_and_dates(batch: list[bytes]) -> list[list[str]]:
        return [line.decode().split(",")[:2] for line in batch]

    corrected_rows = ids_and_dates(fixes)
    return {
        "source_day": source_day,
        "exact_copies": ids_and_dates(copies),
        "corrections": corrected_rows,
        "months_to_rewrite": sorted({month_of(d) for _, d in corrected_rows}),
    }


def correction_days(wanted: list[int], days: int) -> list[int]:
    # Not day 1 (nothing earlier to correct) nor the last day (the bars compare it with
    # the second day, and a correction forces a rewrite).
    return sorted({d for d in wanted if 1 < d < days})


def inputs_folder(days: int, rows: int, seed: int, corrections_on: list[int]) -> Path:
    """The cached inputs; made in a .tmp folder and renamed when complete."""
    name = f"incremental_{days}x{rows}_seed{seed}"
    if corrections_on != correction_days(list(CORRECTION_DAYS), days):
        name += "_corr" + "-".join(map(str, corrections_on)) if corrections_on else "_nocorr"
    path = CACHE / name
    if (path / "manifest.json").exists():
        return path
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    log(f"generating {days} daily files of {rows:,} rows in {path.relative_to(ROOT)}")
    run_quiet(
        [
            "generate_customer_data.py",
            "--customers",
            str(CUSTOMERS),
            "--seed",
            str(CUSTOMER_SEED),
            "--output",
            str(tmp / "customers.ndjson"),
        ]
    )
    extras: dict[str, Any] = {}
    for day in range(1, days + 1):
        generate_day(day, rows, seed, tmp / day_file_name(day))
        if day in corrections_on:
            extras[str(day)] = add_extras(day, rows, seed, tmp)
    manifest = {
        "days": days,
        "rows_per_day": rows,
        "seed": seed,
        "files": [day_file_name(d) for d in range(1, days + 1)],
        "extras": extras,
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return path


# --- running the job ---------------------------------------------------------------------


@dataclass
class Run:
    label: str
    run_id: str
    new_bytes: int | None  # the new file's bytes (all files' for the full rebuild)
    seconds: float | None = None
    exit_code: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    expected_rewrites: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def get(self, *keys: str) -> Any:
        """The metric at ``keys``, or None when the job does not report it."""
        value: Any = self.metrics
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value


def upload(src: Path, folder: Path, mtime: float) -> None:
    """Copy ``src`` into ``folder`` as an upload would: whole, fresh, then its time set."""
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder.parent / f".{src.name}.partial"  # outside the folder the job lists
    shutil.copyfile(src, partial)
    os.utime(partial, (mtime, mtime))
    os.replace(partial, folder / src.name)


def job_command(work: Path, output: str, run_id: str, full: bool) -> list[str]:
    cmd = [
        sys.executable,
        str(ROOT / "glue_etl_job.py"),
        "--sales_path",
        str(work / "raw" / "sales"),
        "--customers_path",
        str(work / "raw" / "customers"),
        "--output_path",
        str(work / output),
        "--run_id",
        run_id,
    ]
    return cmd + ["--full_rebuild", "true"] if full else cmd


def run_job(run: Run, work: Path, output: str, full: bool = False) -> None:
    """Run the job once from the repository root; fill in ``run``'s time and metrics."""
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    cmd = job_command(work, output, run.run_id, full)
    with (
        (logs / f"{run.run_id}.stdout").open("wb") as out,
        (logs / f"{run.run_id}.stderr").open("wb") as err,
    ):
        started = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err)
        proc = psutil.Process(child.pid)
        seen: dict[int, psutil.Process] = {}
        # The child's end is seen within 50 ms (the wall time's resolution); its
        # descendants (the JVM), to wait for below, are listed every half second.
        for tick in itertools.count():
            if child.poll() is not None:
                break
            if tick % 10 == 0:
                try:
                    for p in proc.children(recursive=True):
                        seen.setdefault(p.pid, p)
                except psutil.Error:
                    pass
            time.sleep(0.05)
        run.seconds = time.perf_counter() - started
        run.exit_code = child.returncode
    # A JVM still shutting down would use the machine during the next run: wait for it.
    _, alive = psutil.wait_procs([p for p in seen.values() if p.is_running()], timeout=60)
    for p in alive:
        log(f"warning: process {p.pid} outlived its parent {child.pid} by over 60 s")
    if not run.ok:
        tail = (logs / f"{run.run_id}.stderr").read_text(errors="replace").rstrip().splitlines()
        log(f"  {run.label} FAILED (exit {run.exit_code}); stderr tail:\n" + "\n".join(tail[-25:]))
    try:
        run.metrics = json.loads((work / output / "_runs" / f"{run.run_id}.json").read_text())
    except (OSError, json.JSONDecodeError):
        run.metrics = {}


# --- the table ---------------------------------------------------------------------------


def number(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else NA


def months(value: Any) -> str:
    if not isinstance(value, list):
        return NA
    return ", ".join(m.replace("year=", "").replace("/month=", "-") for m in value) or "-"


def count_of(value: Any) -> str:
    return number(len(value)) if isinstance(value, list) else NA


HEADER = (
    "run",
    "mode",
    "files read",
    "files skipped",
    "raw bytes read",
    "new file's bytes",
    "rows read",
    "rows written",
    "months appended",
    "months rewritten",
    "bytes read back",
    "wall s",
)


def table_row(run: Run) -> list[str]:
    mode = run.get("mode")
    return [
        run.label,
        str(mode) if mode is not None else NA,
        count_of(run.get("inputs", "sales", "files")),
        number(run.get("inputs", "sales", "files_skipped")),
        number(run.get("bytes_read", "sales")),
        number(run.new_bytes),
        number(run.get("rows_read", "sales")),
        number(run.get("rows_written", "enriched")),
        months(run.get("lake", "months_appended")),
        months(run.get("lake", "months_rewritten")),
        number(run.get("lake", "bytes_read_back")),
        f"{run.seconds:.1f}"
        if run.ok and run.seconds is not None
        else f"FAILED (exit {run.exit_code})",
    ]


def markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def wall_ratio(a: Run | None, b: Run | None, bar: float, what: str) -> str:
    if a is None or b is None or not (a.ok and b.ok) or not a.seconds or not b.seconds:
        return f"- {what}: {NA}"
    r = a.seconds / b.seconds
    verdict = "PASS" if r <= bar else "FAIL"
    return f"- {what}: {a.seconds:.1f} / {b.seconds:.1f} s = {r:.2f} (bar <= {bar:g}): {verdict}"


def verdict(days: list[Run], full: Run | None) -> list[str]:
    second = days[1] if len(days) > 1 else None
    last = days[-1] if len(days) > 1 else None
    lines = [
        "Verdict:",
        wall_ratio(last, second, BAR_LAST_OVER_SECOND, "last day / second day wall"),
        wall_ratio(last, full, BAR_LAST_OVER_FULL, "last day / full rebuild wall"),
    ]
    # Raw bytes read equal to the new file's, every day.
    read = [(r, r.get("bytes_read", "sales")) for r in days]
    if any(not isinstance(b, int) for _, b in read):
        lines.append(f"- raw bytes read == new file's bytes on every day: {NA}")
    else:
        off = [r.label for r, b in read if b != r.new_bytes]
        answer = "yes" if not off else "no (" + ", ".join(off) + ")"
        lines.append(f"- raw bytes read == new file's bytes on every day: {answer}")
    # Months rewritten only where a correction forces it.
    rewrites = [(r, r.get("lake", "months_rewritten")) for r in days]
    if any(not isinstance(m, list) for _, m in rewrites):
        lines.append(f"- months rewritten only on the correction days: {NA}")
    else:
        wrong = [r.label for r, m in rewrites if sorted(m) != sorted(r.expected_rewrites)]
        answer = "yes" if not wrong else "no (" + ", ".join(wrong) + ")"
        lines.append(f"- months rewritten only on the correction days: {answer}")
    for r, m in rewrites:
        if r.expected_rewrites or m:
            lines.append(
                f"  - {r.label}: rewrote {months(m)}; "
                f"its corrections touch {months(r.expected_rewrites)}"
            )
    return lines


# --- the lake against the full rebuild ---------------------------------------------------


def compare_lakes(day_by_day: Path, full: Path) -> list[str]:
    """Each table of both lakes as multisets of rows: EXCEPT ALL both ways."""
    import duckdb

    lines = []
    equal = True
    con = duckdb.connect()
    for table in TABLES:
        a, b = day_by_day / table, full / table
        if not any(a.rglob("*.parquet")) or not any(b.rglob("*.parquet")):
            lines.append(
                f"- {table}: {NA} (no Parquet under {a if not any(a.rglob('*.parquet')) else b})"
            )
            equal = False
            continue

        def scan(folder: Path) -> str:
            glob = str(folder / "**" / "*.parquet").replace("'", "''")
            return f"read_parquet('{glob}', hive_partitioning = true, union_by_name = true)"

        cols_a = [r[0] for r in con.execute(f"describe select * from {scan(a)}").fetchall()]
        cols_b = [r[0] for r in con.execute(f"describe select * from {scan(b)}").fetchall()]
        if sorted(cols_a) != sorted(cols_b):
            lines.append(f"- {table}: columns differ: {sorted(cols_a)} vs {sorted(cols_b)}")
            equal = False
            continue
        cols = ", ".join(f'"{c}"' for c in sorted(cols_a))
        rows_a = con.execute(f"select count(*) from {scan(a)}").fetchone()[0]
        rows_b = con.execute(f"select count(*) from {scan(b)}").fetchone()[0]
        only_a = con.execute(
            f"select count(*) from (select {cols} from {scan(a)} except all select {cols} from {scan(b)})"
        ).fetchone()[0]
        only_b = con.execute(
            f"select count(*) from (select {cols} from {scan(b)} except all select {cols} from {scan(a)})"
        ).fetchone()[0]
        same = only_a == 0 and only_b == 0
        equal = equal and same
        lines.append(
            f"- {table}: {rows_a:,} rows day by day, {rows_b:,} in the full rebuild; "
            f"only day by day {only_a:,}, only in the full rebuild {only_b:,}"
        )
    con.close()
    return [f"lake equal to full rebuild: {'yes' if equal else 'no'}", *lines]


# --- main --------------------------------------------------------------------------------


def java_version() -> str:
    try:
        done = subprocess.run(
            ["java", "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "Java n/a"
    first = (done.stderr or done.stdout).strip().splitlines()
    return first[0].strip() if first else "Java n/a"


def machine() -> str:
    import duckdb
    import pyspark

    mem = psutil.virtual_memory().total / 2**30
    return (
        f"machine: {os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()}; "
        f"Python {platform.python_version()}, PySpark {pyspark.__version__}, "
        f"DuckDB {duckdb.__version__}; {java_version()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=20, help="daily files (default %(default)s)")
    parser.add_argument(
        "--rows-per-day", type=int, default=500_000, help="rows per file (default %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=42, help="seed of the sales files (default %(default)s)"
    )
    parser.add_argument(
        "--correction-days",
        type=int,
        nargs="*",
        default=list(CORRECTION_DAYS),
        help="days whose file ends with exact copies and corrections of earlier rows; "
        "day 1 and the last day are left out (default: 5 10 15)",
    )
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    if args.days < 1:
        parser.error("--days must be at least 1")
    if args.rows_per_day < COPIES + CORRECTIONS:
        parser.error(f"--rows-per-day must be at least {COPIES + CORRECTIONS}")
    dropped = sorted(
        set(args.correction_days) - set(correction_days(args.correction_days, args.days))
    )
    if dropped:
        log(f"note: no corrections on day(s) {dropped} (day 1, the last day, or past the last)")
    corrections_on = correction_days(args.correction_days, args.days)

    CACHE.mkdir(parents=True, exist_ok=True)
    inputs = inputs_folder(args.days, args.rows_per_day, args.seed, corrections_on)
    manifest = json.loads((inputs / "manifest.json").read_text())
    extras = manifest["extras"]

    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="bench_incremental_"))
    base = time.time() - 3600  # modification times: an hour ago + k seconds
    runs: list[Run] = []
    full: Run | None = None
    try:
        upload(inputs / "customers.ndjson", work / "raw" / "customers", base)
        for day in range(1, args.days + 1):
            src = inputs / day_file_name(day)
            upload(src, work / "raw" / "sales", base + day)
            run = Run(
                label=f"day {day} ({day_date(day).isoformat()})",
                run_id=f"day{day}",
                new_bytes=src.stat().st_size,
                expected_rewrites=extras.get(str(day), {}).get("months_to_rewrite", []),
            )
            log(f"[{day}/{args.days}] {src.name}")
            run_job(run, work, "processed")
            runs.append(run)
            log("  " + " | ".join(table_row(run)))
        log(f"full rebuild over {args.days} files")
        full = Run(
            label=f"full rebuild ({args.days} files)",
            run_id="full",
            new_bytes=sum(
                (inputs / day_file_name(d)).stat().st_size for d in range(1, args.days + 1)
            ),
        )
        run_job(full, work, "processed_full", full=True)
        log("  " + " | ".join(table_row(full)))
        log("comparing the day-by-day lake with the full rebuild's")
        try:
            equality = compare_lakes(work / "processed", work / "processed_full")
        except Exception as exc:  # duckdb.Error and the like: report it, keep the table
            equality = [f"lake equal to full rebuild: {NA} (DuckDB: {exc})"]
    finally:
        if args.keep:
            log(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    planted = [
        f"day {d}: {len(e['exact_copies'])} exact copies and {len(e['corrections'])} "
        f"corrections of day {e['source_day']}'s rows"
        for d, e in sorted(extras.items(), key=lambda kv: int(kv[0]))
    ]
    text = "\n".join(
        [
            machine(),
            # The bars compare wall times: say whether others used the machine meanwhile.
            f"load average (1 min): {load_before:.1f} before the runs, "
            f"{os.getloadavg()[0]:.1f} after",
            f"inputs: {args.days} daily files of {args.rows_per_day:,} rows "
            f"({day_date(1).isoformat()} to {day_date(args.days).isoformat()}, each with sales "
            f"of its date and the {WINDOW_DAYS - 1} days before), seed {args.seed}; "
            + ("; ".join(planted) if planted else "no corrections"),
            "",
            markdown([table_row(r) for r in [*runs, full]]),
            "",
            "raw bytes read: the job's bytes_read.sales; new file's bytes: the size of the "
            "day's file (the full rebuild's row: all files). months: year-month. bytes read "
            "back: lake bytes the run read. wall s: the child process, JVM start included. "
            f"{NA}: the job does not report it.",
            "",
            *verdict(runs, full),
            "",
            *equality,
        ]
    )
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
