"""Sales ETL job: raw sales CSV + customers NDJSON -> enriched and summary Parquet.

The same file runs as an AWS Glue 5.x job (Spark 3.5, Python 3.11) and locally::

    python glue_etl_job.py --sales_path data/sales.csv --customers_path data/customers.ndjson \\
        --output_path lake/sales-pipeline-processed [--run_id ID] [--quarantine_path P]

It writes, under ``--output_path``: ``enriched/year=/month=/`` and ``sales_summary/year=/month=/``
(Snappy Parquet, dynamic partition overwrite), ``quarantine/run_id=<run_id>/`` (every rejected
row with its reason) and ``_runs/<run_id>.json`` (metrics). See docs/etl_job.md.

Self-contained on purpose: Glue runs this file alone, so it imports only pyspark, the
standard library and (optionally) awsglue. It never imports the ``pipeline`` package,
except for the guarded Java helper in the local branch.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import reduce
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

log = logging.getLogger("glue_etl_job")

DEFAULT_JOB_NAME = "glue_etl_job"

# --- contracts (DESIGN.md) ------------------------------------------------------------

SALES_COLUMNS = (
    "transaction_id",
    "date",
    "customer_id",
    "product",
    "quantity",
    "unit_price",
    "region",
    "total_amount",
)
CUSTOMER_COLUMNS = ("customer_id", "age_group", "membership_tier", "signup_date")
CORRUPT = "_corrupt_record"

MONEY = T.DecimalType(12, 2)
REVENUE = T.DecimalType(18, 2)

# Every string read as-is: types are applied by the job's own rules, never inferred.
SALES_READ_SCHEMA = T.StructType(
    [T.StructField(c, T.StringType()) for c in SALES_COLUMNS]
    + [T.StructField(CORRUPT, T.StringType())]
)
CUSTOMER_JSON_SCHEMA = T.StructType(
    [T.StructField(c, T.StringType()) for c in CUSTOMER_COLUMNS]
    + [T.StructField(CORRUPT, T.StringType())]
)

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
    "amount_mismatch": "total_amount differs from quantity x unit_price by more than 0.01",
    "conflicting_duplicate": "the transaction_id appears on valid rows with different "
    "content; every copy is quarantined",
}
CUSTOMER_REASONS = {
    "invalid_encoding": "the line's bytes are not valid UTF-8",
    "invalid_json": "the line (or array element) is not one JSON object",
    "invalid_customer": "customer_id is empty, or signup_date is present but not a YYYY-MM-DD date",
    "duplicate_customer": "the customer_id appears on valid records with different content; "
    "every copy is quarantined",
}
REASONS = tuple(dict.fromkeys([*SALES_REASONS, *CUSTOMER_REASONS]))

QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("source", T.StringType(), False),
        T.StructField("source_file", T.StringType()),
        T.StructField("reason", T.StringType(), False),
        T.StructField("detail", T.StringType()),
        T.StructField("record_id", T.StringType()),
        T.StructField("raw_record", T.StringType()),
        T.StructField("raw_bytes", T.BinaryType()),
    ]
)

_QTY_RE = r"^[+-]?[0-9]{1,9}$"
_MONEY_RE = r"^[+-]?[0-9]{1,10}(\.[0-9]{1,2})?$"
# A date, optionally followed by a time of day that the job ignores.
_DATE_RE = r"^([0-9]{4}-[0-9]{2}-[0-9]{2})([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?Z?)?$"
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_UTF8_BOM = b"\xef\xbb\xbf"


class FatalInputError(Exception):
    """Input that cannot be processed at all; nothing has been written."""


class JobFailedError(Exception):
    """The job ran but its own checks failed (e.g. reconciliation)."""


# --- arguments ---------------------------------------------------------------------------

REQUIRED_ARGS = ("sales_path", "customers_path", "output_path")
OPTIONAL_ARGS = ("quarantine_path", "run_id", "JOB_NAME")


@dataclass(frozen=True)
class JobArgs:
    sales_path: str
    customers_path: str
    output_path: str
    quarantine_path: str | None = None
    run_id: str | None = None
    job_name: str = DEFAULT_JOB_NAME
    job_run_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


def _given(argv: Sequence[str], name: str) -> bool:
    flag = f"--{name}"
    return any(a == flag or a.startswith(flag + "=") for a in argv[1:])


def parse_args(argv: Sequence[str]) -> JobArgs:
    """Parse Glue-style ``--name value`` arguments; ``argv[0]`` is the script name.

    Uses ``awsglue.utils.getResolvedOptions`` when awsglue imports (it treats every
    listed option as required, so optional ones are listed only when given), an
    argparse equivalent otherwise.
    """
    wanted = list(REQUIRED_ARGS) + [o for o in OPTIONAL_ARGS if _given(argv, o)]
    try:
        from awsglue.utils import getResolvedOptions
    except ImportError:
        getResolvedOptions = None  # noqa: N806 - the awsglue name
    if getResolvedOptions is not None:
        try:
            resolved = getResolvedOptions(list(argv), wanted)
        except Exception as exc:  # GlueArgumentError or RuntimeError from awsglue
            raise FatalInputError(f"bad arguments: {exc}; {_usage()}") from None
    else:
        parser = _FallbackParser(add_help=False)
        for name in wanted:
            parser.add_argument(f"--{name}", required=True)
        parser.add_argument("--JOB_ID")
        parser.add_argument("--JOB_RUN_ID")
        parsed, _extra = parser.parse_known_args(list(argv[1:]))
        resolved = vars(parsed)
    for name in wanted:
        if not resolved.get(name):
            raise FatalInputError(f"bad arguments: --{name} is empty; {_usage()}")
    return JobArgs(
        sales_path=resolved["sales_path"],
        customers_path=resolved["customers_path"],
        output_path=resolved["output_path"],
        quarantine_path=resolved.get("quarantine_path"),
        run_id=resolved.get("run_id"),
        job_name=resolved.get("JOB_NAME") or DEFAULT_JOB_NAME,
        job_run_id=resolved.get("JOB_RUN_ID"),
        raw=dict(resolved),
    )


class _FallbackParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would print usage and exit(2)
        raise FatalInputError(f"bad arguments: {message}; {_usage()}")


def _usage() -> str:
    return (
        "usage: glue_etl_job.py --sales_path P --customers_path P --output_path P "
        "[--quarantine_path P] [--run_id ID] [--JOB_NAME NAME]"
    )


def is_glue_runtime(argv: Sequence[str]) -> bool:
    """True when running inside an AWS Glue job run.

    The Glue service always passes ``--JOB_ID`` and ``--JOB_RUN_ID`` to the script
    (awsglue's ``Job.id_params`` reserves them; user code may not define them), and a
    local invocation never does. ``import awsglue`` alone is not enough: the
    AWSGlueDataplanePython package installs locally, but ``GlueContext`` needs Glue's
    JVM jars, which exist only on Glue.
    """
    if not _given(argv, "JOB_RUN_ID"):
        return False
    try:
        import awsglue.context  # noqa: F401
    except ImportError:
        log.warning("--JOB_RUN_ID given but awsglue is not importable; running locally")
        return False
    return True


# --- file systems: local paths with the standard library, URIs through Hadoop ------------


@dataclass(frozen=True)
class InputFile:
    path: str
    size: int


def _is_local(path: str) -> bool:
    return "://" not in path


def _join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *[p.strip("/") for p in parts]])


def _hidden(name: str) -> bool:
    # Spark ignores these too (_SUCCESS, .crc files, _temporary folders).
    return name.startswith((".", "_"))


class LocalFiles:
    """Plain local paths: checked before Spark starts, so bad input fails fast."""

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def list_files(self, path: str) -> list[InputFile]:
        if os.path.isfile(path):
            return [InputFile(os.path.abspath(path), os.path.getsize(path))]
        found = []
        for folder, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not _hidden(d))
            for name in sorted(files):
                if not _hidden(name):
                    full = os.path.abspath(os.path.join(folder, name))
                    found.append(InputFile(full, os.path.getsize(full)))
        return found

    def head(self, path: str, n: int) -> bytes:
        with open(path, "rb") as fh:
            return fh.read(n)

    def write_bytes(self, path: str, data: bytes) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)

    def size_under(self, path: str) -> int:
        if not os.path.exists(path):
            return 0
        return sum(f.size for f in self.list_files(path))


class HadoopFiles:
    """``s3://``, ``file://`` and other URIs through the JVM's Hadoop FileSystem."""

    def __init__(self, spark: SparkSession) -> None:
        self._jvm = spark.sparkContext._jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()

    def _fs(self, path: str) -> tuple[Any, Any]:
        p = self._jvm.org.apache.hadoop.fs.Path(path)
        return p.getFileSystem(self._conf), p

    def exists(self, path: str) -> bool:
        fs, p = self._fs(path)
        return bool(fs.exists(p))

    def list_files(self, path: str) -> list[InputFile]:
        fs, p = self._fs(path)
        status = fs.getFileStatus(p)
        if status.isFile():
            return [InputFile(status.getPath().toString(), int(status.getLen()))]
        found = []
        it = fs.listFiles(p, True)
        while it.hasNext():
            st = it.next()
            rel = st.getPath().toString()[len(status.getPath().toString()) :]
            if not any(_hidden(part) for part in rel.split("/") if part):
                found.append(InputFile(st.getPath().toString(), int(st.getLen())))
        return sorted(found, key=lambda f: f.path)

    def head(self, path: str, n: int) -> bytes:
        fs, p = self._fs(path)
        stream = fs.open(p)
        try:
            return bytes(stream.readNBytes(n))
        finally:
            stream.close()

    def write_bytes(self, path: str, data: bytes) -> None:
        fs, p = self._fs(path)
        fs.setWriteChecksum(False)
        out = fs.create(p, True)
        try:
            out.write(bytearray(data))
        finally:
            out.close()

    def size_under(self, path: str) -> int:
        fs, p = self._fs(path)
        if not fs.exists(p):
            return 0
        return int(fs.getContentSummary(p).getLength())


def filesystem_for(path: str, spark: SparkSession | None) -> LocalFiles | HadoopFiles:
    if _is_local(path):
        return LocalFiles()
    if spark is None:
        raise RuntimeError(f"{path} needs Spark's Hadoop file system")
    return HadoopFiles(spark)


# --- input validation (before anything is written) ------------------------------------


@dataclass(frozen=True)
class InputPlan:
    sales_files: list[InputFile]
    ndjson_files: list[InputFile]
    array_files: list[InputFile]

    @property
    def customer_files(self) -> list[InputFile]:
        return sorted(self.ndjson_files + self.array_files, key=lambda f: f.path)


def _nonempty_files(fs: LocalFiles | HadoopFiles, path: str, what: str) -> list[InputFile]:
    if not fs.exists(path):
        raise FatalInputError(f"{what} input not found: {path}")
    files = fs.list_files(path)
    if not files:
        raise FatalInputError(f"{what} input is empty: no files under {path}")
    nonempty = [f for f in files if f.size > 0]
    for f in files:
        if f.size == 0:
            log.warning("%s file %s is empty; skipped", what, f.path)
    if not nonempty:
        raise FatalInputError(f"{what} input is empty: every file under {path} has 0 bytes")
    return nonempty


def check_sales_header(head: bytes, path: str) -> None:
    """Raise FatalInputError unless ``head`` starts with the sales header (BOM allowed)."""
    if head.startswith(_UTF8_BOM):
        head = head[len(_UTF8_BOM) :]
    first = re.split(rb"\r\n|\n|\r", head, maxsplit=1)[0]
    try:
        text = first.decode("utf-8")
    except UnicodeDecodeError:
        raise FatalInputError(f"header of {path} is not UTF-8 text") from None
    names = [n.strip().lower() for n in next(csv.reader(io.StringIO(text)), [])]
    if names != list(SALES_COLUMNS):
        raise FatalInputError(
            f"header mismatch in {path}: expected {','.join(SALES_COLUMNS)}; got {text.strip()[:200]}"
        )


def json_layout(head: bytes) -> str:
    """Return ``json_array`` if the file starts with ``[`` (after BOM/whitespace), else ``ndjson``."""
    if head.startswith(_UTF8_BOM):
        head = head[len(_UTF8_BOM) :]
    return "json_array" if head.lstrip()[:1] == b"[" else "ndjson"


def plan_inputs(args: JobArgs, spark: SparkSession | None) -> InputPlan:
    """Check that both inputs exist, are not empty and look right; list their files."""
    sales_fs = filesystem_for(args.sales_path, spark)
    sales = _nonempty_files(sales_fs, args.sales_path, "sales")
    for f in sales:
        check_sales_header(sales_fs.head(f.path, 65536), f.path)
    cust_fs = filesystem_for(args.customers_path, spark)
    customers = _nonempty_files(cust_fs, args.customers_path, "customers")
    ndjson, arrays = [], []
    for f in customers:
        head = cust_fs.head(f.path, 4096)
        if not head.strip(b" \t\r\n" + _UTF8_BOM):
            log.warning("customers file %s holds only whitespace; skipped", f.path)
            continue
        if json_layout(head) == "json_array":
            log.warning(
                "customers file %s is a JSON array, not NDJSON; accepted (one record per "
                "element), but write one object per line",
                f.path,
            )
            arrays.append(f)
        else:
            ndjson.append(f)
    if not ndjson and not arrays:
        raise FatalInputError(f"customers input is empty: {args.customers_path}")
    return InputPlan(sales_files=sales, ndjson_files=ndjson, array_files=arrays)


# --- reading: raw records, every one kept -----------------------------------------------


def _utf8_ok(raw_bytes: Any) -> Any:
    # Spark decodes invalid UTF-8 to U+FFFD; a valid byte string survives the round trip,
    # an invalid one does not. A genuine U+FFFD in the input (EF BF BD) is valid UTF-8.
    return F.encode(F.decode(raw_bytes, "UTF-8"), "UTF-8") == raw_bytes


def _latin1_to_utf8(col: Any) -> Any:
    return F.decode(F.encode(col, "ISO-8859-1"), "UTF-8")


def read_sales(spark: SparkSession, files: Sequence[str]) -> DataFrame:
    """Read sales CSV files into one row per CSV record, all fields as UTF-8 strings.

    The CSV is decoded as ISO-8859-1 (byte-transparent) so that invalid UTF-8 can be
    detected exactly instead of being turned into U+FFFD; multiLine handles quoted
    newlines and CRLF; the header (with or without BOM) is skipped per file (it was
    validated earlier). Columns: the 8 raw fields, ``_corrupt`` (raw text of a malformed
    record), ``_source_file``, ``_raw_record``, ``_raw_bytes``, ``_utf8_ok``.
    """
    df = (
        spark.read.schema(SALES_READ_SCHEMA)
        .option("header", True)
        .option("enforceSchema", True)
        .option("multiLine", True)
        .option("encoding", "ISO-8859-1")
        .option("quote", '"')
        .option("escape", '"')
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT)
        .csv(list(files))
        .withColumn("_source_file", F.input_file_name())
    )
    raw_l1 = F.coalesce(
        F.col(CORRUPT),
        F.to_csv(F.struct(*[F.col(c) for c in SALES_COLUMNS]), {"escape": '"'}),
    )
    raw_bytes = F.encode(raw_l1, "ISO-8859-1")
    return df.select(
        *[_latin1_to_utf8(F.col(c)).alias(c) for c in SALES_COLUMNS],
        _latin1_to_utf8(F.col(CORRUPT)).alias("_corrupt"),
        "_source_file",
        F.decode(raw_bytes, "UTF-8").alias("_raw_record"),
        raw_bytes.alias("_raw_bytes"),
        _utf8_ok(raw_bytes).alias("_utf8_ok"),
    )


