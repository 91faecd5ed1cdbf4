"""Steps 3 to 5 of a run: stage every output under ``_state/staging/<run_id>/``, count
what was staged and reconcile again, then publish it with one commit (``state``).

Nothing a reader sees changes before the commit: a run that fails or is killed before
it leaves only staged files, which the next run removes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import reduce
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sales_etl.context import Checked, RunContext, iso, timed_phase
from sales_etl.contracts import (
    CONFLICTING_DUPLICATE,
    ENRICHED_COLUMNS,
    PARTITION_COLUMNS,
    PARTITIONS_ONLY,
    SUMMARY_COLUMNS,
)
from sales_etl.counts import reconcile
from sales_etl.duplicates import conflicting_rows_with_raw
from sales_etl.files import join_path, plain_path
from sales_etl.lake import month_summaries
from sales_etl.state import CUSTOMERS_DIR, STAGING_DIR, Journal, commit, state_path
from sales_etl.tables import quarantine_records, superseded_records

log = logging.getLogger(__name__)

# A quarantine sample in the metrics is cut to this many characters.
SAMPLE_CHARS = 300


@dataclass
class Staged:
    """Where a run's outputs wait for its commit, and what went there."""

    root: str
    tables: dict[str, str] = field(default_factory=dict)  # name -> staged folder
    summary_months: list[tuple[int, int]] = field(default_factory=list)
    reread: DataFrame | None = None  # conflicting rows re-read for the quarantine

    @classmethod
    def for_run(cls, run: RunContext) -> Staged:
        return cls(state_path(run.out.root, STAGING_DIR, run.run_id))

    def path(self, name: str) -> str:
        return self.tables.setdefault(name, join_path(self.root, name))


def stage_outputs(run: RunContext, checked: Checked) -> Staged:
    """Step 3: write every output of the run under its staging folder."""
    staged = Staged.for_run(run)
    lake = checked.lake
    with timed_phase("write_enriched", run.durations) as phase:
        if checked.counts.enriched_rows:
            _write_partitioned(checked.enriched.select(*ENRICHED_COLUMNS), staged.path("enriched"))
        if lake.rewrite is not None:
            _write_partitioned(lake.rewrite, staged.path("rewrite"))
        phase["rows"] = checked.counts.enriched_rows
    with timed_phase("write_summary", run.durations):
        if checked.full:
            summary = checked.groups.select(*SUMMARY_COLUMNS)
            staged.summary_months = checked.counts.months
        else:
            added = [lake.rewrite] if lake.rewrite is not None else []
            removed = [lake.removed_files_rows] if lake.removed_files_rows is not None else []
            # The months of the new rows and of the files rewritten (the rows they keep
            # and those they lose): both known, so no pass over the rows to find them.
            months = sorted({*checked.counts.months, *lake.months_rewritten})
            summary = month_summaries(
                run.spark, run.out.summary, run.out_fs, checked.groups, added, removed, months
            )
            staged.summary_months = months
        if staged.summary_months:
            # Small (months x regions x products rows): one task, one file per month.
            one_file = summary.coalesce(1).sortWithinPartitions(
                *PARTITION_COLUMNS, "region", "product"
            )
            _write_partitioned(one_file, staged.path("summary"))
    staged.reread = write_quarantine(run, checked, staged)
    superseded = superseded_records(checked.superseded_parts(), run.run_id)
    if superseded is not None:
        superseded.repartition(1).write.mode("overwrite").parquet(staged.path("superseded"))
    if checked.customers_state is not None:
        checked.customers_state.coalesce(1).write.mode("overwrite").parquet(
            staged.path("customers")
        )
    return staged


def write_quarantine(run: RunContext, checked: Checked, staged: Staged) -> DataFrame | None:
    """Stage this run's rejected rows of both sources, one file, when there are any.

    Conflicting duplicates were persisted without their raw text, so their files are read
    again (``conflicting_rows_with_raw``); that re-read is returned (persisted), or None.
    """
    counts = checked.counts
    reread: DataFrame | None = None
    with timed_phase("write_quarantine", run.durations) as phase:
        if counts.quarantined_total:
            conflicts = counts.sales.by_reason.get(CONFLICTING_DUPLICATE, 0)
            # The rows the row rules rejected, from the persisted rows: the duplicate check
            # changes valid rows only, so its outcome need not be joined to every row.
            rejected = checked.read.rows.where(F.col("reason").isNotNull())
            if conflicts:
                reread = conflicting_rows_with_raw(
                    run.spark,
                    checked.read,
                    checked.outcome,
                    run.plan.sales_headers,
                    run.today,
                    expected=conflicts,
                )
                rejected = rejected.unionByName(reread, allowMissingColumns=True)
            quarantine = quarantine_records(
                rejected, checked.customers, run.run_id, iso(run.started)
            )
            # repartition, not coalesce: the scan that finds the rejected rows stays
            # parallel; only those rows move to the one task that writes the file.
            quarantine.repartition(1).write.mode("overwrite").parquet(staged.path("quarantine"))
        phase["rows"] = counts.quarantined_total
    return reread


def _write_partitioned(df: DataFrame, path: str) -> None:
    # Straight from the read partitions: each task writes one file per month it holds.
    # Input splits follow the file, so a task holds one or two months and rows keep the
    # file's order (a dated, ascending id order compresses well); no shuffle, no sort.
    (
        df.write.mode("overwrite")
        .option("compression", "snappy")
        .partitionBy(*PARTITION_COLUMNS)
        .parquet(path)
    )


