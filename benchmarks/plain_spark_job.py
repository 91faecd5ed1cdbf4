#!/usr/bin/env python
"""Reference for benchmarks/bench_etl.py: the ETL job's work as plain PySpark, no quality rules.

    python benchmarks/plain_spark_job.py SALES_CSV_OR_FOLDER CUSTOMERS_NDJSON OUTPUT_DIR

One CSV read (header, explicit schema, no multiLine, Spark's default PERMISSIVE mode:
a value that does not parse becomes null and the row is kept), a broadcast LEFT JOIN to
the customers read with an explicit JSON schema, year/month/day, and two Snappy Parquet
tables partitioned by year/month with mode overwrite: OUTPUT_DIR/enriched and
OUTPUT_DIR/sales_summary. The enriched rows are persisted (memory and disk), as the job
does, so the CSV is parsed once for both tables. No validation, deduplication,
quarantine, repartitioning before the write, or metrics.

The session is the job's own (``build_local_spark`` from glue_etl_job.py: local[*],
shuffle partitions, 2g driver memory, the JVM's compilers chosen by the input's size,
the job's SQL settings), so the comparison is about the work, not the settings. Prints
one JSON line on stdout: ``{"read_partitions": <partitions of the CSV DataFrame>}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyspark.sql import functions as F  # noqa: E402
from pyspark.sql import types as T  # noqa: E402

from pipeline.java import ensure_java  # noqa: E402
from sales_etl.local_session import build_local_spark  # noqa: E402

MONEY = T.DecimalType(12, 2)
REVENUE = T.DecimalType(18, 2)

SALES_SCHEMA = T.StructType(
    [
        T.StructField("transaction_id", T.StringType()),
        T.StructField("date", T.DateType()),
        T.StructField("customer_id", T.StringType()),
        T.StructField("product", T.StringType()),
        T.StructField("quantity", T.IntegerType()),
        T.StructField("unit_price", MONEY),
        T.StructField("region", T.StringType()),
        T.StructField("total_amount", MONEY),
    ]
)
CUSTOMERS_SCHEMA = T.StructType(
    [
        T.StructField("customer_id", T.StringType()),
        T.StructField("age_group", T.StringType()),
        T.StructField("membership_tier", T.StringType()),
        T.StructField("signup_date", T.DateType()),
    ]
)


def input_bytes(*paths: str) -> int:
    """Bytes of the files at ``paths`` (a file, or every file under a folder)."""
    total = 0
    for path in map(Path, paths):
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        total += sum(p.stat().st_size for p in files)
    return total


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    sales_path, customers_path, output = argv
    ensure_java()
    # As the job does: the input's size picks the JVM's compilers.
    spark = build_local_spark(
        "plain_spark_job", input_bytes=input_bytes(sales_path, customers_path)
    )
    try:
        sales = spark.read.schema(SALES_SCHEMA).option("header", True).csv(sales_path)
        customers = spark.read.schema(CUSTOMERS_SCHEMA).json(customers_path)
        read_partitions = sales.rdd.getNumPartitions()
        enriched = sales.join(F.broadcast(customers), on="customer_id", how="left").select(
            "transaction_id",
            F.col("date").alias("transaction_date"),
            "customer_id",
            "product",
            "quantity",
            "unit_price",
            "region",
            "total_amount",
            "age_group",
            "membership_tier",
            "signup_date",
            F.dayofmonth("date").alias("day"),
            F.year("date").alias("year"),
            F.month("date").alias("month"),
        )
        enriched = enriched.persist()  # the CSV is read once, for both tables
        (
            enriched.write.mode("overwrite")
            .option("compression", "snappy")
            .partitionBy("year", "month")
            .parquet(f"{output}/enriched")
        )
        summary = enriched.groupBy("year", "month", "region", "product").agg(
            F.sum("total_amount").cast(REVENUE).alias("total_revenue"),
            F.count(F.lit(1)).alias("transaction_count"),
            F.avg("total_amount").cast(MONEY).alias("avg_transaction_value"),
        )
        (
            summary.write.mode("overwrite")
            .option("compression", "snappy")
            .partitionBy("year", "month")
            .parquet(f"{output}/sales_summary")
        )
    finally:
        spark.stop()
    print(json.dumps({"read_partitions": read_partitions}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
