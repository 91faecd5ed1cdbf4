"""Run the named SQL of ``athena_queries.sql`` on Athena or, locally, on DuckDB.

``LocalEngine`` never holds a second copy of the SQL: each block is rendered, then
transpiled by sqlglot from Athena to DuckDB. The DDL blocks themselves are parsed to
register the tables: each ``LOCATION`` / ``storage.location.template`` is mapped into the
lake, hive partitions are read with the declared partition types, the projection ranges
are applied, and the declared column types are cast. The crawled raw tables come from
the local catalog's ``TableInput`` JSON. Files and bytes read are measured from DuckDB's
own profiler (``Total Files Read`` of every scan, ``io.total_bytes_read``). DECIMAL
columns come back as floats in the frame and exactly beside it. A rejected statement is
one line saying where (in the user's SQL, not the transpiled one) and what went wrong.

``AthenaEngine`` sends the same rendered blocks through pyathena to the workgroup and
reports Athena's ``DataScannedInBytes``; its errors are rewritten into the same shape.
"""

from __future__ import annotations

import calendar
import contextlib
import datetime as dt
import difflib
import glob
import json
import logging
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa
import sqlglot
from sqlglot import exp

from pipeline.catalog import is_json_array, load_catalog
from pipeline.config import PipelineConfig
from pipeline.errors import QueryError, UsageError
from pipeline.sql import (
    find_token,
    is_ddl,
    load_queries,
    one_line,
    render,
    syntax_error,
    tokens,
    where,
)

log = logging.getLogger(__name__)

_SCAN_FUNCTIONS = ("READ_PARQUET", "READ_CSV", "READ_CSV_AUTO", "READ_JSON", "READ_JSON_AUTO")
_RAW_FILE_GLOBS = {"csv": ("*.csv",), "json": ("*.json", "*.jsonl", "*.ndjson")}
_DUCK_LINE_RE = re.compile(r"^LINE (\d+): (.*)$")
_NO_TABLE_RE = re.compile(r'Table with name "?(.+?)"? does not exist')
_NO_COLUMN_RE = re.compile(r'Referenced column "(.+?)" not found')
_NO_COLUMN_IN_RE = re.compile(r'(?:Values list|Table) "(.+?)" does not have a column named "(.+?)"')
_NO_ALIAS_RE = re.compile(r'Referenced table "(.+?)" not found')
_CANDIDATES_RE = re.compile(r"^Candidate (?:bindings|tables): (.*)$", re.MULTILINE)
_AWS_CALL_RE = re.compile(r"^An error occurred \((\w+)\) when calling the \w+ operation: ")
_ATHENA_CODE_RE = re.compile(r"^([A-Z][A-Z_]+): ")
_ATHENA_AT_RE = re.compile(r"\bline (\d+):(\d+):?\s*", re.IGNORECASE)
_ATHENA_EXPECTING_RE = re.compile(r"mismatched input '(.*?)'\. Expecting: (.*)$")


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
    # The exact values of the DECIMAL columns, by column position: ``df`` holds them as
    # floats (for arithmetic and charts); these are for printing money to the cent.
    decimals: dict[int, pa.ChunkedArray] = field(default_factory=dict)


class Engine(Protocol):
    def setup_tables(self) -> None: ...
    def run(self, sql: str, name: str | None = None) -> QueryResult: ...
    def run_named(self, name: str) -> QueryResult: ...


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
            close = difflib.get_close_matches(name, self.queries, n=3, cutoff=0.7)
            hint = f"closest: {', '.join(close)}" if close else "none is close"
            raise UsageError(
                f"no query named {name!r} ({hint}); python query.py --list names them all"
            )
        return self.run(self.queries[name], name=name)


# --- local: DuckDB over the lake ------------------------------------------------------


def to_duckdb(sql: str) -> str:
    """Transpile one Athena (Trino/Hive) statement to DuckDB SQL with sqlglot."""
    try:
        statements = [s for s in sqlglot.transpile(sql, read="athena", write="duckdb") if s]
    except sqlglot.errors.SqlglotError as exc:
        raise QueryError(syntax_error(sql, exc)) from exc
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


def _file_list(files: list[Path]) -> str:
    return "[" + ", ".join(_quote(str(f)) for f in files) + "]"


def _duck_offset(message: str, duck_sql: str) -> int | None:
    """Offset into ``duck_sql`` of the first ``^`` under DuckDB's ``LINE n:`` context."""
    lines = message.split("\n")
    for i, line in enumerate(lines[:-1]):
        match = _DUCK_LINE_RE.match(line)
        if not match or "^" not in lines[i + 1]:
            continue
        number, shown = int(match.group(1)), match.group(2)
        caret = lines[i + 1].index("^") - match.start(2)
        if shown.startswith("..."):  # DuckDB cuts a long line to a window around the error
            shown, caret = shown[3:], caret - 3
        shown = shown.removesuffix("...")
        sql_lines = duck_sql.split("\n")
        if number > len(sql_lines) or caret < 0:
            return None
        base = sql_lines[number - 1].find(shown)
        if base < 0:
            return None
        return sum(len(x) + 1 for x in sql_lines[: number - 1]) + base + caret
    return None


