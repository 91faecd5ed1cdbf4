"""run_pipeline.py on a user's own files: --sales-path / --customers-path, end to end.

The input is written here in the shape of real retail exports (product names with
commas, inch marks and trailing spaces; unit prices that are the line total divided by
the quantity, rounded to the cent), and the expected figures are computed here from
the rows themselves, with Python's decimal module.
"""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "own-data"
HEADER = [
    "transaction_id", "date", "customer_id", "product",
    "quantity", "unit_price", "region", "total_amount",
]  # fmt: skip
PRODUCTS = ["Bookcase, 3-shelf", 'Monitor 27"', "Chair ", "Desk", "Lamp (LED)"]
REGIONS = ["North", "South", "East", "West"]
CENT = Decimal("0.01")

pytestmark = pytest.mark.slow


def write_sales(path: Path, months: list[tuple[int, int]], first_id: int, seed: int) -> list[dict]:
    """Rows over the given months, written as a CSV export would be; returns the rows."""
    rng = random.Random(seed)
    rows = []
    for n in range(120):
        year, month = months[n % len(months)]
        quantity = rng.randint(1, 14)
        total = Decimal(rng.randint(100, 500_000)) / 100
        rows.append(
            {
                "transaction_id": f"ORD-{first_id + n}",
                "date": f"{year}-{month:02d}-{rng.randint(1, 28):02d}",
                "customer_id": f"C{rng.randint(1, 30)}",
                "product": rng.choice(PRODUCTS),
                "quantity": quantity,
                # The per-unit figure rounded to the cent, as real exports carry it.
                "unit_price": (total / quantity).quantize(CENT, ROUND_HALF_UP),
                "region": rng.choice(REGIONS),
                "total_amount": total,
            }
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=HEADER)
        writer.writeheader()
        writer.writerows(rows)
    return rows


def write_customers(path: Path) -> None:
    tiers = ["Bronze", "Silver", "Gold"]
    with path.open("w") as f:
        for n in range(1, 31):
            record = {
                "customer_id": f"C{n}",
                "age_group": "25-34",
                "membership_tier": tiers[n % 3],
                "signup_date": "2023-01-15",
            }
            f.write(json.dumps(record) + "\n")


def by_month(rows: list[dict]) -> dict[tuple[int, int], tuple[int, Decimal]]:
    found: dict[tuple[int, int], list] = defaultdict(lambda: [0, Decimal(0)])
    for row in rows:
        key = (int(row["date"][:4]), int(row["date"][5:7]))
        found[key][0] += 1
        found[key][1] += row["total_amount"]
    return {k: (n, s) for k, (n, s) in found.items()}


def lake_by_month(lake: Path) -> dict[tuple[int, int], tuple[int, Decimal]]:
    enriched = lake / f"{PREFIX}-processed" / "enriched"
    rows = duckdb.sql(
        "select year, month, count(*), sum(total_amount) "
        f"from read_parquet('{enriched}/**/*.parquet', hive_partitioning = true) group by all"
    ).fetchall()
    return {(y, m): (n, Decimal(s)) for y, m, n, s in rows}


