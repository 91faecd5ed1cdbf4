"""Daily loads, one run at a time and crash safety: a second run is refused while one
holds the lock, a lock left by a dead run is taken over, and a run that fails or is
killed at any point leaves a lake the next run converges from to the full run's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from daily_runs import (
    BAD_DAY2,
    CUSTOMERS_DAY0,
    CUSTOMERS_DAY3,
    ENRICHED,
    QUARANTINE,
    SALES_DAY1,
    SALES_DAY2,
    assert_same_lake,
    except_all,
    lake_listing,
    land,
    metrics,
    parquet,
    run_here,
    run_process,
    sales_text,
)

from sales_etl import files as job_files
from sales_etl import writing

pytestmark = pytest.mark.slow


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
    # Refused before Spark starts: here it could not (no Spark home, no Java).
    nowhere = {"SPARK_HOME": str(tmp_path / "no-spark"), "JAVA_HOME": str(tmp_path)}
    proc = run_process(crash_base["sales"], crash_base["customers"], out, "second", nowhere)
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
    # The lake is moved to another folder before the next run: the journal names its
    # files relative to the lake, so the commit is finished where the lake now is.
    moved = tmp_path / "moved"
    out.rename(moved)
    args = (crash_base["sales"], crash_base["customers"], moved)
    with caplog.at_level(logging.WARNING, logger="sales_etl"):
        assert run_here(spark, *args, "next") == 0
    assert "run halted stopped while publishing its output: finishing it" in caplog.text
    assert metrics(moved, "next")["mode"] == "no_new_input"
    assert_converged(moved, crash_base)
    assert not out.exists()


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
