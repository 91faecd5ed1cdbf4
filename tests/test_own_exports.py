"""Your own exports, end to end through run_pipeline.py: a bad file stops at the door (or,
already in raw, fails the etl stage by name and leaves the earlier output as it was), a
raw file comes out by name and its rows with it, and your lake is your own.

The expected lake after a raw file comes out is written here by hand, row by row (what
one run over the file that remains gives), never computed by the pipeline's own code.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "own"
HEADER = "transaction_id,date,customer_id,product,quantity,unit_price,region,total_amount"

pytestmark = pytest.mark.slow


def sales(rows: list[tuple[str, str, str]]) -> str:
    """A sales CSV of (id, date, customer) rows, each one desk at 10.00."""
    return HEADER + "\n" + "".join(f"{t},{d},{c},Desk,1,10.00,North,10.00\n" for t, d, c in rows)


def pipeline(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "run_pipeline.py"), *args],
        cwd=cwd, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def files(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder``: size and mtime."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            st = path.stat()
            found[str(path.relative_to(folder))] = (st.st_size, st.st_mtime_ns)
    return found


def state(lake: Path) -> dict[str, dict[str, tuple[int, int]]]:
    """Every file under the lake's raw, catalog and processed folders: size and mtime."""
    parts = (f"{PREFIX}-raw", "_catalog", f"{PREFIX}-processed")
    return {part: files(lake / part) for part in parts}


def table(lake: Path, name: str) -> list[dict]:
    """The rows of one output table, each as {column: value}, in transaction/month order."""
    folder = lake / f"{PREFIX}-processed" / name
    found = duckdb.sql(
        f"select * from read_parquet('{folder}/**/*.parquet', hive_partitioning = true)"
    )
    return sorted(
        (dict(zip(found.columns, row, strict=True)) for row in found.fetchall()),
        key=lambda row: (row["year"], row["month"], row.get("transaction_id", "")),
    )


# One run over a.csv alone, by hand: A1 (C1: Gold, no age group or signup date in its
# record) and A2 (C2: no record), one desk at 10.00 each, in January and February.
DESK = {"product": "Desk", "quantity": 1, "unit_price": Decimal("10.00"), "region": "North"}
A_ALONE = [
    {
        "transaction_id": "A1", "transaction_date": date(2025, 1, 5), "customer_id": "C1",
        **DESK, "total_amount": Decimal("10.00"), "age_group": None, "membership_tier": "Gold",
        "signup_date": None, "day": 5, "year": 2025, "month": 1,
    },
    {
        "transaction_id": "A2", "transaction_date": date(2025, 2, 5), "customer_id": "C2",
        **DESK, "total_amount": Decimal("10.00"), "age_group": None, "membership_tier": None,
        "signup_date": None, "day": 5, "year": 2025, "month": 2,
    },
]  # fmt: skip
A_ALONE_SUMMARY = [
    {
        "region": "North", "product": "Desk", "total_revenue": Decimal("10.00"),
        "transaction_count": 1, "avg_transaction_value": Decimal("10.00"), "year": 2025,
        "month": month,
    }
    for month in (1, 2)
]  # fmt: skip


