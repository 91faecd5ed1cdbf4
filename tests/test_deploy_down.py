"""`down`: what it deletes, in which order, what it keeps, and runs still going (against moto)."""

from __future__ import annotations

import logging

import pytest
from moto.glue.models import glue_backends
from moto.moto_api import state_manager
from moto_fixtures import (
    ACCOUNT,
    AFTER_CRAWL,
    ALARM,
    REGION,
    RULE,
    START,
    TOPIC_ARN,
    WORKFLOW,
    look_alikes,
    with_clients,
)

import deploy
from pipeline import infra
from pipeline.errors import (
    DeployError,
)


def test_down_leaves_nothing_of_ours_and_keeps_a_foreign_bucket(deployed, config):
    s3 = deployed.s3
    s3.create_bucket(Bucket="someone-elses-data")
    s3.put_object(Bucket="someone-elses-data", Key="keep.txt", Body=b"mine")
    # Versions and delete markers in the versioned raw bucket must go too.
    for body in (b"v1", b"v2"):
        s3.put_object(Bucket="test-sales-raw", Key="input/sales_data_csv/s.csv", Body=body)
    s3.delete_object(Bucket="test-sales-raw", Key="input/sales_data_csv/s.csv")
    s3.put_object(
        Bucket="test-sales-processed", Key="enriched/year=2024/month=1/p.parquet", Body=b"x"
    )

    deleted = infra.down(config, deployed)

    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["someone-elses-data"]
    assert s3.get_object(Bucket="someone-elses-data", Key="keep.txt")["Body"].read() == b"mine"
    assert "bucket test-sales-raw (3 object versions)" in deleted
    assert [r["RoleName"] for r in deployed.iam.list_roles()["Roles"]] == []
    assert deployed.glue.get_databases()["DatabaseList"] == []
    assert deployed.glue.list_crawlers()["CrawlerNames"] == []
    assert deployed.glue.list_jobs()["JobNames"] == []
    assert [w["Name"] for w in deployed.athena.list_work_groups()["WorkGroups"]] == ["primary"]
    assert infra.down(config, deployed) == []


def test_down_without_yes_deletes_nothing(deployed, capsys):
    assert deploy.main(["down", "--prefix", "test-sales"]) == 1
    assert "--yes" in capsys.readouterr().out
    assert len(deployed.s3.list_buckets()["Buckets"]) == 4


def test_down_removes_what_up_made_in_order(deployed, config):
    key_id = deployed.kms.describe_key(KeyId="alias/test-sales-alerts")["KeyMetadata"]["KeyId"]
    deleted = infra.down(config, deployed)
    assert deleted[:10] == [
        f"alarm {ALARM}",
        f"rule {RULE} (and its 1 target(s))",
        "queue test-sales-alerts-dlq (and the undelivered alerts in it)",
        "topic test-sales-alerts (and its subscriptions)",
        f"KMS key {key_id} (scheduled for deletion in 7 days)",
        "alias alias/test-sales-alerts",
        f"trigger {AFTER_CRAWL}",
        f"trigger {START}",
        f"workflow {WORKFLOW}",
        "workgroup test-sales-workgroup",
    ]
    assert deployed.glue.list_workflows()["Workflows"] == []
    assert deployed.glue.get_triggers()["Triggers"] == []
    assert deployed.events.list_rules()["Rules"] == []
    assert deployed.sns.list_topics()["Topics"] == []
    assert deployed.sqs.list_queues().get("QueueUrls", []) == []
    assert deployed.cloudwatch.describe_alarms()["MetricAlarms"] == []