def read_customers(
    spark: SparkSession, ndjson_files: Sequence[str], array_files: Sequence[str]
) -> DataFrame:
    """Read customer records as raw text, one row per NDJSON line or JSON array element.

    Columns: ``_source_file``, ``_raw_record`` (UTF-8 text), ``_raw_bytes``, ``_utf8_ok``.
    Blank lines are not records. A JSON array file that does not parse as a whole is
    one record (which then fails as invalid_json / invalid_encoding).
    """
    parts = []
    if ndjson_files:
        lines = spark.read.text(list(ndjson_files)).select(
            F.input_file_name().alias("_source_file"),
            F.col("value").cast("binary").alias("_b"),  # raw bytes, before any decoding
        )
        parts.append(lines)
    if array_files:
        whole = spark.read.text(list(array_files), wholetext=True).select(
            F.input_file_name().alias("_source_file"), F.col("value").alias("_text")
        )
        elements = F.from_json(F.col("_text"), T.ArrayType(T.StringType()))
        exploded = whole.select(
            "_source_file",
            F.explode(F.coalesce(elements, F.array(F.col("_text").cast("string")))).alias(
                "_element"
            ),
        ).select("_source_file", F.col("_element").cast("binary").alias("_b"))
        parts.append(exploded)
    raw = reduce(DataFrame.unionByName, parts)
    no_bom = F.when(
        F.substring("_b", 1, 3) == F.lit(bytearray(_UTF8_BOM)), F.expr("substring(_b, 4)")
    ).otherwise(F.col("_b"))
    raw = raw.select("_source_file", no_bom.alias("_raw_bytes"))
    raw = raw.select(
        "_source_file",
        F.decode("_raw_bytes", "UTF-8").alias("_raw_record"),
        "_raw_bytes",
        _utf8_ok(F.col("_raw_bytes")).alias("_utf8_ok"),
    )
    return raw.where(F.trim(F.col("_raw_record")) != "")


