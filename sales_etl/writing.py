"""Step 3 and 4 of a run: write the enriched, summary and quarantine tables, then count
what is on storage and reconcile again.
"""

from __future__ import annotations

import logging
from functools import reduce
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sales_etl.context import Checked, RunContext, timed_phase
from sales_etl.contracts import (
    CONFLICTING_DUPLICATE,
    ENRICHED_COLUMNS,
    PARTITION_COLUMNS,
    STAGING_PREFIX,
    SUMMARY_COLUMNS,
)
from sales_etl.counts import reconcile
from sales_etl.duplicates import conflicting_rows_with_raw
from sales_etl.files import filesystem_for, join_path
from sales_etl.tables import quarantine_records

log = logging.getLogger(__name__)


def write_outputs(run: RunContext, checked: Checked, metrics: dict[str, Any]) -> DataFrame | None:
    """Step 3: the enriched and summary tables (when there are valid rows), then the quarantine.

    Returns the conflicting rows re-read for their raw text (persisted), or None.
    """
    if checked.counts.enriched_rows:
        write_tables(run, checked, metrics)
    else:
        log.warning("no valid sales rows: enriched/ and sales_summary/ left untouched")
    return write_quarantine(run, checked)


def write_tables(run: RunContext, checked: Checked, metrics: dict[str, Any]) -> None:
    """Write the enriched and summary partitions; then remove what killed runs left.

    Both are written from the persisted rows. A run killed during its write leaves
    Spark's staging folder behind; once this run's writes succeed, those are removed
    and listed in ``leftovers_removed``.
    """
    out = run.out
    with timed_phase("write_enriched", run.durations) as phase:
        _write_partitioned(checked.enriched.select(*ENRICHED_COLUMNS), out.enriched)
        phase["rows"] = checked.counts.enriched_rows
    with timed_phase("write_summary", run.durations):
        # Small (months x regions x products rows), already computed and persisted while
        # counting: one task, one file per month.
        summary = (
            checked.groups.select(*SUMMARY_COLUMNS)
            .coalesce(1)
            .sortWithinPartitions(*PARTITION_COLUMNS, "region", "product")
        )
        _write_partitioned(summary, out.summary)
    metrics["leftovers_removed"] = [
        path
        for root in (out.enriched, out.summary)
        for path in run.out_fs.remove_children(root, STAGING_PREFIX)
    ]


def write_quarantine(run: RunContext, checked: Checked) -> DataFrame | None:
    """Write this run's rejected rows of both sources, one file, when there are any.

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
            quarantine = quarantine_records(rejected, checked.customers, run.run_id)
            # repartition, not coalesce: the scan that finds the rejected rows stays
            # parallel; only those rows move to the one task that writes the file.
            quarantine.repartition(1).write.mode("overwrite").parquet(run.out.quarantine)
        phase["rows"] = counts.quarantined_total
    return reread


def _write_partitioned(df: DataFrame, path: str) -> None:
    # Straight from the read partitions: each task writes one file per month it holds.
    # Input splits follow the file, so a task holds one or two months and rows keep the
    # file's order (a dated, ascending id order compresses well); no shuffle, no sort.
    (
        df.write.mode("overwrite")
        .option("partitionOverwriteMode", "dynamic")
        .option("compression", "snappy")
        .partitionBy(*PARTITION_COLUMNS)
        .parquet(path)
    )


def verify_outputs(run: RunContext, checked: Checked, metrics: dict[str, Any]) -> None:
    """Step 4: count what is now on storage, not what was planned, and reconcile again.

    Replaces ``rows_written``, ``reconciliation`` and ``bytes_written`` in ``metrics``.
    """
    spark, out, counts = run.spark, run.out, checked.counts
    with timed_phase("verify", run.durations):
        q_fs = filesystem_for(out.quarantine, spark)
        parts = [f"year={y}/month={m}" for y, m in counts.months]
        # A partition the counts name but storage lacks counts 0 rows (the reconciliation
        # then fails the run and names it) instead of failing the read with PATH_NOT_FOUND.
        tables = {}
        for name, root in (("enriched", out.enriched), ("sales_summary", out.summary)):
            present = [p for p in parts if run.out_fs.exists(join_path(root, p))]
            if missing := [p for p in parts if p not in present]:
                log.error("%s: partition(s) missing after the write: %s", name, ", ".join(missing))
            tables[root] = present
        written_enriched, written_summary = _count_parquet(spark, tables)
        q_by_source = {"sales": 0, "customers": 0}
        if metrics["quarantined_total"]:
            for r in spark.read.parquet(out.quarantine).groupBy("source").count().collect():
                q_by_source[r["source"]] = r["count"]
        read = metrics["rows_read"]
        metrics["rows_written"] = {"enriched": written_enriched, "sales_summary": written_summary}
        metrics["reconciliation"] = {
            "sales": reconcile(
                read["sales"], written_enriched, q_by_source["sales"], counts.sales.duplicates
            ),
            "customers": reconcile(
                read["customers"],
                metrics["customers_loaded"],
                q_by_source["customers"],
                counts.customers.duplicates,
            ),
        }
        metrics["bytes_written"] = {
            "enriched": sum(run.out_fs.size_under(join_path(out.enriched, p)) for p in parts),
            "sales_summary": sum(run.out_fs.size_under(join_path(out.summary, p)) for p in parts),
            "quarantine": q_fs.size_under(out.quarantine) if sum(q_by_source.values()) else 0,
        }


def _count_parquet(spark: SparkSession, tables: dict[str, list[str]]) -> list[int]:
    """Rows in the given partitions of each Parquet table (root -> partitions), in the
    order given, counted in one Spark job. A table given no partitions has 0 rows."""
    reads = [
        spark.read.option("basePath", root)
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
