"""Run the named SQL of ``athena_queries.sql`` on Athena or, locally, on DuckDB.

``LocalEngine`` never holds a second copy of the SQL: each block is rendered, then
transpiled by sqlglot from Athena to DuckDB. The DDL blocks themselves are parsed to
register the tables: each ``LOCATION`` / ``storage.location.template`` is mapped into the
lake, hive partitions are read with the declared partition types, the projection ranges
are applied, and the declared column types are cast. The crawled raw tables come from
the local catalog's ``TableInput`` JSON. Files and bytes read are measured from DuckDB's
own profiler (``Total Files Read`` of every scan, ``io.total_bytes_read``).

``AthenaEngine`` sends the same rendered blocks through pyathena to the workgroup and
reports Athena's ``DataScannedInBytes``.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import sqlglot
from sqlglot import exp

from pipeline.catalog import load_catalog
from pipeline.config import PipelineConfig
from pipeline.sql import is_ddl, load_queries, render

log = logging.getLogger(__name__)

_SCAN_FUNCTIONS = ("READ_PARQUET", "READ_CSV", "READ_CSV_AUTO", "READ_JSON", "READ_JSON_AUTO")
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")  # sqlglot underlines the bad token
_RAW_FILE_GLOBS = {"csv": ("*.csv",), "json": ("*.json", "*.jsonl", "*.ndjson")}


@dataclass
class QueryResult:
    """A query's rows as a DataFrame, with what it cost."""

    name: str | None
    sql: str
    df: pd.DataFrame
    rows: int
    seconds: float
    files_read: int | None
    bytes_read: int | None  # aws: bytes scanned


class QueryError(RuntimeError):
    """The engine rejected a statement; the message is one line."""


class Engine(Protocol):
    def setup_tables(self) -> None: ...
    def run(self, sql: str, name: str | None = None) -> QueryResult: ...
    def run_named(self, name: str) -> QueryResult: ...


def one_line(message: object) -> str:
    """Collapse an engine's (often multi-line) error message into one line."""
    return " ".join(_ANSI_RE.sub("", str(message)).split())


class _NamedQueries:
    """Shared by both engines: the SQL file, its placeholders and ``run_named``."""

    def __init__(self, config: PipelineConfig, queries_path: Path | None = None) -> None:
        self.config = config
        self.queries = load_queries(queries_path)
        self.params = config.sql_parameters()

    def run(self, sql: str, name: str | None = None) -> QueryResult:  # pragma: no cover
        raise NotImplementedError

    def run_named(self, name: str) -> QueryResult:
        """Run the block called ``name`` from the SQL file."""
        if name not in self.queries:
            raise KeyError(f"no query named {name!r}; known: {', '.join(self.queries)}")
        return self.run(self.queries[name], name=name)


# --- local: DuckDB over the lake ------------------------------------------------------


def to_duckdb(sql: str) -> str:
    """Transpile one Athena (Trino/Hive) statement to DuckDB SQL with sqlglot."""
    try:
        statements = [s for s in sqlglot.transpile(sql, read="athena", write="duckdb") if s]
    except sqlglot.errors.SqlglotError as exc:
        raise QueryError(one_line(exc)) from exc
    if len(statements) != 1:
        raise QueryError(f"expected one statement, got {len(statements)}")
    return statements[0]


def _duck_type(data_type: exp.DataType) -> str:
    return data_type.sql(dialect="duckdb")


