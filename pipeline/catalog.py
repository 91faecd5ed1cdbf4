"""The crawler step: a local crawler that writes Glue ``TableInput`` JSON, or the real one.

On the ``local`` target every folder under the raw prefix (``input/<table>/``) becomes one
table, as a Glue crawler would make it: pyarrow reads the files (CSV with a header, or
JSON: newline-delimited, or one array of objects) and infers types, which are mapped to
Glue/Hive types. The table is written as ``<lake>/_catalog/<database>/<table>.json`` in
the shape of Glue's ``TableInput``; a re-crawl rewrites it. On the ``aws`` target the
deployed crawler runs instead (``pipeline.targets.aws.run_aws_crawler``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson

from pipeline.config import PipelineConfig, split_s3_uri
from pipeline.errors import CrawlerError

log = logging.getLogger(__name__)

CATALOG_FOLDER = "_catalog"
CSV_SUFFIXES = (".csv",)
JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")
_DATE_RE = r"^\d{4}-\d{2}-\d{2}$"

# Glue's own formats and SerDes for the two classifications it would report.
_FORMATS = {
    "csv": {
        "InputFormat": "org.apache.hadoop.mapred.TextInputFormat",
        "OutputFormat": "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
        "SerdeInfo": {
            "SerializationLibrary": "org.apache.hadoop.hive.serde2.OpenCSVSerde",
            "Parameters": {"separatorChar": ",", "quoteChar": '"'},
        },
    },
    "json": {
        "InputFormat": "org.apache.hadoop.mapred.TextInputFormat",
        "OutputFormat": "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
        "SerdeInfo": {
            "SerializationLibrary": "org.openx.data.jsonserde.JsonSerDe",
            "Parameters": {"paths": ""},
        },
    },
}


# --- type inference -------------------------------------------------------------------


def glue_type(arrow_type: pa.DataType) -> str:
    """Return the Glue/Hive type name for a pyarrow type (nulls become string)."""
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_integer(arrow_type):
        return "bigint"
    if pa.types.is_floating(arrow_type):
        return "double"
    if pa.types.is_decimal(arrow_type):
        return f"decimal({arrow_type.precision},{arrow_type.scale})"
    if pa.types.is_date(arrow_type):
        return "date"
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return f"array<{glue_type(arrow_type.value_type)}>"
    if pa.types.is_struct(arrow_type):
        fields = ",".join(f"{f.name}:{glue_type(f.type)}" for f in arrow_type)
        return f"struct<{fields}>"
    return "string"


def merge_glue_types(left: str | None, right: str) -> str:
    """Combine the types two files gave one column, widening as a crawler would."""
    if left is None or left == right:
        return right
    if {left, right} == {"bigint", "double"}:
        return "double"
    if {left, right} == {"date", "timestamp"}:
        return "timestamp"
    return "string"


def _column_names(names: list[str]) -> list[str]:
    """Lowercase names; an empty header becomes ``col<i>`` as Glue names it."""
    return [(name.strip().lower() or f"col{i}") for i, name in enumerate(names)]


def _all_dates(values: pa.ChunkedArray) -> bool:
    """True when every non-null string is a plain ``YYYY-MM-DD`` date."""
    values = values.drop_null()
    return len(values) > 0 and pc.all(pc.match_substring_regex(values, _DATE_RE)).as_py()


def is_json_array(path: Path) -> bool:
    """True when a JSON file holds one array (``[{...}, ...]``) rather than NDJSON."""
    with path.open("rb") as fh:
        head = fh.read(64)
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"[")


def infer_file(path: Path, classification: str) -> tuple[list[tuple[str, str]], int]:
    """Return ``([(column, glue_type)], row_count)`` for one CSV, NDJSON or JSON-array file."""
    # One block for the whole file, so a late odd value widens the type (to string)
    # instead of failing a type guessed from the first block.
    block = max(1 << 20, min(path.stat().st_size + 1, 1 << 30))
    if classification == "csv":
        # Only an empty field is null: text such as "N/A" or "NULL" makes the column a
        # string, as for Glue's classifier (and DuckDB could not cast it to a number).
        skipped = 0

        def skip_ragged(row: Any) -> str:
            # A ragged row is the job's to quarantine; the crawler types the good rows.
            nonlocal skipped
            skipped += 1
            return "skip"

        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=block),
            parse_options=pacsv.ParseOptions(invalid_row_handler=skip_ragged),
            convert_options=pacsv.ConvertOptions(null_values=[""], strings_can_be_null=True),
        )
        if skipped:
            log.warning("%s: %d ragged rows skipped while inferring types", path, skipped)
        names = _column_names(table.column_names)
        columns = [(n, glue_type(t)) for n, t in zip(names, table.schema.types, strict=True)]
        return columns, table.num_rows
    array_lines: bytes | None = None
    if is_json_array(path):
        # A JSON array rather than NDJSON (the job accepts it with a warning): its
        # elements, one per line, are typed exactly as an NDJSON file's objects are, so
        # both layouts give the same columns and types.
        log.warning("%s is a JSON array, not NDJSON; typing its elements", path)
        records = json.loads(path.read_text(encoding="utf-8-sig"))
        if not records:
            return [], 0
        array_lines = "\n".join(json.dumps(r, ensure_ascii=False) for r in records).encode()
        block = max(1 << 20, min(len(array_lines) + 1, 1 << 30))

    def source() -> Path | pa.BufferReader:
        return path if array_lines is None else pa.BufferReader(array_lines)

    read_options = pajson.ReadOptions(block_size=block)
    table = pajson.read_json(source(), read_options=read_options)
    types = {}
    # pyarrow reads "2024-01-05" in JSON as a timestamp: call it a date only when every
    # value is written as a plain date, so the column is unambiguous.
    ts_cols = [f.name for f in table.schema if pa.types.is_timestamp(f.type)]
    if ts_cols:
        as_text = pajson.read_json(
            source(),
            read_options=read_options,
            parse_options=pajson.ParseOptions(
                explicit_schema=pa.schema([(c, pa.string()) for c in ts_cols])
            ),
        )
        types = {c: "date" for c in ts_cols if _all_dates(as_text.column(c))}
    names = _column_names(table.column_names)
    columns = [
        (n, types.get(orig, glue_type(t)))
        for n, orig, t in zip(names, table.column_names, table.schema.types, strict=True)
    ]
    return columns, table.num_rows


def classify(path: Path) -> str | None:
    """Return ``csv`` or ``json`` from a file's suffix, or None to skip it."""
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in JSON_SUFFIXES:
        return "json"
    return None


