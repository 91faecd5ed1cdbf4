"""The aws target: S3, the Glue crawler and job, Athena (or moto / LocalStack)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from botocore.config import Config as BotoConfig

from pipeline import costs, infra
from pipeline.aws import client, with_account
from pipeline.config import (
    ENRICHED_TABLE,
    QUARANTINE_TABLE,
    SUMMARY_TABLE,
    PipelineConfig,
    split_s3_uri,
)
from pipeline.engines import AthenaEngine
from pipeline.errors import CrawlerError, JobRunFailed
from pipeline.infra.shared import retry_iam_propagation
from pipeline.storage import RawUpload, S3Storage, upload_raw
from pipeline.targets.base import CrawlResult, JobRun, TargetBase, remove_hint

log = logging.getLogger(__name__)


class AwsTarget(TargetBase):
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

    @staticmethod
    def resolve_config(config: PipelineConfig) -> PipelineConfig:
        """The config with its account (STS, once), so the bucket names are this account's."""
        return with_account(config)

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

    def upload(self, sales: str | Path, customers: str | Path) -> RawUpload:
        """The raw inputs, then the job script, which the Glue job runs from S3."""
        uploaded = upload_raw(self.storage, self.config, sales, customers)
        infra.upload_job_script(self.config, self.clients)
        return uploaded

    def crawl(self) -> CrawlResult:
        crawl = run_aws_crawler(
            self.config, glue=self.clients.glue, poll_seconds=self.poll_seconds, sleep=self.sleep
        )
        return self._crawl_result(crawl.get("Status", ""))

    def run_job(
        self, run_id: str, echo: Callable[[str], None] | None = None, *, full_rebuild: bool = False
    ) -> JobRun:
        """Start the Glue job with ``--run_id`` and poll it, with back-off, to the end."""
        config, glue = self.config, self.clients.glue
        started = time.perf_counter()
        arguments = {"--run_id": run_id, **({"--full_rebuild": "true"} if full_rebuild else {})}
        # Retried while a just-made role propagates (bounded; the same sleep as polling).
        job_run_id = retry_iam_propagation(
            lambda: glue.start_job_run(JobName=config.job_name, Arguments=arguments),
            role=config.role_name,
            sleep=self.sleep,
        )["JobRunId"]
        (echo or log.info)(f"started job run {job_run_id} (run_id {run_id})")
        try:
            job_run = infra.wait_for_job_run(
                glue, config.job_name, job_run_id, first_poll=self.poll_seconds, sleep=self.sleep
            )
        except JobRunFailed as exc:
            raw = (config.raw_sales_uri, config.raw_customers_uri)
            flags = f"--target aws --prefix {config.prefix}"
            raise JobRunFailed(remove_hint(str(exc), raw, flags)) from exc
        return _job_result(job_run, run_id, time.perf_counter() - started)

    def check_kept_apart(self, own_data: bool) -> None:
        """Nothing to check: on aws your own data gets a --prefix of its own (README)."""

    def check_workflow(self) -> None:
        """Nothing to refuse: `deploy.py up` makes the workflow with the rest of the stack."""

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
            tables=sorted(t["Name"] for t in tables if t["Name"] not in _JOB_TABLES),
            status=status,
            # Crawls bill $0.44/DPU-hour too (10-minute minimum); None if not reported.
            dpu_hours=infra.last_crawl_dpu_hours(self.clients.glue, self.config.crawler_name),
        )

    def engine(self, queries_path: Path | None = None) -> AthenaEngine:
        return AthenaEngine(self.config, queries_path)

    def check_processed_data(self) -> None:
        """Nothing to check before querying: Athena answers, and a chart with no rows
        raises NoDataError itself."""

    def cost_lines(
        self,
        job: JobRun | None,
        crawl: CrawlResult | None,
        scanned: Sequence[int],
        stored_bytes: int,
    ) -> list[str]:
        """The run's estimated cost at list prices (see ``pipeline.costs``)."""
        return costs.run_cost_lines(
            job_seconds=job.seconds if job else 0.0,
            workers=int(job.details.get("workers", 2)) if job else 2,
            crawl_dpu_hours=crawl.dpu_hours if crawl else None,
            scanned=scanned,
            stored_bytes=stored_bytes,
        )

    def publish_report(self, html: bytes, name: str) -> tuple[str, str, int]:
        """Put the page in the results bucket, encrypted as every object there (SSE-S3)
        and private as the bucket is; return its URI, a presigned GET link and how many
        seconds the link is valid."""
        bucket, key = split_s3_uri(self.config.reports_uri + name)
        s3 = self.clients.s3
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=html,
            ContentType="text/html; charset=utf-8",
            ServerSideEncryption="AES256",
        )
        # Signature version 4, which every region accepts (v2 links only work in old ones).
        signer = client(self.config, "s3", config=BotoConfig(signature_version="s3v4"))
        link = signer.generate_presigned_url(
            "get_object",
            Params={"Bucket": bucket, "Key": key},
            ExpiresIn=REPORT_LINK_SECONDS,
        )
        return f"s3://{bucket}/{key}", link, REPORT_LINK_SECONDS


