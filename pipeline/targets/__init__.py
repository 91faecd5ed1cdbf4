"""Where the pipeline runs: one object per target, with the same operations.

``make_target(config)`` picks the target once, from ``config.target``; everything after
that (the runner, query.py, the charts) calls the same operations on either:

- ``storage``: put/get/list objects by ``s3://`` URI (the lake folder, or S3);
- ``check_ready()``: refuse early, changing nothing, when the target cannot run;
- ``upload(sales, customers)``: the raw inputs under the raw prefixes (and, on aws, the
  job script);
- ``crawl()``: catalog the raw tables (the local crawler, or the Glue crawler);
- ``run_job(run_id)``: the ETL job (local PySpark, or a Glue job run), to the end;
- ``read_metrics(run_id)``: the job's ``_runs/<run_id>.json``;
- ``engine()``: the query engine (DuckDB over the lake, or Athena).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pipeline.config import PipelineConfig
from pipeline.storage import Storage


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


class Target(Protocol):
    name: str
    config: PipelineConfig
    storage: Storage

    def check_ready(self) -> None: ...
    def upload(self, sales: str | Path, customers: str | Path) -> list[str]: ...
    def crawl(self) -> CrawlResult: ...
    def run_job(self, run_id: str, echo: Callable[[str], None] | None = None) -> JobRun: ...
    def read_metrics(self, run_id: str) -> dict[str, Any]: ...
    def engine(self, queries_path: Path | None = None) -> Any: ...


def make_target(config: PipelineConfig, **kwargs: Any) -> Target:
    """The target ``config.target`` names; ``kwargs`` go to its constructor."""
    if config.target == "local":
        from pipeline.targets.local import LocalTarget

        return LocalTarget(config, **kwargs)
    from pipeline.targets.aws import AwsTarget

    return AwsTarget(config, **kwargs)
