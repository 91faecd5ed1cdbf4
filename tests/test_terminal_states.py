"""Every way a job run, a crawl and a workflow run can end other than well, as Glue's
own API model lists the states (botocore's service model, not this repository's
constants): one line naming the state and where the logs are, and no further waiting.

moto never ends a run TIMEOUT, ERROR or EXPIRED, so Glue's answers are injected into
a real client (tests/aws_faults.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from aws_faults import body, inject
from moto_fixtures import CRAWLER, JOB, REGION, WORKFLOW

from pipeline import infra
from pipeline.errors import CrawlerError, JobRunFailed, WorkflowRunFailed
from pipeline.targets.aws import run_aws_crawler

_MODEL = boto3.client("glue", region_name=REGION).meta.service_model


def _enum(shape: str) -> list[str]:
    return list(_MODEL.shape_for(shape).enum)


# The states in which Glue is still at work (hand-written from Glue's API reference);
# every other state of the enum is an end.
JOB_RUN_GOING = {"STARTING", "RUNNING", "STOPPING", "WAITING"}
CRAWL_GOING = {"RUNNING", "CANCELLING"}
WORKFLOW_RUN_GOING = {"RUNNING"}

JOB_RUN_BAD_ENDS = [s for s in _enum("JobRunState") if s not in JOB_RUN_GOING | {"SUCCEEDED"}]
LAST_CRAWL_BAD_ENDS = [s for s in _enum("LastCrawlStatus") if s != "SUCCEEDED"]
CRAWL_BAD_ENDS = [s for s in _enum("CrawlState") if s not in CRAWL_GOING | {"SUCCEEDED"}]
WORKFLOW_RUN_BAD_ENDS = [
    s for s in _enum("WorkflowRunStatus") if s not in WORKFLOW_RUN_GOING | {"COMPLETED"}
]


def test_the_model_lists_the_states_this_test_expects():
    # If Glue adds a state, this says so before a run meets it.
    assert JOB_RUN_BAD_ENDS == ["STOPPED", "FAILED", "TIMEOUT", "ERROR", "EXPIRED"]
    assert LAST_CRAWL_BAD_ENDS == ["CANCELLED", "FAILED"]
    assert CRAWL_BAD_ENDS == ["CANCELLED", "FAILED", "ERROR"]
    assert WORKFLOW_RUN_BAD_ENDS == ["STOPPING", "STOPPED", "ERROR"]


@pytest.mark.parametrize("state", JOB_RUN_BAD_ENDS)
def test_a_job_run_that_ends_badly_is_one_line_and_no_more_polling(aws, state):
    running = {"JobRun": {"Id": "jr_1", "JobRunState": "RUNNING"}}
    ended = {"JobRun": {"Id": "jr_1", "JobRunState": state, "ErrorMessage": "it ended"}}
    polls = inject(aws.glue, "GetJobRun", body(running), body(ended))
    sleeps: list[float] = []
    with pytest.raises(JobRunFailed) as failed:
        infra.wait_for_job_run(aws.glue, JOB, "jr_1", sleep=sleeps.append)
    assert str(failed.value) == (
        f"job run jr_1 {state}: it ended; logs: CloudWatch log groups /aws-glue/jobs/error "
        "(Spark, GlueLogger) and /aws-glue/jobs/output (print, stderr), stream jr_1-driver"
    )
    assert (sleeps, len(polls.calls)) == ([5.0], 2)


@pytest.mark.parametrize("status", LAST_CRAWL_BAD_ENDS)
def test_a_crawl_that_ends_badly_is_one_line_and_no_more_polling(aws, config, status):
    now = datetime.now(UTC)
    before = {"Status": "SUCCEEDED", "StartTime": now - timedelta(days=1)}
    this = {
        "Status": status,
        "StartTime": now,
        "ErrorMessage": "it ended",
        "LogGroup": "/aws-glue/crawlers",
        "LogStream": CRAWLER,
    }
    crawler = {"Name": CRAWLER}
    reads = inject(
        aws.glue,
        "GetCrawler",
        body({"Crawler": {**crawler, "State": "READY", "LastCrawl": before}}),
        body({"Crawler": {**crawler, "State": "RUNNING", "LastCrawl": before}}),
        body({"Crawler": {**crawler, "State": "READY", "LastCrawl": this}}),
    )
    inject(aws.glue, "StartCrawler", body({}))
    sleeps: list[float] = []
    with pytest.raises(CrawlerError) as failed:
        run_aws_crawler(config, aws.glue, poll_seconds=10, sleep=sleeps.append)
    assert str(failed.value) == (
        f"crawler {CRAWLER} finished with status {status}: it ended "
        f"(logs: /aws-glue/crawlers/{CRAWLER})"
    )
    assert (sleeps, len(reads.calls)) == ([10], 3)


def _workflow_run(status: str, nodes: list[dict]) -> dict:
    return {"Run": {"WorkflowRunId": "wr_1", "Status": status, "Graph": {"Nodes": nodes}}}


def _follow(aws, config, answer: dict) -> tuple[str, list[float], int]:
    polls = inject(aws.glue, "GetWorkflowRun", body(_workflow_run("RUNNING", [])), body(answer))
    sleeps: list[float] = []
    with pytest.raises(WorkflowRunFailed) as failed:
        infra.wait_for_workflow_run(aws.glue, config, "wr_1", sleep=sleeps.append)
    return str(failed.value), sleeps, len(polls.calls)


@pytest.mark.parametrize("state", CRAWL_BAD_ENDS)
def test_a_workflow_crawl_that_ends_badly_is_one_line(aws, config, state):
    crawl = {"State": state, "ErrorMessage": "it ended", "LogGroup": "/aws-glue/crawlers",
             "LogStream": CRAWLER}  # fmt: skip
    node = {"Type": "CRAWLER", "Name": CRAWLER, "CrawlerDetails": {"Crawls": [crawl]}}
    message, sleeps, polls = _follow(aws, config, _workflow_run("RUNNING", [node]))
    assert message == (
        f"workflow run wr_1: crawler {CRAWLER} {state}: it ended; logs: CloudWatch log group "
        f"/aws-glue/crawlers, stream {CRAWLER}"
    )
    assert (sleeps, polls) == ([5.0], 2)


@pytest.mark.parametrize("state", JOB_RUN_BAD_ENDS)
def test_a_workflow_job_run_that_ends_badly_is_one_line(aws, config, state):
    job_run = {"Id": "jr_9", "JobRunState": state, "ErrorMessage": "it ended"}
    node = {"Type": "JOB", "Name": JOB, "JobDetails": {"JobRuns": [job_run]}}
    message, sleeps, polls = _follow(aws, config, _workflow_run("RUNNING", [node]))
    assert message == (
        f"workflow run wr_1: job {JOB} run jr_9 {state}: it ended; logs: CloudWatch log "
        "groups /aws-glue/jobs/error and /aws-glue/jobs/output, stream jr_9-driver"
    )
    assert (sleeps, polls) == ([5.0], 2)


@pytest.mark.parametrize("status", WORKFLOW_RUN_BAD_ENDS)
def test_a_workflow_run_that_ends_badly_is_one_line(aws, config, status):
    message, sleeps, polls = _follow(aws, config, _workflow_run(status, []))
    assert message == (
        f"workflow run wr_1 {status}: no error message (no node ran); logs: the run's "
        f"history in the Glue console, Workflows, {WORKFLOW}"
    )
    assert (sleeps, polls) == ([5.0], 2)
