"""`status`: one row per resource, the last runs, and denied reads (against moto)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from moto_fixtures import AFTER_CRAWL, ALARM, RULE, START, TOPIC_ARN, WORKFLOW, with_clients

import deploy
from pipeline import infra


def test_status_reports_missing_resources_before_up(aws, config):
    assert {r["state"] for r in infra.status(config, aws)} == {"missing"}


def test_status_dry_run_says_it_only_reads_and_touches_nothing(aws_env, no_aws, capsys):
    argv = ["status", "--dry-run", "--prefix", "dry-test"]

    assert deploy.main(argv) == 0

    assert capsys.readouterr() == ("status reads only; nothing to dry-run\n", "")


def test_status_names_the_last_run_log_groups_and_driver_stream(deployed, config):
    run_id = deployed.glue.start_job_run(JobName="test-sales-etl-job")["JobRunId"]

    rows = {r["kind"]: r for r in infra.status(config, deployed)}

    # moto reports LogGroupName "test/log" for every run; AWS reports /aws-glue/jobs.
    assert rows["glue-job"]["detail"].endswith(
        f"execution=123s logs=test/log/error,test/log/output stream={run_id}-driver"
    )


class _Denied:
    """A client whose ``method`` answers AccessDenied; everything else goes to moto."""

    def __init__(self, client, method):
        self._client, self.method = client, method

    def __getattr__(self, name):
        if name != self.method:
            return getattr(self._client, name)

        def denied(**kwargs):
            raise ClientError(
                {"Error": {"Code": "AccessDenied", "Message": f"not authorized: {name}"}}, name
            )

        return denied


class TestOneDeployment:
    """One `up` for these tests, which read its status (the last starts a crawl and a job
    run)."""

    def test_status_before_any_workflow_run(self, deployed_once, config):
        rows = {(r["kind"], r["name"]): r for r in infra.status(config, deployed_once)}
        assert rows[("glue-workflow", WORKFLOW)]["detail"] == "last run=never"
        assert rows[("glue-trigger", START)]["detail"] == "type=ON_DEMAND"
        assert rows[("glue-trigger", AFTER_CRAWL)]["state"] == "ACTIVATED"
        assert rows[("sns-topic", "test-sales-alerts")]["detail"] == "subscriptions: none"
        assert rows[("events-rule", RULE)] == {
            "kind": "events-rule",
            "name": RULE,
            "state": "ENABLED",
            "detail": f"targets: {TOPIC_ARN} (dead letters: {TOPIC_ARN.replace(':sns:', ':sqs:')}-dlq)",
        }
        assert rows[("cloudwatch-alarm", ALARM)]["detail"] == "QuarantineRate > 0.05"

    @pytest.mark.parametrize(
        ("service", "method"),
        [
            ("s3", "head_bucket"),
            ("iam", "get_role"),
            ("glue", "get_tables"),
            ("glue", "get_crawler"),
            ("glue", "get_job"),
        ],
    )
    def test_status_stops_on_a_read_it_is_denied_instead_of_saying_missing(
        self, deployed_once, config, service, method
    ):
        clients = with_clients(
            deployed_once, **{service: _Denied(getattr(deployed_once, service), method)}
        )

        with pytest.raises(ClientError) as denied:
            infra.status(config, clients)

        assert str(denied.value).endswith(f"not authorized: {method}")

    def test_status_shows_each_resource_and_the_last_crawl_and_job_run(self, deployed_once, config):
        deployed_once.glue.start_crawler(Name="test-sales-raw-crawler")
        deployed_once.glue.get_crawler(Name="test-sales-raw-crawler")  # moto advances on read
        run_id = deployed_once.glue.start_job_run(JobName="test-sales-etl-job")["JobRunId"]

        rows = {(r["kind"], r["name"]): r for r in infra.status(config, deployed_once)}

        assert {k for k, _ in rows} == {
            "s3-bucket",
            "iam-role",
            "glue-database",
            "glue-crawler",
            "glue-job",
            "athena-workgroup",
            "glue-workflow",
            "glue-trigger",
            "kms-key",
            "sns-topic",
            "sqs-queue",
            "events-rule",
            "cloudwatch-alarm",
        }
        assert (
            rows[("s3-bucket", "test-sales-raw")]["detail"] == "versioning=Enabled eventbridge=off"
        )
        assert rows[("glue-crawler", "test-sales-raw-crawler")]["state"] == "READY"
        assert "last crawl=COMPLETED" in rows[("glue-crawler", "test-sales-raw-crawler")]["detail"]
        assert f"last run={run_id} SUCCEEDED" in rows[("glue-job", "test-sales-etl-job")]["detail"]
