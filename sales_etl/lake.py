"""A daily run's new rows against what the lake already holds.

The lake equals one run over every raw file it has read, so a new row is one of:

- new: its transaction id is not loaded: appended, nothing rewritten;
- an exact copy of a loaded row: dropped and counted, as a copy within one run;
- a correction (same id, other content; the new file is newer than every loaded one):
  it replaces the loaded row, whose file is rewritten without it (in its own month,
  wherever the new version goes);

and a loaded row whose customer was unknown when it was loaded gets the demographics
once the customer's record arrives (its file is rewritten with them).

Only the ``transaction_id`` and ``customer_id`` columns of the loaded rows are scanned
to find these (for the ids, only the row groups whose id range overlaps the new ids');
only the files that hold a correction or a late customer are read whole and rewritten. The summary of each month the run touches is the month's old summary
plus the rows added, less the rows removed, in integer cents, so no month is re-read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from sales_etl.contracts import (
    ENRICHED_COLUMNS,
    MONEY,
    PARTITION_COLUMNS,
    PARTITIONS_ONLY,
    REVENUE,
    SALES_CONTENT,
)
from sales_etl.files import HadoopFiles, LocalFiles, join_path, plain_path
from sales_etl.tables import enrich
from sales_etl.tuning import BROADCAST_KEYS

log = logging.getLogger(__name__)


@dataclass
class LakeChanges:
    """What a run changes in the loaded rows, besides appending its new rows."""

    append: DataFrame  # the new rows to add (ENRICHED_COLUMNS and _known_customer)
    rewrite: DataFrame | None = None  # the rewritten files' rows, as they are to be
    # Loaded rows a correction replaces (ENRICHED_COLUMNS and _by_hash, the new file's).
    removed: DataFrame | None = None
    removed_files_rows: DataFrame | None = None  # every row the rewritten files held
    rewritten_files: list[str] = field(default_factory=list)
    months_rewritten: list[tuple[int, int]] = field(default_factory=list)
    bytes_read_back: int = 0
    copies_of_loaded: int = 0  # new rows dropped as exact copies of loaded rows
    replaced: int = 0  # loaded rows replaced by a correction
    reenriched: int = 0  # loaded rows given their customer's record
    kept_rows: int = 0  # rows of the rewritten files that stay (re-enriched or not)
    persisted: list[DataFrame] = field(default_factory=list)


# The loaded rows' columns the check of new rows against them scans.
_LOADED_KEYS = T.StructType(
    [
        T.StructField("transaction_id", T.StringType()),
        T.StructField("customer_id", T.StringType()),
        *PARTITIONS_ONLY.fields,
    ]
)


# The summary columns a month's new summary is summed from.
_SUMMARY_SUMS = T.StructType(
    [
        T.StructField("region", T.StringType()),
        T.StructField("product", T.StringType()),
        T.StructField("total_revenue", REVENUE),
        T.StructField("transaction_count", T.LongType()),
        *PARTITIONS_ONLY.fields,
    ]
)


def loaded_files(fs: LocalFiles | HadoopFiles, root: str) -> list[str]:
    """The enriched table's Parquet files (empty: nothing loaded yet)."""
    if not fs.exists(root):
        return []
    return [f.path for f in fs.list_files(root) if f.path.endswith(".parquet")]


