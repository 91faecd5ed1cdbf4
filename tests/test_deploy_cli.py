"""deploy.py's command line: dry runs, flags, exit codes, the account and the profile."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto_fixtures import ACCOUNT, DAILY, JOB, REGION, STEM

import deploy
import query
import run_pipeline
from pipeline import aws as pipeline_aws
from pipeline.cli import config_from
from pipeline.config import PipelineConfig
from pipeline.errors import UsageError

OTHER_ACCOUNT = "111111111111"


def test_dry_run_prints_the_full_plan_without_calling_aws(monkeypatch, capsys):
    def no_aws(*args, **kwargs):
        raise AssertionError("dry run called AWS")

    monkeypatch.setattr("botocore.client.BaseClient._make_api_call", no_aws)
    argv = ["--prefix", "plan-test", "--region", "us-east-1", "--account-id", "111122223333"]
    assert deploy.main(["up", "--dry-run", *argv]) == 0
    table = capsys.readouterr().out.splitlines()
    # One screen: a line saying what up does, the table, a line pointing at --verbose.
    assert table[0].startswith(
        "plan for prefix plan-test in us-east-1, account 111122223333 (offline, --account-id: "
        "nothing was read or changed): "
    )
    assert table[1].split() == ["resource", "name", "action"]
    assert table[-1] == "(every setting of each: add --verbose)"
    assert len(table) <= 30 and not any("{" in line for line in table)
    rows = [line.split(maxsplit=2) for line in table[2:-1]]
    not_read = "create or repair (not read)"
    assert ["glue-database", "sales_analytics_db_plan_test", not_read] in rows
    assert ["s3-bucket", "plan-test-111122223333-us-east-1-raw", not_read] in rows
    assert {row[2] for row in rows} == {not_read}
    assert len(rows) == int(table[0].split("changed): ")[1].split()[0])  # "20 resources"
    assert deploy.main(["up", "--dry-run", "--verbose", *argv]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[: len(table) - 1] == table[:-1]  # the same table first
    for name in (
        "plan-test-111122223333-us-east-1-raw",
        "plan-test-111122223333-us-east-1-processed",
        "plan-test-111122223333-us-east-1-scripts",
        "plan-test-111122223333-us-east-1-athena-results",
        "plan-test-glue-role",
        "sales_analytics_db_plan_test",
        "plan-test-raw-crawler",
        "plan-test-etl-job",
        "plan-test-workgroup",
    ):
        assert f": {name}" in out
    for setting in (
        '"aws:SecureTransport": "false"',
        '"RestrictPublicBuckets": true',
        '"SSEAlgorithm": "AES256"',
        '"Status": "Enabled"',
        '"glue.amazonaws.com"',
        '"WorkerType": "G.1X"',
        '"BytesScannedCutoffPerQuery": 1073741824',
        '"EnforceWorkGroupConfiguration": true',
        '"RecrawlBehavior": "CRAWL_NEW_FOLDERS_ONLY"',
    ):
        assert setting in out
    assert deploy.main(["down", "--dry-run", *argv]) == 0
    assert "s3-bucket plan-test-111122223333-us-east-1-raw" in capsys.readouterr().out


def test_an_account_id_must_be_twelve_digits():
    with pytest.raises(ValueError, match="12 digits"):
        PipelineConfig(prefix="p", target="aws", region=REGION, account_id="12345")


def test_every_aws_script_names_the_buckets_for_the_callers_account(aws):
    configs = [
        deploy.make_config(deploy.parse_args(["status", "--prefix", "test-sales"])),
        config_from(run_pipeline.parse_args(["--target", "aws", "--prefix", "test-sales"])),
        config_from(query.parse_args(["--list", "--target", "aws", "--prefix", "test-sales"])),
    ]
    for config in configs:
        assert config.account_id == ACCOUNT
        assert config.raw_bucket == f"{STEM}-raw"
        assert config.results_bucket == f"{STEM}-athena-results"


def test_the_local_target_asks_no_account(monkeypatch):
    def no_aws(*args, **kwargs):
        raise AssertionError("the local target called AWS")

    monkeypatch.setattr("botocore.client.BaseClient._make_api_call", no_aws)
    config = config_from(run_pipeline.parse_args(["--prefix", "test-sales"]))
    assert (config.account_id, config.raw_bucket) == (None, "test-sales-raw")


def test_a_prefix_too_long_with_the_account_is_a_usage_error(aws):
    args = deploy.parse_args(["status", "--prefix", "p" * 26])
    with pytest.raises(UsageError, match="at most 25 characters"):
        deploy.make_config(args)


def test_dry_run_shows_the_account_placeholder_or_the_given_account(monkeypatch, capsys):
    def no_aws(*args, **kwargs):
        raise AssertionError("dry run called AWS")

    monkeypatch.setattr("botocore.client.BaseClient._make_api_call", no_aws)
    where = ["--prefix", "plan-test", "--region", "us-east-1"]
    assert deploy.main(["down", "--dry-run", *where]) == 0  # down's dry run reads nothing
    assert "s3-bucket plan-test-<account-id>-us-east-1-raw" in capsys.readouterr().out

    argv = ["up", "--dry-run", *where]
    assert deploy.main([*argv, "--verbose", "--account-id", "111122223333"]) == 0
    out = capsys.readouterr().out
    assert "s3-bucket         plan-test-111122223333-us-east-1-athena-results" in out
    assert '"Role": "arn:aws:iam::111122223333:role/plan-test-glue-role"' in out


def test_account_id_is_only_for_policy_and_dry_runs(capsys):
    with pytest.raises(SystemExit) as refused:
        deploy.parse_args(["up", "--account-id", "111122223333"])
    assert refused.value.code == 2
    assert "--account-id goes with `policy` or --dry-run" in capsys.readouterr().err


@pytest.fixture
def aws_config_file(tmp_path, monkeypatch):
    """An AWS config file with a default and a named profile, each with a region."""
    path = tmp_path / "config"
    path.write_text(
        "[default]\nregion = ap-south-1\n\n[profile analytics]\nregion = eu-central-1\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(path))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return path


def test_the_profiles_region_is_used_when_no_flag_or_environment_gives_one(
    aws_config_file, monkeypatch
):
    from pipeline import aws

    config = PipelineConfig(prefix="p", target="aws", profile="analytics")
    assert config.region == "eu-central-1"
    assert aws.session(config).region_name == "eu-central-1"
    assert PipelineConfig(prefix="p", target="aws").region == "ap-south-1"  # [default]

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert PipelineConfig(prefix="p", target="aws", profile="analytics").region == "us-west-2"
    monkeypatch.setenv("AWS_REGION", "ca-central-1")
    assert PipelineConfig(prefix="p", target="aws", profile="analytics").region == "ca-central-1"
    config = PipelineConfig(prefix="p", target="aws", profile="analytics", region="sa-east-1")
    assert config.region == "sa-east-1"


def test_deploy_names_the_profiles_region(aws_config_file, capsys):
    argv = ["up", "--dry-run", "--prefix", "plan-test", "--profile", "analytics"]
    assert deploy.main([*argv, "--account-id", "111122223333"]) == 0
    out = capsys.readouterr().out
    assert "plan for prefix plan-test in eu-central-1, account 111122223333" in out
    assert "s3-bucket         plan-test-111122223333-eu-central-1-raw" in out


def test_an_unknown_profile_is_a_usage_error(aws_config_file, capsys, monkeypatch):
    # When the region must come from the profile, and when STS is to be asked.
    argv = ["up", "--dry-run", "--prefix", "plan-test", "--profile", "nobody"]
    assert deploy.main(argv) == 2
    assert "error: AWS profile 'nobody' is not in the AWS config files" in capsys.readouterr().err
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert deploy.main(["status", "--prefix", "plan-test", "--profile", "nobody"]) == 2
    assert "error: AWS profile 'nobody' is not in the AWS config files" in capsys.readouterr().err


def test_dry_run_shows_every_new_resource_and_setting_and_calls_nothing(monkeypatch, capsys):
    def no_aws(*args, **kwargs):
        raise AssertionError("dry run called AWS")

    monkeypatch.setattr("botocore.client.BaseClient._make_api_call", no_aws)
    argv = ["--prefix", "plan-test", "--region", "us-east-1", "--account-id", "111122223333"]
    flags = ["--schedule", DAILY, "--alert-email", "oncall@example.com"]
    more = [*flags, "--max-quarantine-rate", "0.1", "--verbose"]
    assert deploy.main(["up", "--dry-run", *argv, *more]) == 0
    out = capsys.readouterr().out
    for header in (
        "== glue-workflow: plan-test-workflow",
        "== glue-trigger: plan-test-workflow-start",
        "== glue-trigger: plan-test-workflow-after-crawl",
        "== kms-key: alias/plan-test-alerts",
        "== sns-topic: plan-test-alerts",
        "== sns-subscription: oncall@example.com",
        "== events-rule: plan-test-failures",
        "== cloudwatch-alarm: plan-test-quarantine-rate",
    ):
        assert header in out
    for setting in (
        '"Schedule": "cron(0 6 * * ? *)"',
        '"Type": "SCHEDULED"',
        '"CrawlState": "SUCCEEDED"',
        '"KmsMasterKeyId": "arn:aws:kms:us-east-1:111122223333:alias/plan-test-alerts"',
        '"EnableKeyRotation": true',
        '"Threshold": 0.1',
        '"Arn": "arn:aws:sns:us-east-1:111122223333:plan-test-alerts"',
        '"--metrics_namespace": "SalesPipeline"',
        r"\"jobName\": [\"plan-test-etl-job\"]",
        r"arn:aws:events:us-east-1:111122223333:rule/plan-test-failures",
    ):
        assert setting in out

    assert deploy.main(["down", "--dry-run", *argv]) == 0
    out = capsys.readouterr().out
    lines = [line.strip() for line in out.splitlines()]
    order = [
        "cloudwatch-alarm plan-test-quarantine-rate",
        "events-rule plan-test-failures (its targets first)",
        "(then: stop a running run of workflow plan-test-workflow, a running crawl of "
        "plan-test-raw-crawler and active runs of plan-test-etl-job, and wait for them; after "
        "the alarm and the rule, so that a stopped run mails no failure alert)",
        "sns-topic plan-test-alerts with its subscriptions",
        "kms-key behind alias/plan-test-alerts: scheduled for deletion in 7 days (unless "
        "already pending), then the alias; without the alias, the keys tagged ours",
        "glue-trigger plan-test-workflow-after-crawl",
        "glue-trigger plan-test-workflow-start",
        "glue-workflow plan-test-workflow",
    ]
    assert [lines.index(item) for item in order] == sorted(lines.index(item) for item in order)

    assert deploy.main(["run", "--dry-run", "--workflow", *argv]) == 0
    assert "start workflow plan-test-workflow" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["up", "--schedule", "daily"], "is not a Glue cron expression"),
        (["up", "--schedule", "cron(0 6 * * ?)"], "is not a Glue cron expression"),
        (["up", "--alert-email", "oncall"], "does not look like an email address"),
        (["up", "--max-quarantine-rate", "5"], "must be between 0 and 1"),
        (["run", "--workflow", "--run-id", "r1"], "--run-id does not go with --workflow"),
    ],
    ids=["schedule-word", "schedule-five-fields", "email", "rate", "run-id"],
)
def test_bad_operations_flags_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        deploy.main([*argv, "--prefix", "plan-test", "--dry-run"])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


@pytest.mark.parametrize(
    "command",
    [["up"], ["up", "--dry-run"], ["run", "--dry-run"], ["status"], ["down", "--yes"]],
    ids=["up", "up-dry-run", "run-dry-run", "status", "down"],
)
def test_a_bad_prefix_exits_2_with_one_error_line_before_any_aws_call(
    aws_env, no_aws, capsys, command
):
    assert deploy.main([*command, "--prefix", "Sales_Pipeline"]) == 2

    out, err = capsys.readouterr()
    [line] = _error_lines(err)
    assert line.startswith("error: prefix 'Sales_Pipeline' must be lowercase")
    assert "Traceback" not in out + err


def _deny(operation: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Make AWS answer AccessDenied to one operation; every other call goes to moto."""
    from botocore.client import BaseClient

    original = BaseClient._make_api_call
    message = (
        f"User: arn:aws:iam::{ACCOUNT}:user/reviewer is not authorized to perform: "
        f"iam:{operation} on resource: role test-sales-glue-role"
    )

    def make_api_call(self: BaseClient, name: str, params: dict[str, Any]) -> Any:
        if name == operation:
            raise ClientError(
                {
                    "Error": {"Code": "AccessDenied", "Message": message},
                    "ResponseMetadata": {"HTTPStatusCode": 403},
                },
                name,
            )
        return original(self, name, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", make_api_call)
    return (
        f"error: AWS call failed: An error occurred (AccessDenied) when calling the "
        f"{operation} operation: {message}"
    )


@pytest.mark.parametrize(
    "command", [["up"], ["status"], ["down", "--yes"]], ids=["up", "status", "down"]
)
def test_an_aws_error_exits_1_with_one_error_line_and_no_traceback(
    deployed, capsys, monkeypatch, command
):
    expected = _deny("GetRole", monkeypatch)

    code = deploy.main([*command, "--prefix", "test-sales"])

    out, err = capsys.readouterr()
    # `status` must not show a role it was denied reading as missing.
    assert (code, _error_lines(err)) == (1, [expected]), out
    assert "Traceback" not in out + err


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    "command", [["up"], ["status"], ["down", "--yes"]], ids=["up", "status", "down"]
)
def test_an_unreachable_endpoint_exits_1_with_one_error_line_and_no_traceback(
    aws_env, capsys, monkeypatch, command
):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # no retries: the port refuses at once
    endpoint = f"http://127.0.0.1:{_closed_port()}"

    code = deploy.main([*command, "--prefix", "test-sales", "--endpoint-url", endpoint])

    out, err = capsys.readouterr()
    [line] = _error_lines(err)
    assert code == 1
    assert line.startswith(
        f'error: AWS call failed: Could not connect to the endpoint URL: "{endpoint}/'
    )
    assert "Traceback" not in out + err