def infer_table(name: str, location: str, files: list[Path]) -> dict[str, Any]:
    """Return a Glue ``TableInput`` for the data files of one table folder."""
    classification = None
    columns: dict[str, str | None] = {}
    rows = 0
    size = 0
    for path in files:
        kind = classify(path)
        if kind is None or path.stat().st_size == 0:
            continue
        if classification not in (None, kind):
            raise CrawlerError(f"table {name}: mixed {classification} and {kind} files")
        classification = kind
        file_columns, file_rows = infer_file(path, kind)
        for col, typ in file_columns:
            columns[col] = merge_glue_types(columns.get(col), typ)
        rows += file_rows
        size += path.stat().st_size
    if classification is None:
        raise CrawlerError(f"table {name}: no CSV or JSON data under {location}")
    fmt = _FORMATS[classification]
    parameters = {
        "classification": classification,
        "typeOfData": "file",
        "compressionType": "none",
        "recordCount": str(rows),
        "sizeKey": str(size),
        "objectCount": str(len(files)),
        "UPDATED_BY_CRAWLER": "local-crawler",
    }
    if classification == "csv":
        parameters.update(
            {"delimiter": ",", "skip.header.line.count": "1", "columnsOrdered": "true"}
        )
    return {
        "Name": name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": parameters,
        "PartitionKeys": [],
        "StorageDescriptor": {
            "Columns": [{"Name": c, "Type": t} for c, t in columns.items()],
            "Location": location,
            "Compressed": False,
            "NumberOfBuckets": -1,
            "StoredAsSubDirectories": False,
            "Parameters": dict(parameters),
            **json.loads(json.dumps(fmt)),
        },
    }


# --- the local catalog ---------------------------------------------------------------


def catalog_dir(config: PipelineConfig) -> Path:
    """Return the folder holding the local catalog's table JSON for the database."""
    return config.lake / CATALOG_FOLDER / config.database


def write_table(config: PipelineConfig, table: dict[str, Any]) -> Path:
    """Write (or replace) one table's JSON in the local catalog; return its path."""
    folder = catalog_dir(config)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{table['Name']}.json"
    path.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
    return path


def load_catalog(config: PipelineConfig) -> dict[str, dict[str, Any]]:
    """Return every table in the local catalog, by name (empty before a crawl)."""
    folder = catalog_dir(config)
    if not folder.is_dir():
        return {}
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def crawl_local(config: PipelineConfig) -> dict[str, dict[str, Any]]:
    """Crawl every ``input/<table>/`` folder in the lake's raw bucket; return the tables."""
    bucket, key = split_s3_uri(config.raw_uri)
    root = config.local_path(config.raw_uri)
    if not root.is_dir():
        raise CrawlerError(f"nothing to crawl: {config.raw_uri} ({root}) does not exist")
    tables = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        location = f"s3://{bucket}/{key}{folder.name}/"
        table = infer_table(folder.name, location, files)
        write_table(config, table)
        tables[folder.name] = table
        log.info(
            "crawled %s: %s rows, columns %s",
            folder.name,
            table["Parameters"]["recordCount"],
            ", ".join(f"{c['Name']} {c['Type']}" for c in table["StorageDescriptor"]["Columns"]),
        )
    if not tables:
        raise CrawlerError(f"nothing to crawl: no table folders under {config.raw_uri}")
    return tables