def _user_offset(message: str, sql: str, duck_sql: str, prefix: str = "") -> int | None:
    """Where in the user's ``sql`` the token DuckDB points at in ``duck_sql`` is.

    sqlglot rewrites the statement, so DuckDB's position is no place in the user's
    text; the token under the caret is, as its n-th occurrence in both statements.
    ``prefix`` is what DuckDB ran before ``duck_sql`` (``explain ``).
    """
    offset = _duck_offset(message, prefix + duck_sql)
    if offset is None or offset < len(prefix):
        return None
    offset -= len(prefix)
    try:
        duck_tokens = tokens(duck_sql, dialect="duckdb")
    except sqlglot.errors.SqlglotError:
        return None
    for i, token in enumerate(duck_tokens):
        if token.start <= offset <= token.end:
            text = token.text.lower()
            occurrence = 1 + sum(1 for t in duck_tokens[:i] if t.text.lower() == text)
            return find_token(sql, token.text, occurrence)
    return None


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
            elif kind == "date" and f"projection.{col}.range" in self.properties:
                fmt = self.properties.get(f"projection.{col}.format", "")
                low, high = (
                    _projected_date(v, fmt)
                    for v in self.properties[f"projection.{col}.range"].split(",")
                )
                filters.append(f"{_ident(col)} between {_quote(low)} and {_quote(high)}")
        return filters


# Athena's date projection formats (Java DateTimeFormatter) the local engine reads.
_DATE_FORMATS = {"yyyy-MM-dd": "%Y-%m-%d"}
_NOW_RE = re.compile(r"^NOW(?:([+-])(\d+)(YEARS|MONTHS|WEEKS|DAYS))?$", re.IGNORECASE)