@pytest.fixture
def reviewer_profile(aws, tmp_path, monkeypatch):
    """A named profile `reviewer` whose credentials act in another moto account.

    moto puts everything done with credentials from AssumeRole into the role's account,
    so what `--profile reviewer` creates shows whose credentials were used.
    """
    creds = aws.sts.assume_role(
        RoleArn=f"arn:aws:iam::{OTHER_ACCOUNT}:role/deployer", RoleSessionName="review"
    )["Credentials"]
    config_file = tmp_path / "aws-config"
    config_file.write_text("[profile reviewer]\nregion = us-east-1\n")
    credentials_file = tmp_path / "aws-credentials"
    credentials_file.write_text(
        "[reviewer]\n"
        f"aws_access_key_id = {creds['AccessKeyId']}\n"
        f"aws_secret_access_key = {creds['SecretAccessKey']}\n"
        f"aws_session_token = {creds['SessionToken']}\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config_file))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials_file))
    return boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name="us-east-1",
    )


def test_the_session_for_a_profile_flag_carries_that_profile(reviewer_profile):
    config = deploy.make_config(deploy.parse_args(["status", "--profile", "reviewer"]))

    assert config.profile == "reviewer"
    assert pipeline_aws.session(config).profile_name == "reviewer"
    identity = pipeline_aws.client(config, "sts").get_caller_identity()
    assert identity["Account"] == OTHER_ACCOUNT
    assert identity["Arn"] == f"arn:aws:sts::{OTHER_ACCOUNT}:assumed-role/deployer/review"


