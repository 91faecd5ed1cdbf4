"""Repeated transaction ids: only the few rows whose id repeats go through the exact
duplicate check, and the conflicting copies get their raw text back for the
quarantine.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date
from functools import reduce
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sales_etl.contracts import (
    CONFLICTING_DUPLICATE,
    CSV_OPTIONS,
    LINE_FLAGS,
    SALES_CONTENT,
    SALES_READ_SCHEMA,
)
from sales_etl.counts import SourceCounts, final_sales_counts
from sales_etl.readers import parse_sales_lines, read_sales, text_lines
from sales_etl.rules import check_sales_rows, mark_duplicates
from sales_etl.sales_pass import SalesRead
from sales_etl.tuning import BROADCAST_KEYS

log = logging.getLogger(__name__)


def resolve_sales_duplicates(
    read: SalesRead,
) -> tuple[DataFrame, DataFrame | None, SourceCounts]:
    """``mark_duplicates`` on the sales rows, with only the repeated ids going through it.

    The rows whose id hash repeats (few) are resolved exactly by ``mark_duplicates``; the
    outcome per row (reason, detail, ``_extra_duplicate``) is joined back to all rows by
    row id, so the rows keep their read partitioning (no shuffle of the whole input).
    Returns (rows with ``reason``/``_extra_duplicate`` final, the persisted outcomes or
    None when no id repeats, the records by final outcome). The counts are the first
    pass's, moved by what the duplicate check decided: only valid rows change, to
    conflicting_duplicate or to an exact copy.
    """
    rows = read.rows
    if not read.repeated_count:
        counts = final_sales_counts(read.outcomes, conflicting=0, extra=0)
        resolved = rows.withColumn("_extra_duplicate", F.lit(False))
        return resolved.withColumn("_superseded", F.lit(False)), None, counts
    hashes = read.repeated
    candidates = _with_file_names(
        rows.join(
            F.broadcast(hashes) if read.repeated_count <= BROADCAST_KEYS else hashes,
            F.xxhash64("transaction_id") == hashes["_key_hash"],
            "left_semi",
        ),
        read.file_names,
        read.file_orders,
    )
    outcome = mark_duplicates(
        candidates,
        "transaction_id",
        SALES_CONTENT,
        conflict_reason=CONFLICTING_DUPLICATE,
    ).select(
        "_row_id",
        F.col("reason").alias("_d_reason"),
        F.col("detail").alias("_d_detail"),
        F.col("_extra_duplicate").alias("_d_extra"),
        F.col("_superseded").alias("_d_superseded"),
        F.col("_superseded_by").alias("_d_superseded_by"),
        # Which row it was, for the quarantine (see conflicting_rows_with_raw).
        F.col("transaction_id").alias("_d_transaction_id"),
        F.col("_source_file").alias("_d_source_file"),
    )
    outcome = outcome.persist()
    tally = outcome.groupBy("_d_reason", "_d_extra", "_d_superseded").count().collect()
    n = sum(r["count"] for r in tally)
    counts = final_sales_counts(
        read.outcomes,
        conflicting=sum(r["count"] for r in tally if r["_d_reason"] == CONFLICTING_DUPLICATE),
        extra=sum(r["count"] for r in tally if r["_d_extra"]),
        superseded=sum(r["count"] for r in tally if r["_d_superseded"]),
    )
    side = outcome.select("_row_id", "_d_reason", "_d_detail", "_d_extra", "_d_superseded")
    joined = rows.join(F.broadcast(side) if n <= BROADCAST_KEYS else side, "_row_id", "left")
    decided = F.col("_d_extra").isNotNull()
    resolved = joined.select(
        *[c for c in rows.columns if c not in ("reason", "detail")],
        F.when(decided, F.col("_d_reason")).otherwise(F.col("reason")).alias("reason"),
        F.when(decided, F.col("_d_detail")).otherwise(F.col("detail")).alias("detail"),
        F.coalesce(F.col("_d_extra"), F.lit(False)).alias("_extra_duplicate"),
        F.coalesce(F.col("_d_superseded"), F.lit(False)).alias("_superseded"),
    )
    return resolved, outcome, counts


def _with_file_names(rows: DataFrame, names: dict[int, str], orders: dict[int, int]) -> DataFrame:
    """``rows`` with ``_source_file`` and ``_file_order`` (the file's modification time
    in ms) set on every row, from ``_file_hash`` (a broadcast join: the few candidate
    rows of the duplicate check, from any number of files)."""
    if not names:
        return rows.withColumn("_file_order", F.lit(0).cast("long"))
    # Built from literals in the JVM: a DataFrame made from a Python list is deserialized
    # by Python worker processes, whose start-up cost 0.75 s of the duplicate check.
    pairs = [
        F.struct(
            F.lit(h).cast("long").alias("_file_hash"),
            F.lit(n).alias("_named_file"),
            F.lit(orders.get(h, 0)).cast("long").alias("_file_order"),
        )
        for h, n in names.items()
    ]
    by_hash = rows.sparkSession.range(1).select(F.inline(F.array(*pairs))).hint("broadcast")
    return (
        rows.join(by_hash, "_file_hash", "left")
        .withColumn("_source_file", F.coalesce("_source_file", "_named_file"))
        .drop("_named_file")
    )


def conflicting_rows_with_raw(
    spark: SparkSession,
    read: SalesRead,
    outcome: DataFrame,
    headers: Sequence[str],
    today: date,
    expected: int,
) -> DataFrame:
    """The valid copies of conflicting transaction ids, with their raw text.

    Valid rows are persisted without their raw text, so their lines are read again. On the
    parallel path the files are read as in the first pass (same files, same order, same
    splits), so each line gets the row id it had then: the lines with a conflicting row's
    id are kept, and only their transaction id is parsed, to check that each is the row
    it should be (running the row rules again on them would compile the rules' code for
    one more plan). Files read by the multiLine reader are
    read whole again and checked by the row rules. Every valid copy of a conflicting id is
    quarantined, so the re-read rows are exactly the conflicting rows; their number is
    checked against ``expected`` and, should it differ, every line of the files is
    checked instead. ``outcome``: the duplicate check's (``resolve_sales_duplicates``),
    which names every conflicting row.

    Columns: ``transaction_id``, ``_source_file``, ``reason``, ``detail``,
    ``_raw_record``, ``_raw_bytes`` (null: the rows are valid UTF-8) and ``_same_id``
    (true: the line holds the transaction id its row id named).
    """
    found_ids = (
        outcome.where(F.col("_d_reason") == CONFLICTING_DUPLICATE)
        .select(
            F.col("_d_transaction_id").alias("transaction_id"),
            F.col("_d_detail").alias("detail"),
            "_row_id",
            F.col("_d_source_file").alias("_source_file"),
        )
        .persist()
    )
    ids = found_ids.select("transaction_id", "detail").distinct()
    files = {r["_source_file"] for r in found_ids.select("_source_file").distinct().collect()}
    fast = sorted(f for f in files if f not in read.multiline_files)
    slow = sorted(f for f in files if f in read.multiline_files)

    def quarantined(rows: DataFrame, same_id: Any) -> DataFrame:
        return rows.select(
            "transaction_id",
            "_source_file",
            F.lit(CONFLICTING_DUPLICATE).alias("reason"),
            "detail",
            "_raw_record",
            F.lit(None).cast("binary").alias("_raw_bytes"),
            same_id.alias("_same_id"),
        )

    def checked_again(rows: DataFrame) -> DataFrame:
        """The rows, checked by the row rules, that are valid copies of a conflicting id."""
        valid = check_sales_rows(rows, today).where(F.col("reason").isNull())
        joined = valid.drop("detail").join(F.broadcast(ids), "transaction_id")
        return quarantined(joined, F.lit(True))

    def by_row_id() -> DataFrame:
        wanted = found_ids.where(F.col("_row_id") >= 0).select(
            "_row_id", F.col("transaction_id").alias("_wanted_id"), "detail"
        )
        lines = (
            text_lines(spark, read.line_files)
            .withColumn("_row_id", F.monotonically_increasing_id())
            .join(F.broadcast(wanted), "_row_id")
        )
        parsed = F.from_csv(F.col("value"), SALES_READ_SCHEMA.simpleString(), CSV_OPTIONS)
        # Compared in a column, not filtered on: as a filter, Spark made the comparison a
        # key of the join, which parsed every line of the files.
        return quarantined(
            lines.select(
                F.trim(parsed["transaction_id"]).alias("transaction_id"),
                "_wanted_id",
                "_source_file",
                "detail",
                F.decode(F.col("value").cast("binary"), "UTF-8").alias("_raw_record"),
            ),
            F.col("transaction_id").eqNullSafe(F.col("_wanted_id")),
        )

    def reread(narrow: bool) -> DataFrame:
        parts = []
        if fast and narrow:
            parts.append(by_row_id())
        elif fast:
            text = text_lines(spark, read.line_files).where(F.col("_source_file").isin(fast))
            lines = parse_sales_lines(text, headers).where(~F.col("_header"))
            parts.append(checked_again(lines.drop(*LINE_FLAGS)))
        if slow:
            parts.append(checked_again(read_sales(spark, [read.source_paths[f] for f in slow])))
        return reduce(DataFrame.unionByName, parts)

    found = reread(narrow=True).persist()
    tally = found.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count(F.when(~F.col("_same_id"), 1)).alias("other"),
    ).first()
    # Cannot happen while the splits match; stay exact anyway.
    if tally is None or tally["rows"] != expected or tally["other"]:
        log.warning("conflicting rows: the re-read by row id missed some; checking every line")
        found.unpersist()
        found = reread(narrow=False).persist()
        found.count()
    found_ids.unpersist()
    return found
