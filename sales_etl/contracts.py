"""What the job reads and writes: the raw inputs' columns, read schemas, CSV dialect;
the quarantine reasons; the output tables' columns, types and folder names; the
quarantine schema; the two errors that end a run.

Every name another file or reader relies on is spelled here once: docs/etl_job.md
describes them, and a test checks the output folders against ``pipeline/config.py`` and
the table LOCATIONs in athena_queries.sql.
"""

from __future__ import annotations

from pyspark.sql import types as T

from sales_etl.raw_files import SALES_COLUMNS, UTF8_BOM, FatalInputError  # noqa: F401

DEFAULT_JOB_NAME = "glue_etl_job"

# The raw sales header and the whole-file checks live in raw_files (read without Spark).
CUSTOMER_COLUMNS = ("customer_id", "age_group", "membership_tier", "signup_date")

CORRUPT = "_corrupt_record"

# Every string read as-is: types are applied by the job's own rules, never inferred.
SALES_READ_SCHEMA = T.StructType(
    [T.StructField(c, T.StringType()) for c in SALES_COLUMNS]
    + [T.StructField(CORRUPT, T.StringType())]
)

CUSTOMER_JSON_SCHEMA = T.StructType(
    [T.StructField(c, T.StringType()) for c in CUSTOMER_COLUMNS]
    + [T.StructField(CORRUPT, T.StringType())]
)

# The CSV dialect of both sales readers: RFC 4180 quoting, every row kept.
CSV_OPTIONS = {
    "quote": '"',
    "escape": '"',
    "mode": "PERMISSIVE",
    "columnNameOfCorruptRecord": CORRUPT,
}

# The fixed quarantine vocabulary: reason -> meaning. Checks run in this order and the
# first that fails names the row, so every rejected row has exactly one reason.
SALES_REASONS = {
    "invalid_encoding": "the row's bytes are not valid UTF-8",
    "malformed_row": "not parseable as a CSV record of 8 fields (ragged row, broken quoting)",
    "missing_field": "a required field is empty",
    "invalid_type": "quantity is not an integer, or a money value is not a decimal "
    "with at most 2 places that fits DECIMAL(12,2)",
    "invalid_date": "date is not a real calendar date in YYYY-MM-DD form",
    "future_date": "date is after the run date (UTC)",
    "non_positive_quantity": "quantity <= 0",
    "non_positive_price": "unit_price <= 0",
    "amount_mismatch": "total_amount differs from quantity x unit_price by more than "
    "0.005 x quantity + 0.005 (unit_price is a per-unit figure rounded to the cent)",
    "conflicting_duplicate": "the transaction_id appears on valid rows with different "
    "content; every copy is quarantined",
}

# The one sales reason the duplicate check gives (the others come from the row rules).
CONFLICTING_DUPLICATE = "conflicting_duplicate"

CUSTOMER_REASONS = {
    "invalid_encoding": "the line's bytes are not valid UTF-8",
    "invalid_json": "the line (or array element) is not one JSON object",
    "invalid_customer": "customer_id is empty, or signup_date is present but not a YYYY-MM-DD date",
    "duplicate_customer": "the customer_id appears on valid records with different content; "
    "every copy is quarantined",
}

REASONS = tuple(dict.fromkeys([*SALES_REASONS, *CUSTOMER_REASONS]))

# A checked sales row's typed fields: two rows with one transaction_id are exact
# duplicates when these agree, a conflict when they do not.
SALES_CONTENT = (
    "transaction_id",
    "transaction_date",
    "customer_id",
    "product",
    "quantity",
    "unit_price",
    "region",
    "total_amount",
)

# The flag columns the line-by-line reader adds (read_sales_lines) for the rules to pass on.
LINE_FLAGS = ("_header", "_odd_quotes")

# The output tables: money types, columns (partition columns last), folders.
MONEY = T.DecimalType(12, 2)

REVENUE = T.DecimalType(18, 2)

ENRICHED_COLUMNS = (
    "transaction_id",
    "transaction_date",
    "customer_id",
    "product",
    "quantity",
    "unit_price",
    "region",
    "total_amount",
    "age_group",
    "membership_tier",
    "signup_date",
    "day",
    "year",
    "month",
)

SUMMARY_COLUMNS = (
    "region",
    "product",
    "total_revenue",
    "transaction_count",
    "avg_transaction_value",
    "year",
    "month",
)

PARTITION_COLUMNS = ("year", "month")
# Read with this schema, a partitioned table's files give their row counts alone.
PARTITIONS_ONLY = T.StructType([T.StructField(c, T.IntegerType()) for c in PARTITION_COLUMNS])

# Folders under --output_path (see Outputs): enriched/year=/month=/,
# sales_summary/year=/month=/, quarantine/run_date=<date>/<run_id>.parquet (the
# quarantine root may be moved by --quarantine_path) and _runs/<run_id>.json.
ENRICHED_DIR, SUMMARY_DIR, QUARANTINE_DIR, RUNS_DIR = (
    "enriched",
    "sales_summary",
    "quarantine",
    "_runs",
)
# Records a newer file's version replaced: superseded/run_date=<date>/<run_id>.parquet (SUPERSEDED_SCHEMA).
SUPERSEDED_DIR = "superseded"


# The quarantine table: one row per rejected record, with its one reason, and the run
# that rejected it (run_started, ISO 8601 UTC, orders the runs).
QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("run_started", T.StringType(), False),
        T.StructField("source", T.StringType(), False),
        T.StructField("source_file", T.StringType()),
        T.StructField("reason", T.StringType(), False),
        T.StructField("detail", T.StringType()),
        T.StructField("record_id", T.StringType()),
        T.StructField("raw_record", T.StringType()),
        T.StructField("raw_bytes", T.BinaryType()),
    ]
)

# The superseded table: one row per record a newer file's version replaced (not
# quarantined: the newer version is the one loaded).
SUPERSEDED_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("source", T.StringType(), False),
        T.StructField("record_id", T.StringType()),
        T.StructField("source_file", T.StringType()),
        T.StructField("superseded_by", T.StringType()),
        T.StructField("record", T.StringType()),
    ]
)


# How a run ends when it cannot finish: exit code 2 (FatalInputError, from raw_files)
# and 1 (see main).
class JobFailedError(Exception):
    """The job ran but its own checks failed (e.g. reconciliation)."""