def against_lake(
    spark: SparkSession,
    fs: LocalFiles | HadoopFiles,
    enriched_root: str,
    new_rows: DataFrame,
    customers: DataFrame,
    new_customers: DataFrame | None,
    id_range: tuple[str | None, str | None] | None = None,
) -> LakeChanges:
    """Sort ``new_rows`` (enriched, with ``_known_customer`` and ``_file_hash``) into the
    cases above.

    ``customers``: every customer record now known (for late customers);
    ``new_customers``: ``customer_id`` of the records no run had before this one;
    ``id_range``: a range (lowest, highest; None, None: empty) that holds every new
    row's transaction id, when known (else it is computed from ``new_rows``).
    """
    if not loaded_files(fs, enriched_root):
        return LakeChanges(append=new_rows)
    # The columns the scans below read, given: Spark would otherwise run a job to read
    # a file's footer for the schema.
    loaded = spark.read.schema(_LOADED_KEYS).parquet(enriched_root)

    def scan(rows: DataFrame) -> DataFrame:
        # input_file_name() makes a projection no filter is pushed through: filter first.
        return rows.select(
            "transaction_id",
            "customer_id",
            F.input_file_name().alias("_file"),
            *PARTITION_COLUMNS,
        )

    # Only row groups whose transaction_id range (Parquet's min/max statistics) overlaps
    # the new ids' can hold one of them: the range filter is pushed down to the Parquet
    # reader, which skips the others unread. Order ids that grow over time, as exports
    # usually have, leave the scan of a daily run at the newest files, however long the
    # history; ids in no order make it a scan of every id, as without it.
    if id_range is None:
        id_range = new_rows.agg(F.min("transaction_id"), F.max("transaction_id")).first() or (
            None,
            None,
        )
    low, high = id_range
    parts = []
    if low is not None:
        in_range = scan(loaded.where(F.col("transaction_id").between(low, high)))
        # Where no loaded row is in the range (a day of new ids, the usual case), no id
        # can match: the new ids are not gathered and broadcast for nothing.
        if in_range.limit(1).collect():
            ids = new_rows.select("transaction_id").distinct()
            parts.append(in_range.join(ids.hint("broadcast"), "transaction_id", "left_semi"))
    if new_customers is not None:
        parts.append(scan(loaded).join(F.broadcast(new_customers), "customer_id", "left_semi"))
    files = []
    if parts:
        hits = reduce(DataFrame.unionByName, parts)
        files = sorted({r["_file"] for r in hits.select("_file").distinct().collect()})
    if not files:
        return LakeChanges(append=new_rows)

    old = (
        spark.read.option("basePath", enriched_root)
        .parquet(*files)
        .select(*ENRICHED_COLUMNS, F.input_file_name().alias("_file"))
        .persist()
    )
    content = F.struct(*[F.col(c) for c in SALES_CONTENT])
    new_content = new_rows.select(
        "transaction_id", content.alias("_new_content"), F.col("_file_hash").alias("_by_hash")
    )
    if new_content.count() > BROADCAST_KEYS:
        matched = old.join(new_content, "transaction_id", "left")
    else:
        matched = old.join(F.broadcast(new_content), "transaction_id", "left")
    is_copy = F.col("_new_content") == content
    is_corrected = F.col("_new_content").isNotNull() & ~is_copy
    is_late = F.lit(False)
    if new_customers is not None:
        late = new_customers.select("customer_id", F.lit(True).alias("_new_customer"))
        matched = matched.join(F.broadcast(late), "customer_id", "left")
        is_late = F.col("_new_customer") & ~is_corrected
    flagged = matched.select(
        *ENRICHED_COLUMNS,
        "_file",
        "_by_hash",
        F.coalesce(is_copy, F.lit(False)).alias("_copy"),
        F.coalesce(is_corrected, F.lit(False)).alias("_corrected"),
        F.coalesce(is_late, F.lit(False)).alias("_late"),
    ).persist()
    tally = flagged.agg(
        F.count(F.when(F.col("_copy"), 1)).alias("copies"),
        F.count(F.when(F.col("_corrected"), 1)).alias("corrected"),
        F.count(F.when(F.col("_late"), 1)).alias("late"),
    ).first()
    assert tally is not None
    copy_ids = flagged.where("_copy").select("transaction_id")
    append = new_rows.join(F.broadcast(copy_ids), "transaction_id", "left_anti")
    changes = LakeChanges(
        append=append,
        copies_of_loaded=tally["copies"],
        replaced=tally["corrected"],
        reenriched=tally["late"],
        persisted=[old, flagged],
    )
    if not (tally["corrected"] or tally["late"]):
        return changes

    touched = flagged.where("_corrected or _late").select("_file").distinct().collect()
    rewritten = sorted(r["_file"] for r in touched)
    in_rewritten = flagged.where(F.col("_file").isin(rewritten))
    stays = in_rewritten.where(~F.col("_corrected"))
    late_rows = stays.where("_late").select(*SALES_CONTENT)
    reenriched = enrich(late_rows, customers)
    changes.rewrite = (
        stays.where(~F.col("_late"))
        .select(*ENRICHED_COLUMNS)
        .unionByName(reenriched.select(*ENRICHED_COLUMNS))
    )
    changes.removed = in_rewritten.where("_corrected").select(*ENRICHED_COLUMNS, "_by_hash")
    changes.removed_files_rows = in_rewritten.select(*ENRICHED_COLUMNS)
    changes.rewritten_files = rewritten
    changes.bytes_read_back = sum(fs.list_files(plain_path(f))[0].size for f in rewritten)
    months = in_rewritten.select(*PARTITION_COLUMNS).distinct().collect()
    changes.months_rewritten = sorted((r["year"], r["month"]) for r in months)
    changes.kept_rows = stays.count()
    return changes


