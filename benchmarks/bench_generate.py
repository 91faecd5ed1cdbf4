#!/usr/bin/env python
"""Benchmark the sales generator: rows/s and peak memory at 1M and 10M rows.

    python benchmarks/bench_generate.py            # 1M and 10M
    python benchmarks/bench_generate.py --sizes 1000000

Each size runs generate_sample_data.py in a child process so its peak RSS is its own.
The reference, in the same run, writes the same 1M rows with a per-row Python
csv.writer loop (formatting only, no random draws): the approach the generator avoids.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_child(args: list[str]) -> tuple[float, int]:
    """Run a child Python process; return (wall seconds, peak RSS bytes)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"child failed: {' '.join(args)}")
    return seconds, usage.ru_maxrss * 1024  # ru_maxrss is KiB on Linux


REFERENCE = """
import csv, sys
import pyarrow.csv as pacsv
rows = pacsv.read_csv(sys.argv[1]).to_pylist()
with open(sys.argv[2], "w", newline="") as fh:
    writer = csv.writer(fh)
    writer.writerow(rows[0].keys())
    for row in rows:
        writer.writerow([row["transaction_id"], row["date"], row["customer_id"], row["product"],
                         row["quantity"], f"{row['unit_price']:.2f}", row["region"], f"{row['total_amount']:.2f}"])
"""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.sizes:
            out = Path(tmp) / f"sales_{rows}.csv"
            seconds, peak = run_child(
                [
                    "generate_sample_data.py",
                    "--rows",
                    str(rows),
                    "--customers",
                    "100000",
                    "--no-progress",
                    "--output",
                    str(out),
                ]
            )
            results.append((f"generate {rows:,} rows", rows, seconds, peak, out.stat().st_size))
        ref_rows = args.sizes[0]
        src = Path(tmp) / f"sales_{ref_rows}.csv"
        seconds, peak = run_child(["-c", REFERENCE, str(src), str(Path(tmp) / "reference.csv")])
        reference = (
            f"reference: per-row csv.writer, {ref_rows:,} rows",
            ref_rows,
            seconds,
            peak,
            0,
        )

    print(f"{'run':<44} {'seconds':>8} {'rows/s':>12} {'peak MiB':>9} {'CSV MiB':>8}")
    for name, rows, seconds, peak, size in [*results, reference]:
        print(
            f"{name:<44} {seconds:8.2f} {rows / seconds:12,.0f} {peak / 2**20:9.0f} {size / 2**20:8.0f}"
        )
    ref_rate = reference[1] / reference[2]
    for name, rows, seconds, _, _ in results:
        print(f"{name}: {rows / seconds / ref_rate:.1f}x the reference's rows/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