# --- transforms: DataFrame in, DataFrame out --------------------------------------------


def _blank(col: Any) -> Any:
    return col.isNull() | (col == "")


def _first_reason(checks: Sequence[tuple[Any, str, Any]]) -> tuple[Any, Any]:
    """Build (reason, detail) columns from ordered (condition, reason, detail) checks."""
    reason = detail = None
    for cond, name, text in checks:
        reason = F.when(cond, F.lit(name)) if reason is None else reason.when(cond, F.lit(name))
        detail = F.when(cond, text) if detail is None else detail.when(cond, text)
    return reason, detail


def _show(name: str, col: Any) -> Any:
    return F.concat(F.lit(f"{name}="), F.coalesce(col, F.lit("<null>")))


def _duplicates(
    df: DataFrame, key: str, content_cols: Sequence[str], conflict_reason: str
) -> DataFrame:
    """Resolve duplicate keys among valid rows (``reason`` null).

    Same key and same content: keep one, flag the others ``_extra_duplicate``.
    Same key, different content: every valid copy gets ``conflict_reason``.
    """
    valid = F.col("reason").isNull()
    content = F.struct(*[F.col(c) for c in content_cols])
    valid_content = F.when(valid, content)
    w = Window.partitionBy(key).orderBy(valid.desc(), content, F.col("_source_file"))
    whole = w.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    df = df.withColumn("_versions", F.size(F.collect_set(valid_content).over(whole)))
    df = df.withColumn(
        "_extra_duplicate",
        valid & (F.col("_versions") == 1) & (F.lag(valid_content).over(w) == content),
    )
    df = df.withColumn(
        "detail",
        F.when(
            valid & (F.col("_versions") > 1),
            F.concat(F.lit(f"{key} has "), F.col("_versions").cast("string"), F.lit(" versions")),
        ).otherwise(F.col("detail")),
    )
    df = df.withColumn(
        "reason",
        F.when(valid & (F.col("_versions") > 1), F.lit(conflict_reason)).otherwise(F.col("reason")),
    )
    return df.withColumn("_extra_duplicate", F.coalesce("_extra_duplicate", F.lit(False))).drop(
        "_versions"
    )


