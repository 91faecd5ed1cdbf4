"""Where the pipeline runs: one object per target, with the same operations.

``make_target(config)`` picks the target once, from ``config.target``; everything after
that (the runner, query.py, the charts) calls the same operations on either, and
nothing outside this package asks which target it is:

- ``storage``: put/get/list objects by ``s3://`` URI (the lake folder, or S3);
- ``check_ready()``: refuse early, changing nothing, when the target cannot run;
- ``upload(sales, customers)``: the raw inputs, checked, under the raw prefixes (and,
  on aws, the job script);
- ``crawl()``: catalog the raw tables (the local crawler, or the Glue crawler);
- ``run_job(run_id)``: the ETL job (local PySpark, or a Glue job run), to the end;
- ``check_workflow()``, ``run_workflow()``: the crawl and the job as the deployed Glue
  workflow runs them (aws); the local target has no workflow and refuses both with a
  UsageError;
- ``read_metrics(run_id)``: the job's ``_runs/<run_id>.json``;
- ``engine()``: the query engine (DuckDB over the lake, or Athena);
- ``check_processed_data()``: refuse, with NoDataError, when there is visibly nothing
  to chart;
- ``cost_lines(...)``: what a run cost at list prices, as summary lines (none locally);
- ``publish_report(html, name)``: keep the run's HTML page where its readers are (on
  aws, in the results bucket, with a presigned link valid for a short time); locally
  the page on disk is all there is (None).

``resolve_config(config)`` completes a CLI's config as its target needs (on aws, the
account from STS, which names the buckets).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from pipeline.config import PipelineConfig
from pipeline.engines import Engine
from pipeline.storage import RawUpload, Storage
from pipeline.targets.aws import AwsTarget
from pipeline.targets.base import CrawlResult, JobRun
from pipeline.targets.local import LocalTarget

__all__ = ["CrawlResult", "JobRun", "Target", "make_target", "resolve_config"]


class Target(Protocol):
    name: str
    config: PipelineConfig
    storage: Storage

    def check_ready(self) -> None: ...
    def check_kept_apart(self, own_data: bool) -> None: ...
    def upload(self, sales: str | Path, customers: str | Path) -> RawUpload: ...
    def crawl(self) -> CrawlResult: ...
    def run_job(
        self, run_id: str, echo: Callable[[str], None] | None = None, *, full_rebuild: bool = False
    ) -> JobRun: ...
    def check_workflow(self) -> None: ...
    def run_workflow(
        self, echo: Callable[[str], None] | None = None
    ) -> tuple[CrawlResult, JobRun]: ...
    def read_metrics(self, run_id: str) -> dict[str, Any]: ...
    def engine(self, queries_path: Path | None = None) -> Engine: ...
    def check_processed_data(self) -> None: ...
    def cost_lines(
        self,
        job: JobRun | None,
        crawl: CrawlResult | None,
        scanned: Sequence[int],
        stored_bytes: int,
    ) -> list[str]: ...
    def publish_report(self, html: bytes, name: str) -> tuple[str, str, int] | None: ...


_TARGETS: dict[str, type[LocalTarget] | type[AwsTarget]] = {
    LocalTarget.name: LocalTarget,
    AwsTarget.name: AwsTarget,
}


def make_target(config: PipelineConfig, **kwargs: Any) -> Target:
    """The target ``config.target`` names; ``kwargs`` go to its constructor."""
    return _TARGETS[config.target](config, **kwargs)


def resolve_config(config: PipelineConfig) -> PipelineConfig:
    """The config as its target runs it: on aws with its account (STS), else as it is."""
    return _TARGETS[config.target].resolve_config(config)