def test_down_keeps_unmarked_look_alikes(aws, config, caplog):
    # In a fresh account: moto keeps a deleted alarm's tags for a new alarm of that name.
    look_alikes(aws)
    caplog.set_level(logging.WARNING)
    assert infra.down(config, aws) == []
    assert aws.glue.list_workflows()["Workflows"] == [WORKFLOW]
    assert [r["Name"] for r in aws.events.list_rules()["Rules"]] == [RULE]
    assert aws.sns.list_topics()["Topics"] == [{"TopicArn": TOPIC_ARN}]
    assert len(aws.cloudwatch.describe_alarms()["MetricAlarms"]) == 1
    for kind, name in (
        ("glue-workflow", WORKFLOW),
        ("events-rule", RULE),
        ("sns-topic", "test-sales-alerts"),
        ("cloudwatch-alarm", ALARM),
    ):
        assert f"{kind} {name} exists but deploy.py did not make it" in caplog.text


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


def _alerting(clients):
    """The failures rule and the quarantine-rate alarm that exist now."""
    rules = [r["Name"] for r in clients.events.list_rules()["Rules"]]
    alarms = [a["AlarmName"] for a in clients.cloudwatch.describe_alarms()["MetricAlarms"]]
    return rules, alarms


def test_down_deletes_the_alerting_then_stops_the_runs_then_deletes(deployed, config, runs_going):
    glue = _GlueWithBatchStop(deployed.glue)
    seen = []
    # What can still alert when the run is stopped: its STOPPED event matches the
    # failures rule, which would mail the on-call address during a planned teardown.
    alerting_at_stop = []
    batch_stop = glue.batch_stop_job_run

    def stop_and_look(**kwargs):
        alerting_at_stop.append(_alerting(deployed))
        return batch_stop(**kwargs)

    glue.batch_stop_job_run = stop_and_look
    assert _alerting(deployed) == (["test-sales-failures"], ["test-sales-quarantine-rate"])

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
        with_clients(deployed, glue=glue),
        sleep=glue_finishes_stopping,
        stop_poll_seconds=10,
        stop_timeout_seconds=60,
    )

    assert glue.stop_requests == [[runs_going]]
    assert alerting_at_stop == [([], [])]
    assert seen == [(10, "STOPPING", ["STOPPING"])]
    assert deleted[:2] == [
        "alarm test-sales-quarantine-rate",
        "rule test-sales-failures (and its 1 target(s))",
    ]
    assert "crawler test-sales-raw-crawler" in deleted
    assert "job test-sales-etl-job" in deleted
    assert deployed.glue.list_crawlers()["CrawlerNames"] == []
    assert deployed.glue.list_jobs()["JobNames"] == []
    assert deployed.s3.list_buckets()["Buckets"] == []


def test_down_deletes_only_the_alerting_when_a_run_does_not_stop_in_time(
    deployed, config, runs_going
):
    glue = _GlueWithBatchStop(deployed.glue)
    sleeps = []

    with pytest.raises(DeployError) as stuck:
        infra.down(
            config,
            with_clients(deployed, glue=glue),
            sleep=sleeps.append,
            stop_poll_seconds=10,
            stop_timeout_seconds=60,
        )

    assert str(stuck.value) == (
        "down deleted nothing but alarm test-sales-quarantine-rate, rule test-sales-failures "
        "(and its 1 target(s)): crawler test-sales-raw-crawler is STOPPING; "
        f"job run {runs_going} is STOPPING after 60s of waiting for it to stop; check it in "
        "the Glue console and run `deploy.py down --yes` again"
    )
    assert sleeps == [10, 10, 10, 10, 10, 10]
    # Only what alerts is gone (so that the stopped runs mail nothing); the rest is kept.
    assert _alerting(deployed) == ([], [])
    topics = deployed.sns.list_topics()["Topics"]
    assert topics == [{"TopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:test-sales-alerts"}]
    assert deployed.glue.get_workflow(Name="test-sales-workflow")["Workflow"]
    assert deployed.glue.list_crawlers()["CrawlerNames"] == ["test-sales-raw-crawler"]
    assert deployed.glue.list_jobs()["JobNames"] == ["test-sales-etl-job"]
    assert len(deployed.s3.list_buckets()["Buckets"]) == 4
    assert deployed.athena.get_work_group(WorkGroup="test-sales-workgroup")["WorkGroup"]
