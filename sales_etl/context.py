"""What every step of one run shares: Spark, the arguments and inputs, the output
folders, the phase timer, and what step 1 found.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from sales_etl.arguments import JobArgs
from sales_etl.contracts import ENRICHED_DIR, QUARANTINE_DIR, RUNS_DIR, SUMMARY_DIR
from sales_etl.counts import Counts
from sales_etl.files import HadoopFiles, LocalFiles, absolute_path, filesystem_for, join_path
from sales_etl.inputs import InputPlan
from sales_etl.sales_pass import SalesRead

log = logging.getLogger(__name__)


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
        root = absolute_path(args.output_path)
        qroot = absolute_path(args.quarantine_path or join_path(root, QUARANTINE_DIR))
        return cls(
            root=root,
            enriched=join_path(root, ENRICHED_DIR),
            summary=join_path(root, SUMMARY_DIR),
            quarantine=join_path(qroot, f"run_id={run_id}"),
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
