"""`deploy.py up --dry-run` against moto's server: per resource what `up` would do (create,
change and what, no change, not ours), read from the account with read calls only; offline
with --account-id; one line when AWS cannot be reached."""

from __future__ import annotations

import json
import socket
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto_fixtures import ACCOUNT, DAILY, JOB, PREFIX, REGION, STEM, TOPIC_ARN, bucket_tags

import deploy
from pipeline import aws as pipeline_aws
from pipeline import infra
from pipeline.config import PipelineConfig
from pipeline.infra.dry_run import READ_PREFIXES, ReadOnly, WouldWait

START_TRIGGER = f"{PREFIX}-workflow-start"
DATABASE = "sales_analytics_db_test_sales"
# Lake Formation settings under which up stops (administrators, no IAM-only defaults).
GOVERNED = {
    "DataLakeAdmins": [{"DataLakePrincipalIdentifier": f"arn:aws:iam::{ACCOUNT}:role/admin"}],
    "CreateDatabaseDefaultPermissions": [],
    "CreateTableDefaultPermissions": [],
}


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The operations deploy.py's clients send (each request botocore builds to send);
    an operation held back never becomes a request."""
    operations: list[str] = []
    original = pipeline_aws.client

    def client(config: PipelineConfig, service: str, /, **kwargs: Any) -> Any:
        made = original(config, service, **kwargs)
        made.meta.events.register(
            "request-created", lambda operation_name, **_: operations.append(operation_name)
        )
        return made

    monkeypatch.setattr(pipeline_aws, "client", client)
    return operations


def _config(endpoint: str) -> PipelineConfig:
    return PipelineConfig(
        prefix=PREFIX, target="aws", region=REGION, endpoint_url=endpoint, account_id=ACCOUNT
    )


def _dry_run(endpoint: str, capsys: pytest.CaptureFixture, *flags: str) -> dict[str, Any]:
    """`up --dry-run --json`'s document; its rows also by (kind, name) under "actions"."""
    argv = ["up", "--dry-run", "--json", "--prefix", PREFIX, "--endpoint-url", endpoint]
    assert deploy.main([*argv, *flags]) == 0
    document = json.loads(capsys.readouterr().out)
    document["actions"] = {
        (r["kind"], r["name"]): (r["action"], r["details"]) for r in document["resources"]
    }
    return document


def _state(endpoint: str) -> dict[str, Any]:
    """Everything up makes, as moto's server holds it."""

    def client(service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=endpoint)

    s3, glue = client("s3"), client("glue")
    buckets = sorted(b["Name"] for b in s3.list_buckets()["Buckets"])
    return {
        "buckets": buckets,
        "objects": {
            b: sorted(o["Key"] for o in s3.list_objects_v2(Bucket=b).get("Contents", []))
            for b in buckets
        },
        "roles": client("iam").list_roles()["Roles"],
        "databases": glue.get_databases()["DatabaseList"],
        "crawlers": glue.get_crawlers()["Crawlers"],
        "jobs": glue.get_jobs()["Jobs"],
        "workflows": glue.list_workflows()["Workflows"],
        "triggers": glue.get_triggers()["Triggers"],
        # moto stamps its own "primary" workgroup anew on every list: names and states.
        "workgroups": [
            (w["Name"], w["State"], w.get("Description"))
            for w in client("athena").list_work_groups()["WorkGroups"]
        ],
        "keys": client("kms").list_aliases()["Aliases"],
        "topics": client("sns").list_topics()["Topics"],
        "queues": client("sqs").list_queues().get("QueueUrls", []),
        "rules": client("events").list_rules()["Rules"],
        "alarms": client("cloudwatch").describe_alarms()["MetricAlarms"],
    }


def _only_reads(operations: list[str]) -> None:
    assert operations, "the dry run read nothing"
    assert [o for o in operations if not o.startswith(READ_PREFIXES)] == []