def classify_sales(raw: DataFrame, today: date) -> DataFrame:
    """Type and check every raw sales row.

    Returns the rows with typed columns (``transaction_date`` DATE, ``quantity`` INT,
    money DECIMAL(12,2)), ``reason``/``detail`` (null for a valid row) and
    ``_extra_duplicate`` (an exact copy of a kept row). Row count is unchanged.
    """
    t = {c: F.trim(F.col(c)) for c in SALES_COLUMNS}
    date_part = F.regexp_extract(t["date"], _DATE_RE, 1)
    tdate = F.when(date_part != "", F.to_date(date_part, "yyyy-MM-dd"))
    qty = F.when(t["quantity"].rlike(_QTY_RE), t["quantity"].cast(T.IntegerType()))
    price = F.when(t["unit_price"].rlike(_MONEY_RE), t["unit_price"].cast(MONEY))
    amount = F.when(t["total_amount"].rlike(_MONEY_RE), t["total_amount"].cast(MONEY))
    typed = raw.select(
        *[t[c].alias(c) for c in ("transaction_id", "customer_id", "product", "region")],
        t["date"].alias("_date_text"),
        t["quantity"].alias("_quantity_text"),
        t["unit_price"].alias("_unit_price_text"),
        t["total_amount"].alias("_total_amount_text"),
        tdate.alias("transaction_date"),
        qty.alias("quantity"),
        price.alias("unit_price"),
        amount.alias("total_amount"),
        "_corrupt",
        "_source_file",
        "_raw_record",
        "_raw_bytes",
        "_utf8_ok",
    )
    c = F.col
    missing = [
        _blank(c(n))
        for n in ("transaction_id", "_date_text", "customer_id", "product")
        + ("_quantity_text", "_unit_price_text", "region", "_total_amount_text")
    ]
    missing_names = F.concat_ws(
        ",",
        *[F.when(cond, F.lit(name)) for cond, name in zip(missing, SALES_COLUMNS, strict=True)],
    )
    bad_type = c("quantity").isNull() | c("unit_price").isNull() | c("total_amount").isNull()
    bad_type_detail = F.concat_ws(
        "; ",
        F.when(c("quantity").isNull(), _show("quantity", c("_quantity_text"))),
        F.when(c("unit_price").isNull(), _show("unit_price", c("_unit_price_text"))),
        F.when(c("total_amount").isNull(), _show("total_amount", c("_total_amount_text"))),
    )
    expected = c("quantity") * c("unit_price")
    reason, detail = _first_reason(
        [
            (~c("_utf8_ok"), "invalid_encoding", F.lit("bytes are not valid UTF-8")),
            (c("_corrupt").isNotNull(), "malformed_row", F.lit("not a record of 8 CSV fields")),
            (
                reduce(lambda a, b: a | b, missing),
                "missing_field",
                F.concat(F.lit("empty: "), missing_names),
            ),
            (bad_type, "invalid_type", bad_type_detail),
            (c("transaction_date").isNull(), "invalid_date", _show("date", c("_date_text"))),
            (
                c("transaction_date") > F.lit(today),
                "future_date",
                F.concat(_show("date", c("_date_text")), F.lit(f" > run date {today}")),
            ),
            (c("quantity") <= 0, "non_positive_quantity", _show("quantity", c("_quantity_text"))),
            (
                c("unit_price") <= 0,
                "non_positive_price",
                _show("unit_price", c("_unit_price_text")),
            ),
            (
                F.abs(c("total_amount") - expected) > F.lit(0.01).cast(MONEY),
                "amount_mismatch",
                F.concat(
                    _show("total_amount", c("_total_amount_text")),
                    F.lit(" but quantity x unit_price="),
                    expected.cast("string"),
                ),
            ),
        ]
    )
    classified = typed.withColumn("reason", reason).withColumn("detail", detail)
    return _duplicates(
        classified, "transaction_id", SALES_CONTENT, conflict_reason="conflicting_duplicate"
    )


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


