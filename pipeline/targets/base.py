"""What both targets share: the results of a crawl and of a job run, and the metrics read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.config import PipelineConfig
from pipeline.storage import Storage, read_metrics


@dataclass
class CrawlResult:
    """What a crawl did: the tables it wrote (by name) and, on aws, its billing."""

    tables: list[str] = field(default_factory=list)
    status: str = "SUCCEEDED"
    dpu_hours: float | None = None  # reported by Glue for the crawl; None locally


@dataclass
class JobRun:
    """One finished run of the ETL job."""

    run_id: str
    seconds: float  # billed execution time on Glue, wall time locally
    details: dict[str, Any] = field(default_factory=dict)  # aws: job run id, workers, DPU


class TargetBase:
    """The operations that are the same on both targets, through ``storage``."""

    config: PipelineConfig
    storage: Storage

    def read_metrics(self, run_id: str) -> dict[str, Any]:
        """The job's metrics file, ``_runs/<run_id>.json``."""
        return read_metrics(self.storage, self.config, run_id)