def _projected_date(value: str, fmt: str) -> str:
    """One end of a date projection's range (``2020-01-01``, ``NOW``, ``NOW-2YEARS``) as
    the partition values spell it, UTC, as Athena reads it."""
    if fmt not in _DATE_FORMATS:
        raise QueryError(
            f"the local engine reads date projections in {', '.join(_DATE_FORMATS)}, not {fmt!r}"
        )
    value = value.strip()
    found = _NOW_RE.match(value)
    if not found:
        return value
    day = dt.datetime.now(dt.UTC).date()
    sign, amount, unit = found.groups()
    if amount:
        n = int(amount) * (1 if sign == "+" else -1)
        unit = unit.upper()
        if unit in ("YEARS", "MONTHS"):
            months = day.month - 1 + n * (12 if unit == "YEARS" else 1)
            year, month = day.year + months // 12, months % 12 + 1
            last = calendar.monthrange(year, month)[1]
            day = day.replace(year=year, month=month, day=min(day.day, last))
        else:
            day += dt.timedelta(days=n * (7 if unit == "WEEKS" else 1))
    return day.strftime(_DATE_FORMATS[fmt])


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
            raise QueryError(syntax_error(sql, exc)) from exc
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
        files = sorted(p for pattern in _RAW_FILE_GLOBS[kind] for p in root.rglob(pattern))
        columns = ", ".join(
            f"{_quote(c['Name'])}: {_quote(_glue_to_duck(c['Type']))}"
            for c in descriptor["Columns"]
        )
        if not files:
            log.info("table %s: no files under %s", table["Name"], root)
            return
        if kind == "csv":
            body = (
                f"select * from read_csv({_file_list(files)}, header = true, "
                f"auto_detect = false, columns = {{{columns}}})"
            )
        else:
            # The crawler takes a file holding one JSON array as well as NDJSON (one
            # object per line); DuckDB reads each layout with its own format.
            arrays = [f for f in files if f.stat().st_size and is_json_array(f)]
            lines = [f for f in files if f not in arrays]
            body = " union all ".join(
                f"select * from read_json({_file_list(group)}, format = {_quote(fmt)}, "
                f"columns = {{{columns}}})"
                for fmt, group in (("newline_delimited", lines), ("array", arrays))
                if group
            )
        name = f"{_ident(self.config.database)}.{_ident(table['Name'])}"
        self.con.execute(f"create or replace view {name} as {body}")
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
                relation = self.con.sql(duck_sql)
                types = [str(t) for t in relation.types] if relation is not None else []
                table = relation.to_arrow_table() if relation is not None else None
        except self._duckdb.Error as exc:
            raise QueryError(self.error_message(exc, rendered, duck_sql)) from exc
        # DuckDB's own conversion to pandas (as cursor.df() would give); the Arrow table
        # keeps the DECIMAL columns exact for printing.
        df = self.con.from_arrow(table).df() if table is not None else pd.DataFrame()
        decimals = {
            i: table.column(i) for i, kind in enumerate(types) if kind.startswith("DECIMAL")
        }
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
        return QueryResult(name, rendered, df, len(df), seconds, files_read, bytes_read, decimals)

    def error_message(self, exc: Exception, sql: str, duck_sql: str) -> str:
        """DuckDB's error about ``duck_sql`` as one line about the user's ``sql``.

        The place is DuckDB's caret mapped back to the same token of the user's
        statement; an unknown table lists the tables there are (the catalog's and the
        DDL's, not DuckDB's own), an unknown column the closest columns DuckDB found.
        """
        text, prefix = self._with_context(exc, duck_sql)
        head = text.split("\n", 1)[0].strip()
        offset = _user_offset(text, sql, duck_sql, prefix)
        at = f"{where(sql, offset)}: " if offset is not None else ""
        candidates = _CANDIDATES_RE.search(text)
        closest = re.findall(r'"([^"]+)"', candidates.group(1)) if candidates else []
        if match := _NO_TABLE_RE.search(head):
            known = ", ".join(sorted(self.tables)) or "none yet (crawl and run the job first)"
            return f'{at}there is no table "{match.group(1)}"; tables in {self.config.database}: {known}'
        if match := _NO_COLUMN_RE.search(head):
            hint = f"; closest: {', '.join(closest)}" if closest else ""
            return f'{at}there is no column "{match.group(1)}" in the tables this query reads{hint}'
        if match := _NO_COLUMN_IN_RE.search(head):
            return f'{at}"{match.group(1)}" has no column "{match.group(2)}"'
        if match := _NO_ALIAS_RE.search(head):
            hint = f"; this query reads: {', '.join(closest)}" if closest else ""
            return f'{at}"{match.group(1)}" is not a table or alias of this query{hint}'
        return f"{at}{head}"

    def _with_context(self, exc: Exception, duck_sql: str) -> tuple[str, str]:
        """DuckDB's message with its ``LINE n:`` context, and what the context shows
        before ``duck_sql``.

        ``con.sql`` leaves the context out. Binding the statement again with ``explain``
        (which runs nothing) raises the same error with it; an error raised while
        running has no context and stays as it is.
        """
        text = str(exc)
        if "\nLINE " in text:
            return text, ""
        try:
            self.con.execute(f"explain {duck_sql}")
        except self._duckdb.Error as again:
            if str(again).split("\n", 1)[0] == text.split("\n", 1)[0]:
                return str(again), "explain "
        return text, ""

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
            raise QueryError(athena_message(exc)) from exc
        seconds = time.perf_counter() - started
        description = cursor.description or []
        df = pd.DataFrame.from_records(rows, columns=[d[0] for d in description])
        # Decimals as floats, as DuckDB returns them, so both targets give one dtype; the
        # exact values (pyathena gives Decimal) are kept for printing.
        decimals = {}
        for i, column in enumerate(description):
            if str(column[1]).lower().startswith("decimal"):
                precision, scale = column[4] or 38, column[5] or 0
                exact = pa.array([row[i] for row in rows], pa.decimal128(precision, scale))
                decimals[i] = pa.chunked_array([exact])
                df.isetitem(i, pd.to_numeric(df.iloc[:, i]).astype(float))
        return QueryResult(
            name, rendered, df, len(df), seconds, None, cursor.data_scanned_in_bytes, decimals
        )


def athena_message(exc: Exception) -> str:
    """Athena's (Trino's) error as one line: ``line L, column C: what (CODE)``."""
    text = one_line(exc)
    code = None
    if match := _AWS_CALL_RE.match(text):  # rejected when submitted (StartQueryExecution)
        code, text = match.group(1), text[match.end() :]
    if match := _ATHENA_CODE_RE.match(text):  # failed while running: TABLE_NOT_FOUND: ...
        code, text = match.group(1), text[match.end() :]
    at = ""
    if match := _ATHENA_AT_RE.search(text):
        at = f"line {match.group(1)}, column {match.group(2)}: "
        text = (text[: match.start()] + text[match.end() :]).strip()
    if match := _ATHENA_EXPECTING_RE.search(text):
        expected = [e.strip() for e in match.group(2).split(",")]
        shown = ", ".join(expected[:8]) + (", ..." if len(expected) > 8 else "")
        text = f'unexpected "{match.group(1)}"; expected one of {shown}'
    return f"{at}{text}" + (f" ({code})" if code else "")
