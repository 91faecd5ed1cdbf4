"""The aws target against a real account's behaviour, on moto and on stand-ins for Glue.

`down` with a crawl or job run still going; Glue 5 log streams.
Expected values are written out literally (prefix ``test-sales``).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from moto.glue.models import glue_backends
from moto.moto_api import state_manager
from moto_fixtures import REGION

from pipeline import infra

ACCOUNT = "123456789012"  # moto's default account
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/test-sales-glue-role"


def _with(clients, **replaced):
    """The same clients with some replaced (e.g. a Glue client that fails first)."""
    return SimpleNamespace(**{**vars(clients), **replaced})


# ------------------------------------------------------- down with runs still going


class _GlueWithBatchStop:
    """moto's Glue client plus BatchStopJobRun, which moto 5.2.5 does not implement.

    It does to moto's job runs what Glue does: each named run still going becomes
    STOPPING (Glue then ends it as STOPPED; the test's sleep plays that part).
    """

    def __init__(self, glue):
        self._glue = glue
        self.stop_requests = []

    def __getattr__(self, name):
        return getattr(self._glue, name)

    def batch_stop_job_run(self, JobName, JobRunIds):  # noqa: N803
        self.stop_requests.append(list(JobRunIds))
        done = []
        for run in _moto_job_runs(JobName):
            if run.job_run_id in JobRunIds and run.status in ("STARTING", "RUNNING"):
                run.status = "STOPPING"
                done.append({"JobName": JobName, "JobRunId": run.job_run_id})
        return {"SuccessfulSubmissions": done, "Errors": []}


def _moto_job_runs(job_name):
    return glue_backends[ACCOUNT][REGION].jobs[job_name].job_runs


def test_moto_has_no_batch_stop_job_run(deployed):
    # Why the tests below add it: drop _GlueWithBatchStop once moto implements it.
    with pytest.raises(NotImplementedError):
        deployed.glue.batch_stop_job_run(JobName="test-sales-etl-job", JobRunIds=["jr_x"])


@pytest.fixture
def runs_going(deployed):
    """A crawl and a job run that stay RUNNING/STARTING until the test moves them on."""
    state_manager.set_transition(
        model_name="glue::crawl", transition={"progression": "manual", "times": 10_000}
    )
    state_manager.set_transition(
        model_name="glue::job_run", transition={"progression": "manual", "times": 10_000}
    )
    glue = deployed.glue
    glue.start_crawler(Name="test-sales-raw-crawler")
    run_id = glue.start_job_run(JobName="test-sales-etl-job")["JobRunId"]
    assert glue.get_crawler(Name="test-sales-raw-crawler")["Crawler"]["State"] == "RUNNING"
    [run] = glue.get_job_runs(JobName="test-sales-etl-job")["JobRuns"]
    assert run["JobRunState"] == "STARTING"
    return run_id


def test_down_stops_a_running_crawl_and_job_run_then_deletes(deployed, config, runs_going):
    glue = _GlueWithBatchStop(deployed.glue)
    seen = []

    def glue_finishes_stopping(seconds):
        crawler = deployed.glue.get_crawler(Name="test-sales-raw-crawler")["Crawler"]
        seen.append(
            (seconds, crawler["State"], [r.status for r in _moto_job_runs(config.job_name)])
        )
        state_manager.set_transition(
            model_name="glue::crawl", transition={"progression": "immediate"}
        )
        for run in _moto_job_runs(config.job_name):
            run.status = "STOPPED"

    deleted = infra.down(
        config,
        _with(deployed, glue=glue),
        sleep=glue_finishes_stopping,
        stop_poll_seconds=10,
        stop_timeout_seconds=60,
    )

    assert glue.stop_requests == [[runs_going]]
    assert seen == [(10, "STOPPING", ["STOPPING"])]
    assert "crawler test-sales-raw-crawler" in deleted
    assert "job test-sales-etl-job" in deleted
    assert deployed.glue.list_crawlers()["CrawlerNames"] == []
    assert deployed.glue.list_jobs()["JobNames"] == []
    assert deployed.s3.list_buckets()["Buckets"] == []


def test_down_deletes_nothing_when_a_run_does_not_stop_in_time(deployed, config, runs_going):
    glue = _GlueWithBatchStop(deployed.glue)
    sleeps = []

    with pytest.raises(infra.DeployError) as stuck:
        infra.down(
            config,
            _with(deployed, glue=glue),
            sleep=sleeps.append,
            stop_poll_seconds=10,
            stop_timeout_seconds=60,
        )

    assert str(stuck.value) == (
        "down deleted nothing: crawler test-sales-raw-crawler is STOPPING; "
        f"job run {runs_going} is STOPPING after 60s of waiting for it to stop; check it in "
        "the Glue console and run `deploy.py down --yes` again"
    )
    assert sleeps == [10, 10, 10, 10, 10, 10]
    assert deployed.glue.list_crawlers()["CrawlerNames"] == ["test-sales-raw-crawler"]
    assert deployed.glue.list_jobs()["JobNames"] == ["test-sales-etl-job"]
    assert len(deployed.s3.list_buckets()["Buckets"]) == 4
    assert deployed.athena.get_work_group(WorkGroup="test-sales-workgroup")["WorkGroup"]


# -------------------------------------------------------------- Glue 5 log streams


class _FailedRun:
    def __init__(self, **run):
        self.run = run

    def get_job_run(self, JobName, RunId):  # noqa: N803
        return {"JobRun": {"Id": RunId, "JobRunState": "FAILED", **self.run}}


def test_a_failed_run_names_the_glue_5_log_groups_and_the_driver_stream():
    glue = _FailedRun(ErrorMessage="reconciliation failed", LogGroupName="/aws-glue/jobs")

    with pytest.raises(infra.JobRunFailed) as failed:
        infra.wait_for_job_run(glue, "job", "jr_1", sleep=lambda _: None)

    assert str(failed.value) == (
        "job run jr_1 FAILED: reconciliation failed; logs: CloudWatch log groups "
        "/aws-glue/jobs/error (Spark, GlueLogger) and /aws-glue/jobs/output (print, stderr), "
        "stream jr_1-driver"
    )


def test_a_failed_run_with_custom_log_prefixes_names_them():
    glue = _FailedRun(
        LogGroupName="/aws-glue/jobs/",
        Arguments={"--custom-logGroup-prefix": "/team/etl", "--custom-logStream-prefix": "sales"},
    )

    with pytest.raises(infra.JobRunFailed) as failed:
        infra.wait_for_job_run(glue, "job", "jr_2", sleep=lambda _: None)

    assert str(failed.value).endswith(
        "no error message; logs: CloudWatch log groups /team/etl/error (Spark, GlueLogger) "
        "and /team/etl/output (print, stderr), stream sales-driver"
    )


def test_status_names_the_last_run_log_groups_and_driver_stream(deployed, config):
    run_id = deployed.glue.start_job_run(JobName="test-sales-etl-job")["JobRunId"]

    rows = {r["kind"]: r for r in infra.status(config, deployed)}

    # moto reports LogGroupName "test/log" for every run; AWS reports /aws-glue/jobs.
    assert rows["glue-job"]["detail"].endswith(
        f"execution=123s logs=test/log/error,test/log/output stream={run_id}-driver"
    )