def _glue_to_duck(glue_type: str) -> str:
    return _duck_type(exp.DataType.build(glue_type, dialect="hive"))


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class ExternalTable:
    """What the local engine needs from one ``create external table`` statement."""

    schema: str | None
    name: str
    columns: list[tuple[str, exp.DataType]]
    partitions: list[tuple[str, exp.DataType]]
    file_format: str
    location: str
    properties: dict[str, str]

    @classmethod
    def from_ddl(cls, create: exp.Create) -> ExternalTable:
        """Read the table's columns, partitions, format, location and properties."""
        schema = create.this
        table = schema.this
        columns = [(c.name, c.args["kind"]) for c in schema.expressions]
        partitions: list[tuple[str, exp.DataType]] = []
        file_format = "parquet"
        location = ""
        properties: dict[str, str] = {}
        for prop in create.args["properties"].expressions:
            if isinstance(prop, exp.PartitionedByProperty):
                partitions = [(c.name, c.args["kind"]) for c in prop.this.expressions]
            elif isinstance(prop, exp.FileFormatProperty):
                file_format = prop.name.lower()
            elif isinstance(prop, exp.LocationProperty):
                location = prop.this.name
            elif type(prop) is exp.Property:  # plain TBLPROPERTIES entries
                properties[prop.name] = prop.args["value"].name
        return cls(
            table.db or None, table.name, columns, partitions, file_format, location, properties
        )

    def path_pattern(self) -> str:
        """The S3 glob of the table's data files (projection template or LOCATION)."""
        template = self.properties.get("storage.location.template")
        if self.properties.get("projection.enabled", "").lower() == "true" and template:
            base = template
            for col, _ in self.partitions:
                base = base.replace("${" + col + "}", "*")
            return base.rstrip("/") + "/*." + self.file_format
        if self.partitions:
            return (
                self.location.rstrip("/")
                + "/"
                + "/".join(f"{c}=*" for c, _ in self.partitions)
                + "/*."
                + self.file_format
            )
        return self.location.rstrip("/") + "/*." + self.file_format

    def projection_filters(self) -> list[str]:
        """SQL conditions that keep only partitions the projection would enumerate."""
        if self.properties.get("projection.enabled", "").lower() != "true":
            return []
        filters = []
        for col, _ in self.partitions:
            kind = self.properties.get(f"projection.{col}.type", "").lower()
            if kind == "integer" and f"projection.{col}.range" in self.properties:
                low, high = (int(v) for v in self.properties[f"projection.{col}.range"].split(","))
                filters.append(f"{_ident(col)} between {low} and {high}")
            elif kind == "enum" and f"projection.{col}.values" in self.properties:
                values = self.properties[f"projection.{col}.values"].split(",")
                filters.append(f"{_ident(col)} in ({', '.join(_quote(v.strip()) for v in values)})")
        return filters


