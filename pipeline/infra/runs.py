"""The runs going on the deployment: a workflow run, a crawl, the job's runs. Not made by
``up``; ``down`` stops them, and waits for them, after the alarm and the rule (so that a
stopped run mails no failure alert) and before deleting anything they run on."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from pipeline.config import PipelineConfig
from pipeline.errors import DeployError
from pipeline.infra.cfn import CfnResource, Sentinels
from pipeline.infra.shared import (
    STOP_POLL_SECONDS,
    STOP_TIMEOUT_SECONDS,
    Context,
    Found,
    Resource,
    error_code,
)

log = logging.getLogger(__name__)

KIND = "glue-runs"
REF_STYLES: dict = {}

# Job runs in these states still hold the job (WAITING: queued by Glue job queuing).
ACTIVE_JOB_STATES = ("STARTING", "RUNNING", "STOPPING", "WAITING")
STOPPABLE_JOB_STATES = ("STARTING", "RUNNING", "WAITING")  # STOPPING ones are on their way
BATCH_STOP_MAX_IDS = 25  # BatchStopJobRun takes at most 25 JobRunIds


def _active_job_runs(glue: Any, job_name: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    for page in glue.get_paginator("get_job_runs").paginate(JobName=job_name):
        runs += [r for r in page.get("JobRuns", []) if r["JobRunState"] in ACTIVE_JOB_STATES]
    return runs


def _crawler_state(glue: Any, crawler_name: str) -> str:
    return glue.get_crawler(Name=crawler_name)["Crawler"].get("State", "READY")


def stop_runs(
    config: PipelineConfig,
    glue: Any,
    *,
    crawler: bool,
    job: bool,
    sleep: Callable[[float], None] = time.sleep,
    poll_seconds: float = STOP_POLL_SECONDS,
    timeout_seconds: float = STOP_TIMEOUT_SECONDS,
) -> list[str]:
    """Stop a running crawl (StopCrawler) and the job's active runs (BatchStopJobRun),
    then wait until the crawler is READY and no run is active; return what was stopped.

    Deleting a running crawler fails, and a run left going keeps writing: so ``down``
    stops both before deleting them. Waits at most ``timeout_seconds``, then raises
    :class:`DeployError` (saying what is still going; the caller says what it deleted).
    """
    stopped: list[str] = []
    if crawler and _crawler_state(glue, config.crawler_name) == "RUNNING":
        try:
            glue.stop_crawler(Name=config.crawler_name)
            stopped.append(f"crawl of {config.crawler_name}")
        except ClientError as exc:
            # It ended, or someone else is stopping it, since we looked: wait below.
            if error_code(exc) not in ("CrawlerNotRunningException", "CrawlerStoppingException"):
                raise
    if job:
        ids = [
            r["Id"]
            for r in _active_job_runs(glue, config.job_name)
            if r["JobRunState"] in STOPPABLE_JOB_STATES
        ]
        for i in range(0, len(ids), BATCH_STOP_MAX_IDS):
            answer = glue.batch_stop_job_run(
                JobName=config.job_name, JobRunIds=ids[i : i + BATCH_STOP_MAX_IDS]
            )
            for error in answer.get("Errors", []):
                # Typically a run that ended meanwhile; one that did not is waited for below.
                detail = error.get("ErrorDetail", {})
                log.warning(
                    "could not stop job run %s: %s %s",
                    error.get("JobRunId"),
                    detail.get("ErrorCode"),
                    detail.get("ErrorMessage"),
                )
            stopped += [f"job run {s['JobRunId']}" for s in answer.get("SuccessfulSubmissions", [])]
    for item in stopped:
        log.info("stopping %s", item)

    def busy() -> list[str]:
        still = []
        if crawler:
            state = _crawler_state(glue, config.crawler_name)
            if state != "READY":
                still.append(f"crawler {config.crawler_name} is {state}")
        if job:
            still += [
                f"job run {r['Id']} is {r['JobRunState']}"
                for r in _active_job_runs(glue, config.job_name)
            ]
        return still

    polls = max(1, int(timeout_seconds / poll_seconds)) if poll_seconds > 0 else 1
    for _ in range(polls):
        still = busy()
        if not still:
            return stopped
        log.info("waiting for %s", "; ".join(still))
        sleep(poll_seconds)
    still = busy()
    if still:
        raise DeployError(
            f"{'; '.join(still)} after {timeout_seconds:.0f}s of waiting for it to stop; "
            "check it in the Glue console and run `deploy.py down --yes` again"
        )
    return stopped


def plan(ctx: Context) -> list[Resource]:
    return []


def find(ctx: Context) -> list[Found]:
    return []


def ensure(ctx: Context) -> list[str]:
    return []


def delete(ctx: Context) -> list[str]:
    """Stop a running workflow run (it would start the job after the crawl), a running
    crawl and the job's active runs of ours, and wait for them; deletes nothing."""
    config, glue = ctx.config, ctx.clients.glue

    def ours(kind: str) -> bool:
        return any(f.ours for f in ctx.found_of(kind))

    if ours("glue-workflow"):
        for run in glue.get_workflow_runs(Name=config.workflow_name).get("Runs", []):
            if run.get("Status") == "RUNNING":
                glue.stop_workflow_run(Name=config.workflow_name, RunId=run["WorkflowRunId"])
                log.info("stopping workflow run %s", run["WorkflowRunId"])
    stop_runs(
        config,
        glue,
        crawler=ours("glue-crawler"),
        job=ours("glue-job"),
        sleep=ctx.sleep,
        poll_seconds=ctx.stop_poll_seconds,
        timeout_seconds=ctx.stop_timeout_seconds,
    )
    return []


def down_plan(config: PipelineConfig) -> list[str]:
    return [
        f"(then: stop a running run of workflow {config.workflow_name}, a running crawl of "
        f"{config.crawler_name} and active runs of {config.job_name}, and wait for them; "
        "after the alarm and the rule, so that a stopped run mails no failure alert)"
    ]


def status(ctx: Context) -> list[dict[str, Any]]:
    return []  # the workflow's, crawler's and job's rows show their last run


def template(r: Resource, s: Sentinels) -> list[CfnResource]:
    return []


def deployer_statements(ctx: Context) -> list[dict[str, Any]]:
    return []  # the workflow's, crawler's and job's statements hold the stop actions
