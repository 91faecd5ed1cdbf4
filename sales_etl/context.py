"""What every step of one run shares: Spark, the arguments and inputs, the output
folders, the phase timer, and what step 1 found.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sales_etl.arguments import JobArgs
from sales_etl.contracts import (
    CUSTOMER_COLUMNS,
    ENRICHED_DIR,
    QUARANTINE_DIR,
    RUNS_DIR,
    SALES_CONTENT,
    SUMMARY_DIR,
    SUPERSEDED_DIR,
)
from sales_etl.counts import Counts
from sales_etl.files import HadoopFiles, LocalFiles, absolute_path, filesystem_for, join_path
from sales_etl.inputs import InputPlan
from sales_etl.lake import LakeChanges
from sales_etl.sales_pass import SalesRead

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunContext:
    """What every step of one run needs: Spark, the arguments and inputs, where it writes."""

    spark: SparkSession | None  # None only for a run with nothing new to read
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
        spark: SparkSession | None,
        args: JobArgs,
        plan: InputPlan,
        *,
        run_id: str,
        started: datetime,
    ) -> RunContext:
        t0 = time.monotonic()
        out = Outputs.for_run(args, run_id, started.date())
        out_fs = filesystem_for(out.root, spark)
        return cls(spark, args, plan, run_id, started, t0, out, out_fs, durations={})

    def reading(self, plan: InputPlan) -> RunContext:
        """This run, reading only the files of ``plan``."""
        return replace(self, plan=plan)

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
    quarantine_root: str
    quarantine: str  # this run's quarantine file: <root>/run_date=<date>/<run_id>.parquet
    superseded_root: str
    superseded: str  # this run's superseded records, laid out as the quarantine
    runs_file: str

    @classmethod
    def for_run(cls, args: JobArgs, run_id: str, run_date: date) -> Outputs:
        root = absolute_path(args.output_path)
        qroot = absolute_path(args.quarantine_path or join_path(root, QUARANTINE_DIR))
        sroot = join_path(root, SUPERSEDED_DIR)
        day = f"run_date={run_date.isoformat()}"
        return cls(
            root=root,
            enriched=join_path(root, ENRICHED_DIR),
            summary=join_path(root, SUMMARY_DIR),
            quarantine_root=qroot,
            # Partitioned by the run's date, which Athena projects; the run id is a
            # column of the file, never also a folder name (readers would see it twice).
            quarantine=join_path(qroot, day, f"{run_id}.parquet"),
            superseded_root=sroot,
            superseded=join_path(sroot, day, f"{run_id}.parquet"),
            runs_file=join_path(root, RUNS_DIR, f"{run_id}.json"),
        )


@contextmanager
def timed_phase(name: str, durations: dict[str, float]) -> Iterator[dict[str, int]]:
    """Log a phase's start and end (with its rows when the caller sets ``rows``)."""
    log.info("phase %s: started", name)
    step = time.monotonic()
    info: dict[str, int] = {}
    yield info
    durations[name] = round(time.monotonic() - step, 3)
    rows = f", {info['rows']} rows" if "rows" in info else ""
    log.info("phase %s: done in %.1f s%s", name, durations[name], rows)


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    return ts.isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Checked:
    """Every input record read once and classified; the counts before anything is written."""

    read: SalesRead  # how the sales input was read, and the frames it persisted
    sales: DataFrame  # every sales record: reason, _extra_duplicate, _superseded final
    outcome: DataFrame | None  # the duplicate check's outcome, persisted (None: no repeats)
    customers: DataFrame  # every customer record read, classified (persisted)
    enriched: DataFrame  # the rows to add: kept sales LEFT JOIN customers, year, month, day
    groups: DataFrame  # summary_groups(enriched), persisted: the summary and the counts
    counts: Counts
    planned: dict[str, dict[str, Any]]  # the reconciliation per source, from the counts
    lake: LakeChanges  # what the new rows change in the loaded ones
    full: bool  # a full rebuild: the outputs replace every earlier one
    customers_state: DataFrame | None  # every customer record now known, to keep (None: as is)

    @property
    def persisted(self) -> list[DataFrame | None]:
        """What this step persisted, to unpersist once the outputs are verified."""
        return [
            *self.read.persisted,
            self.outcome,
            self.customers,
            self.groups,
            *self.lake.persisted,
        ]

    def superseded_parts(self) -> list[tuple[str, DataFrame]]:
        """The records newer versions replaced, by source (see tables.superseded_records)."""
        parts = []
        if self.counts.sales.superseded and self.outcome is not None:
            replaced = self.outcome.where("_d_superseded").select(
                "_row_id", "_d_source_file", "_d_superseded_by"
            )
            rows = self.sales.join(replaced, "_row_id")
            parts.append(
                (
                    "sales",
                    _as_record(
                        rows,
                        "transaction_id",
                        SALES_CONTENT,
                        "_d_source_file",
                        F.col("_d_superseded_by"),
                    ),
                )
            )
        if self.counts.customers.superseded:
            rows = self.customers.where("_superseded")
            parts.append(
                (
                    "customers",
                    _as_record(
                        rows,
                        "customer_id",
                        CUSTOMER_COLUMNS,
                        "_source_file",
                        F.col("_superseded_by"),
                    ),
                )
            )
        if self.lake.replaced and self.lake.removed is not None:
            names = self.read.file_names
            by = (
                F.create_map(*[F.lit(x) for h, n in names.items() for x in (h, n)])
                if names
                else None
            )
            new_file = by[F.col("_by_hash")] if by is not None else F.lit(None).cast("string")
            parts.append(
                (
                    "sales",
                    _as_record(self.lake.removed, "transaction_id", SALES_CONTENT, None, new_file),
                )
            )
        return parts


def _as_record(
    rows: DataFrame, key: str, fields: Sequence[str], source_file: str | None, by: Any
) -> DataFrame:
    return rows.select(
        F.col(key).alias("record_id"),
        (F.col(source_file) if source_file else F.lit(None).cast("string")).alias("source_file"),
        by.alias("superseded_by"),
        F.to_json(F.struct(*[F.col(c) for c in fields])).alias("record"),
    )