class LocalEngine(_NamedQueries):
    """Athena SQL on DuckDB over the lake folder."""

    def __init__(self, config: PipelineConfig, queries_path: Path | None = None) -> None:
        super().__init__(config, queries_path)
        import duckdb

        self._duckdb = duckdb
        self.con = duckdb.connect()
        self._profile_dir = tempfile.TemporaryDirectory(prefix="duckdb-profile-")
        self._profile = Path(self._profile_dir.name) / "profile.json"
        self.tables: dict[str, str] = {}  # table -> DuckDB source it reads
        self._ready = False

    def close(self) -> None:
        """Close the DuckDB connection."""
        self.con.close()
        self._profile_dir.cleanup()

    # registration

    def setup_tables(self) -> None:
        """Register the DDL tables and the crawled raw tables as DuckDB views."""
        for sql in self.queries.values():
            if is_ddl(sql):
                self._apply_ddl(render(sql, self.params))
        self.con.execute(f"create schema if not exists {_ident(self.config.database)}")
        for table in load_catalog(self.config).values():
            self._register_catalog_table(table)
        self.con.execute(f"use {_ident(self.config.database)}")
        self._ready = True

    def _apply_ddl(self, sql: str) -> None:
        try:
            create = sqlglot.parse_one(sql, read="athena")
        except sqlglot.errors.SqlglotError as exc:
            raise QueryError(one_line(exc)) from exc
        if not isinstance(create, exp.Create):
            raise QueryError(f"the local engine runs only CREATE DDL, not: {one_line(sql)[:80]}")
        kind = (create.args.get("kind") or "").upper()
        if kind in ("DATABASE", "SCHEMA"):
            self.con.execute(f"create schema if not exists {_ident(create.this.name)}")
            return
        if kind == "TABLE" and create.find(exp.ExternalProperty):
            self._register_external(ExternalTable.from_ddl(create))
            return
        raise QueryError(f"the local engine cannot run this DDL: {one_line(sql)[:80]}")

    def _register_external(self, table: ExternalTable) -> None:
        if table.file_format != "parquet":
            raise QueryError(f"table {table.name}: only Parquet external tables run locally")
        schema = table.schema or self.config.database
        self.con.execute(f"create schema if not exists {_ident(schema)}")
        pattern = str(self.config.local_path(table.path_pattern()))
        parts = [_ident(c) for c, _ in table.partitions]
        if glob.glob(pattern):
            hive_types = ", ".join(
                f"{_quote(c)}: {_quote(_duck_type(t))}" for c, t in table.partitions
            )
            # union_by_name: files written before a column was added still read.
            source = f"read_parquet({_quote(pattern)}, union_by_name = true"
            if table.partitions:
                source += f", hive_partitioning = true, hive_types = {{{hive_types}}}"
            source += ")"
            # Like Athena, a declared column missing from the files reads as null.
            present = {
                row[0] for row in self.con.execute(f"describe select * from {source}").fetchall()
            }
            casts = [
                f"cast({_ident(c) if c in present else 'null'} as {_duck_type(t)}) as {_ident(c)}"
                for c, t in table.columns
            ]
            where = table.projection_filters()
            body = f"select {', '.join(casts + parts)} from {source}"
            if where:
                body += " where " + " and ".join(where)
        else:
            # No data yet: an empty view with the declared columns, as Athena would show.
            nulls = [
                f"cast(null as {_duck_type(t)}) as {_ident(c)}"
                for c, t in table.columns + table.partitions
            ]
            body = f"select {', '.join(nulls)} where false"
            log.info("table %s: no files match %s; registered empty", table.name, pattern)
        self.con.execute(f"create or replace view {_ident(schema)}.{_ident(table.name)} as {body}")
        self.tables[table.name] = pattern

    def _register_catalog_table(self, table: dict[str, Any]) -> None:
        descriptor = table["StorageDescriptor"]
        kind = table.get("Parameters", {}).get("classification")
        if kind not in _RAW_FILE_GLOBS:
            log.warning("table %s: classification %r is not read locally", table["Name"], kind)
            return
        root = self.config.local_path(descriptor["Location"])
        files = sorted(str(p) for pattern in _RAW_FILE_GLOBS[kind] for p in root.rglob(pattern))
        columns = ", ".join(
            f"{_quote(c['Name'])}: {_quote(_glue_to_duck(c['Type']))}"
            for c in descriptor["Columns"]
        )
        if not files:
            log.info("table %s: no files under %s", table["Name"], root)
            return
        file_list = "[" + ", ".join(_quote(f) for f in files) + "]"
        if kind == "csv":
            source = f"read_csv({file_list}, header = true, auto_detect = false, columns = {{{columns}}})"
        else:
            source = (
                f"read_json({file_list}, format = 'newline_delimited', columns = {{{columns}}})"
            )
        name = f"{_ident(self.config.database)}.{_ident(table['Name'])}"
        self.con.execute(f"create or replace view {name} as select * from {source}")
        self.tables[table["Name"]] = str(root)

    # running

    def run(self, sql: str, name: str | None = None) -> QueryResult:
        """Render, transpile and run one statement; measure files and bytes read."""
        rendered = render(sql, self.params)
        if is_ddl(rendered):
            started = time.perf_counter()
            self._apply_ddl(rendered)
            return QueryResult(
                name, rendered, pd.DataFrame(), 0, time.perf_counter() - started, 0, 0
            )
        if not self._ready:
            self.setup_tables()
        duck_sql = to_duckdb(rendered)
        started = time.perf_counter()
        try:
            with self._profiling():
                cursor = self.con.execute(duck_sql)
                types = [str(d[1]) for d in cursor.description or []]
                df = cursor.df()
        except self._duckdb.Error as exc:
            raise QueryError(one_line(exc)) from exc
        seconds = time.perf_counter() - started
        # DuckDB sums integers into HUGEINT, which pandas gets as float; Athena's sum of
        # integers is a bigint, so give back integers when every value is present.
        for i, kind in enumerate(types):
            if kind in ("HUGEINT", "UHUGEINT") and df.iloc[:, i].notna().all():
                df.isetitem(i, df.iloc[:, i].astype("int64"))
        files_read, bytes_read = self._read_profile()
        if files_read is None:
            files_read, bytes_read = self._measure_scans(duck_sql)
        log.debug("%s: %d rows, %s files, %s bytes", name, len(df), files_read, bytes_read)
        return QueryResult(name, rendered, df, len(df), seconds, files_read, bytes_read)

    @contextlib.contextmanager
    def _profiling(self) -> Iterator[None]:
        """Profile the statements run inside into the engine's JSON profile file."""
        self._profile.unlink(missing_ok=True)
        self.con.execute("set enable_profiling = 'json'")
        self.con.execute(f"set profiling_output = {_quote(str(self._profile))}")
        try:
            yield
        finally:
            self.con.execute("set enable_profiling = 'no_output'")

    def _measure_scans(self, duck_sql: str) -> tuple[int | None, int | None]:
        """Measure a query DuckDB answered from Parquet metadata while planning.

        Such a query (``count(*)`` with partition filters, say) runs no operator, so the
        profiler writes nothing. Run it once more with statistics propagation off, which
        makes DuckDB execute the (pruned) scan, and read that profile.
        """
        self.con.execute("set disabled_optimizers = 'statistics_propagation'")
        try:
            with self._profiling():
                self.con.execute(duck_sql).fetchall()
        finally:
            self.con.execute("reset disabled_optimizers")
        return self._read_profile()

    def _read_profile(self) -> tuple[int | None, int | None]:
        """Return (files read by every scan, bytes read from disk) from the profile."""
        if not self._profile.exists():
            return None, None
        profile = json.loads(self._profile.read_text())
        files = 0
        stack = list(profile.get("operator", []) or profile.get("children", []))
        while stack:
            node = stack.pop()
            stack.extend(node.get("children", []))
            info = node.get("extra_info", {})
            if node.get("type") == "TABLE_SCAN" and info.get("Function") in _SCAN_FUNCTIONS:
                files += int(info.get("Total Files Read", 0))
        return files, profile.get("io", {}).get("total_bytes_read")


