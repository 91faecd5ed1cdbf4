"""Sales ETL job: raw sales CSV + customers NDJSON -> enriched and summary Parquet.

The file, top to bottom, in the order the data flows through it:

- contracts: the raw inputs' columns, read schemas, CSV dialect and value formats; the
  quarantine reasons; the output tables' columns, types and folder names; the quarantine
  schema; the two errors that end a run.
- arguments: ``--sales_path`` and the others, parsed as Glue passes them.
- file systems: listing, reading and writing files, on local paths or through Hadoop.
- input validation: both inputs checked and listed before anything is written.
- Spark sessions: the SQL settings the job relies on, and the session outside Glue.
- reading: every raw record of both sources, as text and exact bytes.
- transforms: the row rules, duplicates, the customer join, the summary and the
  quarantine rows (DataFrame in, DataFrame out).
- the run: ``run_job``, a short sequence of the four steps that follow it, each in its
  own section: 1. read and classify, 2. metrics, 3. write, 4. verify, then the metrics
  file. Their phases log as read_and_check, write_enriched, write_summary,
  write_quarantine and verify.
- entry points: ``main``, on Glue or locally; exit codes and the last line printed.

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
import hashlib
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import reduce
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Observation, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

log = logging.getLogger("glue_etl_job")

DEFAULT_JOB_NAME = "glue_etl_job"

# --- contracts: what the job reads and writes ---------------------------------------------
# Every column, format, reason and folder name that another file or reader relies on:
# docs/etl_job.md describes them; tests/test_names_agree.py checks the output folders
# against pipeline/config.py and the table LOCATIONs in athena_queries.sql.

# The raw sales CSV: its header, in this order (any case; surrounding spaces and a BOM
# are allowed), and the customer record keys.
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
_UTF8_BOM = b"\xef\xbb\xbf"

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

# Value formats the row rules accept, on the trimmed text.
_QTY_RE = r"^[+-]?[0-9]{1,9}$"
_MONEY_RE = r"^[+-]?[0-9]{1,10}(\.[0-9]{1,2})?$"
# A date, optionally followed by a time of day that the job ignores.
_DATE_RE = r"^([0-9]{4}-[0-9]{2}-[0-9]{2})([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?Z?)?$"
# date|quantity|unit_price|total_amount, each in its format above. No format admits a
# "|" and concat_ws skips a null, so this matches exactly when each field matches its own.
_TYPED_FIELDS_RE = (
    "^" + "\\|".join(r[1:-1] for r in (_DATE_RE, _QTY_RE, _MONEY_RE, _MONEY_RE)) + "$"
)

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
_LINE_FLAGS = ("_header", "_odd_quotes")

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
# Folders under --output_path (see Outputs): enriched/year=/month=/,
# sales_summary/year=/month=/, quarantine/run_id=<run_id>/ (the quarantine root may be
# moved by --quarantine_path) and _runs/<run_id>.json.
ENRICHED_DIR, SUMMARY_DIR, QUARANTINE_DIR, RUNS_DIR = (
    "enriched",
    "sales_summary",
    "quarantine",
    "_runs",
)
# Spark's own staging folder for dynamic partition overwrite; a killed run leaves it.
_STAGING_PREFIX = ".spark-staging-"
# The quarantine table: one row per rejected record, with its one reason.
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

# A run id names the quarantine folder and the metrics file.
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


# How a run ends when it cannot finish: exit code 2 and 1 (see main).
class FatalInputError(Exception):
    """Input that cannot be processed at all; nothing has been written."""


class JobFailedError(Exception):
    """The job ran but its own checks failed (e.g. reconciliation)."""


# --- arguments ---------------------------------------------------------------------------

REQUIRED_ARGS = ("sales_path", "customers_path", "output_path")
OPTIONAL_ARGS = ("quarantine_path", "run_id", "JOB_NAME", "metrics_namespace", "pipeline_prefix")


@dataclass(frozen=True)
class JobArgs:
    sales_path: str
    customers_path: str
    output_path: str
    quarantine_path: str | None = None
    run_id: str | None = None
    job_name: str = DEFAULT_JOB_NAME
    job_run_id: str | None = None
    # Publish the run's figures to CloudWatch in this namespace, dimension Pipeline=<prefix>.
    metrics_namespace: str | None = None
    pipeline_prefix: str | None = None
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
    if bool(resolved.get("metrics_namespace")) != bool(resolved.get("pipeline_prefix")):
        raise FatalInputError(
            f"bad arguments: --metrics_namespace and --pipeline_prefix go together; {_usage()}"
        )
    return JobArgs(
        sales_path=resolved["sales_path"],
        customers_path=resolved["customers_path"],
        output_path=resolved["output_path"],
        quarantine_path=resolved.get("quarantine_path"),
        run_id=resolved.get("run_id"),
        job_name=resolved.get("JOB_NAME") or DEFAULT_JOB_NAME,
        job_run_id=resolved.get("JOB_RUN_ID"),
        metrics_namespace=resolved.get("metrics_namespace"),
        pipeline_prefix=resolved.get("pipeline_prefix"),
        raw=dict(resolved),
    )


class _FallbackParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would print usage and exit(2)
        raise FatalInputError(f"bad arguments: {message}; {_usage()}")


def _usage() -> str:
    return (
        "usage: glue_etl_job.py --sales_path P --customers_path P --output_path P "
        "[--quarantine_path P] [--run_id ID] [--JOB_NAME NAME] "
        "[--metrics_namespace NS --pipeline_prefix PREFIX]"
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

    def remove_children(self, path: str, prefix: str) -> list[str]:
        """Delete the entries directly under ``path`` whose name starts with ``prefix``."""
        if not os.path.isdir(path):
            return []
        removed = []
        for name in sorted(os.listdir(path)):
            if name.startswith(prefix):
                full = os.path.join(path, name)
                shutil.rmtree(full) if os.path.isdir(full) else os.remove(full)
                removed.append(full)
        return removed


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

    def remove_children(self, path: str, prefix: str) -> list[str]:
        """Delete the entries directly under ``path`` whose name starts with ``prefix``."""
        fs, p = self._fs(path)
        if not fs.exists(p):
            return []
        removed = []
        for st in fs.listStatus(p):
            if st.getPath().getName().startswith(prefix):
                fs.delete(st.getPath(), True)
                removed.append(st.getPath().toString())
        return sorted(removed)


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
    # Each sales file's first line as stored, less a UTF-8 BOM (Hadoop's line reader
    # drops it): the header lines the parallel reader skips.
    sales_headers: tuple[str, ...] = ()

    @property
    def customer_files(self) -> list[InputFile]:
        return sorted(self.ndjson_files + self.array_files, key=lambda f: f.path)

    @property
    def input_bytes(self) -> int:
        """Bytes of every input file, sales and customers."""
        return sum(f.size for f in (*self.sales_files, *self.customer_files))


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


def check_sales_header(head: bytes, path: str) -> str:
    """Return the header line (without a BOM) if ``head`` starts with the sales header.

    Raises FatalInputError otherwise.
    """
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
    return text


def json_layout(head: bytes) -> str:
    """Return ``json_array`` if the file starts with ``[`` (after BOM/whitespace), else ``ndjson``."""
    if head.startswith(_UTF8_BOM):
        head = head[len(_UTF8_BOM) :]
    return "json_array" if head.lstrip()[:1] == b"[" else "ndjson"


def plan_inputs(args: JobArgs, spark: SparkSession | None) -> InputPlan:
    """Check that both inputs exist, are not empty and look right; list their files."""
    sales_fs = filesystem_for(args.sales_path, spark)
    sales = _nonempty_files(sales_fs, args.sales_path, "sales")
    headers = {check_sales_header(sales_fs.head(f.path, 65536), f.path) for f in sales}
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
    return InputPlan(
        sales_files=sales,
        ndjson_files=ndjson,
        array_files=arrays,
        sales_headers=tuple(sorted(headers)),
    )


# --- Spark sessions ----------------------------------------------------------------------

# Settings the job relies on, applied on Glue and locally.
JOB_SQL_CONF = {
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.compression.codec": "snappy",
    "spark.sql.legacy.timeParserPolicy": "CORRECTED",
    "spark.sql.ansi.enabled": "false",
    # The row rules make one large generated method. The JVM does not JIT-compile a
    # method over 8,000 bytes of bytecode (HotSpot's HugeMethodLimit), so above that the
    # whole read-and-check stage would run interpreted, 2-3x slower; at this limit Spark
    # falls back to per-operator code in small methods instead.
    "spark.sql.codegen.hugeMethodLimit": "8000",
    # The persisted rows are a row id and one struct (see _persist_packed); choosing a
    # compression scheme for them costs more than it saves (10M rows: 5 s more to persist).
    "spark.sql.inMemoryColumnarStorage.compressed": "false",
    "spark.sql.maxConcurrentOutputFileWriters": "32",
    # Read splits: Spark cuts the input into (input bytes / default parallelism) pieces,
    # a multiple of the cores, unless that exceeds this cap. At the default cap (128 MB)
    # a 605 MB file on 2 cores became 5 tasks, the last running alone; at 256 MB it is
    # 4 (10M rows: the job 55 -> 51 s, plain Spark on the same settings 34 -> 30 s).
    "spark.sql.files.maxPartitionBytes": "256m",
}


def apply_job_conf(spark: SparkSession) -> None:
    for key, value in JOB_SQL_CONF.items():
        spark.conf.set(key, value)


def launched_by_spark_submit() -> bool:
    """True when ``spark-submit`` started this Python process.

    spark-submit starts the JVM first (with ``--master`` and the cluster's settings) and
    hands its gateway to Python through ``PYSPARK_GATEWAY_PORT``; a plain ``python``
    run has no JVM yet.
    """
    return "PYSPARK_GATEWAY_PORT" in os.environ


def build_local_spark(
    app_name: str = DEFAULT_JOB_NAME,
    master: str | None = None,
    *,
    input_bytes: int | None = None,
) -> SparkSession:
    """The job's SparkSession outside Glue.

    Started with ``python``: local[*] (or ``$SPARK_MASTER``), few shuffle partitions,
    driver memory, no UI, quiet; ``input_bytes``, the run's input size when it is known
    before the JVM starts, picks the JVM's compilers (``local_jvm_options``). Started by
    ``spark-submit``: the master and resources spark-submit chose are kept; only the
    job's own SQL settings are applied.
    """
    if launched_by_spark_submit() and master is None:
        builder = SparkSession.builder.appName(app_name)
        for key, value in JOB_SQL_CONF.items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
        apply_job_conf(spark)
        return spark
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    cores = os.cpu_count() or 2
    cds = class_data_sharing_options()
    jvm_options = local_jvm_options(input_bytes)
    if _C1_ONLY in jvm_options:
        log.info("input of %d bytes: the driver JVM compiles with C1 only", input_bytes)
    builder = (
        SparkSession.builder.master(master or os.environ.get("SPARK_MASTER", "local[*]"))
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.log.level", "ERROR")
        .config("spark.sql.shuffle.partitions", str(max(4, 2 * cores)))
        .config("spark.default.parallelism", str(max(4, 2 * cores)))
        .config("spark.driver.memory", os.environ.get("SPARK_DRIVER_MEMORY", "2g"))
        .config("spark.driver.extraJavaOptions", " ".join([*jvm_options, *cds]))
        .config("spark.executor.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.sql.adaptive.enabled", "true")
    )
    for key, value in JOB_SQL_CONF.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    if any(o.startswith("-XX:ArchiveClassesAtExit=") for o in cds):
        _cds_note_class_path(spark)
    apply_job_conf(spark)
    return spark


# The local driver JVM. Parallel GC, not G1 (Java's default): a batch job wants throughput,
# and G1's concurrent marking competed with the tasks for the 2 cores while the persisted
# rows filled the heap (10M rows: 2.1 s of pauses instead of 0.9 s plus the marking; the
# cache build 22 -> 20 s, the whole job 59 -> 55 s).
_LOCAL_JVM_OPTIONS = ("-Duser.timezone=UTC", "-XX:+UseParallelGC")

# A run on an input this small is mostly the JVM's first pass through Spark's code. Java
# compiles hot code twice, quickly (C1) and then optimized (C2); on 2 cores the C2
# compiler thread competes with the run for a core and its code arrives too late to pay
# off. With C1 only: 10,000 rows (684 KB), the job 10.9 -> 8.1 s (medians of three in
# alternation); 1M rows (62 MB) 18.9 -> 18.2 s, within noise; 10M rows (605 MB) 51 ->
# 95 s, where C2's code is what makes the run fast. Hence C1 only up to 4 MiB.
_C1_ONLY_MAX_BYTES = 4 * 1024 * 1024
_C1_ONLY = "-XX:TieredStopAtLevel=1"


def local_jvm_options(input_bytes: int | None) -> list[str]:
    """JVM options for a local driver whose run reads ``input_bytes`` (None: unknown)."""
    small = input_bytes is not None and input_bytes <= _C1_ONLY_MAX_BYTES
    return [*_LOCAL_JVM_OPTIONS, *([_C1_ONLY] if small else [])]


# A local JVM starts faster from an archive of the classes Spark loaded the last time
# (Java's class-data sharing): 10,000 rows, the whole job run 12 s -> 9.5 s. The archive
# is made by one run (the JVM writes it as it exits), checked by a throwaway JVM before
# any run relies on it (a truncated archive crashes the JVM that maps it), and kept per
# Java runtime and Spark version. SALES_PIPELINE_CDS=0 turns it off.
_CDS_QUIET = ("-Xlog:cds=off", "-Xlog:cds+dynamic=off")
_CDS_STALE_SECONDS = 600
# An archive not written to for this long is finished (or its writer is gone): only then
# is it checked, so the check never maps a file still being written.
_CDS_SETTLED_SECONDS = 20


def class_data_sharing_options() -> list[str]:
    """JVM options for the local driver: use the class archive, or make it; [] if neither."""
    if os.environ.get("SALES_PIPELINE_CDS", "1") == "0":
        return []
    archive = _cds_archive_path()
    if archive is None:
        return []
    if archive.is_file():
        return [f"-XX:SharedArchiveFile={archive}", *_CDS_QUIET]
    pending = archive.with_name(archive.name + ".new")
    try:
        archive.parent.mkdir(parents=True, exist_ok=True)
        lock = archive.with_name(archive.name + ".lock")
        if pending.is_file():
            age = time.time() - pending.stat().st_mtime
            if age < _CDS_SETTLED_SECONDS:
                return []  # still being written
            if _cds_archive_works(pending, lock):
                pending.replace(archive)
                return [f"-XX:SharedArchiveFile={archive}", *_CDS_QUIET]
            if age < _CDS_STALE_SECONDS:
                return []  # not usable yet; removed once stale
            pending.unlink()
        if lock.exists() and time.time() - lock.stat().st_mtime < _CDS_STALE_SECONDS:
            return []  # another run is making it
        lock.write_text("")  # the class path, once the JVM runs (_cds_note_class_path)
    except OSError:  # no writable cache folder: start without sharing
        return []
    return [f"-XX:ArchiveClassesAtExit={pending}", *_CDS_QUIET]


def _cds_archive_path() -> Path | None:
    """Where the archive for this Java runtime and this pyspark lives (None: no Java 17+)."""
    home = os.environ.get("JAVA_HOME")
    if not home:
        return None
    try:
        release = (Path(home) / "release").read_text()
    except OSError:
        return None
    match = re.search(r'^JAVA_VERSION="(\d+)', release, re.MULTILINE)
    if not match or int(match.group(1)) < 17:
        return None
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    # The JVM refuses an archive (and then starts without one, silently) when a jar of its
    # class path is not the very file it was made with: a reinstalled venv has the same
    # names at the same path, so each jar's size and modification time are in the key.
    names = (
        sorted(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in jars.glob("*.jar"))
        if jars.is_dir()
        else []
    )
    # The archive holds only with the class path it was made with: the jars' folder too.
    key = "\n".join([os.path.realpath(home), release, str(jars.resolve()), *names])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sales-pipeline"
    return cache / f"spark-{pyspark.__version__}-java{match.group(1)}-{digest}.jsa"


def _cds_note_class_path(spark: SparkSession) -> None:
    """Write the driver JVM's class path into the lock: the archive is only valid with it."""
    archive = _cds_archive_path()
    if archive is None:
        return
    class_path = spark.sparkContext._jvm.System.getProperty("java.class.path")  # type: ignore[union-attr]
    try:
        archive.with_name(archive.name + ".lock").write_text(class_path)
    except OSError:
        pass


def _cds_archive_works(candidate: Path, lock: Path) -> bool:
    """True when a throwaway JVM with the driver's class path starts with ``candidate``.

    A partial archive (its JVM killed while writing it) would crash every JVM that maps it.
    """
    java = Path(os.environ["JAVA_HOME"]) / "bin" / "java"
    try:
        class_path = lock.read_text()
    except OSError:
        return False
    if not class_path:
        return False
    try:
        # In a folder of its own: a crashing JVM leaves its hs_err_pid<N>.log where it runs.
        with tempfile.TemporaryDirectory() as scratch:
            done = subprocess.run(
                [
                    str(java),
                    *_LOCAL_JVM_OPTIONS,
                    "-Xshare:on",
                    f"-XX:SharedArchiveFile={candidate}",
                    "-cp",
                    class_path,
                    "-version",
                ],
                cwd=scratch,
                capture_output=True,
                timeout=60,
                check=False,
            )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


# --- reading: raw records, every one kept -----------------------------------------------


def _utf8_ok(raw_bytes: Any) -> Any:
    # Spark decodes invalid UTF-8 to U+FFFD; a valid byte string survives the round trip,
    # an invalid one does not. A genuine U+FFFD in the input (EF BF BD) is valid UTF-8.
    return F.encode(F.decode(raw_bytes, "UTF-8"), "UTF-8") == raw_bytes


def _latin1_to_utf8(col: Any) -> Any:
    return F.decode(F.encode(col, "ISO-8859-1"), "UTF-8")


def _odd_quotes(line: Any) -> Any:
    """True when a line holds an odd number of ``"``: a quoted field goes on past its end.

    A file where no line does has no quoted line break, so each line is one record.
    """
    quotes = F.length(line) - F.length(F.translate(line, '"', ""))
    # contains() compares bytes; instr() counts characters to find a position (10M lines:
    # 1.4 s less for the scan).
    return F.when(line.contains('"'), quotes % 2 == 1).otherwise(F.lit(False))


def _text_lines(spark: SparkSession, files: Sequence[str]) -> DataFrame:
    """``_source_file`` and ``value`` (the raw bytes) of every non-empty line."""
    return (
        spark.read.text(list(files))
        .select(F.input_file_name().alias("_source_file"), "value")
        .where(F.col("value") != "")
    )


def read_sales_lines(
    spark: SparkSession, files: Sequence[str], header_lines: Sequence[str]
) -> DataFrame:
    """Read sales CSV files line by line, in parallel: one row per non-empty line.

    The fast path. Spark splits each file into many read tasks; every line is parsed on
    its own with the CSV dialect of ``read_sales``. That is right only for a file whose
    records never span lines, so two flag columns let the caller check: ``_odd_quotes``
    (the line holds an odd number of quotes: it opens or closes a quoted line break) and
    ``_header`` (the line equals a file's header line: the header, which is not a record,
    or a data line that looks like one). Lines are read as raw bytes (the text source
    does not decode), so invalid UTF-8 is detected exactly and ``_raw_record`` is the
    exact line. Columns: as ``read_sales``, plus ``_header`` and ``_odd_quotes``.
    """
    return parse_sales_lines(_text_lines(spark, files), header_lines)


def parse_sales_lines(lines: DataFrame, header_lines: Sequence[str]) -> DataFrame:
    """Parse the ``value`` of each row of ``lines`` (see ``read_sales_lines``)."""
    line = F.col("value")
    raw_bytes = line.cast("binary")
    parsed = F.from_csv(line, SALES_READ_SCHEMA.simpleString(), CSV_OPTIONS)
    return lines.select(
        "_source_file", "value", raw_bytes.alias("_raw_bytes"), parsed.alias("_p")
    ).select(
        *[F.col(f"_p.{c}").alias(c) for c in SALES_COLUMNS],
        F.col(f"_p.{CORRUPT}").alias("_corrupt"),
        "_source_file",
        F.decode("_raw_bytes", "UTF-8").alias("_raw_record"),
        "_raw_bytes",
        _utf8_ok(F.col("_raw_bytes")).alias("_utf8_ok"),
        line.isin(list(header_lines)).alias("_header"),
        _odd_quotes(line).alias("_odd_quotes"),
    )


def read_sales(spark: SparkSession, files: Sequence[str]) -> DataFrame:
    """Read sales CSV files into one row per CSV record, all fields as UTF-8 strings.

    The slow path, for files with quoted line breaks: Spark reads each file in one task.
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
        .options(**CSV_OPTIONS)
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


def _with_reason(df: DataFrame, checks: Sequence[tuple[Any, str, Any]]) -> DataFrame:
    """Add ``reason`` and ``detail`` from ordered (condition, reason, detail) checks.

    ``reason`` names the first check that holds (null: the row is valid). ``detail`` is
    picked by that name: null at once for a valid row, so no condition is evaluated a
    second time for it (10M sales rows: 4-9 CPU seconds less than testing each
    condition again under SQL's three-valued AND); a rejected row's condition is checked
    again only where two checks share a reason.
    """
    names = [name for _, name, _ in checks]
    reason = None
    detail = F.when(F.col("reason").isNull(), F.lit(None).cast(T.StringType()))
    for cond, name, text in checks:
        reason = F.when(cond, F.lit(name)) if reason is None else reason.when(cond, F.lit(name))
        hit = F.col("reason") == F.lit(name)
        detail = detail.when(hit & cond if names.count(name) > 1 else hit, text)
    return df.withColumn("reason", reason).withColumn("detail", detail)


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
    return _duplicates(
        check_sales_rows(raw, today),
        "transaction_id",
        SALES_CONTENT,
        conflict_reason=CONFLICTING_DUPLICATE,
    )


def check_sales_rows(raw: DataFrame, today: date) -> DataFrame:
    """Type every raw sales row and apply the rules that look at one row alone.

    As ``classify_sales`` without the duplicate check (no ``_extra_duplicate``).
    Flag columns of ``read_sales_lines`` (``_header``, ``_odd_quotes``) pass through.
    """
    t = {c: F.trim(F.col(c)) for c in SALES_COLUMNS}
    # One regex match for the four typed fields of a well-formed row instead of four
    # (each match converts its text to a Java string first); a field whose format is
    # wrong fails it, and then each field is matched on its own.
    formats_ok = F.concat_ws(
        "|", t["date"], t["quantity"], t["unit_price"], t["total_amount"]
    ).rlike(_TYPED_FIELDS_RE)
    date_part = F.when(formats_ok, F.substring(t["date"], 1, 10)).otherwise(
        F.regexp_extract(t["date"], _DATE_RE, 1)
    )
    # The cast gives what to_date(yyyy-MM-dd) gives on these 10 characters (null for a
    # date that is not in the calendar) at a fraction of the cost: 10M rows, 2 s less.
    tdate = F.when(date_part != "", date_part.cast(T.DateType()))
    qty = F.when(formats_ok | t["quantity"].rlike(_QTY_RE), t["quantity"].cast(T.IntegerType()))
    price = F.when(formats_ok | t["unit_price"].rlike(_MONEY_RE), t["unit_price"].cast(MONEY))
    amount = F.when(formats_ok | t["total_amount"].rlike(_MONEY_RE), t["total_amount"].cast(MONEY))
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
        *[f for f in _LINE_FLAGS if f in raw.columns],
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
    return _with_reason(
        typed,
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
                # In thousandths of a unit, so the comparison stays exact.
                F.abs(c("total_amount") - expected) * 1000 > c("quantity").cast("long") * 5 + 5,
                "amount_mismatch",
                F.concat(
                    _show("total_amount", c("_total_amount_text")),
                    F.lit(" but quantity x unit_price="),
                    expected.cast("string"),
                    F.lit(" (tolerance "),
                    ((c("quantity").cast("long") * 5 + 5) / 1000)
                    .cast("decimal(16,3)")
                    .cast("string"),
                    F.lit(")"),
                ),
            ),
        ],
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
    signup = F.when(signup_part != "", signup_part.cast(T.DateType()))
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
    df = _with_reason(
        df,
        [
            (~c("_utf8_ok"), "invalid_encoding", F.lit("bytes are not valid UTF-8")),
            (c("_bad_json"), "invalid_json", F.lit("not one JSON object")),
            (_blank(c("customer_id")), "invalid_customer", F.lit("empty customer_id")),
            (
                ~_blank(c("_signup_text")) & c("signup_date").isNull(),
                "invalid_customer",
                _show("signup_date", c("_signup_text")),
            ),
        ],
    )
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
    return summary_groups(enriched).select(*SUMMARY_COLUMNS)


# A money value's cents are summed as two longs, the high bits and the low 20 bits, so no
# sum overflows however many rows a group has (a DECIMAL(12,2) is below 2^40 cents).
_LOW_BITS = 20


def summary_groups(enriched: DataFrame) -> DataFrame:
    """``summarize``'s rows plus ``_unknown``: rows in the group with an unknown customer.

    The run counts the enriched rows per month from these groups, in the same pass that
    builds the summary, so the summary is not a second pass over the enriched rows.

    Revenue and average are exactly what Spark's sum and avg of ``total_amount`` give
    (DECIMAL(22,2) sum, null on overflow; avg = sum / count at DECIMAL(16,6), then half-up
    to the cent), computed from integer cents: Spark adds a DECIMAL(22,2) through
    java.math.BigDecimal for every row (10M rows: 2-3 CPU seconds more). A value to the
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


# --- the run: run_job, then its four steps in the order it calls them ---------------------


def run_job(
    spark: SparkSession,
    args: JobArgs,
    plan: InputPlan,
    *,
    run_id: str,
    started: datetime,
) -> dict[str, Any]:
    """Read, check, transform and write; return the metrics (also written to _runs/).

    Four steps; the phases in them are logged as they start and end:

    1. ``read_and_classify`` (phase read_and_check): one parallel pass over the sales
       input, persisted; the customers; the counts; the reconciliation planned before
       anything is written.
    2. ``planned_metrics``: the metrics document, filled in with those counts. If the
       planned reconciliation does not hold, the run stops here: it writes the metrics
       file (status failed) and nothing else.
    3. ``write_outputs`` (write_enriched, write_summary, write_quarantine): from the
       persisted rows, not re-read.
    4. ``verify_outputs`` (verify): counts what is now on storage and reconciles again.

    Then ``_finish`` writes the metrics file; a run whose written rows do not reconcile
    ends failed.
    """
    run = RunContext.start(spark, args, plan, run_id=run_id, started=started)
    with _evaluation(spark, plan) as evaluation:
        checked = read_and_classify(run)
        metrics = planned_metrics(run, checked)
        metrics["read_plan"]["evaluation"] = evaluation
        if not _all_ok(checked.planned):
            # Nothing written yet: fail before touching the outputs.
            return _finish(run, metrics, failed="rows do not reconcile before writing")
        reread = write_outputs(run, checked, metrics)
        verify_outputs(run, checked, metrics)
    for df in (*checked.persisted, reread):
        if df is not None:
            df.unpersist()
    ok = _all_ok(metrics["reconciliation"])
    return _finish(run, metrics, failed=None if ok else "rows do not reconcile after writing")


# An input this small is evaluated without generated code. Compiling the row rules' code
# costs about a second, more than interpreting the rules on so few rows: 10,000 rows
# (634 KB), the whole job 10.4 -> 9.4 s (medians of three runs in alternation). On 1M
# rows (62 MB) interpreting took 23 s instead of 17 s, about 6 s more per million rows,
# so the gain would end near 150,000 rows (10 MB); 4 MiB keeps a margin.
_INTERPRETED_MAX_BYTES = 4 * 1024 * 1024


@contextmanager
def _evaluation(spark: SparkSession, plan: InputPlan) -> Iterator[str]:
    """For the block, how Spark evaluates this run's expressions: ``"interpreted"`` when
    the input (sales and customers) is at most ``_INTERPRETED_MAX_BYTES``, else
    ``"generated code"`` (Spark's default). Either way every rule gives the same result
    (tests/test_glue_etl_job.py runs a dirty input both ways)."""
    size = plan.input_bytes
    if size > _INTERPRETED_MAX_BYTES:
        yield "generated code"
        return
    log.info("input of %d bytes: expressions are interpreted, not compiled", size)
    with (
        _sql_conf(spark, "spark.sql.codegen.wholeStage", "false"),
        # Whole-stage code off still compiles code per expression; this setting (internal
        # to Spark, which tests its interpreted path against the generated one) stops that.
        _sql_conf(spark, "spark.sql.codegen.factoryMode", "NO_CODEGEN"),
    ):
        yield "interpreted"


@dataclass(frozen=True)
class RunContext:
    """What every step of one run needs: Spark, the arguments and inputs, where it writes."""

    spark: SparkSession
    args: JobArgs
    plan: InputPlan
    run_id: str
    started: datetime
    t0: float  # time.monotonic() at the start, for durations_seconds.total
    out: Outputs
    out_fs: LocalFiles | HadoopFiles  # the file system of out.root
    durations: dict[str, float]  # phase -> seconds, filled in as each phase ends

    @classmethod
    def start(
        cls,
        spark: SparkSession,
        args: JobArgs,
        plan: InputPlan,
        *,
        run_id: str,
        started: datetime,
    ) -> RunContext:
        t0 = time.monotonic()
        out = Outputs.for_run(args, run_id)
        out_fs = filesystem_for(out.root, spark)
        return cls(spark, args, plan, run_id, started, t0, out, out_fs, durations={})

    @property
    def today(self) -> date:
        """The run date (UTC): a sale dated after it is a future_date."""
        return self.started.date()


@dataclass
class Outputs:
    """Where one run writes."""

    root: str
    enriched: str
    summary: str
    quarantine: str
    runs_file: str

    @classmethod
    def for_run(cls, args: JobArgs, run_id: str) -> Outputs:
        root = _absolute(args.output_path)
        qroot = _absolute(args.quarantine_path or _join(root, QUARANTINE_DIR))
        return cls(
            root=root,
            enriched=_join(root, ENRICHED_DIR),
            summary=_join(root, SUMMARY_DIR),
            quarantine=_join(qroot, f"run_id={run_id}"),
            runs_file=_join(root, RUNS_DIR, f"{run_id}.json"),
        )


def _absolute(path: str) -> str:
    return os.path.abspath(path) if _is_local(path) else path


@contextmanager
def _phase(name: str, durations: dict[str, float]) -> Iterator[dict[str, int]]:
    """Log a phase's start and end (with its rows when the caller sets ``rows``)."""
    log.info("phase %s: started", name)
    step = time.monotonic()
    info: dict[str, int] = {}
    yield info
    durations[name] = round(time.monotonic() - step, 3)
    rows = f", {info['rows']} rows" if "rows" in info else ""
    log.info("phase %s: done in %.1f s%s", name, durations[name], rows)


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


# --- step 1: read and classify (phase read_and_check) --------------------------------------


@dataclass(frozen=True)
class Checked:
    """Every input record read once and classified; the counts before anything is written."""

    read: SalesRead  # how the sales input was read, and the frames it persisted
    sales: DataFrame  # every sales record: reason and _extra_duplicate final
    outcome: DataFrame | None  # the duplicate check's outcome, persisted (None: no repeats)
    customers: DataFrame  # every customer record, classified (persisted)
    enriched: DataFrame  # kept sales LEFT JOIN kept customers, with year, month, day
    groups: DataFrame  # summary_groups(enriched), persisted: the summary and the counts
    counts: Counts
    planned: dict[str, dict[str, Any]]  # the reconciliation per source, from the counts

    @property
    def persisted(self) -> list[DataFrame | None]:
        """What this step persisted, to unpersist once the outputs are verified."""
        return [*self.read.persisted, self.outcome, self.customers, self.groups]


def read_and_classify(run: RunContext) -> Checked:
    """Step 1: read every record once, classify it, count the outcomes and reconcile them.

    The sales are read in parallel, checked and persisted (``read_and_check_sales``);
    while that pass runs, a thread reads, checks, persists and counts the customers
    (``check_customers``). The sales' repeated transaction ids are resolved
    (``resolve_sales_duplicates``); valid sales are joined to valid customers
    (``enrich``) and one Spark job counts the enriched rows (``count_rows``). An input
    with no records is fatal.
    """
    with (
        _phase("read_and_check", run.durations) as phase,
        ThreadPoolExecutor(1, thread_name_prefix="customers") as pool,
    ):
        checking: list[Future[tuple[DataFrame, SourceCounts]]] = []
        # Started once the sales pass is planned: planned side by side, both plans took
        # longer (10M rows: 1.8 s of planning became 3.4 s).
        read = read_and_check_sales(
            run.spark,
            run.plan,
            run.today,
            meanwhile=lambda: checking.append(pool.submit(check_customers, run)),
        )
        sales, outcome, sales_counts = resolve_sales_duplicates(read)
        customers, customer_counts = checking[0].result() if checking else check_customers(run)
        enriched = enrich(kept(sales), kept(customers))
        groups = summary_groups(enriched).persist(StorageLevel.MEMORY_AND_DISK)
        counts = count_rows(sales_counts, customer_counts, groups)
        if counts.sales.read == 0:
            raise FatalInputError(f"sales input is empty: no data rows under {run.args.sales_path}")
        if counts.customers.read == 0:
            raise FatalInputError(
                f"customers input is empty: no records under {run.args.customers_path}"
            )
        phase["rows"] = counts.sales.read

    s, c = counts.sales, counts.customers
    planned = {
        "sales": _reconcile(s.read, counts.enriched_rows, sum(s.by_reason.values()), s.duplicates),
        "customers": _reconcile(c.read, c.valid, sum(c.by_reason.values()), c.duplicates),
    }
    return Checked(read, sales, outcome, customers, enriched, groups, counts, planned)


def read_and_check_sales(
    spark: SparkSession,
    plan: InputPlan,
    today: date,
    meanwhile: Callable[[], object] | None = None,
) -> SalesRead:
    """Read every sales file once, in parallel where its records are lines, and check rows.

    Pass 1 reads all files line by line (many tasks per big file), applies the row rules
    and persists the typed rows; the same pass finds the repeated transaction ids and
    counts the records by outcome, the lines with an odd number of quotes and the lines
    equal to a header (every file has one: its own). Where those totals cannot show that
    every file is plain, a scan of the persisted rows counts them per file. A file with
    either (a quoted line break, or a data line that looks like a header) is read again,
    alone, by the multiLine reader, and its line-by-line rows are dropped. Returns one
    row per CSV record. ``meanwhile`` is called as pass 1 is about to start, to start
    other work beside it.
    """
    files = [f.path for f in plan.sales_files]
    lines = read_sales_lines(spark, files, plan.sales_headers)
    packed, fast = _persist_packed(
        _compact(check_sales_rows(lines, today), F.monotonically_increasing_id())
    )
    key_partitions = _key_partitions(spark, plan)
    # One action persists the rows and finds the repeated transaction ids; as the rows
    # stream into that shuffle, Spark's observed metrics count them by outcome and count
    # header lines and lines with an odd number of quotes (a second scan of the persisted
    # rows for these took 1.8 s at 10M rows).
    observation = Observation(f"sales_lines_{uuid.uuid4().hex[:8]}")
    observed = fast.observe(observation, *_line_metrics())
    # Adaptive execution is off for this one action. With it, Spark builds the persisted
    # rows in a job of their own and then scans them again for the shuffle (10M rows:
    # 3.6 s more); and when no id repeats, the result is empty and its rule for empty
    # relations replaces the plan that holds the metrics (they would be lost).
    with (
        _sql_conf(spark, "spark.sql.adaptive.enabled", "false"),
        _job_group(spark, "read_sales") as group,
    ):
        # Header lines are invalid rows: never counted.
        repeated = _repeated_ids(observed, key_partitions).persist()
        if meanwhile is not None:
            meanwhile()
        repeated_count = repeated.count()
    tasks = _first_stage_tasks(spark, group)
    by_key = {_file_key(f): f for f in files}
    found = _lines_by_observation(observation.get, len(files))
    if found is None or not _ran_once(spark, group):
        # A file with a quoted line break or a second header line, or metrics that a rerun
        # stage may have counted twice: count per file, by a scan of the persisted rows.
        log.info("sales lines counted per file (a scan of the persisted rows)")
        found = _lines_by_file(fast)
    seen, file_outcomes, file_names = found
    slow = sorted(f for f, r in seen.items() if r["odd_quotes"] or r["headers"] != 1)
    parallel = sorted(set(seen) - set(slow))
    source_paths = {f: by_key.get(_file_key(f), f) for f in seen}
    outcomes = _add_counts(
        {}, [(reason, n) for f, reason, n in file_outcomes if f is None or f in parallel]
    )
    rows = fast.where(~F.col("_header")).drop(*_LINE_FLAGS)
    persisted = [packed]
    if slow:
        for f in slow:
            log.info(
                "sales file %s has %d line(s) with an odd number of quotes (a quoted line "
                "break) and %d header line(s): read whole by the multiLine reader (one task)",
                f,
                seen[f]["odd_quotes"],
                seen[f]["headers"],
            )
        # Negative row ids keep them apart from the parallel rows' ids.
        packed_multi, multi = _persist_packed(
            _compact(
                check_sales_rows(read_sales(spark, [source_paths[s] for s in slow]), today),
                -1 - F.monotonically_increasing_id(),
            )
        )
        persisted.append(packed_multi)
        slow_hashes = [h for h, f in file_names.items() if f in slow]
        rows = rows.where(~F.col("_file_hash").isin(slow_hashes)).unionByName(multi)
        repeated.unpersist()
        repeated = _repeated_ids(rows, key_partitions).persist()
        repeated_count = repeated.count()
        multi_outcomes = multi.groupBy("reason").count().collect()
        outcomes = _add_counts(outcomes, [(r["reason"], r["count"]) for r in multi_outcomes])
        tasks += len(slow)
    persisted.append(repeated)
    return SalesRead(
        rows,
        repeated,
        repeated_count,
        outcomes,
        parallel,
        slow,
        tasks,
        persisted,
        source_paths,
        files,
        file_names,
    )


_VALID = "valid"
_LINE_TOTALS = ("_records", "_headers", "_odd_quotes", "_header_files")


def _line_metrics() -> list[Any]:
    """Observed metrics of the line-by-line rows (see ``_lines_by_observation``)."""
    header, reason = F.col("_header"), F.col("reason")
    record = ~header
    return [
        F.count(F.when(record & reason.isNull(), 1)).alias(_VALID),
        *[F.count(F.when(record & (reason == r), 1)).alias(r) for r in SALES_REASONS],
        F.count(F.when(record, 1)).alias("_records"),
        F.count(F.when(header, 1)).alias("_headers"),
        F.count(F.when(F.col("_odd_quotes"), 1)).alias("_odd_quotes"),
        # As JSON text: the metrics come back through py4j, which converts no arrays.
        F.to_json(F.collect_set(F.when(header, F.struct("_file_hash", "_source_file")))).alias(
            "_header_files"
        ),
    ]


# (per file name: header lines and odd-quote lines; records by (file or None, outcome);
# file name by _file_hash)
FileLines = tuple[
    dict[str, dict[str, int]], list[tuple[str | None, str | None, int]], dict[int, str]
]


def _lines_by_observation(metrics: dict[str, Any], files: int) -> FileLines | None:
    """Per file header lines and odd-quote lines, and records by outcome, from the metrics.

    Only when each of the ``files`` has exactly one header line (its own) and no line has
    an odd number of quotes: then every file is read line by line and the totals are
    all that is needed (outcomes are given with file None). Otherwise None.
    """
    if set(metrics) != {_VALID, *SALES_REASONS, *_LINE_TOTALS}:
        return None  # not observed (see read_and_check_sales)
    header_files = json.loads(metrics["_header_files"])
    names = {h["_file_hash"]: h["_source_file"] for h in header_files}
    by_reason = [(None, metrics[_VALID]), *[(r, metrics[r]) for r in SALES_REASONS]]
    if (
        metrics["_odd_quotes"]
        or not metrics["_headers"] == len(header_files) == len(names) == files
        or sum(n for _, n in by_reason) != metrics["_records"]
    ):
        return None
    seen = {f: {"headers": 1, "odd_quotes": 0} for f in names.values()}
    return seen, [(None, reason, n) for reason, n in by_reason], names


def _lines_by_file(rows: DataFrame) -> FileLines:
    """Per file header lines and odd-quote lines, and records by file and outcome.

    Files are told apart by ``_file_hash``; the names come from the rows that keep one
    (every file has its header line). Two names with one hash end the run.
    """
    stats = (
        rows.groupBy("_file_hash", "reason")
        .agg(
            F.sum((~F.col("_header")).cast("long")).alias("rows"),
            F.sum(F.col("_header").cast("long")).alias("headers"),
            F.sum(F.col("_odd_quotes").cast("long")).alias("odd_quotes"),
            F.min("_source_file").alias("first_name"),
            F.max("_source_file").alias("last_name"),
        )
        .collect()
    )
    names: dict[int, str] = {}
    for r in stats:
        for name in {r["first_name"], r["last_name"]} - {None}:
            if names.setdefault(r["_file_hash"], name) != name:
                raise JobFailedError(
                    f"sales files {names[r['_file_hash']]} and {name} have the same 64-bit "
                    "name hash; rename one"
                )
    seen: dict[str, dict[str, int]] = {}
    for r in stats:
        file = seen.setdefault(names[r["_file_hash"]], {"headers": 0, "odd_quotes": 0})
        file["headers"] += r["headers"]
        file["odd_quotes"] += r["odd_quotes"]
    return seen, [(names[r["_file_hash"]], r["reason"], r["rows"]) for r in stats], names


def _ran_once(spark: SparkSession, group: str) -> bool:
    """True when every stage of a job group ran once: its observed metrics counted each
    row once. Spark merges a map task's metrics for every successful attempt, so a stage
    run again (an executor lost) or a speculative copy of a task would count rows twice.
    """
    if spark.conf.get("spark.speculation", "false").lower() == "true":
        return False
    tracker = spark.sparkContext.statusTracker()
    for job_id in tracker.getJobIdsForGroup(group):
        job = tracker.getJobInfo(job_id)
        if job is None:
            return False
        for stage_id in job.stageIds:
            stage = tracker.getStageInfo(stage_id)
            if stage is not None and stage.currentAttemptId != 0:
                return False
    return True


def _add_counts(
    counts: dict[str | None, int], pairs: Sequence[tuple[str | None, int]]
) -> dict[str | None, int]:
    for key, n in pairs:
        if n:
            counts[key] = counts.get(key, 0) + n
    return counts


@dataclass
class SalesRead:
    """The checked sales rows (persisted) and how the input was read."""

    rows: DataFrame
    repeated: DataFrame  # hashes of transaction ids on more than one valid row (persisted)
    repeated_count: int
    # Records by the row rules' outcome (None: valid), before duplicates are resolved.
    outcomes: dict[str | None, int]
    parallel_files: list[str]
    multiline_files: list[str]
    tasks: int
    persisted: list[DataFrame]
    source_paths: dict[str, str]  # Spark's file name -> the path as planned
    # The files of the line-by-line pass, in its order: read again in the same order,
    # the same lines get the same row ids (see conflicting_rows_with_raw).
    line_files: list[str]
    # Spark's file name by _file_hash. ``rows`` keep the name (``_source_file``) on
    # rejected rows only; every row has its hash.
    file_names: dict[int, str]

    def read_plan(self) -> dict[str, Any]:
        return {
            "tasks": self.tasks,
            "parallel_files": self.parallel_files,
            "multiline_files": self.multiline_files,
        }


def _compact(rows: DataFrame, uid: Any) -> DataFrame:
    """Only what later steps use, plus a row id that stays fixed once persisted.

    Raw text and bytes are kept for rejected rows alone. So is the file name (and for
    header lines, which name every file): a 60-byte path on every row made persisting
    10M rows 1.5-2.5 s slower. Every row has ``_file_hash``, the 64-bit hash of its
    file's name, which ``SalesRead.file_names`` maps back.
    """
    rejected = F.col("reason").isNotNull()
    named = rejected | F.col("_header") if "_header" in rows.columns else rejected
    return rows.select(
        uid.alias("_row_id"),
        *SALES_CONTENT,
        F.when(named, F.col("_source_file")).alias("_source_file"),
        F.xxhash64("_source_file").alias("_file_hash"),
        "reason",
        "detail",
        F.when(rejected, F.col("_raw_record")).alias("_raw_record"),
        F.when(F.col("reason") == "invalid_encoding", F.col("_raw_bytes")).alias("_raw_bytes"),
        *[f for f in _LINE_FLAGS if f in rows.columns],
    )


def _persist_packed(rows: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Persist ``rows`` as ``_row_id`` plus one struct of all other columns.

    Spark's columnar cache keeps statistics for every string column of every batch,
    which cost as much as the rule checks for the content strings; a struct is stored
    as its row bytes, without them (10M rows: persisting took 5.5 s instead of 15 s,
    with the cache's compression off, see JOB_SQL_CONF).
    Returns (the persisted frame, to unpersist; its rows with the columns unpacked).
    """
    others = [c for c in rows.columns if c != "_row_id"]
    packed = rows.select("_row_id", F.struct(*others).alias("_r"))
    packed = packed.persist(StorageLevel.MEMORY_AND_DISK)
    return packed, packed.select("_row_id", "_r.*")


# Input bytes per partition of the repeated-id check (a shuffle of one hash per valid row,
# sorted and counted per hash). With the hash aggregate it replaced, big partitions were
# slow (10M rows: 3.5 s in 32 partitions, 9 s in 2-4); the sort is not as sensitive
# (4, 8, 16 and 38 partitions within noise), and 16 MB keeps each sort small.
_KEY_COUNT_BYTES = 16 * 1024 * 1024


def _key_partitions(spark: SparkSession, plan: InputPlan) -> int:
    """Partitions for counting transaction ids: at least the session's shuffle partitions."""
    input_bytes = sum(f.size for f in plan.sales_files)
    default = int(spark.conf.get("spark.sql.shuffle.partitions") or 1)
    return max(default, -(-input_bytes // _KEY_COUNT_BYTES))


def _repeated_ids(rows: DataFrame, partitions: int) -> DataFrame:
    """Hashes of the transaction ids that occur more than once among valid rows.

    A superset of the real repeats (a hash collision only adds a candidate). Nearly
    every id is unique, so the hashes are shuffled, sorted and counted per hash by a
    window over the sorted run: cheaper than a hash aggregate, which would build a table
    of every id twice, map side and reduce side (10M rows: 1-3 CPU seconds less).
    """
    key_hash = F.xxhash64("transaction_id").alias("_key_hash")
    same_hash = Window.partitionBy("_key_hash")
    return (
        rows.where(F.col("reason").isNull())
        .select(key_hash)
        .repartition(partitions, "_key_hash")
        .sortWithinPartitions("_key_hash")
        .select("_key_hash", F.count(F.lit(1)).over(same_hash).alias("_copies"))
        .where(F.col("_copies") > 1)
        .select("_key_hash")
        .distinct()
    )


@contextmanager
def _sql_conf(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    """Set a SQL setting of the session for the block, then restore it."""
    before = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)


@contextmanager
def _job_group(spark: SparkSession, name: str) -> Iterator[str]:
    """Tag the Spark jobs started inside the block with a group id (returned)."""
    group = f"{name}-{uuid.uuid4().hex[:8]}"
    sc = spark.sparkContext
    sc.setJobGroup(group, name)
    try:
        yield group
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
        sc.setLocalProperty("spark.job.description", None)


def _first_stage_tasks(spark: SparkSession, group: str) -> int:
    """Tasks of the first stage Spark ran for a job group: the stage reading the input."""
    tracker = spark.sparkContext.statusTracker()
    stages = [
        stage
        for job_id in tracker.getJobIdsForGroup(group)
        if (job := tracker.getJobInfo(job_id)) is not None
        for stage in job.stageIds
    ]
    info = tracker.getStageInfo(min(stages)) if stages else None
    return info.numTasks if info is not None else 0


def _file_key(path: str) -> tuple[str, str]:
    """(host, decoded path) of a local path or URI, to match Spark's file names to ours."""
    if _is_local(path):
        return "", os.path.abspath(path)
    parts = urlsplit(path)
    return parts.netloc, unquote(parts.path)


# How many repeated transaction-id hashes may be broadcast to every task; above it the
# duplicate check joins without broadcasting (slower, same result).
_BROADCAST_KEYS = 2_000_000


def resolve_sales_duplicates(
    read: SalesRead,
) -> tuple[DataFrame, DataFrame | None, SourceCounts]:
    """``_duplicates`` on the sales rows, with only the repeated ids going through it.

    The rows whose id hash repeats (few) are resolved exactly by ``_duplicates``; the
    outcome per row (reason, detail, ``_extra_duplicate``) is joined back to all rows by
    row id, so the rows keep their read partitioning (no shuffle of the whole input).
    Returns (rows with ``reason``/``_extra_duplicate`` final, the persisted outcomes or
    None when no id repeats, the records by final outcome). The counts are the first
    pass's, moved by what the duplicate check decided: only valid rows change, to
    conflicting_duplicate or to an exact copy.
    """
    rows = read.rows
    if not read.repeated_count:
        counts = _sales_counts(read.outcomes, conflicting=0, extra=0)
        return rows.withColumn("_extra_duplicate", F.lit(False)), None, counts
    hashes = read.repeated
    candidates = _with_file_names(
        rows.join(
            F.broadcast(hashes) if read.repeated_count <= _BROADCAST_KEYS else hashes,
            F.xxhash64("transaction_id") == hashes["_key_hash"],
            "left_semi",
        ),
        read.file_names,
    )
    outcome = _duplicates(
        candidates, "transaction_id", SALES_CONTENT, conflict_reason=CONFLICTING_DUPLICATE
    ).select(
        "_row_id",
        F.col("reason").alias("_d_reason"),
        F.col("detail").alias("_d_detail"),
        F.col("_extra_duplicate").alias("_d_extra"),
        # Which row it was, for the quarantine (see conflicting_rows_with_raw).
        F.col("transaction_id").alias("_d_transaction_id"),
        F.col("_source_file").alias("_d_source_file"),
    )
    outcome = outcome.persist()
    tally = outcome.groupBy("_d_reason", "_d_extra").count().collect()
    n = sum(r["count"] for r in tally)
    counts = _sales_counts(
        read.outcomes,
        conflicting=sum(r["count"] for r in tally if r["_d_reason"] == CONFLICTING_DUPLICATE),
        extra=sum(r["count"] for r in tally if r["_d_extra"]),
    )
    side = outcome.select("_row_id", "_d_reason", "_d_detail", "_d_extra")
    joined = rows.join(F.broadcast(side) if n <= _BROADCAST_KEYS else side, "_row_id", "left")
    decided = F.col("_d_extra").isNotNull()
    resolved = joined.select(
        *[c for c in rows.columns if c not in ("reason", "detail")],
        F.when(decided, F.col("_d_reason")).otherwise(F.col("reason")).alias("reason"),
        F.when(decided, F.col("_d_detail")).otherwise(F.col("detail")).alias("detail"),
        F.coalesce(F.col("_d_extra"), F.lit(False)).alias("_extra_duplicate"),
    )
    return resolved, outcome, counts


def _with_file_names(rows: DataFrame, names: dict[int, str]) -> DataFrame:
    """``rows`` with ``_source_file`` set on every row, from ``_file_hash`` (a broadcast
    join: the few candidate rows of the duplicate check, from any number of files)."""
    if not names:
        return rows
    # Built from literals in the JVM: a DataFrame made from a Python list is deserialized
    # by Python worker processes, whose start-up cost 0.75 s of the duplicate check.
    pairs = [
        F.struct(F.lit(h).cast("long").alias("_file_hash"), F.lit(n).alias("_named_file"))
        for h, n in names.items()
    ]
    by_hash = rows.sparkSession.range(1).select(F.inline(F.array(*pairs))).hint("broadcast")
    return (
        rows.join(by_hash, "_file_hash", "left")
        .withColumn("_source_file", F.coalesce("_source_file", "_named_file"))
        .drop("_named_file")
    )


def _sales_counts(outcomes: dict[str | None, int], *, conflicting: int, extra: int) -> SourceCounts:
    """The sales records by final outcome: the row rules' counts (None: valid), with
    ``conflicting`` valid rows now conflicting duplicates and ``extra`` exact copies."""
    by_reason = {r: n for r, n in outcomes.items() if r is not None}
    if conflicting:
        by_reason[CONFLICTING_DUPLICATE] = conflicting
    valid = outcomes.get(None, 0) - conflicting - extra
    return SourceCounts(sum(outcomes.values()), valid, by_reason, extra)


def check_customers(run: RunContext) -> tuple[DataFrame, SourceCounts]:
    """Read and check every customer record (persisted) and count them by outcome.

    ``read_and_classify`` runs this in a thread beside the sales' first pass. It leaves
    the session's settings alone: they are the session's, not the thread's.
    """
    customers = classify_customers(
        read_customers(
            run.spark,
            [f.path for f in run.plan.ndjson_files],
            [f.path for f in run.plan.array_files],
        )
    ).persist()
    rows = (
        customers.groupBy("reason", F.col("_extra_duplicate").alias("extra"))
        .agg(F.count(F.lit(1)).alias("rows"))
        .collect()
    )
    return customers, _by_reason(rows)


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
    # job of its own (one run each, 10K rows 1.9 -> 1.75 s, 10M rows 5.3 -> 4.0 s, when
    # the customers were counted here too). What the shuffle carries is small (the
    # persisted summary groups, planned when persisted), so there is nothing for it to
    # re-plan; without it, its partitions are one per core, not the session's shuffle
    # partitions (200 by default on a cluster: 200 near-empty tasks).
    spark = groups.sparkSession
    cores = str(max(1, spark.sparkContext.defaultParallelism))
    with (
        _sql_conf(spark, "spark.sql.adaptive.enabled", "false"),
        _sql_conf(spark, "spark.sql.shuffle.partitions", cores),
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


def _by_reason(rows: list[Any]) -> SourceCounts:
    """Add up one source's record counts (``reason``, ``extra``, ``rows``) by outcome."""
    total = sum(r["rows"] for r in rows)
    by_reason: dict[str, int] = {}
    valid = dups = 0
    for r in rows:
        if r["reason"] is not None:
            by_reason[r["reason"]] = by_reason.get(r["reason"], 0) + r["rows"]
        elif r["extra"]:
            dups += r["rows"]
        else:
            valid += r["rows"]
    return SourceCounts(total, valid, by_reason, dups)


def _reconcile(read: int, written: int, quarantined: int, dups: int) -> dict[str, Any]:
    return {
        "read": read,
        "written": written,
        "quarantined": quarantined,
        "duplicates_dropped": dups,
        "ok": read == written + quarantined + dups,
    }


def _all_ok(reconciliation: dict[str, dict[str, Any]]) -> bool:
    return all(r["ok"] for r in reconciliation.values())


# --- step 2: metrics ------------------------------------------------------------------------


def planned_metrics(run: RunContext, checked: Checked) -> dict[str, Any]:
    """Step 2: the metrics document, with the counts and reconciliation of step 1.

    ``rows_written`` and ``bytes_written`` stay 0 and the reconciliation stays the
    planned one until ``verify_outputs`` counts what was written.
    """
    counts = checked.counts
    sales_q, cust_q = counts.sales.by_reason, counts.customers.by_reason
    sales_dups, cust_dups = counts.sales.duplicates, counts.customers.duplicates
    metrics = _metrics(run, checked.read)
    metrics.update(
        {
            "rows_read": {"sales": counts.sales.read, "customers": counts.customers.read},
            "rows_quarantined": {
                r: sales_q.get(r, 0) + cust_q.get(r, 0)
                for r in REASONS
                if r in sales_q or r in cust_q
            },
            "rows_quarantined_by_source": {"sales": dict(sales_q), "customers": dict(cust_q)},
            "quarantined_total": counts.quarantined_total,
            "duplicates_dropped": sales_dups + cust_dups,
            "duplicates_dropped_by_source": {"sales": sales_dups, "customers": cust_dups},
            "customers_loaded": counts.customers.valid,
            "unknown_customers": counts.unknown_customers,
            "partitions_written": [f"year={y}/month={m}" for y, m in counts.months],
            "reconciliation": checked.planned,
        }
    )
    return metrics


def _metrics(run: RunContext, read: SalesRead) -> dict[str, Any]:
    """The metrics document before any count is known (filled in by planned_metrics)."""
    args, plan, out, started = run.args, run.plan, run.out, run.started
    return {
        "run_id": run.run_id,
        "job_name": args.job_name,
        "status": "running",
        "started_at": _iso(started),
        "finished_at": None,
        "run_date": started.date().isoformat(),
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
        "read_plan": {"sales": read.read_plan()},
        "outputs": {
            "enriched": out.enriched,
            "sales_summary": out.summary,
            "quarantine": out.quarantine,
        },
        "rows_written": {"enriched": 0, "sales_summary": 0},
        "bytes_read": {
            "sales": sum(f.size for f in plan.sales_files),
            "customers": sum(f.size for f in plan.customer_files),
        },
        "bytes_written": {"enriched": 0, "sales_summary": 0, "quarantine": 0},
        "leftovers_removed": [],
        "durations_seconds": run.durations,
        "reason_vocabulary": {"sales": SALES_REASONS, "customers": CUSTOMER_REASONS},
    }


def _customer_format(plan: InputPlan) -> str:
    if plan.ndjson_files and plan.array_files:
        return "mixed"
    return "json_array" if plan.array_files else "ndjson"


# --- step 3: write (phases write_enriched, write_summary, write_quarantine) ------------------


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
    with _phase("write_enriched", run.durations) as phase:
        _write_partitioned(checked.enriched.select(*ENRICHED_COLUMNS), out.enriched)
        phase["rows"] = checked.counts.enriched_rows
    with _phase("write_summary", run.durations):
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
        for path in run.out_fs.remove_children(root, _STAGING_PREFIX)
    ]


def write_quarantine(run: RunContext, checked: Checked) -> DataFrame | None:
    """Write this run's rejected rows of both sources, one file, when there are any.

    Conflicting duplicates were persisted without their raw text, so their files are read
    again (``conflicting_rows_with_raw``); that re-read is returned (persisted), or None.
    """
    counts = checked.counts
    reread: DataFrame | None = None
    with _phase("write_quarantine", run.durations) as phase:
        if counts.quarantined_total:
            conflicts = counts.sales.by_reason.get(CONFLICTING_DUPLICATE, 0)
            # The rows the row rules rejected, from the persisted rows: the duplicate check
            # changes valid rows only, so its outcome need not be joined to every row
            # (10M rows, 1% dirty: the scan 2.0-2.3 -> 1.4-1.6 s).
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
    it should be (running the row rules again on them cost 3-4 s at 10M rows, most of it
    compiling the rules' code for one more plan). Files read by the multiLine reader are
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
            _text_lines(spark, read.line_files)
            .withColumn("_row_id", F.monotonically_increasing_id())
            .join(F.broadcast(wanted), "_row_id")
        )
        parsed = F.from_csv(F.col("value"), SALES_READ_SCHEMA.simpleString(), CSV_OPTIONS)
        # Compared in a column, not filtered on: as a filter, Spark made the comparison a
        # key of the join, which parsed every line of the files (10M rows: 5 s).
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
            text = _text_lines(spark, read.line_files).where(F.col("_source_file").isin(fast))
            lines = parse_sales_lines(text, headers).where(~F.col("_header"))
            parts.append(checked_again(lines.drop(*_LINE_FLAGS)))
        if slow:
            parts.append(checked_again(read_sales(spark, [read.source_paths[f] for f in slow])))
        return reduce(DataFrame.unionByName, parts)

    found = reread(narrow=True).persist()
    tally = found.agg(
        F.count(F.lit(1)).alias("rows"), F.count(F.when(~F.col("_same_id"), 1)).alias("other")
    ).first()
    # Cannot happen while the splits match; stay exact anyway.
    if tally is None or tally["rows"] != expected or tally["other"]:
        log.warning("conflicting rows: the re-read by row id missed some; checking every line")
        found.unpersist()
        found = reread(narrow=False).persist()
        found.count()
    found_ids.unpersist()
    return found


# --- step 4: verify (phase verify), then the metrics file -----------------------------------


def verify_outputs(run: RunContext, checked: Checked, metrics: dict[str, Any]) -> None:
    """Step 4: count what is now on storage, not what was planned, and reconcile again.

    Replaces ``rows_written``, ``reconciliation`` and ``bytes_written`` in ``metrics``.
    """
    spark, out, counts = run.spark, run.out, checked.counts
    with _phase("verify", run.durations):
        q_fs = filesystem_for(out.quarantine, spark)
        parts = [f"year={y}/month={m}" for y, m in counts.months]
        # A partition the counts name but storage lacks counts 0 rows (the reconciliation
        # then fails the run and names it) instead of failing the read with PATH_NOT_FOUND.
        tables = {}
        for name, root in (("enriched", out.enriched), ("sales_summary", out.summary)):
            present = [p for p in parts if run.out_fs.exists(_join(root, p))]
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
            "sales": _reconcile(
                read["sales"], written_enriched, q_by_source["sales"], counts.sales.duplicates
            ),
            "customers": _reconcile(
                read["customers"],
                metrics["customers_loaded"],
                q_by_source["customers"],
                counts.customers.duplicates,
            ),
        }
        metrics["bytes_written"] = {
            "enriched": sum(run.out_fs.size_under(_join(out.enriched, p)) for p in parts),
            "sales_summary": sum(run.out_fs.size_under(_join(out.summary, p)) for p in parts),
            "quarantine": q_fs.size_under(out.quarantine) if sum(q_by_source.values()) else 0,
        }


def _count_parquet(spark: SparkSession, tables: dict[str, list[str]]) -> list[int]:
    """Rows in the given partitions of each Parquet table (root -> partitions), in the
    order given, counted in one Spark job. A table given no partitions has 0 rows."""
    reads = [
        spark.read.option("basePath", root)
        .parquet(*[_join(root, p) for p in parts])
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


# --- CloudWatch: the run's figures, for the alarm on the quarantined share ----------------
# Published only when the job is given --metrics_namespace (the aws target's job definition
# passes SalesPipeline and its prefix). Every datum carries the dimension Pipeline=<prefix>;
# RowsQuarantined is also broken down by Source and Reason.

METRICS_DIMENSION = "Pipeline"
_PUT_METRIC_BATCH = 20


def quarantine_rate(metrics: dict[str, Any]) -> float:
    """Quarantined rows of both sources over rows read of both (0 when nothing was read)."""
    read = metrics["rows_read"]["sales"] + metrics["rows_read"]["customers"]
    return metrics["quarantined_total"] / read if read else 0.0


def cloudwatch_metric_data(
    metrics: dict[str, Any], prefix: str, timestamp: datetime
) -> list[dict[str, Any]]:
    """Return the run's figures as CloudWatch ``MetricData`` (PutMetricData's shape)."""
    pipeline = {"Name": METRICS_DIMENSION, "Value": prefix}

    def datum(name: str, value: float, unit: str = "Count", **dims: str) -> dict[str, Any]:
        dimensions = [pipeline] + [{"Name": k, "Value": v} for k, v in dims.items()]
        return {
            "MetricName": name,
            "Dimensions": dimensions,
            "Timestamp": timestamp,
            "Value": float(value),
            "Unit": unit,
        }

    data = [
        datum("SalesRowsRead", metrics["rows_read"]["sales"]),
        datum("CustomerRowsRead", metrics["rows_read"]["customers"]),
        datum("RowsWritten", metrics["rows_written"]["enriched"]),
        datum("RowsQuarantined", metrics["quarantined_total"]),
        datum("ExactDuplicatesDropped", metrics["duplicates_dropped"]),
        datum("UnknownCustomers", metrics["unknown_customers"]),
        datum("QuarantineRate", quarantine_rate(metrics), unit="None"),
    ]
    for source, reasons in sorted(metrics["rows_quarantined_by_source"].items()):
        for reason, count in sorted(reasons.items()):
            data.append(datum("RowsQuarantined", count, Source=source, Reason=reason))
    return data


def publish_metrics(
    metrics: dict[str, Any], namespace: str, prefix: str, client: Any = None
) -> int:
    """Put the run's figures to CloudWatch; return how many data points were sent."""
    if client is None:
        import boto3  # on Glue and in the project's environment; only needed here

        client = boto3.client("cloudwatch")
    data = cloudwatch_metric_data(metrics, prefix, _utc_now())
    for i in range(0, len(data), _PUT_METRIC_BATCH):
        client.put_metric_data(Namespace=namespace, MetricData=data[i : i + _PUT_METRIC_BATCH])
    return len(data)


def _finish(run: RunContext, metrics: dict[str, Any], failed: str | None) -> dict[str, Any]:
    """Publish (if asked) and write the metrics file, succeeded or failed.

    On failure raise JobFailedError. A run whose figures cannot be published fails too,
    after writing everything: an alarm that never hears of a run must not look like a
    quiet day.
    """
    metrics["finished_at"] = _iso(_utc_now())
    metrics["durations_seconds"]["total"] = round(time.monotonic() - run.t0, 3)
    namespace, prefix = run.args.metrics_namespace, run.args.pipeline_prefix
    if namespace and prefix:
        try:
            sent = publish_metrics(metrics, namespace, prefix)
            metrics["cloudwatch"] = {"namespace": namespace, "pipeline": prefix, "data": sent}
            log.info("published %d metric data to CloudWatch namespace %s", sent, namespace)
        except Exception as exc:  # botocore's errors, missing credentials, no network
            problem = f"could not publish the run's metrics to CloudWatch ({namespace}): {exc}"
            log.error(problem)
            failed = failed or problem
    metrics["status"] = "failed" if failed else "succeeded"
    if failed:
        metrics["error"] = failed
    runs_file = run.out.runs_file
    metrics["metrics_path"] = runs_file
    run.out_fs.write_bytes(
        runs_file, (json.dumps(metrics, indent=2, sort_keys=False) + "\n").encode()
    )
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
    if ensure_java is not None and not launched_by_spark_submit():
        ensure_java()
    created = SparkSession.getActiveSession() is None
    spark = build_local_spark(input_bytes=plan.input_bytes if plan is not None else None)
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