def test_without_a_region_the_profiles_region_is_used(reviewer_profile, tmp_path, monkeypatch):
    (tmp_path / "aws-config").write_text("[profile reviewer]\nregion = eu-west-1\n")
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")

    config = deploy.make_config(deploy.parse_args(["status", "--profile", "reviewer"]))

    assert config.region == "eu-west-1"
    assert pipeline_aws.session(config).region_name == "eu-west-1"
    assert pipeline_aws.client(config, "glue").meta.region_name == "eu-west-1"


def test_deploy_with_profile_acts_with_that_profiles_credentials(
    aws, reviewer_profile, capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    argv = ["--prefix", "test-sales", "--profile", "reviewer"]

    assert deploy.main(["up", *argv]) == 0

    assert "up: " in capsys.readouterr().out
    # Nothing in the environment's own account (the env credentials were not used) ...
    assert aws.s3.list_buckets()["Buckets"] == []
    assert aws.glue.list_jobs()["JobNames"] == []
    # ... everything in the profile's, and the job runs as that account's role.
    other = reviewer_profile
    buckets = sorted(b["Name"] for b in other.client("s3").list_buckets()["Buckets"])
    assert len(buckets) == 4 and all(b.startswith("test-sales-") for b in buckets), buckets
    job = other.client("glue").get_job(JobName=JOB)["Job"]
    assert job["Role"] == f"arn:aws:iam::{OTHER_ACCOUNT}:role/test-sales-glue-role"

    assert deploy.main(["status", *argv]) == 0
    out = capsys.readouterr().out
    assert "glue-job" in out and "missing" not in out


@pytest.mark.parametrize("region_from_env", [True, False], ids=["region-in-env", "no-region"])
def test_an_unknown_profile_exits_2_with_one_error_line(
    aws_env, capsys, monkeypatch, region_from_env
):
    # A profile the config files do not have is a bad value (exit 2), whether or not the
    # region has to be read from that profile.
    if not region_from_env:
        monkeypatch.delenv("AWS_REGION")
        monkeypatch.delenv("AWS_DEFAULT_REGION")

    code = deploy.main(["status", "--prefix", "test-sales", "--profile", "no-such-profile"])

    out, err = capsys.readouterr()
    [line] = _error_lines(err)
    assert (code, line.startswith("error: "), "no-such-profile" in line) == (2, True, True), line
    assert "Traceback" not in out + err


@pytest.mark.parametrize(
    "command", [["deploy.py", "template"], ["query.py", "--list"]], ids=lambda c: c[0]
)
def test_output_into_a_pipe_nobody_reads_ends_quietly_with_the_shells_code(command):
    """`deploy.py template | head -1`: the reader has gone before the script writes (the
    pipe's read end is closed first); no traceback, the code a shell gives for SIGPIPE."""
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run(
            [sys.executable, *command],
            cwd=Path(deploy.__file__).parent,
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (128 + signal.SIGPIPE, "")