def test_a_bad_file_stops_at_the_door_and_a_raw_file_comes_out_with_its_rows(tmp_path):
    lake = tmp_path / "lake"
    exports, customers = tmp_path / "exports", tmp_path / "customers.ndjson"
    exports.mkdir()
    customers.write_text('{"customer_id": "C1", "membership_tier": "Gold"}\n')
    (exports / "a.csv").write_text(sales([("A1", "2025-01-05", "C1"), ("A2", "2025-02-05", "C2")]))
    (exports / "b.csv").write_text(sales([("B1", "2025-02-06", "C1"), ("B2", "2025-03-01", "C1")]))
    flags = ["--lake", str(lake), "--prefix", PREFIX, "--charts-dir", str(tmp_path / "charts")]
    inputs = ["--sales-path", str(exports), "--customers-path", str(customers)]

    first = pipeline(*flags, *inputs, "--run-id", "r1")
    assert first.returncode == 0, first.stderr[-3000:]
    before = state(lake)

    # A file with a wrong header: refused by its own name at the upload; nothing changes.
    (exports / "bad.csv").write_text("order,when\n1,2025-01-01\n")
    refused = pipeline(*flags, *inputs, "--run-id", "r2")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1] == (
        f"error: stage 'upload' failed: header mismatch in {exports / 'bad.csv'}: expected "
        f"{HEADER}; got order,when; nothing was uploaded: fix this file or take it out of "
        "the input, then run again"
    )
    assert state(lake) == before

    # A bad file already in raw (put there some other way): the job's one line says how
    # to take it out.
    # The etl stage fails by its name, and the earlier output and charts stay as they were.
    raw_sales = lake / f"{PREFIX}-raw" / "input" / "sales_data_csv"
    shutil.move(exports / "bad.csv", raw_sales / "bad.csv")
    output = files(lake / f"{PREFIX}-processed"), files(tmp_path / "charts")
    assert len(output[1]) == 6
    stuck = pipeline(*flags, *inputs, "--run-id", "r3")
    assert stuck.returncode == 2
    last = stuck.stderr.strip().splitlines()[-1]
    assert last.startswith("error: stage 'etl' failed: ") and "Traceback" not in last
    assert (files(lake / f"{PREFIX}-processed"), files(tmp_path / "charts")) == output
    assert f"header mismatch in {raw_sales / 'bad.csv'}" in last
    assert last.endswith(
        f"take it out of raw with: python run_pipeline.py --remove-raw bad.csv --lake {lake} "
        f"--prefix {PREFIX} (--dry-run lists what goes)"
    )

    remove = ["--lake", str(lake), "--prefix", PREFIX, "--remove-raw", "bad.csv"]
    dry = pipeline(*remove, "--remove-raw", "b.csv", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        f"would remove s3://{PREFIX}-raw/input/sales_data_csv/bad.csv",
        f"would remove s3://{PREFIX}-raw/input/sales_data_csv/b.csv",
    ]
    assert sorted(p.name for p in raw_sales.iterdir()) == ["a.csv", "b.csv", "bad.csv"]
    removed = pipeline(*remove, "--remove-raw", "b.csv")
    assert removed.returncode == 0, removed.stderr
    assert sorted(p.name for p in raw_sales.iterdir()) == ["a.csv"]
    unknown = pipeline(*remove)
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines()[-1] == (
        "error: no raw file named 'bad.csv'; the raw files are: a.csv, customers.ndjson"
    )

    # The next run (b.csv out of the export folder too) drops b.csv's rows: the lake
    # is what one run over a.csv alone gives.
    (exports / "b.csv").unlink()
    after = pipeline(*flags, *inputs, "--run-id", "r4")
    assert after.returncode == 0, after.stderr[-3000:]
    assert "full rebuild: " in after.stdout
    assert table(lake, "enriched") == A_ALONE
    assert table(lake, "sales_summary") == A_ALONE_SUMMARY


def test_own_data_keeps_out_of_the_sample_lake_and_the_committed_charts(tmp_path):
    """`make run` in a copy of the repository, then the README's first own-data example."""
    repo = tmp_path / "repo"
    tracked = (
        subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, tracked):
        if (ROOT / rel).is_file():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, repo / rel)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "copy"], cwd=repo, check=True)
    os.symlink(Path(sys.prefix), repo / ".venv")  # the installed venv, not reinstalled (-o)

    env = {k: v for k, v in os.environ.items() if k != "PIPELINE_LAKE"}
    sample = subprocess.run(
        ["make", "-o", ".venv/.installed", "run"], cwd=repo, env=env,
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert sample.returncode == 0, sample.stderr[-3000:]
    # The copy's venv is this one: its `make run` uses the class archive the install made.
    assert "making the job's class archive" not in sample.stdout + sample.stderr
    status = ["git", "status", "--porcelain"]
    after_sample = subprocess.run(status, cwd=repo, capture_output=True, text=True).stdout
    charts = {p.name: p.read_bytes() for p in (repo / "screenshots").glob("*.png")}
    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "orders.csv").write_text(
        sales([("ORD-1", "2025-01-05", "C1"), ("ORD-2", "2025-01-06", "C9")])
    )
    (exports / "customers.json").write_text(
        '[{"customer_id": "C1", "age_group": "26-35", "membership_tier": "Gold", '
        '"signup_date": "2024-01-02"}]'
    )

    own = subprocess.run(
        [sys.executable, "run_pipeline.py", "--sales-path", str(exports / "orders.csv"),
         "--customers-path", str(exports / "customers.json")],
        cwd=repo, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert own.returncode == 0, own.stderr[-3000:]
    enriched = repo / "own-lake" / "sales-pipeline-processed" / "enriched"
    ids = duckdb.sql(f"select transaction_id from read_parquet('{enriched}/**/*.parquet')")
    assert sorted(r[0] for r in ids.fetchall()) == ["ORD-1", "ORD-2"]
    assert len(list((repo / "own-lake" / "_charts").glob("*.png"))) == 6
    # The own-data run changed nothing git sees (the lakes are ignored), and no chart of
    # the sample's.
    assert subprocess.run(status, cwd=repo, capture_output=True, text=True).stdout == after_sample
    assert {p.name: p.read_bytes() for p in (repo / "screenshots").glob("*.png")} == charts
    # Your files into the sample's lake are refused before anything runs.
    mixed = subprocess.run(
        [sys.executable, "run_pipeline.py", "--lake", "lake", "--sales-path",
         str(exports / "orders.csv"), "--customers-path", str(exports / "customers.json")],
        cwd=repo, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert mixed.returncode == 2
    assert mixed.stderr.strip().splitlines()[-1] == (
        "error: lake lake holds the generated sample: give your own files a lake of their "
        "own (--lake, default ./own-lake)"
    )