# --- the summary of the months a run touches ------------------------------------------------


def _cents(col: str) -> F.Column:
    return F.rint(F.col(col).cast(T.DoubleType()) * 100).cast(T.LongType())


def month_summaries(
    spark: SparkSession,
    summary_root: str,
    fs: LocalFiles | HadoopFiles,
    new_groups: DataFrame,
    added: list[DataFrame],
    removed: list[DataFrame],
    months: list[tuple[int, int]],
) -> DataFrame:
    """The new summary rows of ``months``, every month the changes touch.

    Each group's revenue in cents and its transaction count are the old summary's plus
    the new rows' (``new_groups``: ``tables.summary_groups`` of them, already counted),
    plus the ``added`` rows (rewritten files' rows), less the ``removed`` rows; the
    average is taken again from them, as a whole run takes it, so the result equals a
    summary of the whole month.
    """
    keys = [*PARTITION_COLUMNS, "region", "product"]
    signed = [
        new_groups.select(
            *keys,
            _cents("total_revenue").alias("_c"),
            F.col("transaction_count").alias("_n"),
        )
    ]
    signed += [
        df.select(*keys, _cents("total_amount").alias("_c"), F.lit(1).alias("_n")) for df in added
    ]
    signed += [
        df.select(*keys, (-_cents("total_amount")).alias("_c"), F.lit(-1).alias("_n"))
        for df in removed
    ]
    parts = [
        join_path(summary_root, f"year={y}", f"month={m}")
        for y, m in months
        if fs.exists(join_path(summary_root, f"year={y}", f"month={m}"))
    ]
    if parts:
        signed.append(
            spark.read.schema(_SUMMARY_SUMS)
            .option("basePath", summary_root)
            .parquet(*parts)
            .select(
                *keys,
                _cents("total_revenue").alias("_c"),
                F.col("transaction_count").alias("_n"),
            )
        )
    delta = signed[0]
    for df in signed[1:]:
        delta = delta.unionByName(df)
    delta = delta.groupBy(*keys).agg(F.sum("_c").alias("_c"), F.sum("_n").alias("_n"))
    total = (F.col("_c").cast("decimal(20,0)") / 100).cast("decimal(22,2)")
    average = (total / F.col("_n").cast("decimal(20,0)")).cast("decimal(16,6)")
    summary = delta.where(F.col("_n") > 0).select(
        "region",
        "product",
        total.cast(REVENUE).alias("total_revenue"),
        F.col("_n").cast("long").alias("transaction_count"),
        average.cast(MONEY).alias("avg_transaction_value"),
        *PARTITION_COLUMNS,
    )
    return summary