def test_on_an_empty_account_every_resource_is_created_and_only_reads_are_sent(
    moto_server, sent, capsys
):
    before = _state(moto_server)
    argv = ["up", "--dry-run", "--prefix", PREFIX, "--endpoint-url", moto_server]
    assert deploy.main(argv) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        f"plan for prefix {PREFIX} in {REGION}, account {ACCOUNT} (read-only: nothing was "
        "changed): 20 resources: 20 create"
    )
    assert lines[1].split() == ["resource", "name", "action"]
    rows = [line.split() for line in lines[2:-1]]
    assert len(rows) == 20 and {row[2] for row in rows} == {"create"}
    assert ["s3-bucket", f"{STEM}-raw", "create"] in rows
    assert ["glue-job", JOB, "create"] in rows
    assert lines[-1] == "(every setting of each: add --verbose)"
    _only_reads(sent)
    assert _state(moto_server) == before


def test_after_up_every_resource_says_no_change_and_flags_show_what_they_would_change(
    moto_server, sent, capsys
):
    infra.up(_config(moto_server), tables=False)
    before, sent[:] = _state(moto_server), []

    done = _dry_run(moto_server, capsys)
    assert done["read"] is True and done["notes"] == []
    assert {action for action, _ in done["actions"].values()} == {"no change"}
    assert len(done["actions"]) == 20

    scheduled = _dry_run(moto_server, capsys, "--schedule", DAILY)["actions"]
    assert scheduled.pop(("glue-trigger", START_TRIGGER)) == (
        "change",
        [f"replaced trigger {START_TRIGGER}: ON_DEMAND -> SCHEDULED"],
    )
    assert {action for action, _ in scheduled.values()} == {"no change"}

    arriving = _dry_run(moto_server, capsys, "--on-arrival")["actions"]
    assert arriving.pop(("s3-bucket", f"{STEM}-raw")) == (
        "change",
        [f"enabled EventBridge notifications on {STEM}-raw"],
    )
    assert arriving.pop(("glue-trigger", START_TRIGGER))[1] == [
        f"replaced trigger {START_TRIGGER}: ON_DEMAND -> EVENT"
    ]
    assert arriving.pop(("events-role", f"{PREFIX}-events-role")) == ("create", [])
    assert arriving.pop(("events-rule", f"{PREFIX}-arrivals")) == ("create", [])
    assert {action for action, _ in arriving.values()} == {"no change"}

    _only_reads(sent)
    assert _state(moto_server) == before


def test_a_drifted_setting_is_named_as_up_logs_it_and_up_puts_it_back(
    moto_server, moto_updates, capsys
):
    config = _config(moto_server)
    infra.up(config, tables=False)
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=moto_server)
    sns = boto3.client("sns", region_name=REGION, endpoint_url=moto_server)
    glue = boto3.client("glue", region_name=REGION, endpoint_url=moto_server)
    s3.delete_bucket_encryption(Bucket=f"{STEM}-processed")
    sns.set_topic_attributes(TopicArn=TOPIC_ARN, AttributeName="Policy", AttributeValue="{}")
    job = glue.get_job(JobName=JOB)["Job"]
    update = {k: job[k] for k in ("Role", "Command", "DefaultArguments", "GlueVersion")}
    glue.update_job(JobName=JOB, JobUpdate={**update, "WorkerType": "G.1X", "NumberOfWorkers": 10})

    actions = _dry_run(moto_server, capsys)["actions"]
    drifted = {  # in up's order (the registry's)
        ("s3-bucket", f"{STEM}-processed"): f"set default encryption on {STEM}-processed",
        ("glue-job", JOB): f"updated job {JOB}",
        ("sns-topic", f"{PREFIX}-alerts"): f"set policy of topic {PREFIX}-alerts",
    }
    assert {key: actions.pop(key) for key in drifted} == {
        key: ("change", [line]) for key, line in drifted.items()
    }
    assert {action for action, _ in actions.values()} == {"no change"}
    assert glue.get_job(JobName=JOB)["Job"]["NumberOfWorkers"] == 10  # still drifted

    # What the dry run named is what up does, line for line.
    assert infra.up(config, tables=False) == list(drifted.values())
    repaired = _dry_run(moto_server, capsys)["actions"]
    assert {action for action, _ in repaired.values()} == {"no change"}

    # A table reading another bucket: up would stop there, and the dry run says so.
    glue.create_table(
        DatabaseName=DATABASE,
        TableInput={
            "Name": "enriched_sales",
            "StorageDescriptor": {"Location": "s3://someone-elses/enriched/"},
        },
    )
    stopped = _dry_run(moto_server, capsys)["actions"]
    action, [why] = stopped.pop(("athena-tables", DATABASE))
    assert action == "fail"
    assert why.startswith(f"tables in {DATABASE} would read data that is not this prefix's")
    assert {action for action, _ in stopped.values()} == {"no change"}


