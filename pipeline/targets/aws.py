"""The aws target: S3, the Glue crawler and job, Athena (or moto / LocalStack)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline import costs, infra
from pipeline.catalog import run_aws_crawler
from pipeline.config import ENRICHED_TABLE, SUMMARY_TABLE, PipelineConfig
from pipeline.infra.shared import retry_iam_propagation
from pipeline.storage import S3Storage, upload_raw
from pipeline.targets import CrawlResult, JobRun

log = logging.getLogger(__name__)


class AwsTarget:
    name = "aws"

    def __init__(
        self,
        config: PipelineConfig,
        clients: infra.Clients | None = None,
        poll_seconds: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self._clients = clients
        self.poll_seconds = poll_seconds
        self.sleep = sleep

    @property
    def clients(self) -> infra.Clients:
        """The boto3 clients, made on first use (query.py needs none of them)."""
        if self._clients is None:
            self._clients = infra.Clients.for_config(self.config)
        return self._clients

    @property
    def storage(self) -> S3Storage:
        return S3Storage(self.clients.s3)

    def check_ready(self) -> None:
        """Every resource deployed and ours, changing nothing (see infra.check_ready_to_run)."""
        infra.check_ready_to_run(self.config, self.clients)

    def upload(self, sales: str | Path, customers: str | Path) -> list[str]:
        """The raw inputs, then the job script, which the Glue job runs from S3."""
        uploaded = upload_raw(self.storage, self.config, sales, customers)
        infra.upload_job_script(self.config, self.clients)
        return uploaded

    def crawl(self) -> CrawlResult:
        crawl = run_aws_crawler(
            self.config, glue=self.clients.glue, poll_seconds=self.poll_seconds, sleep=self.sleep
        )
        return self._crawl_result(crawl.get("Status", ""))

    def _job_tables(self) -> set[str]:
        return {ENRICHED_TABLE, SUMMARY_TABLE}

    def run_job(self, run_id: str, echo: Callable[[str], None] | None = None) -> JobRun:
        """Start the Glue job with ``--run_id`` and poll it, with back-off, to the end."""
        config, glue = self.config, self.clients.glue
        started = time.perf_counter()
        # Retried while a just-made role propagates (bounded; the same sleep as polling).
        job_run_id = retry_iam_propagation(
            lambda: glue.start_job_run(JobName=config.job_name, Arguments={"--run_id": run_id}),
            role=config.role_name,
            sleep=self.sleep,
        )["JobRunId"]
        (echo or log.info)(f"started job run {job_run_id} (run_id {run_id})")
        job_run = infra.wait_for_job_run(
            glue, config.job_name, job_run_id, first_poll=self.poll_seconds, sleep=self.sleep
        )
        return _job_result(job_run, run_id, time.perf_counter() - started)

    def run_workflow(self, echo: Callable[[str], None] | None = None) -> tuple[CrawlResult, JobRun]:
        """Start the Glue workflow (crawl, then the job when the crawl succeeded) and follow
        it node by node to the end; return the crawl and the job run.

        The job runs without ``--run_id``, so its run id is the Glue job run id
        (``JOB_RUN_ID``): its metrics are ``_runs/<JobRunId>.json``.
        """
        config, glue = self.config, self.clients.glue
        started = time.perf_counter()
        run_id = glue.start_workflow_run(Name=config.workflow_name)["RunId"]
        (echo or log.info)(f"started workflow run {run_id} of {config.workflow_name}")
        run = infra.wait_for_workflow_run(
            glue, config, run_id, first_poll=self.poll_seconds, sleep=self.sleep
        )
        node_run = infra.job_run_of(run, config.job_name) or {}
        job_run = glue.get_job_run(JobName=config.job_name, RunId=node_run["Id"])["JobRun"]
        job = _job_result(job_run, job_run["Id"], time.perf_counter() - started)
        job.details["workflow_run_id"] = run_id
        return self._crawl_result("SUCCEEDED"), job

    def _crawl_result(self, status: str) -> CrawlResult:
        tables = self.clients.glue.get_tables(DatabaseName=self.config.database)["TableList"]
        return CrawlResult(
            tables=sorted(t["Name"] for t in tables if t["Name"] not in self._job_tables()),
            status=status,
            # Crawls bill $0.44/DPU-hour too (10-minute minimum); None if not reported.
            dpu_hours=infra.last_crawl_dpu_hours(self.clients.glue, self.config.crawler_name),
        )

    def read_metrics(self, run_id: str) -> dict[str, Any]:
        return json.loads(self.storage.get_bytes(f"{self.config.runs_uri}{run_id}.json"))

    def engine(self, queries_path: Path | None = None) -> Any:
        from pipeline.engines import AthenaEngine

        return AthenaEngine(self.config, queries_path)


def _job_result(job_run: dict[str, Any], run_id: str, wall: float) -> JobRun:
    """A finished Glue job run as the runner reports it, with its DPU-hours and cost."""
    workers = int(job_run.get("NumberOfWorkers") or infra.NUMBER_OF_WORKERS)
    worker_type = job_run.get("WorkerType") or infra.WORKER_TYPE
    # ExecutionTime is what Glue bills (seconds); fall back to the polled wall time.
    seconds = float(job_run.get("ExecutionTime") or wall)
    dpu_hours = costs.glue_dpu_hours(seconds, workers, infra.DPU_PER_WORKER.get(worker_type, 1))
    return JobRun(
        run_id=run_id,
        seconds=seconds,
        details={
            "job_run_id": job_run["Id"],
            "state": job_run["JobRunState"],
            "workers": workers,
            "worker_type": worker_type,
            "dpu_hours": dpu_hours,
            "glue_usd": dpu_hours * costs.GLUE_USD_PER_DPU_HOUR,
        },
    )
