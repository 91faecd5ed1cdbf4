"""run_pipeline.py on a user's own files: --sales-path / --customers-path, end to end.

The input is written here in the shape of real retail exports (product names with
commas, inch marks and trailing spaces; unit prices that are the line total divided by
the quantity, rounded to the cent), and the expected figures are computed here from
the rows themselves, with Python's decimal module. One lake takes three runs in turn (a
file, then the daily command on an export folder twice: a second export, then nothing
new), each started in the folder that holds the lake, given as a relative --lake; the
tests read what each run printed and left.
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


def run_pipeline(folder: Path, run_id: str, *args: str) -> subprocess.CompletedProcess:
    """run_pipeline.py started in ``folder`` (not the repository's), as a person keeping
    their data there would: the lake and the charts given relative to it."""
    return subprocess.run(
        [
            sys.executable, str(ROOT / "run_pipeline.py"), "--lake", "lake", "--prefix", PREFIX,
            "--charts-dir", "charts", "--run-id", run_id, *args,
        ],
        cwd=folder, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def raw_sales(lake: Path) -> list[str]:
    return sorted(p.name for p in (lake / f"{PREFIX}-raw" / "input" / "sales_data_csv").iterdir())


@pytest.fixture(scope="module")
def own_runs(tmp_path_factory) -> dict:
    """One lake, three runs of run_pipeline.py on your own files, as a person would:

    1. ``own-1``: a file of January and February (``--sales-path`` a file);
    2. ``own-2``: the daily command from here on (both paths folders): an export folder
       holding a second export, of March and April, which lands beside the first file
       and is the only file read (the customers file, given again by its folder, is
       not new);
    3. ``own-2-again``: the same command once more, nothing new.
    """
    base = tmp_path_factory.mktemp("own-data")
    lake, charts, exports = base / "lake", base / "charts", base / "exports"
    customers = base / "customers" / "customers.ndjson"
    customers.parent.mkdir()
    write_customers(customers)
    first_file = base / "export" / "orders_2024_h1.csv"
    found: dict = {"base": base, "lake": lake, "charts": charts, "exports": exports}

    def run(run_id: str, *args: str) -> None:
        result = run_pipeline(base, run_id, *args)
        assert result.returncode == 0, result.stderr[-3000:]
        # What the lake holds after each run: raw sales files, and rows by month.
        found[run_id] = (result.stdout, raw_sales(lake), lake_by_month(lake))

    found["first"] = write_sales(first_file, [(2024, 1), (2024, 2)], 1, 1)
    run("own-1", "--sales-path", str(first_file), "--customers-path", str(customers))
    daily = ["--sales-path", str(exports), "--customers-path", str(customers.parent)]
    found["second"] = write_sales(exports / "orders_2024_q2.csv", [(2024, 3), (2024, 4)], 1000, 2)
    run("own-2", *daily)
    run("own-2-again", *daily)
    return found


def run_metrics(own_runs: dict, run_id: str) -> dict:
    runs = own_runs["lake"] / f"{PREFIX}-processed" / "_runs"
    return json.loads((runs / f"{run_id}.json").read_text())


def line_with(stdout: str, text: str) -> str:
    return next(line for line in stdout.splitlines() if text in line)


def test_own_files_run_every_stage_but_generate(own_runs):
    out, raw_files, months = own_runs["own-1"]
    stages = out.split("Stage durations")[1].split("\n\n")[0]
    assert "generate" not in stages and "upload" in stages and "charts" in stages
    assert str(own_runs["base"] / "export" / "orders_2024_h1.csv") in out
    assert "full rebuild: no earlier run's state (first run)" in out
    assert raw_files == ["orders_2024_h1.csv"]
    raw = own_runs["lake"] / f"{PREFIX}-raw" / "input"
    assert sorted(p.name for p in (raw / "customer_demographics_json").iterdir()) == [
        "customers.ndjson"
    ]
    metrics = run_metrics(own_runs, "own-1")
    # Rounded unit prices are not errors: every row is kept.
    assert metrics["quarantined_total"] == 0
    assert metrics["rows_written"]["enriched"] == len(own_runs["first"])
    assert months == by_month(own_runs["first"])
    assert len(list(own_runs["charts"].glob("*.png"))) == 6


def test_a_second_export_in_a_folder_lands_beside_the_first_and_only_it_is_read(own_runs):
    out, raw_files, months = own_runs["own-2"]
    assert raw_files == ["orders_2024_h1.csv", "orders_2024_q2.csv"]
    raw_line = line_with(out, "raw files")
    assert raw_line.split()[2] == "2" and "orders_2024_h1.csv" in raw_line
    assert line_with(out, "read this run").split()[3:] == ["1", "orders_2024_q2.csv"]
    # The customers file given again (now by its folder), the same bytes: not new.
    assert "new files only (2 already read, skipped)" in out  # the first file + customers
    metrics = run_metrics(own_runs, "own-2")
    assert metrics["rows_read"]["sales"] == len(own_runs["second"])
    second_file = own_runs["exports"] / "orders_2024_q2.csv"
    assert metrics["bytes_read"]["sales"] == second_file.stat().st_size
    # The earlier months stay as they were.
    assert months == {**by_month(own_runs["first"]), **by_month(own_runs["second"])}


def test_the_daily_command_again_reads_nothing_and_changes_nothing(own_runs):
    out, raw_files, months = own_runs["own-2-again"]
    assert "no new input: all 3 raw files were read by earlier runs" in out
    assert summary_rows_read(out) == 0
    assert (raw_files, months) == own_runs["own-2"][1:]


def summary_rows_read(stdout: str) -> int:
    line = next(line for line in stdout.splitlines() if line.strip().startswith("sales read"))
    return int(line.split()[-1].replace(",", ""))


def test_a_missing_input_fails_in_one_line_before_anything_changes(tmp_path):
    lake = tmp_path / "lake"
    customers = tmp_path / "customers.ndjson"
    write_customers(customers)
    result = run_pipeline(
        tmp_path, "missing",
        "--sales-path", str(tmp_path / "nope.csv"), "--customers-path", str(customers),
    )  # fmt: skip
    assert result.returncode == 2  # an input that is not there: the caller's to fix
    last = result.stderr.strip().splitlines()[-1]
    assert last == f"error: stage 'upload' failed: input not found: {tmp_path / 'nope.csv'}"
    assert not (lake / f"{PREFIX}-raw").exists()


def test_sales_and_customers_paths_go_together(tmp_path):
    result = run_pipeline(tmp_path, "half", "--sales-path", "x.csv")
    assert result.returncode == 2
    assert "--sales-path and --customers-path go together" in result.stderr
