"""Daily loads as a property: a dirty data set from the generators, split into days at
random (two seeds), loaded one day at a time, equals one full run over every file.
Expected values come from DuckDB over a fresh full run's outputs. Every run is in this
process, on the shared Spark session.
"""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from daily_runs import (
    HEADER,
    QUARANTINE,
    assert_same_lake,
    clean_line,
    enriched_by_id,
    except_all,
    land,
    metrics,
    parquet,
    rows,
    run_here,
    sales_text,
)

import generate_customer_data
import generate_sample_data

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def generated_input(tmp_path_factory):
    """One dirty data set from the generators' own entry points, run in this process (600
    rows, 10% dirty, 60 customer ids of which 50 have a record)."""
    work = tmp_path_factory.mktemp("generated")
    sales_args = ["--rows", "600", "--dirty-rate", "0.1", "--seed", "5", "--customers", "60"]
    assert generate_sample_data.main([*sales_args, "--output", str(work / "sales.csv")]) == 0
    customers_args = ["--customers", "50", "--output", str(work / "c.ndjson")]
    assert generate_customer_data.main(customers_args) == 0
    lines = (work / "sales.csv").read_text().splitlines()
    assert lines[0] == HEADER and '"' not in "".join(lines)
    return lines[1:], (work / "c.ndjson").read_text()


def split_into_days(lines: list[str], seed: int) -> tuple[list[list[str]], dict]:
    """2-4 days at random cut points, plus two cross-day exact copies and one correction
    of clean rows whose transaction id occurs once, each in a later day."""
    rng = random.Random(seed)
    days_n = rng.randint(2, 4)
    cuts = sorted(rng.sample(range(1, len(lines)), days_n - 1))
    bounds = [0, *cuts, len(lines)]
    days = [lines[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    ids = [line.split(",")[0] for line in lines]
    once = {i for i in ids if ids.count(i) == 1}
    candidates = [
        (d, line)
        for d, day in enumerate(days[:-1])
        for line in day
        if clean_line(line) and line.split(",")[0] in once
    ]
    picked = rng.sample(candidates, 3)
    extras: dict = {"copies": [], "correction": None}
    for n, (origin, line) in enumerate(picked):
        target = rng.randint(origin + 1, days_n - 1)
        if n < 2:
            days[target].append(line)
            extras["copies"].append((line.split(",")[0], target))
        else:
            f = line.split(",")
            quantity = int(f[4]) + 1
            f[4], f[7] = str(quantity), str(Decimal(f[5]) * quantity)
            corrected = ",".join(f)
            assert clean_line(corrected)
            days[target].insert(rng.randint(0, len(days[target])), corrected)
            extras["correction"] = (f[0], quantity, Decimal(f[7]), target)
    return days, extras


# Seeds whose splits have 2 and 3 days: each split's first run is a full one, then one or
# two incremental runs; the copies and the correction come on the last day, on a lake a
# full run left (102) and on one an incremental run left (109).
@pytest.fixture(scope="module", params=[102, 109], ids=lambda s: f"seed{s}")
def generated(request, generated_input, tmp_path_factory, spark):
    """Day k's file lands, then a run (k = 0, 1, ...); then one full run over all files
    into a fresh output folder."""
    lines, customers_text = generated_input
    days, extras = split_into_days(lines, request.param)
    work = tmp_path_factory.mktemp(f"gen{request.param}")
    sales, customers = work / "raw" / "sales", work / "raw" / "customers"
    land(customers / "customers.ndjson", customers_text, 0)
    daily, full = work / "daily", work / "full"
    run_ids = []
    for k, day in enumerate(days):
        land(sales / f"day{k}.csv", sales_text(*day), k + 1)
        run_ids.append(f"day{k}")
        assert run_here(spark, sales, customers, daily, run_ids[-1]) == 0
    assert run_here(spark, sales, customers, full, "full") == 0
    return {
        "daily": daily,
        "full": full,
        "days": days,
        "extras": extras,
        "run_ids": run_ids,
        "metrics": [metrics(daily, r) for r in run_ids],
    }


def test_daily_runs_equal_one_full_run(generated):
    assert_same_lake(generated["daily"], generated["full"])


def test_daily_runs_read_each_file_once_and_reconcile(generated):
    for k, m in enumerate(generated["metrics"]):
        assert m["status"] == "succeeded"
        assert m["mode"] == ("full_rebuild" if k == 0 else "incremental")
        assert [Path(f).name for f in m["inputs"]["sales"]["files"]] == [f"day{k}.csv"]
        assert m["inputs"]["sales"]["files_skipped"] == k
        assert m["rows_read"]["sales"] == len(generated["days"][k])
        assert m["bytes_read"]["sales"] == len(sales_text(*generated["days"][k]).encode())
        for source, r in m["reconciliation"].items():
            assert r["ok"], (source, r)
            assert r["read"] == (
                r["written"] + r["quarantined"] + r["duplicates_dropped"] + r["superseded"]
            )
    first = generated["metrics"][0]
    assert first["full_rebuild_reason"] == "no earlier run's state (first run)"


def test_cross_day_copies_and_correction_land_once(generated):
    loaded = enriched_by_id(generated["daily"])
    quarantined = {r[1] for r in rows(generated["daily"] / "quarantine", QUARANTINE)}
    for tid, target in generated["extras"]["copies"]:
        assert tid in loaded and tid not in quarantined
        m = generated["metrics"][target]
        assert m["lake"]["copies_of_loaded_rows"] >= 1
        assert m["duplicates_dropped"] >= m["lake"]["copies_of_loaded_rows"]
    tid, quantity, total, target = generated["extras"]["correction"]
    assert (loaded[tid]["quantity"], loaded[tid]["total_amount"]) == (quantity, total)
    m = generated["metrics"][target]
    assert m["lake"]["rows_replaced"] >= 1
    assert m["rows_superseded"]["sales"] >= 1


def test_quarantine_of_daily_runs_equals_the_full_runs(generated):
    daily_q = generated["daily"] / "quarantine"
    extra, missing = except_all(daily_q, generated["full"] / "quarantine", QUARANTINE)
    assert (extra, missing) == ([], [])
    assert rows(daily_q, QUARANTINE)
    twice = duckdb.sql(
        f"select {', '.join(QUARANTINE)}, count(distinct run_id) as runs "
        f"from {parquet(daily_q, (*QUARANTINE, 'run_id'))} group by all having runs > 1"
    ).fetchall()
    assert twice == []
    # Each run's quarantine folder holds its own rows only.
    per_run = duckdb.sql(
        f"select run_id, count(*) from {parquet(daily_q, ('run_id',))} group by all order by all"
    ).fetchall()
    by_metrics = [
        (r, m["quarantined_total"])
        for r, m in zip(generated["run_ids"], generated["metrics"], strict=True)
        if m["quarantined_total"]
    ]
    assert per_run == sorted(by_metrics)
