"""The run's counts by outcome and month, and the reconciliation of rows read against
rows written, quarantined and dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from sales_etl.contracts import CONFLICTING_DUPLICATE, PARTITION_COLUMNS
from sales_etl.session import sql_conf


def final_sales_counts(
    outcomes: dict[str | None, int],
    *,
    conflicting: int,
    extra: int,
    superseded: int = 0,
) -> SourceCounts:
    """The sales records by final outcome: the row rules' counts (None: valid), with
    ``conflicting`` valid rows now conflicting duplicates, ``extra`` exact copies and
    ``superseded`` older versions a newer file corrected."""
    by_reason = {r: n for r, n in outcomes.items() if r is not None}
    if conflicting:
        by_reason[CONFLICTING_DUPLICATE] = conflicting
    valid = outcomes.get(None, 0) - conflicting - extra - superseded
    return SourceCounts(sum(outcomes.values()), valid, by_reason, extra, superseded)


def count_rows(sales: SourceCounts, customers: SourceCounts, groups: DataFrame) -> Counts:
    """Count the enriched rows by month, in one Spark action.

    The sales records by outcome were counted as they were read (``sales``), the
    customers as they were checked (``customers``). ``groups`` is ``summary_groups`` of
    the enriched rows: the enriched rows are counted through the very aggregate the
    summary table is written from, so the reconciliation before the write holds the rows
    read against the rows about to be written.
    """
    per_month = groups.groupBy(*PARTITION_COLUMNS).agg(
        F.sum("transaction_count").alias("rows"),
        F.sum("_unknown").alias("unknown"),
    )
    # Adaptive execution is off for this collect: with it, Spark runs each shuffle as a
    # job of its own. What the shuffle carries is small (the
    # persisted summary groups, planned when persisted), so there is nothing for it to
    # re-plan; without it, its partitions are one per core, not the session's shuffle
    # partitions (200 by default on a cluster: 200 near-empty tasks).
    spark = groups.sparkSession
    cores = str(max(1, spark.sparkContext.defaultParallelism))
    with (
        sql_conf(spark, "spark.sql.adaptive.enabled", "false"),
        sql_conf(spark, "spark.sql.shuffle.partitions", cores),
    ):
        months = per_month.collect()
    return Counts(
        sales=sales,
        customers=customers,
        months=sorted((r["year"], r["month"]) for r in months),
        enriched_rows=sum(r["rows"] for r in months),
        unknown_customers=sum(r["unknown"] for r in months),
    )


@dataclass(frozen=True)
class Counts:
    """What one read of the persisted rows finds, before anything is written."""

    sales: SourceCounts
    customers: SourceCounts
    months: list[tuple[int, int]]  # (year, month) partitions the enriched rows fill
    enriched_rows: int
    unknown_customers: int

    @property
    def quarantined_total(self) -> int:
        return sum(self.sales.by_reason.values()) + sum(self.customers.by_reason.values())


class SourceCounts(NamedTuple):
    """One source's records by outcome."""

    read: int  # records read
    valid: int  # valid records kept (one per exact duplicate group)
    by_reason: dict[str, int]  # quarantined records per reason
    duplicates: int  # exact duplicates dropped
    superseded: int = 0  # older versions a newer file's record replaced


def counts_by_reason(rows: list[Any]) -> SourceCounts:
    """Add up one source's record counts (``reason``, ``extra``, ``superseded``,
    ``rows``) by outcome."""
    total = sum(r["rows"] for r in rows)
    by_reason: dict[str, int] = {}
    valid = dups = superseded = 0
    for r in rows:
        if r["reason"] is not None:
            by_reason[r["reason"]] = by_reason.get(r["reason"], 0) + r["rows"]
        elif r["extra"]:
            dups += r["rows"]
        elif r["superseded"]:
            superseded += r["rows"]
        else:
            valid += r["rows"]
    return SourceCounts(total, valid, by_reason, dups, superseded)


def reconcile(
    read: int, written: int, quarantined: int, dups: int, superseded: int = 0
) -> dict[str, Any]:
    """Rows read against rows written, quarantined, dropped as copies and superseded."""
    return {
        "read": read,
        "written": written,
        "quarantined": quarantined,
        "duplicates_dropped": dups,
        "superseded": superseded,
        "ok": read == written + quarantined + dups + superseded,
    }


def all_reconciled(reconciliation: dict[str, dict[str, Any]]) -> bool:
    return all(r["ok"] for r in reconciliation.values())