def run_pipeline(lake: Path, charts: Path, run_id: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable, "run_pipeline.py", "--lake", str(lake), "--prefix", PREFIX,
            "--charts-dir", str(charts), "--run-id", run_id, *args,
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def test_own_files_run_every_stage_but_generate_and_new_files_land_beside_old(tmp_path):
    lake, charts = tmp_path / "lake", tmp_path / "charts"
    customers = tmp_path / "export" / "customers.ndjson"
    first = write_sales(tmp_path / "export" / "orders_2024_h1.csv", [(2024, 1), (2024, 2)], 1, 1)
    write_customers(customers)

    result = run_pipeline(
        lake, charts, "own-1",
        "--sales-path", str(tmp_path / "export" / "orders_2024_h1.csv"),
        "--customers-path", str(customers),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    stages = out.split("Stage durations")[1].split("\n\n")[0]
    assert "generate" not in stages and "upload" in stages and "charts" in stages
    assert str(tmp_path / "export" / "orders_2024_h1.csv") in out
    raw = lake / f"{PREFIX}-raw" / "input"
    assert sorted(p.name for p in (raw / "sales_data_csv").iterdir()) == ["orders_2024_h1.csv"]
    assert sorted(p.name for p in (raw / "customer_demographics_json").iterdir()) == [
        "customers.ndjson"
    ]
    metrics = json.loads((lake / f"{PREFIX}-processed" / "_runs" / "own-1.json").read_text())
    # Rounded unit prices are not errors: every row is kept.
    assert metrics["quarantined_total"] == 0
    assert metrics["rows_written"]["enriched"] == len(first)
    assert lake_by_month(lake) == by_month(first)
    assert len(list(charts.glob("*.png"))) == 6

    # A second export with later months, given as a folder: it lands beside the first
    # file and the next run reads only it; the earlier months stay as they were.
    second = write_sales(tmp_path / "later" / "orders_2024_q2.csv", [(2024, 3), (2024, 4)], 1000, 2)
    result = run_pipeline(
        lake, charts, "own-2",
        "--sales-path", str(tmp_path / "later"), "--customers-path", str(customers),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (raw / "sales_data_csv").iterdir()) == [
        "orders_2024_h1.csv",
        "orders_2024_q2.csv",
    ]
    raw_line = next(line for line in result.stdout.splitlines() if "raw files" in line)
    assert raw_line.split()[2] == "2" and "orders_2024_h1.csv" in raw_line
    read_line = next(line for line in result.stdout.splitlines() if "read this run" in line)
    assert read_line.split()[3:] == ["1", "orders_2024_q2.csv"]
    assert lake_by_month(lake) == {**by_month(first), **by_month(second)}


def test_daily_exports_dropped_in_one_folder_are_read_once_each(tmp_path):
    """The daily command: the same run_pipeline.py line each day on one export folder."""
    lake, charts, exports = tmp_path / "lake", tmp_path / "charts", tmp_path / "exports"
    customers = tmp_path / "customers" / "customers.ndjson"
    customers.parent.mkdir()
    write_customers(customers)
    argv = ["--sales-path", str(exports), "--customers-path", str(customers.parent)]
    day1 = write_sales(exports / "orders_2024-05-01.csv", [(2024, 4)], 1, 11)
    first = run_pipeline(lake, charts, "day-1", *argv)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "full rebuild: no earlier run's state (first run)" in first.stdout

    day2 = write_sales(exports / "orders_2024-05-02.csv", [(2024, 5)], 5000, 12)
    second = run_pipeline(lake, charts, "day-2", *argv)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "new files only (2 already read, skipped)" in second.stdout  # day 1 + customers
    read_line = next(line for line in second.stdout.splitlines() if "read this run" in line)
    assert read_line.split()[3:] == ["1", "orders_2024-05-02.csv"]
    metrics = json.loads((lake / f"{PREFIX}-processed" / "_runs" / "day-2.json").read_text())
    assert metrics["rows_read"]["sales"] == len(day2)
    assert metrics["bytes_read"]["sales"] == (exports / "orders_2024-05-02.csv").stat().st_size
    assert lake_by_month(lake) == {**by_month(day1), **by_month(day2)}

    third = run_pipeline(lake, charts, "day-2-again", *argv)
    assert third.returncode == 0, third.stderr[-3000:]
    assert "no new input: all 3 raw files were read by earlier runs" in third.stdout
    assert summary_rows_read(third.stdout) == 0
    assert lake_by_month(lake) == {**by_month(day1), **by_month(day2)}


def summary_rows_read(stdout: str) -> int:
    line = next(line for line in stdout.splitlines() if line.strip().startswith("sales read"))
    return int(line.split()[-1].replace(",", ""))


def test_a_missing_input_fails_in_one_line_before_anything_changes(tmp_path):
    lake, charts = tmp_path / "lake", tmp_path / "charts"
    customers = tmp_path / "customers.ndjson"
    write_customers(customers)
    result = run_pipeline(
        lake, charts, "missing",
        "--sales-path", str(tmp_path / "nope.csv"), "--customers-path", str(customers),
    )  # fmt: skip
    assert result.returncode == 2  # an input that is not there: the caller's to fix
    last = result.stderr.strip().splitlines()[-1]
    assert last == f"error: stage 'upload' failed: input not found: {tmp_path / 'nope.csv'}"
    assert not (lake / f"{PREFIX}-raw").exists()


def test_sales_and_customers_paths_go_together(tmp_path):
    result = run_pipeline(tmp_path / "lake", tmp_path / "charts", "half", "--sales-path", "x.csv")
    assert result.returncode == 2
    assert "--sales-path and --customers-path go together" in result.stderr