def classify_customers(raw: DataFrame) -> DataFrame:
    """Parse and check every raw customer record.

    Returns ``customer_id, age_group, membership_tier, signup_date`` (DATE) plus
    ``reason``/``detail`` and ``_extra_duplicate``. Row count is unchanged.
    """
    text = F.trim(F.col("_raw_record"))
    parsed = F.from_json(
        F.col("_raw_record"),
        CUSTOMER_JSON_SCHEMA,
        {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT},
    )
    df = raw.withColumn("_j", parsed)
    # Jackson stops after the first value, so "{...} junk" would parse: insist on one object.
    one_object = text.startswith("{") & text.endswith("}")
    bad_json = F.col("_j").isNull() | F.col(f"_j.{CORRUPT}").isNotNull() | ~one_object
    signup_text = F.trim(F.col("_j.signup_date"))
    signup_part = F.regexp_extract(signup_text, _DATE_RE, 1)
    signup = F.when(signup_part != "", F.to_date(signup_part, "yyyy-MM-dd"))
    df = df.select(
        F.trim(F.col("_j.customer_id")).alias("customer_id"),
        F.trim(F.col("_j.age_group")).alias("age_group"),
        F.trim(F.col("_j.membership_tier")).alias("membership_tier"),
        signup.alias("signup_date"),
        signup_text.alias("_signup_text"),
        bad_json.alias("_bad_json"),
        "_source_file",
        "_raw_record",
        "_raw_bytes",
        "_utf8_ok",
    )
    c = F.col
    reason, detail = _first_reason(
        [
            (~c("_utf8_ok"), "invalid_encoding", F.lit("bytes are not valid UTF-8")),
            (c("_bad_json"), "invalid_json", F.lit("not one JSON object")),
            (_blank(c("customer_id")), "invalid_customer", F.lit("empty customer_id")),
            (
                ~_blank(c("_signup_text")) & c("signup_date").isNull(),
                "invalid_customer",
                _show("signup_date", c("_signup_text")),
            ),
        ]
    )
    df = df.withColumn("reason", reason).withColumn("detail", detail)
    return _duplicates(df, "customer_id", CUSTOMER_COLUMNS, conflict_reason="duplicate_customer")


def kept(classified: DataFrame) -> DataFrame:
    """The valid rows, one per exact duplicate group."""
    return classified.where(F.col("reason").isNull() & ~F.col("_extra_duplicate"))


