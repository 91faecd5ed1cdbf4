#!/usr/bin/env python
"""Benchmark the ETL job (glue_etl_job.py) against two references, on the same inputs.

    python benchmarks/bench_etl.py                  # 1M and 10M rows, clean and 1% dirty,
                                                    # one file and a folder of 8, 3 engines
    python benchmarks/bench_etl.py --sizes 1000000 --variants clean --layouts file
    python benchmarks/bench_etl.py --engines job duckdb --repeat 3 --out /tmp/bench.md

Engines, each run in its own child process, one after the other; with ``--repeat N`` the
runs go in N rounds of every engine once, so a drift in the machine's speed reaches every
engine alike:

- ``job``: ``python glue_etl_job.py --sales_path P --customers_path P --output_path OUT
  --run_id bench``; its metrics are read from OUT/_runs/bench.json.
- ``duckdb`` (benchmarks/duckdb_job.py): the same work in DuckDB, no quality rules.
  Typed CSV read with ``ignore_errors=true`` (rows with a value that does not cast are
  skipped), LEFT JOIN customers, year/month/day, enriched and summary tables written by
  ``COPY ... (FORMAT parquet, PARTITION_BY (year, month), COMPRESSION snappy)``.
- ``plain`` (benchmarks/plain_spark_job.py): the same work as plain PySpark, no quality
  rules: one CSV read with an explicit schema (header, no multiLine), broadcast LEFT
  JOIN, year/month/day, Snappy Parquet partitioned by year/month, on the job's own
  local SparkSession (``build_local_spark``).

Inputs are made by the project's generators (500 customers, seed 42, ``--dirty-rate
0.01`` for dirty) and cached in benchmarks/.cache/: ``sales_<rows>_dirty<rate>.csv``
and ``sales_<rows>_dirty<rate>_x8/``, the same rows in order split into 8 files that
each carry the header. Each run writes to a fresh temporary directory, deleted after.

Per run the table shows wall seconds, input rows per second, the peak memory of the
whole process tree (PSS, proportional set size, summed over the child and all its
descendants, such as the JVM pyspark starts; pages shared between processes count
once; read from Linux's ``/proc/<pid>/smaps_rollup``, sampled every 0.1 s for the first
10 s of a run and every second after, since reading a big JVM's memory map every 0.1 s
slowed a 53 s job run down by 5 s), enriched Parquet bytes over input CSV bytes, the
input read tasks (the job's ``read_plan.sales.tasks`` metric when it reports one, plain
Spark's CSV partitions, DuckDB's threads), the enriched rows written, and on the job's row its wall time over
each reference's on the same input. A failed child shows as ``FAILED (exit N)`` and its
stderr tail is printed; the bench goes on.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".cache"
CUSTOMERS = 500
SEED = 42
DIRTY_RATE = 0.01
PARTS = 8
# Memory samples: dense at the start (short runs, such as DuckDB's), sparse after.
SAMPLE_SECONDS = 0.1
SAMPLE_SECONDS_LATER = 1.0
DENSE_FOR_SECONDS = 10.0
RUN_ID = "bench"

VARIANTS = {"clean": 0.0, "dirty": DIRTY_RATE}
VARIANT_LABELS = {"clean": "clean", "dirty": f"{DIRTY_RATE:.0%} dirty"}
LAYOUT_LABELS = {"file": "1 file", "folder": f"folder of {PARTS}"}
ENGINE_LABELS = {"job": "job", "duckdb": "DuckDB", "plain": "plain Spark"}


# --- inputs ------------------------------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_quiet(args: list[str]) -> None:
    """Run a project CLI with this Python; stop the bench if it fails (no input, no bench)."""
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(args)}\n{done.stderr[-2000:]}")


def customers_file() -> Path:
    path = CACHE / f"customers_{CUSTOMERS}_seed{SEED}.ndjson"
    if not path.exists():
        tmp = path.with_name(path.name + ".tmp")
        run_quiet(
            [
                "generate_customer_data.py",
                "--customers",
                str(CUSTOMERS),
                "--seed",
                str(SEED),
                "--output",
                str(tmp),
            ]
        )
        tmp.replace(path)
    return path


def sales_file(rows: int, rate: float) -> Path:
    path = CACHE / f"sales_{rows}_dirty{rate:g}.csv"
    if not path.exists():  # the generator writes a .tmp file and renames it when done
        log(f"generating {path.relative_to(ROOT)}")
        args = [
            "generate_sample_data.py",
            "--rows",
            str(rows),
            "--customers",
            str(CUSTOMERS),
            "--seed",
            str(SEED),
            "--no-progress",
            "--output",
            str(path),
        ]
        if rate:
            args += ["--dirty-rate", str(rate)]
        run_quiet(args)
    return path


def split_csv(src: Path, dest: Path, parts: int) -> None:
    """Split ``src`` into ``parts`` files under ``dest``, rows in order, header in each.

    Streams the file twice (count, then copy); line-based, which is exact here because
    the generator never writes quoted fields.
    """
    with src.open("rb") as fh:
        header = fh.readline()
        lines = 0
        last = b"\n"
        for chunk in iter(lambda: fh.read(1 << 24), b""):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
        lines += last != b"\n"  # a last row without a line break
    per_part = max(1, math.ceil(lines / parts))
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with src.open("rb") as fh:
        fh.readline()
        for i in range(parts):
            with (tmp / f"part-{i:02d}.csv").open("wb") as out:
                out.write(header)
                for line in itertools.islice(fh, per_part):
                    out.write(line if line.endswith(b"\n") else line + b"\n")
    tmp.rename(dest)


def sales_folder(rows: int, rate: float) -> Path:
    path = CACHE / f"sales_{rows}_dirty{rate:g}_x{PARTS}"
    if not path.exists():  # split into a .tmp folder, renamed when complete
        source = sales_file(rows, rate)
        log(f"splitting {source.name} into {PARTS} files")
        split_csv(source, path, PARTS)
    return path


def input_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.glob("*.csv"))
    return path.stat().st_size


# --- measuring a child -------------------------------------------------------------------


@dataclass
class ChildRun:
    exit_code: int
    seconds: float
    peak_rss: int
    stdout: str
    stderr: str


def tree_rss(proc: psutil.Process, seen: dict[int, psutil.Process]) -> int:
    """Memory of ``proc`` and all its descendants right now; remembers every process seen.

    PSS (proportional set size), not RSS: a process the JVM spawns (Hadoop runs shell
    commands on local files) shares the JVM's pages for a moment, and summing RSS would
    count them twice. Falls back to RSS where PSS is not available.
    """
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            pss = _pss(p)
            total += pss if pss is not None else p.memory_info().rss
            seen.setdefault(p.pid, p)
        except psutil.Error:
            pass
    return total


def _pss(p: psutil.Process) -> int | None:
    """PSS in bytes from Linux's /proc/<pid>/smaps_rollup, which the kernel sums itself.

    psutil's ``memory_full_info`` parses the whole ``smaps`` (one entry per mapping, and a
    JVM has thousands): sampled every 0.1 s, that took enough CPU to slow the measured
    job down by about a tenth on 2 cores.
    """
    try:
        with open(f"/proc/{p.pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:
        if not psutil.pid_exists(p.pid):
            raise psutil.NoSuchProcess(p.pid) from None
    except (PermissionError, ProcessLookupError):
        pass
    try:
        return p.memory_full_info().pss  # other systems with PSS
    except (AttributeError, psutil.AccessDenied):
        return None


def run_child(cmd: list[str], cwd: Path) -> ChildRun:
    """Run ``cmd`` in ``cwd``; wall time, and peak tree memory (PSS) sampled as the module says."""
    out_path, err_path = cwd / "child.stdout", cwd / "child.stderr"
    seen: dict[int, psutil.Process] = {}
    peak = 0
    stop = threading.Event()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err)
        proc = psutil.Process(child.pid)

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, tree_rss(proc, seen))
                dense = time.perf_counter() - started < DENSE_FOR_SECONDS
                stop.wait(SAMPLE_SECONDS if dense else SAMPLE_SECONDS_LATER)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        exit_code = child.wait()
        seconds = time.perf_counter() - started
        stop.set()
        sampler.join()
    # A descendant that outlives the child (a JVM shutting down) would still use the
    # machine during the next run: wait for it, and say so if it will not go.
    leftovers = [p for pid, p in seen.items() if pid != child.pid and p.is_running()]
    _, alive = psutil.wait_procs(leftovers, timeout=60)
    for p in alive:
        log(f"warning: process {p.pid} outlived its parent {child.pid} by over 60 s")
    return ChildRun(
        exit_code=exit_code,
        seconds=seconds,
        peak_rss=peak,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
    )


def parquet_stats(root: Path) -> tuple[int, int]:
    """(rows, bytes) over the Parquet files under ``root`` (metadata only)."""
    rows = size = 0
    for f in root.rglob("*.parquet"):
        if f.name.startswith((".", "_")):
            continue
        rows += pq.ParquetFile(f).metadata.num_rows
        size += f.stat().st_size
    return rows, size


def last_json_line(text: str) -> dict[str, Any]:
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                return {}
    return {}


# --- one engine on one input -------------------------------------------------------------


@dataclass
class Result:
    rows_in: int
    csv_bytes: int
    engine: str
    seconds: list[float] = field(default_factory=list)
    peak_rss: int = 0
    failed: int | None = None  # exit code of the first failed repeat
    parquet_bytes: int | None = None
    rows_out: int | None = None
    job_rows_written: int | None = None  # the job's own metric, for the job
    tasks: str = "?"

    @property
    def wall(self) -> float | None:
        return (
            None if self.failed is not None or not self.seconds else statistics.median(self.seconds)
        )


def engine_command(engine: str, sales: Path, customers: Path, out: Path) -> list[str]:
    if engine == "job":
        return [
            sys.executable,
            str(ROOT / "glue_etl_job.py"),
            "--sales_path",
            str(sales),
            "--customers_path",
            str(customers),
            "--output_path",
            str(out),
            "--run_id",
            RUN_ID,
        ]
    script = {"duckdb": "duckdb_job.py", "plain": "plain_spark_job.py"}[engine]
    return [sys.executable, str(ROOT / "benchmarks" / script), str(sales), str(customers), str(out)]


def tasks_of(engine: str, out: Path, stdout: str) -> tuple[str, int | None]:
    """(read tasks as shown in the table, the job's rows_written.enriched metric)."""
    if engine == "job":
        try:
            metrics = json.loads((out / "_runs" / f"{RUN_ID}.json").read_text())
        except (OSError, json.JSONDecodeError):
            return "?", None
        written = (metrics.get("rows_written") or {}).get("enriched")
        plan = metrics.get("read_plan")
        sales = plan.get("sales") if isinstance(plan, dict) else None
        tasks = sales.get("tasks", "?") if isinstance(sales, dict) else "?"
        return str(tasks), written
    reported = last_json_line(stdout)
    if engine == "plain":
        return str(reported.get("read_partitions", "?")), None
    threads = reported.get("threads")
    return (f"- ({threads} threads)" if threads else "-"), None


def run_once(result: Result, sales: Path, customers: Path) -> None:
    """One run of ``result.engine``; its figures are added to ``result``."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"bench_etl_{result.engine}_"))
    out = run_dir / "out"
    try:
        child = run_child(engine_command(result.engine, sales, customers, out), run_dir)
        result.peak_rss = max(result.peak_rss, child.peak_rss)
        if child.exit_code != 0:
            result.failed = child.exit_code
            tail = "\n".join(child.stderr.rstrip().splitlines()[-25:])
            log(f"  {result.engine} FAILED (exit {child.exit_code}); stderr tail:\n{tail}")
            return
        result.seconds.append(child.seconds)
        result.rows_out, result.parquet_bytes = parquet_stats(out / "enriched")
        result.tasks, result.job_rows_written = tasks_of(result.engine, out, child.stdout)
        log(
            f"  {ENGINE_LABELS[result.engine]}: {child.seconds:.1f} s, "
            f"peak {child.peak_rss / 2**20:,.0f} MiB, {result.rows_out:,} rows out"
        )
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


# --- the table ---------------------------------------------------------------------------


def size_label(rows: int) -> str:
    for unit, div in (("M", 1_000_000), ("K", 1_000)):
        if rows >= div and rows % div == 0:
            return f"{rows // div}{unit}"
    return f"{rows:,}"


def ratio(job: Result | None, ref: Result | None) -> str:
    if job is None or ref is None or job.wall is None or ref.wall is None:
        return "-"
    # Two decimals: the targets (1.5x, 1.3x) sit between what one decimal can show.
    return f"{job.wall / ref.wall:.2f}x"


HEADER = (
    "rows",
    "input",
    "layout",
    "engine",
    "wall s",
    "rows/s",
    "peak MiB (tree)",
    "Parquet/CSV",
    "read tasks",
    "rows out",
    "job ÷ DuckDB",
    "job ÷ plain Spark",
)


def table_row(key: tuple[int, str, str], result: Result, group: dict[str, Result]) -> list[str]:
    rows, variant, layout = key
    cells = [size_label(rows), VARIANT_LABELS[variant], LAYOUT_LABELS[layout]]
    cells.append(ENGINE_LABELS[result.engine])
    peak = f"{result.peak_rss / 2**20:,.0f}"
    if result.wall is None:
        cells += [f"FAILED (exit {result.failed})", "-", peak, "-", "-", "-"]
    else:
        cells += [
            f"{result.wall:.1f}",
            f"{rows / result.wall:,.0f}",
            peak,
            f"{result.parquet_bytes / result.csv_bytes:.3f}",
            result.tasks,
            f"{result.rows_out:,}",
        ]
    if result.engine == "job":
        cells += [ratio(result, group.get("duckdb")), ratio(result, group.get("plain"))]
    else:
        cells += ["", ""]
    return cells


def markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def row_count_notes(key: tuple[int, str, str], group: dict[str, Result]) -> list[str]:
    """Compare enriched row counts: the job's rows_written.enriched and the references'."""
    rows, variant, layout = key
    counts: dict[str, int] = {}
    job = group.get("job")
    if job is not None and job.wall is not None and job.job_rows_written is not None:
        counts["job"] = job.job_rows_written
    for engine in ("duckdb", "plain"):
        ref = group.get(engine)
        if ref is not None and ref.wall is not None and ref.rows_out is not None:
            counts[engine] = ref.rows_out
    if len(set(counts.values())) <= 1:
        return []
    where = f"{size_label(rows)} {VARIANT_LABELS[variant]}, {LAYOUT_LABELS[layout]}"
    listed = ", ".join(f"{ENGINE_LABELS[e]} {n:,}" for e, n in counts.items())
    if variant == "clean":
        return [f"WARNING ({where}): enriched row counts differ: {listed}"]
    return [
        f"note ({where}): enriched rows {listed}. Expected on dirty input: the job "
        "quarantines and deduplicates, DuckDB skips rows with a value that does not cast "
        "(ignore_errors), plain Spark keeps them with nulls."
    ]


def versions() -> str:
    import duckdb
    import pyspark

    mem = psutil.virtual_memory().total / 2**30
    return (
        f"machine: {os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()}; "
        f"Python {platform.python_version()}, PySpark {pyspark.__version__}, "
        f"DuckDB {duckdb.__version__}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[1_000_000, 10_000_000],
        help="sales rows per input (default: 1000000 10000000)",
    )
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument(
        "--layouts", nargs="+", choices=list(LAYOUT_LABELS), default=list(LAYOUT_LABELS)
    )
    parser.add_argument(
        "--engines", nargs="+", choices=list(ENGINE_LABELS), default=["job", "plain", "duckdb"]
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per engine and input; the table shows the median wall time and the "
        "highest peak memory (default %(default)s)",
    )
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    CACHE.mkdir(parents=True, exist_ok=True)
    customers = customers_file()
    cases = list(itertools.product(args.sizes, args.variants, args.layouts))
    # All inputs first, so generating them never overlaps a measured run.
    inputs = {}
    for rows, variant, layout in cases:
        rate = VARIANTS[variant]
        path = sales_file(rows, rate) if layout == "file" else sales_folder(rows, rate)
        inputs[rows, variant, layout] = path

    table: list[list[str]] = []
    notes: list[str] = []
    total = len(cases) * args.repeat
    done = 0
    for key in cases:
        sales = inputs[key]
        rows, variant, layout = key
        group = {
            engine: Result(rows_in=rows, csv_bytes=input_bytes(sales), engine=engine)
            for engine in args.engines
        }
        # Round by round, every engine once per round: the machine's speed drifts over
        # minutes (a VM's neighbours), and drift then reaches every engine alike instead
        # of skewing the ratios.
        for round_ in range(1, args.repeat + 1):
            done += 1
            log(
                f"[{done}/{total}] {size_label(rows)} {VARIANT_LABELS[variant]}, "
                f"{LAYOUT_LABELS[layout]}: round {round_} of {args.repeat}"
            )
            for result in group.values():
                if result.failed is None:
                    run_once(result, sales, customers)
        table += [table_row(key, group[engine], group) for engine in args.engines]
        notes += row_count_notes(key, group)

    text = "\n".join(
        [
            versions(),
            "",
            markdown(table),
            "",
            "rows/s: input rows over wall seconds. peak MiB: PSS summed over the process tree "
            f"(sampled every {SAMPLE_SECONDS} s for {DENSE_FOR_SECONDS:.0f} s, "
            f"then every {SAMPLE_SECONDS_LATER:.0f} s). Parquet/CSV: enriched Parquet bytes over "
            "input CSV bytes. job ÷ X: the job's wall time over X's on the same input."
            + (f" Median of {args.repeat} runs." if args.repeat > 1 else ""),
            *notes,
        ]
    )
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
