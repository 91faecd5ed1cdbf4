"""The output tables from the kept rows: the customer join, the monthly summary, and
the quarantine rows. DataFrame in, DataFrame out.
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from sales_etl.contracts import MONEY, REVENUE


def enrich(sales: DataFrame, customers: DataFrame) -> DataFrame:
    """LEFT JOIN valid sales to valid customers (broadcast); add year, month, day.

    Returns ENRICHED_COLUMNS plus ``_known_customer`` (false when no customer matched),
    and ``_file_hash`` when the sales have it (which file a row came from).
    """
    cust = customers.select(
        "customer_id", "age_group", "membership_tier", "signup_date", F.lit(True).alias("_known")
    )
    joined = sales.join(F.broadcast(cust), on="customer_id", how="left")
    return joined.select(
        "transaction_id",
        "transaction_date",
        "customer_id",
        "product",
        "quantity",
        F.col("unit_price").cast(MONEY).alias("unit_price"),
        "region",
        F.col("total_amount").cast(MONEY).alias("total_amount"),
        "age_group",
        "membership_tier",
        "signup_date",
        F.dayofmonth("transaction_date").alias("day"),
        F.year("transaction_date").alias("year"),
        F.month("transaction_date").alias("month"),
        F.coalesce(F.col("_known"), F.lit(False)).alias("_known_customer"),
        *(["_file_hash"] if "_file_hash" in sales.columns else []),
    )


# A money value's cents are summed as two longs, the high bits and the low 20 bits, so no
# sum overflows however many rows a group has (a DECIMAL(12,2) is below 2^40 cents).
_LOW_BITS = 20


def summary_groups(enriched: DataFrame) -> DataFrame:
    """The summary table's rows (SUMMARY_COLUMNS, avg_transaction_value rounded half-up to
    the cent) plus ``_unknown``: rows in the group with an unknown customer.

    The run counts the enriched rows per month from these groups, in the same pass that
    builds the summary, so the summary is not a second pass over the enriched rows.

    Revenue and average are exactly what Spark's sum and avg of ``total_amount`` give
    (DECIMAL(22,2) sum, null on overflow; avg = sum / count at DECIMAL(16,6), then half-up
    to the cent), computed from integer cents: Spark adds a DECIMAL(22,2) through
    java.math.BigDecimal for every row, which costs CPU time. A value to the
    cent, times 100 as a double and rounded, is its cents: the error is far below half a
    cent.
    """
    cents = F.rint(F.col("total_amount").cast(T.DoubleType()) * 100).cast(T.LongType())
    groups = enriched.groupBy("year", "month", "region", "product").agg(
        F.sum(F.shiftright(cents, _LOW_BITS)).alias("_high"),
        F.sum(cents.bitwiseAND((1 << _LOW_BITS) - 1)).alias("_low"),
        F.count(F.lit(1)).alias("transaction_count"),
        F.sum((~F.col("_known_customer")).cast("long")).alias("_unknown"),
    )
    total_cents = F.col("_high").cast("decimal(20,0)") * (1 << _LOW_BITS) + F.col("_low")
    total = (total_cents / 100).cast("decimal(22,2)")  # Spark's sum type for DECIMAL(12,2)
    average = (total / F.col("transaction_count").cast("decimal(20,0)")).cast("decimal(16,6)")
    return groups.select(
        "year",
        "month",
        "region",
        "product",
        total.cast(REVENUE).alias("total_revenue"),
        "transaction_count",
        average.cast(MONEY).alias("avg_transaction_value"),
        "_unknown",
    )


def quarantine_records(
    sales: DataFrame | None, customers: DataFrame | None, run_id: str, run_started: str
) -> DataFrame:
    """Rejected rows of both sources in QUARANTINE_SCHEMA order."""
    parts = []
    for source, df, id_col in (
        ("sales", sales, "transaction_id"),
        ("customers", customers, "customer_id"),
    ):
        if df is None:
            continue
        bad = df.where(F.col("reason").isNotNull())
        parts.append(
            bad.select(
                F.lit(run_id).alias("run_id"),
                F.lit(run_started).alias("run_started"),
                F.lit(source).alias("source"),
                F.col("_source_file").alias("source_file"),
                "reason",
                "detail",
                F.col(id_col).alias("record_id"),
                F.col("_raw_record").alias("raw_record"),
                F.when(F.col("reason") == "invalid_encoding", F.col("_raw_bytes")).alias(
                    "raw_bytes"
                ),
            )
        )
    return reduce(DataFrame.unionByName, parts)


def superseded_records(parts: list[tuple[str, DataFrame]], run_id: str) -> DataFrame | None:
    """Records a newer version replaced, in SUPERSEDED_SCHEMA order (None: none).

    Each part is (source, rows with ``record_id``, ``source_file``, ``superseded_by``
    and ``record``, the replaced version's fields as JSON).
    """
    if not parts:
        return None
    frames = [
        df.select(
            F.lit(run_id).alias("run_id"),
            F.lit(source).alias("source"),
            "record_id",
            "source_file",
            "superseded_by",
            "record",
        )
        for source, df in parts
    ]
    return reduce(DataFrame.unionByName, frames)