def enrich(sales: DataFrame, customers: DataFrame) -> DataFrame:
    """LEFT JOIN valid sales to valid customers (broadcast); add year, month, day.

    Returns ENRICHED_COLUMNS plus ``_known_customer`` (false when no customer matched).
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
    )


def summarize(enriched: DataFrame) -> DataFrame:
    """Revenue, transaction count and average value by region, product, year, month.

    ``avg_transaction_value`` is rounded half-up to the cent.
    """
    return (
        enriched.groupBy("year", "month", "region", "product")
        .agg(
            F.sum("total_amount").cast(REVENUE).alias("total_revenue"),
            F.count(F.lit(1)).alias("transaction_count"),
            F.avg("total_amount").cast(MONEY).alias("avg_transaction_value"),
        )
        .select(*SUMMARY_COLUMNS)
    )


def quarantine_records(
    sales: DataFrame | None, customers: DataFrame | None, run_id: str
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


# --- Spark sessions ----------------------------------------------------------------------

# Settings the job relies on, applied on Glue and locally.
JOB_SQL_CONF = {
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.compression.codec": "snappy",
    "spark.sql.legacy.timeParserPolicy": "CORRECTED",
    "spark.sql.ansi.enabled": "false",
}


def apply_job_conf(spark: SparkSession) -> None:
    for key, value in JOB_SQL_CONF.items():
        spark.conf.set(key, value)


def build_local_spark(app_name: str = DEFAULT_JOB_NAME, master: str | None = None) -> SparkSession:
    """A SparkSession for a small machine: local[*], few shuffle partitions, no UI, quiet."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    cores = os.cpu_count() or 2
    builder = (
        SparkSession.builder.master(master or os.environ.get("SPARK_MASTER", "local[*]"))
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.log.level", "ERROR")
        .config("spark.sql.shuffle.partitions", str(max(4, 2 * cores)))
        .config("spark.default.parallelism", str(max(4, 2 * cores)))
        .config("spark.driver.memory", os.environ.get("SPARK_DRIVER_MEMORY", "2g"))
        .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.executor.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.sql.adaptive.enabled", "true")
    )
    for key, value in JOB_SQL_CONF.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    apply_job_conf(spark)
    return spark


# --- the run -----------------------------------------------------------------------------


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(ts: datetime) -> str:
    return ts.isoformat(timespec="seconds").replace("+00:00", "Z")


def default_run_id(args: JobArgs, now: datetime) -> str:
    if args.run_id:
        return args.run_id
    if args.job_run_id:
        return args.job_run_id
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"


def _counts_by_reason(classified: DataFrame) -> tuple[int, int, dict[str, int], int]:
    """Return (rows, valid rows kept, {reason: n}, exact duplicates dropped) in one pass."""
    rows = classified.groupBy("reason", "_extra_duplicate").count().collect()
    total = sum(r["count"] for r in rows)
    by_reason: dict[str, int] = {}
    valid = dups = 0
    for r in rows:
        if r["reason"] is not None:
            by_reason[r["reason"]] = by_reason.get(r["reason"], 0) + r["count"]
        elif r["_extra_duplicate"]:
            dups += r["count"]
        else:
            valid += r["count"]
    return total, valid, by_reason, dups


def _write_partitioned(df: DataFrame, path: str) -> None:
    # One task per (year, month): a few files per partition, never one per input split.
    (
        df.repartition(*PARTITION_COLUMNS)
        .sortWithinPartitions(*PARTITION_COLUMNS)
        .write.mode("overwrite")
        .option("partitionOverwriteMode", "dynamic")
        .option("compression", "snappy")
        .partitionBy(*PARTITION_COLUMNS)
        .parquet(path)
    )