def test_a_name_taken_by_a_bucket_without_our_tags_is_not_ours(moto_server, sent, capsys):
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=moto_server)
    s3.create_bucket(Bucket=f"{STEM}-raw")
    lakeformation = boto3.client("lakeformation", region_name=REGION, endpoint_url=moto_server)
    lakeformation.put_data_lake_settings(DataLakeSettings=GOVERNED)

    done = _dry_run(moto_server, capsys)
    actions = done["actions"]
    assert actions.pop(("s3-bucket", f"{STEM}-raw")) == ("not ours", ["it has no tags"])
    assert {action for action, _ in actions.values()} == {"create"}
    taken, governed = done["notes"]
    assert taken.startswith(f"up would stop before any change: refusing to touch prefix '{PREFIX}'")
    assert governed.startswith("up would stop before any change: Lake Formation governs")
    _only_reads(sent)
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [f"{STEM}-raw"]
    assert bucket_tags(s3, f"{STEM}-raw") == {}  # left as it was


def test_offline_with_an_account_id_nothing_is_called(aws_env, no_aws, monkeypatch, capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nowhere, were it called
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    argv = ["up", "--dry-run", "--prefix", PREFIX, "--account-id", "111122223333"]

    assert deploy.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "(offline, --account-id: nothing was read or changed): 20 resources" in lines[0]
    rows = [line.split(maxsplit=2) for line in lines[2:-1]]
    assert {row[2] for row in rows} == {"create or repair (not read)"}

    assert deploy.main([*argv, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["read"] is False and len(document["resources"]) == 20


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_without_aws_one_line_says_so_and_offers_the_account_id(aws_env, monkeypatch, capsys):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # the port refuses at once: no retries
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    argv = ["up", "--dry-run", "--prefix", PREFIX]

    assert deploy.main([*argv, "--endpoint-url", endpoint]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "error: could not reach AWS to read what up would change (Could not connect to the "
        f'endpoint URL: "{endpoint}/"); pass --account-id 123456789012 for the plan without '
        "reading AWS\n"
    )

    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    assert deploy.main(argv) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert "(Unable to locate credentials)" in line and "--account-id 123456789012" in line


def test_held_back_calls_send_nothing_and_what_they_deleted_reads_as_gone(moto_server):
    glue = boto3.client("glue", region_name=REGION, endpoint_url=moto_server)
    glue.create_trigger(Name="t", Type="ON_DEMAND", Actions=[{"JobName": JOB}])
    config = _config(moto_server)
    clients = infra.Clients.for_config(config)
    guard = ReadOnly()
    guard.install(config, clients)

    guard.begin()
    assert clients.glue.delete_trigger(Name="t")["ResponseMetadata"]["HTTPStatusCode"] == 200
    with pytest.raises(ClientError) as gone:  # as AWS answers once it is deleted
        clients.glue.get_trigger(Name="t")
    assert gone.value.response["Error"]["Code"] == "EntityNotFoundException"
    assert glue.get_trigger(Name="t")["Trigger"]["Name"] == "t"  # nothing was sent
    with pytest.raises(WouldWait, match="its own DeleteTrigger"):
        guard.sleep(1)  # up waiting for the deletion would wait forever
    assert [(c.operation, c.params) for c in guard.held] == [("DeleteTrigger", {"Name": "t"})]

    guard.begin()  # the next kind: the held delete is forgotten, a wait is a wait
    assert clients.glue.get_trigger(Name="t")["Trigger"]["Name"] == "t"
    guard.sleep(0)

    guard.remove()
    clients.glue.delete_trigger(Name="t")
    assert glue.get_triggers()["Triggers"] == []