# How long the report's presigned link works: long enough to open it after the run,
# short enough that a link pasted somewhere stops working soon.
REPORT_LINK_SECONDS = 15 * 60

# The job's own tables, which a crawl of the raw folders does not make.
_JOB_TABLES = frozenset({ENRICHED_TABLE, SUMMARY_TABLE, QUARANTINE_TABLE})


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


# --- the aws crawler -----------------------------------------------------------------


# How far AWS's clock may be from the one that timed the start (a local clock, when
# the StartCrawler answer has no Date header): AWS refuses requests signed more than
# 5 minutes off its time, so a client that got this far is within that.
CLOCK_SKEW = timedelta(minutes=5)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _answered_at(response: Any) -> datetime:
    """When AWS answered, by its own clock (the Date header), else the local UTC time."""
    headers = (response or {}).get("ResponseMetadata", {}).get("HTTPHeaders", {})
    if headers.get("date"):
        try:
            return _aware(parsedate_to_datetime(headers["date"]))
        except (TypeError, ValueError):
            pass
    return datetime.now(UTC)


def _is_new_crawl(
    last: dict[str, Any], previous: datetime | None, started: datetime | None
) -> bool:
    """True when ``last`` (a LastCrawl) is the crawl this run waits for.

    Not the crawl that was last before the start (``previous``), and, for a crawl this
    run started, begun no earlier than ``started`` less the clock skew.
    """
    if last.get("StartTime") is None:
        return True  # nothing to tell it by (AWS always reports StartTime)
    start = _aware(last["StartTime"])
    if previous is not None and start <= previous:
        return False
    return started is None or start >= started - CLOCK_SKEW


def run_aws_crawler(
    config: PipelineConfig,
    glue: Any,
    timeout_seconds: float = 900,
    poll_seconds: float = 10,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Start the deployed Glue crawler and wait until it is READY after this crawl.

    READY alone is not enough: until the new crawl begins, GetCrawler still answers
    READY with the previous crawl as ``LastCrawl``. The wait ends when ``LastCrawl`` is
    a crawl started after the previous one, at or after the start (with ``CLOCK_SKEW``).
    If a crawl is already running, it waits for that one. StartCrawler is retried while
    a just-made role propagates. Returns the crawl's ``LastCrawl``; raises
    :class:`CrawlerError` when the crawl failed or was cancelled, or when it is not over
    after ``timeout_seconds``.
    """
    name = config.crawler_name
    previous: datetime | None = None
    started: datetime | None = None
    try:
        before = glue.get_crawler(Name=name)["Crawler"].get("LastCrawl") or {}
        previous = _aware(before["StartTime"]) if before.get("StartTime") else None
        response = retry_iam_propagation(
            lambda: glue.start_crawler(Name=name), role=config.role_name, sleep=sleep
        )
        started = _answered_at(response)
    except glue.exceptions.CrawlerRunningException:
        log.info("crawler %s is already running; waiting for it", name)
    except glue.exceptions.EntityNotFoundException as exc:
        raise CrawlerError(f"crawler {name} does not exist: deploy the stack first") from exc
    deadline = time.monotonic() + timeout_seconds
    state = None
    while True:
        crawler = glue.get_crawler(Name=name)["Crawler"]
        state = crawler["State"]
        last = crawler.get("LastCrawl")
        if state == "READY" and last and _is_new_crawl(last, previous, started):
            break
        if time.monotonic() >= deadline:
            if state == "READY":
                raise CrawlerError(
                    f"crawler {name} is READY but its last crawl is still the one started "
                    f"{(last or {}).get('StartTime')}, not this run's, after "
                    f"{timeout_seconds:.0f}s; check it in the Glue console"
                )
            raise CrawlerError(
                f"crawler {name} still {state} after {timeout_seconds:.0f}s; "
                "check it in the Glue console or raise the timeout"
            )
        log.info("crawler %s is %s", name, state)
        sleep(poll_seconds)
    status = last.get("Status")
    # AWS reports SUCCEEDED; moto reports COMPLETED.
    if status not in ("SUCCEEDED", "COMPLETED"):
        message = last.get("ErrorMessage") or "no error message"
        raise CrawlerError(
            f"crawler {name} finished with status {status}: {message} "
            f"(logs: {last.get('LogGroup')}/{last.get('LogStream')})"
        )
    log.info("crawler %s finished: %s", name, status)
    return last
