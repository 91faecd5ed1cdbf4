"""Every raw record of both sources, read as text and exact bytes, none dropped."""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from sales_etl.contracts import (
    CORRUPT,
    CSV_OPTIONS,
    SALES_COLUMNS,
    SALES_READ_SCHEMA,
    UTF8_BOM,
)


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
    # contains() compares bytes; instr() would count characters to find a position.
    return F.when(line.contains('"'), quotes % 2 == 1).otherwise(F.lit(False))


def text_lines(spark: SparkSession, files: Sequence[str]) -> DataFrame:
    """``_source_file`` and ``value`` (the raw bytes) of every non-empty line."""
    if not files:  # a daily run with no new sales file
        return spark.createDataFrame([], "_source_file string, value string")
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
    return parse_sales_lines(text_lines(spark, files), header_lines)


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


def _modified() -> Any:
    """A file's modification time in ms, from the file source's hidden metadata column."""
    return F.expr("unix_millis(_metadata.file_modification_time)").alias("_file_order")


def read_customers(
    spark: SparkSession, ndjson_files: Sequence[str], array_files: Sequence[str]
) -> DataFrame:
    """Read customer records as raw text, one row per NDJSON line or JSON array element.

    Columns: ``_source_file``, ``_file_order`` (its modification time in ms: which file
    is newer), ``_raw_record`` (UTF-8 text), ``_raw_bytes``, ``_utf8_ok``.
    Blank lines are not records. A JSON array file that does not parse as a whole is
    one record (which then fails as invalid_json / invalid_encoding).
    """
    parts = []
    if ndjson_files:
        lines = spark.read.text(list(ndjson_files)).select(
            F.input_file_name().alias("_source_file"),
            _modified(),
            F.col("value").cast("binary").alias("_b"),  # raw bytes, before any decoding
        )
        parts.append(lines)
    if array_files:
        whole = spark.read.text(list(array_files), wholetext=True).select(
            F.input_file_name().alias("_source_file"),
            _modified(),
            F.col("value").alias("_text"),
        )
        elements = F.from_json(F.col("_text"), T.ArrayType(T.StringType()))
        exploded = whole.select(
            "_source_file",
            "_file_order",
            F.explode(F.coalesce(elements, F.array(F.col("_text").cast("string")))).alias(
                "_element"
            ),
        ).select("_source_file", "_file_order", F.col("_element").cast("binary").alias("_b"))
        parts.append(exploded)
    if not parts:  # a daily run with no new customer file
        parts.append(spark.createDataFrame([], "_source_file string, _file_order long, _b binary"))
    raw = reduce(DataFrame.unionByName, parts)
    no_bom = F.when(
        F.substring("_b", 1, 3) == F.lit(bytearray(UTF8_BOM)),
        F.expr("substring(_b, 4)"),
    ).otherwise(F.col("_b"))
    raw = raw.select("_source_file", "_file_order", no_bom.alias("_raw_bytes"))
    raw = raw.select(
        "_source_file",
        "_file_order",
        F.decode("_raw_bytes", "UTF-8").alias("_raw_record"),
        "_raw_bytes",
        _utf8_ok(F.col("_raw_bytes")).alias("_utf8_ok"),
    )
    return raw.where(F.trim(F.col("_raw_record")) != "")