def run_job(
    spark: SparkSession,
    args: JobArgs,
    plan: InputPlan,
    *,
    run_id: str,
    started: datetime,
) -> dict[str, Any]:
    """Read, check, transform and write; return the metrics (also written to _runs/)."""
    t0 = time.monotonic()
    durations: dict[str, float] = {}
    output = (
        args.output_path if not _is_local(args.output_path) else os.path.abspath(args.output_path)
    )
    qroot = args.quarantine_path or _join(output, "quarantine")
    if _is_local(qroot):
        qroot = os.path.abspath(qroot)
    enriched_root = _join(output, "enriched")
    summary_root = _join(output, "sales_summary")
    quarantine_dir = _join(qroot, f"run_id={run_id}")
    out_fs = filesystem_for(output, spark)
    q_fs = filesystem_for(qroot, spark)
    today = started.date()

    step = time.monotonic()
    sales = classify_sales(read_sales(spark, [f.path for f in plan.sales_files]), today)
    sales = sales.persist()
    customers = classify_customers(
        read_customers(
            spark, [f.path for f in plan.ndjson_files], [f.path for f in plan.array_files]
        )
    ).persist()
    sales_read, _sales_valid, sales_q, sales_dups = _counts_by_reason(sales)
    cust_read, cust_written, cust_q, cust_dups = _counts_by_reason(customers)
    if sales_read == 0:
        raise FatalInputError(f"sales input is empty: no data rows under {args.sales_path}")
    if cust_read == 0:
        raise FatalInputError(f"customers input is empty: no records under {args.customers_path}")
    enriched = enrich(kept(sales), kept(customers)).persist()
    per_month = (
        enriched.groupBy(*PARTITION_COLUMNS)
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum((~F.col("_known_customer")).cast("long")).alias("unknown"),
        )
        .collect()
    )
    months = sorted((r["year"], r["month"]) for r in per_month)
    enriched_rows = sum(r["rows"] for r in per_month)
    unknown_rows = sum(r["unknown"] for r in per_month)
    durations["read_and_check"] = round(time.monotonic() - step, 3)

    sales_q_total, cust_q_total = sum(sales_q.values()), sum(cust_q.values())
    planned = {
        "sales": _reconcile(sales_read, enriched_rows, sales_q_total, sales_dups),
        "customers": _reconcile(cust_read, cust_written, cust_q_total, cust_dups),
    }
    metrics: dict[str, Any] = {
        "run_id": run_id,
        "job_name": args.job_name,
        "status": "running",
        "started_at": _iso(started),
        "finished_at": None,
        "run_date": today.isoformat(),
        "inputs": {
            "sales": {
                "path": args.sales_path,
                "format": "csv",
                "files": [f.path for f in plan.sales_files],
            },
            "customers": {
                "path": args.customers_path,
                "format": _customer_format(plan),
                "files": [f.path for f in plan.customer_files],
            },
        },
        "outputs": {
            "enriched": enriched_root,
            "sales_summary": summary_root,
            "quarantine": quarantine_dir,
        },
        "rows_read": {"sales": sales_read, "customers": cust_read},
        "rows_written": {"enriched": 0, "sales_summary": 0},
        "rows_quarantined": {
            r: sales_q.get(r, 0) + cust_q.get(r, 0) for r in REASONS if r in sales_q or r in cust_q
        },
        "rows_quarantined_by_source": {"sales": dict(sales_q), "customers": dict(cust_q)},
        "quarantined_total": sales_q_total + cust_q_total,
        "duplicates_dropped": sales_dups + cust_dups,
        "duplicates_dropped_by_source": {"sales": sales_dups, "customers": cust_dups},
        "customers_loaded": cust_written,
        "unknown_customers": unknown_rows,
        "partitions_written": [f"year={y}/month={m}" for y, m in months],
        "bytes_read": {
            "sales": sum(f.size for f in plan.sales_files),
            "customers": sum(f.size for f in plan.customer_files),
        },
        "bytes_written": {"enriched": 0, "sales_summary": 0, "quarantine": 0},
        "durations_seconds": durations,
        "reason_vocabulary": {"sales": SALES_REASONS, "customers": CUSTOMER_REASONS},
        "reconciliation": planned,
    }
    runs_file = _join(output, "_runs", f"{run_id}.json")
    if not all(r["ok"] for r in planned.values()):
        # Nothing written yet: fail before touching the outputs.
        return _finish(
            metrics, out_fs, runs_file, t0, failed="rows do not reconcile before writing"
        )

    if enriched_rows:
        step = time.monotonic()
        _write_partitioned(enriched.select(*ENRICHED_COLUMNS), enriched_root)
        durations["write_enriched"] = round(time.monotonic() - step, 3)
        step = time.monotonic()
        summary = summarize(enriched)
        _write_partitioned(summary, summary_root)
        durations["write_summary"] = round(time.monotonic() - step, 3)
    else:
        log.warning("no valid sales rows: enriched/ and sales_summary/ left untouched")
    step = time.monotonic()
    quarantine = quarantine_records(sales, customers, run_id)
    if sales_q_total + cust_q_total:
        quarantine.coalesce(1).write.mode("overwrite").parquet(quarantine_dir)
    durations["write_quarantine"] = round(time.monotonic() - step, 3)

    # Verify what is now on storage, not what was planned.
    step = time.monotonic()
    parts = [f"year={y}/month={m}" for y, m in months]
    written_enriched = _count_parquet(spark, enriched_root, parts)
    written_summary = _count_parquet(spark, summary_root, parts)
    q_by_source = {"sales": 0, "customers": 0}
    if sales_q_total + cust_q_total:
        for r in spark.read.parquet(quarantine_dir).groupBy("source").count().collect():
            q_by_source[r["source"]] = r["count"]
    metrics["rows_written"] = {"enriched": written_enriched, "sales_summary": written_summary}
    metrics["reconciliation"] = {
        "sales": _reconcile(sales_read, written_enriched, q_by_source["sales"], sales_dups),
        "customers": _reconcile(cust_read, cust_written, q_by_source["customers"], cust_dups),
    }
    metrics["bytes_written"] = {
        "enriched": sum(out_fs.size_under(_join(enriched_root, p)) for p in parts),
        "sales_summary": sum(out_fs.size_under(_join(summary_root, p)) for p in parts),
        "quarantine": q_fs.size_under(quarantine_dir) if sum(q_by_source.values()) else 0,
    }
    durations["verify"] = round(time.monotonic() - step, 3)
    for df in (sales, customers, enriched):
        df.unpersist()
    ok = all(r["ok"] for r in metrics["reconciliation"].values())
    return _finish(
        metrics, out_fs, runs_file, t0, failed=None if ok else "rows do not reconcile after writing"
    )


def _customer_format(plan: InputPlan) -> str:
    if plan.ndjson_files and plan.array_files:
        return "mixed"
    return "json_array" if plan.array_files else "ndjson"