def verify_staged(
    run: RunContext, checked: Checked, staged: Staged, metrics: dict[str, Any]
) -> None:
    """Step 4: count what was staged, not what was planned, and reconcile again.

    Replaces ``rows_written``, ``reconciliation`` and ``bytes_written`` in ``metrics``.
    """
    spark, counts, lake = run.spark, checked.counts, checked.lake
    with timed_phase("verify", run.durations):
        # Every month the new rows fill must be staged; a month a correction or a late
        # customer touched may end with no summary row or no kept row (all moved out).
        months = {
            "enriched": ([(y, m) for y, m in counts.months], True),
            "summary": (staged.summary_months, checked.full),
            "rewrite": (lake.months_rewritten, False),
        }
        tables = {}
        for name, (wanted, required) in months.items():
            root = staged.tables.get(name)
            parts = [f"year={y}/month={m}" for y, m in wanted]
            present = [p for p in parts if root and run.out_fs.exists(join_path(root, p))]
            if required and (missing := [p for p in parts if p not in present]):
                log.error("%s: partition(s) missing after the write: %s", name, ", ".join(missing))
            tables[root or name] = present
        written, summary_rows, kept = _count_parquet(spark, tables)
        q_by_source = {"sales": 0, "customers": 0}
        samples: dict[str, dict[str, str]] = {}
        if "quarantine" in staged.tables:
            staged_rows = spark.read.parquet(staged.tables["quarantine"])
            # One sample raw record per reason (the least, so a re-run shows the same one).
            by_reason = staged_rows.groupBy("source", "reason").agg(
                F.count(F.lit(1)).alias("count"), F.min("raw_record").alias("sample")
            )
            for r in by_reason.collect():
                q_by_source[r["source"]] += r["count"]
                sample = (r["sample"] or "")[:SAMPLE_CHARS]
                samples.setdefault(r["source"], {})[r["reason"]] = sample
        metrics["quarantine_samples"] = samples
        if kept != lake.kept_rows:
            log.error("rewritten files: %d rows staged, %d expected", kept, lake.kept_rows)
            written = -1  # fails the reconciliation below
        read = metrics["rows_read"]
        metrics["rows_written"] = {"enriched": written, "sales_summary": summary_rows}
        metrics["reconciliation"] = {
            "sales": reconcile(
                read["sales"],
                written,
                q_by_source["sales"],
                counts.sales.duplicates + lake.copies_of_loaded,
                counts.sales.superseded,
            ),
            "customers": reconcile(
                read["customers"],
                metrics["customers_loaded"],
                q_by_source["customers"],
                counts.customers.duplicates,
                counts.customers.superseded,
            ),
        }
        metrics["bytes_written"] = {
            name: run.out_fs.size_under(staged.tables[key]) if key in staged.tables else 0
            for name, key in (
                ("enriched", "enriched"),
                ("sales_summary", "summary"),
                ("quarantine", "quarantine"),
            )
        }


def _count_parquet(spark: SparkSession, tables: dict[str, list[str]]) -> list[int]:
    """Rows in the given partitions of each Parquet table (root -> partitions), in the
    order given, counted in one Spark job. A table given no partitions has 0 rows."""
    reads = [
        spark.read.schema(PARTITIONS_ONLY)  # no column read, no job to read a footer
        .option("basePath", root)
        .parquet(*[join_path(root, p) for p in parts])
        .select(F.lit(i).alias("table"))
        for i, (root, parts) in enumerate(tables.items())
        if parts
    ]
    found = (
        {
            r["table"]: r["count"]
            for r in reduce(DataFrame.unionByName, reads).groupBy("table").count().collect()
        }
        if reads
        else {}
    )
    return [found.get(i, 0) for i in range(len(tables))]


def publish(run: RunContext, checked: Checked, staged: Staged, manifest: dict[str, Any]) -> None:
    """Step 5: one commit moves the staged files into place and records the run.

    A full rebuild first deletes every earlier output (enriched, summary, quarantine,
    superseded, the customers' state), so its result equals a run on a fresh lake; a
    daily run deletes only the files it rewrote and the summaries of the months it
    touched.
    """
    out, fs = run.out, run.out_fs
    with timed_phase("commit", run.durations):
        customers_state = state_path(out.root, CUSTOMERS_DIR)
        deletes: list[str] = []
        if checked.full:
            deletes += [out.enriched, out.summary, out.quarantine_root, out.superseded_root]
        else:
            deletes += [plain_path(f) for f in checked.lake.rewritten_files]
            deletes += [
                join_path(out.summary, f"year={y}", f"month={m}") for y, m in staged.summary_months
            ]
        if "customers" in staged.tables:
            deletes.append(customers_state)
        moves: list[tuple[str, str]] = []
        for name, target in (
            ("enriched", out.enriched),
            ("rewrite", out.enriched),
            ("summary", out.summary),
        ):
            if name in staged.tables:
                root = staged.tables[name]
                for f in fs.list_files(root):
                    moves.append((f.path, join_path(target, _relative(f.path, root))))
        for name, target in (("quarantine", out.quarantine), ("superseded", out.superseded)):
            if name in staged.tables:
                # One file (written by one task); more would be named <run_id>-<n>.parquet.
                for n, f in enumerate(fs.list_files(staged.tables[name])):
                    numbered = target.replace(".parquet", f"-{n}.parquet")
                    moves.append((f.path, target if n == 0 else numbered))
        if "customers" in staged.tables:
            moves.append((staged.tables["customers"], customers_state))
        commit(fs, out.root, Journal(run.run_id, deletes, moves, manifest))


def _relative(path: str, root: str) -> str:
    """``path`` below ``root`` (Hadoop names a local file ``file:/...``)."""
    plain, base = plain_path(path), plain_path(root)
    return plain[len(base.rstrip("/")) + 1 :]
