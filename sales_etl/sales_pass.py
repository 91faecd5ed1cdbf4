"""The sales' first pass: every file read once, in parallel where its records are lines,
checked by the row rules and persisted, with the counts and repeated ids that the
rest of the run needs.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Observation, SparkSession, Window
from pyspark.sql import functions as F

from sales_etl.contracts import LINE_FLAGS, SALES_CONTENT, SALES_REASONS, JobFailedError
from sales_etl.files import file_key
from sales_etl.inputs import InputPlan
from sales_etl.readers import read_sales, read_sales_lines
from sales_etl.rules import check_sales_rows
from sales_etl.session import first_stage_tasks, job_group, ran_once, sql_conf
from sales_etl.tuning import KEY_COUNT_BYTES

log = logging.getLogger(__name__)


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
    # header lines and lines with an odd number of quotes (instead of a second scan of the
    # persisted rows).
    observation = Observation(f"sales_lines_{uuid.uuid4().hex[:8]}")
    observed = fast.observe(observation, *_line_metrics())
    # Adaptive execution is off for this one action. With it, Spark builds the persisted
    # rows in a job of their own and then scans them again for the shuffle; and when no id repeats, the result is empty and its rule for empty
    # relations replaces the plan that holds the metrics (they would be lost).
    with (
        sql_conf(spark, "spark.sql.adaptive.enabled", "false"),
        job_group(spark, "read_sales") as group,
    ):
        # Header lines are invalid rows: never counted.
        repeated = _repeated_ids(observed, key_partitions).persist()
        if meanwhile is not None:
            meanwhile()
        repeated_count = repeated.count()
    tasks = first_stage_tasks(spark, group)
    by_key = {file_key(f): f for f in files}
    observed_metrics = observation.get
    found = _lines_by_observation(observed_metrics, len(files))
    if found is None or not ran_once(spark, group):
        # A file with a quoted line break or a second header line, or metrics that a rerun
        # stage may have counted twice: count per file, by a scan of the persisted rows.
        log.info("sales lines counted per file (a scan of the persisted rows)")
        found = _lines_by_file(fast)
    seen, file_outcomes, file_names = found
    slow = sorted(f for f, r in seen.items() if r["odd_quotes"] or r["headers"] != 1)
    parallel = sorted(set(seen) - set(slow))
    source_paths = {f: by_key.get(file_key(f), f) for f in seen}
    outcomes = _add_counts(
        {},
        [(reason, n) for f, reason, n in file_outcomes if f is None or f in parallel],
    )
    rows = fast.where(~F.col("_header")).drop(*LINE_FLAGS)
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
        {f.path: f.mtime_ms for f in plan.sales_files},
        # Min and max are the same however often a stage ran; a file read again by the
        # multiLine reader has rows outside the line-by-line pass.
        None if slow else _id_range(observed_metrics),
    )


_VALID = "valid"

_LINE_TOTALS = ("_records", "_headers", "_odd_quotes", "_header_files")
_ID_RANGE = ("_low_id", "_high_id")


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
        # The valid rows' transaction-id range: the loaded rows a daily run holds its
        # new rows against are looked up in it (lake.against_lake).
        F.min(F.when(record & reason.isNull(), F.col("transaction_id"))).alias("_low_id"),
        F.max(F.when(record & reason.isNull(), F.col("transaction_id"))).alias("_high_id"),
        # As JSON text: the metrics come back through py4j, which converts no arrays.
        F.to_json(F.collect_set(F.when(header, F.struct("_file_hash", "_source_file")))).alias(
            "_header_files"
        ),
    ]


def _id_range(metrics: dict[str, Any]) -> tuple[str | None, str | None] | None:
    """The valid rows' lowest and highest transaction id (None, None: no valid row), or
    None when the pass was not observed."""
    if not set(_ID_RANGE) <= set(metrics):
        return None
    return metrics["_low_id"], metrics["_high_id"]


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
    if not {_VALID, *SALES_REASONS, *_LINE_TOTALS} <= set(metrics):
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
    return (
        seen,
        [(names[r["_file_hash"]], r["reason"], r["rows"]) for r in stats],
        names,
    )


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
    # Each planned path's modification time in ms (which file is newer).
    mtimes: dict[str, int]
    # The valid rows' (lowest, highest) transaction id, as the pass observed them (None,
    # None: no valid row); None when not known without a scan.
    id_range: tuple[str | None, str | None] | None = None

    @property
    def file_orders(self) -> dict[int, int]:
        """Each file's modification time by _file_hash."""
        return {
            h: self.mtimes.get(self.source_paths.get(n, n), 0) for h, n in self.file_names.items()
        }

    def read_plan(self) -> dict[str, Any]:
        return {
            "tasks": self.tasks,
            "parallel_files": self.parallel_files,
            "multiline_files": self.multiline_files,
        }


def _compact(rows: DataFrame, uid: Any) -> DataFrame:
    """Only what later steps use, plus a row id that stays fixed once persisted.

    Raw text and bytes are kept for rejected rows alone. So is the file name (and for
    header lines, which name every file): a path on every row makes persisting slower. Every row has ``_file_hash``, the 64-bit hash of its
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
        *[f for f in LINE_FLAGS if f in rows.columns],
    )


def _persist_packed(rows: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Persist ``rows`` as ``_row_id`` plus one struct of all other columns.

    Spark's columnar cache keeps statistics for every string column of every batch,
    which cost as much as the rule checks for the content strings; a struct is stored
    as its row bytes, without them (with the cache's compression off, see
    tuning.SPARK_TUNING).
    Returns (the persisted frame, to unpersist; its rows with the columns unpacked).
    """
    others = [c for c in rows.columns if c != "_row_id"]
    packed = rows.select("_row_id", F.struct(*others).alias("_r"))
    packed = packed.persist(StorageLevel.MEMORY_AND_DISK)
    return packed, packed.select("_row_id", "_r.*")


def _key_partitions(spark: SparkSession, plan: InputPlan) -> int:
    """Partitions for counting transaction ids: at least the session's shuffle partitions."""
    input_bytes = sum(f.size for f in plan.sales_files)
    default = int(spark.conf.get("spark.sql.shuffle.partitions") or 1)
    return max(default, -(-input_bytes // KEY_COUNT_BYTES))


def _repeated_ids(rows: DataFrame, partitions: int) -> DataFrame:
    """Hashes of the transaction ids that occur more than once among valid rows.

    A superset of the real repeats (a hash collision only adds a candidate). Nearly
    every id is unique, so the hashes are shuffled, sorted and counted per hash by a
    window over the sorted run: cheaper than a hash aggregate, which would build a table
    of every id twice, map side and reduce side.
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