def _reconcile(read: int, written: int, quarantined: int, dups: int) -> dict[str, Any]:
    return {
        "read": read,
        "written": written,
        "quarantined": quarantined,
        "duplicates_dropped": dups,
        "ok": read == written + quarantined + dups,
    }


def _count_parquet(spark: SparkSession, root: str, parts: list[str]) -> int:
    if not parts:
        return 0
    return spark.read.option("basePath", root).parquet(*[_join(root, p) for p in parts]).count()


def _finish(
    metrics: dict[str, Any],
    fs: LocalFiles | HadoopFiles,
    runs_file: str,
    t0: float,
    failed: str | None,
) -> dict[str, Any]:
    metrics["status"] = "failed" if failed else "succeeded"
    if failed:
        metrics["error"] = failed
    metrics["finished_at"] = _iso(_utc_now())
    metrics["durations_seconds"]["total"] = round(time.monotonic() - t0, 3)
    metrics["metrics_path"] = runs_file
    fs.write_bytes(runs_file, (json.dumps(metrics, indent=2, sort_keys=False) + "\n").encode())
    if failed:
        raise JobFailedError(f"{failed}: {json.dumps(metrics['reconciliation'])}; see {runs_file}")
    return metrics


# --- entry points ------------------------------------------------------------------------


class _GlueLogHandler(logging.Handler):
    """Forward this module's log records to the Glue logger (CloudWatch)."""

    def __init__(self, glue_logger: Any) -> None:
        super().__init__()
        self._glue = glue_logger

    def emit(self, record: logging.LogRecord) -> None:
        msg = self.format(record)
        if record.levelno >= logging.ERROR:
            self._glue.error(msg)
        elif record.levelno >= logging.WARNING:
            self._glue.warn(msg)
        else:
            self._glue.info(msg)


def _check_run_id(run_id: str) -> str:
    if not _RUN_ID_RE.match(run_id):
        raise FatalInputError(
            f"bad --run_id {run_id!r}: use letters, digits, '_', '.', '-' (it names files)"
        )
    return run_id


def _summary_line(m: dict[str, Any]) -> str:
    return (
        f"run {m['run_id']} {m['status']}: read {m['rows_read']['sales']} sales rows and "
        f"{m['rows_read']['customers']} customers; wrote {m['rows_written']['enriched']} enriched "
        f"rows in {len(m['partitions_written'])} partitions; quarantined {m['quarantined_total']}; "
        f"dropped {m['duplicates_dropped']} exact duplicates; "
        f"{m['unknown_customers']} rows with unknown customers; metrics {m['metrics_path']}"
    )


def _main_glue(args: JobArgs) -> dict[str, Any]:
    from awsglue.context import GlueContext
    from awsglue.job import Job
    from pyspark.context import SparkContext

    started = _utc_now()
    glue_context = GlueContext(SparkContext.getOrCreate())
    spark = glue_context.spark_session
    handler = _GlueLogHandler(glue_context.get_logger())
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        job = Job(glue_context)
        job.init(args.job_name, args.raw)
        apply_job_conf(spark)
        run_id = _check_run_id(default_run_id(args, started))
        plan = plan_inputs(args, spark)
        metrics = run_job(spark, args, plan, run_id=run_id, started=started)
        log.info(_summary_line(metrics))
        job.commit()
        return metrics
    finally:
        log.removeHandler(handler)


def _main_local(args: JobArgs) -> dict[str, Any]:
    started = _utc_now()
    run_id = _check_run_id(default_run_id(args, started))
    local_inputs = _is_local(args.sales_path) and _is_local(args.customers_path)
    plan = plan_inputs(args, None) if local_inputs else None  # fail fast, before the JVM
    try:
        from pipeline.java import ensure_java
    except ImportError:  # the file was copied somewhere on its own: trust JAVA_HOME/PATH
        ensure_java = None
    if ensure_java is not None:
        ensure_java()
    created = SparkSession.getActiveSession() is None
    spark = build_local_spark()
    try:
        if plan is None:
            plan = plan_inputs(args, spark)
        return run_job(spark, args, plan, run_id=run_id, started=started)
    finally:
        if created:
            spark.stop()


def _quiet_libraries() -> None:
    for name in ("py4j", "py4j.clientserver", "py4j.java_gateway", "pyspark"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] | None = None) -> int:
    """Run the job; return the process exit code (0 ok, 2 fatal input, 1 job failure).

    The last line written (to stderr on failure) is always one readable sentence.
    """
    argv = list(sys.argv if argv is None else argv)
    if not log.handlers and not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
    _quiet_libraries()
    try:
        args = parse_args(argv)
        if is_glue_runtime(argv):
            metrics = _main_glue(args)
        else:
            metrics = _main_local(args)
    except FatalInputError as exc:
        message, code = f"ERROR: {_one_line(exc)}", 2
    except JobFailedError as exc:
        message, code = f"ERROR: job failed: {_one_line(exc)}", 1
    except Exception as exc:  # anything else: keep the trace in the log, end with one line
        log.exception("job failed")
        message, code = f"ERROR: job failed: {type(exc).__name__}: {_one_line(exc)}", 1
    else:
        print(_summary_line(metrics), flush=True)
        return 0
    sys.stdout.flush()
    print(message, file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