# --- aws: Athena through pyathena ------------------------------------------------------


class AthenaEngine(_NamedQueries):
    """Athena SQL on Athena, through pyathena and the pipeline's workgroup."""

    def __init__(
        self,
        config: PipelineConfig,
        queries_path: Path | None = None,
        poll_interval: float = 1.0,
        connection: Any = None,
    ) -> None:
        super().__init__(config, queries_path)
        self.poll_interval = poll_interval
        self._connection = connection

    def connection(self) -> Any:
        """Return the pyathena connection (made on first use)."""
        if self._connection is None:
            from pyathena import connect

            kwargs: dict[str, Any] = {
                "work_group": self.config.workgroup,
                "s3_staging_dir": self.config.athena_results_uri,
                "region_name": self.config.region,
                "schema_name": self.config.database,
                "poll_interval": self.poll_interval,
            }
            if self.config.profile:
                kwargs["profile_name"] = self.config.profile
            if self.config.endpoint_url:
                kwargs["endpoint_url"] = self.config.endpoint_url
            self._connection = connect(**kwargs)
        return self._connection

    def setup_tables(self) -> None:
        """Run the DDL blocks (database, then the projected tables) on Athena."""
        for name, sql in self.queries.items():
            if is_ddl(sql):
                self.run(sql, name=name)

    def run(self, sql: str, name: str | None = None) -> QueryResult:
        """Run one rendered statement on Athena; bytes_read is DataScannedInBytes."""
        from pyathena.error import Error as AthenaError

        rendered = render(sql, self.params)
        cursor = self.connection().cursor()
        started = time.perf_counter()
        try:
            cursor.execute(rendered)
            rows = cursor.fetchall() if cursor.description else []
        except AthenaError as exc:
            raise QueryError(one_line(exc)) from exc
        seconds = time.perf_counter() - started
        columns = [d[0] for d in cursor.description or []]
        df = pd.DataFrame.from_records(rows, columns=columns)
        # Decimals as floats, as DuckDB returns them, so both targets give one dtype.
        for column, type_code in zip(
            columns, [d[1] for d in cursor.description or []], strict=True
        ):
            if str(type_code).lower().startswith("decimal"):
                df[column] = pd.to_numeric(df[column]).astype(float)
        return QueryResult(name, rendered, df, len(df), seconds, None, cursor.data_scanned_in_bytes)


def make_engine(config: PipelineConfig, queries_path: Path | None = None) -> Engine:
    """Return the engine for the config's target: DuckDB locally, Athena on aws."""
    if config.target == "local":
        return LocalEngine(config, queries_path)
    return AthenaEngine(config, queries_path)
