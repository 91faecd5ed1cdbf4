"""What the review of the aws target found untested: drift repair by `up` beyond S3 and
the role's policies, `run`/`status --dry-run`, the exit codes, `--profile`, and the
deployed job's arguments as the job itself parses them on Glue.

Expected values are written out literally (prefix ``test-sales``, moto's account
``123456789012``), not recomputed from the code under test.

moto 5.2.5 implements neither UpdateCrawler, UpdateJob nor UpdateWorkGroup: on plain
moto, `up` stops with NotImplementedError as soon as it tries to repair one of those
three. The ``moto_updates`` fixture fills in exactly these three actions (only where
moto lacks them) with what AWS documents: UpdateCrawler changes the fields it is given,
UpdateJob replaces the whole definition (what ``JobUpdate`` leaves out is reset), and
UpdateWorkGroup applies ``ConfigurationUpdates`` including their ``Remove*`` flags.
boto3 still validates every request against the service model before moto sees it, and
every read back goes through moto's own GetCrawler, GetJob and GetWorkGroup.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.athena.responses import AthenaResponse
from moto.core.responses import ActionResult, EmptyResult
from moto.core.utils import utcnow
from moto.glue.responses import GlueResponse

import deploy
from pipeline import aws as pipeline_aws
from pipeline import infra
from pipeline.errors import DeployError
from pipeline.targets.aws import AwsTarget

ACCOUNT = "123456789012"  # moto's default account
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/test-sales-glue-role"
CRAWLER = "test-sales-raw-crawler"
JOB = "test-sales-etl-job"
WORKGROUP = "test-sales-workgroup"
DATABASE = "sales_analytics_db"
MARKS = {"managed-by": "deploy.py", "pipeline-prefix": "test-sales"}

GLUE_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "glue.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
SALES_URI = "s3://test-sales-raw/input/sales_data_csv/"
CUSTOMERS_URI = "s3://test-sales-raw/input/customer_demographics_json/"
DEFAULT_ARGUMENTS = {
    "--sales_path": SALES_URI,
    "--customers_path": CUSTOMERS_URI,
    "--output_path": "s3://test-sales-processed/",
    "--job-language": "python",
    "--enable-metrics": "true",
    "--enable-continuous-cloudwatch-log": "true",
    "--metrics_namespace": "SalesPipeline",
    "--pipeline_prefix": "test-sales",
}
WORKGROUP_RESULTS = {
    "OutputLocation": "s3://test-sales-athena-results/results/",
    "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"},
}


# ------------------------------------------- the three update actions moto 5.2.5 lacks

# UpdateJob's JobUpdate members and the FakeJob attribute each one sets.
_JOB_UPDATE = {
    "Description": "description",
    "LogUri": "log_uri",
    "Role": "role",
    "ExecutionProperty": "execution_property",
    "Command": "command",
    "DefaultArguments": "default_arguments",
    "NonOverridableArguments": "non_overridable_arguments",
    "Connections": "connections",
    "MaxRetries": "max_retries",
    "AllocatedCapacity": "allocated_capacity",
    "Timeout": "timeout",
    "MaxCapacity": "max_capacity",
    "WorkerType": "worker_type",
    "NumberOfWorkers": "number_of_workers",
    "SecurityConfiguration": "security_configuration",
    "NotificationProperty": "notification_property",
    "GlueVersion": "glue_version",
    "CodeGenConfigurationNodes": "code_gen_configuration_nodes",
    "ExecutionClass": "execution_class",
    "SourceControlDetails": "source_control_details",
}
_CRAWLER_UPDATE = {
    "Role": "role",
    "DatabaseName": "database_name",
    "Description": "description",
    "Targets": "targets",
    "Classifiers": "classifiers",
    "TablePrefix": "table_prefix",
    "SchemaChangePolicy": "schema_change_policy",
    "RecrawlPolicy": "recrawl_policy",
    "LineageConfiguration": "lineage_configuration",
    "Configuration": "configuration",
    "CrawlerSecurityConfiguration": "crawler_security_configuration",
}


def _update_crawler(self: GlueResponse) -> ActionResult:
    params = json.loads(self.body)
    crawler = self.glue_backend.get_crawler(params["Name"])
    for member, attribute in _CRAWLER_UPDATE.items():
        if member in params:
            setattr(crawler, attribute, params[member])
    if "Schedule" in params:
        crawler.schedule = params["Schedule"]
    crawler.version += 1
    crawler.last_updated = utcnow()
    return EmptyResult()


def _update_job(self: GlueResponse) -> ActionResult:
    params = json.loads(self.body)
    job = self.glue_backend.get_job(params["JobName"])
    update = params["JobUpdate"]
    for member, attribute in _JOB_UPDATE.items():  # a replace: omitted members are reset
        setattr(job, attribute, update.get(member))
    job.execution_property = job.execution_property or {"MaxConcurrentRuns": 1}
    job.default_arguments = job.default_arguments or {}
    job.execution_class = job.execution_class or "STANDARD"
    job.last_modified_on = utcnow()
    return ActionResult({"JobName": job.name})


def _update_work_group(self: AthenaResponse) -> Any:
    params = json.loads(self.body)
    wg = self.athena_backend.work_groups.get(params["WorkGroup"])
    if wg is None:
        return self.error("WorkGroup does not exist", 400)
    if "Description" in params:
        wg.description = params["Description"]
    if "State" in params:
        wg.state = params["State"]
    updates = params.get("ConfigurationUpdates", {})
    conf = wg.configuration
    for key in (
        "EnforceWorkGroupConfiguration",
        "PublishCloudWatchMetricsEnabled",
        "BytesScannedCutoffPerQuery",
        "RequesterPaysEnabled",
        "EnableMinimumEncryptionConfiguration",
    ):
        if key in updates:
            conf[key] = updates[key]
    if updates.get("RemoveBytesScannedCutoffPerQuery"):
        conf.pop("BytesScannedCutoffPerQuery", None)
    if "EngineVersion" in updates:
        selected = updates["EngineVersion"]["SelectedEngineVersion"]
        effective = "Athena engine version 3" if selected == "AUTO" else selected
        conf["EngineVersion"] = {
            "SelectedEngineVersion": selected,
            "EffectiveEngineVersion": effective,
        }
    result_updates = updates.get("ResultConfigurationUpdates", {})
    result = conf.setdefault("ResultConfiguration", {})
    for key in (
        "OutputLocation",
        "EncryptionConfiguration",
        "ExpectedBucketOwner",
        "AclConfiguration",
    ):
        if key in result_updates:
            result[key] = result_updates[key]
        if result_updates.get(f"Remove{key}"):
            result.pop(key, None)
    return "{}"


@pytest.fixture
def moto_updates(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give moto UpdateCrawler, UpdateJob and UpdateWorkGroup where it has none."""
    for cls, action, implementation in (
        (GlueResponse, "update_crawler", _update_crawler),
        (GlueResponse, "update_job", _update_job),
        (AthenaResponse, "update_work_group", _update_work_group),
    ):
        if not hasattr(cls, action):
            monkeypatch.setattr(cls, action, implementation, raising=False)


@pytest.fixture
def drift(deployed, moto_updates):
    """The deployed clients, with the three update actions available to drift and repair."""
    return deployed


def _repaired(config, clients, expected_change: str) -> None:
    """One `up` repairs exactly ``expected_change``; the next finds nothing to do."""
    assert infra.up(config, clients, tables=False) == [expected_change]
    assert infra.up(config, clients, tables=False) == []


def _glue_tags(glue, kind: str, name: str) -> dict[str, str]:
    return glue.get_tags(ResourceArn=f"arn:aws:glue:us-east-1:{ACCOUNT}:{kind}/{name}")["Tags"]


# ----------------------------------------------------------------- drift: Glue database


def test_up_puts_back_the_database_description_changed_by_hand(drift, config):
    glue = drift.glue
    glue.update_database(
        Name=DATABASE,
        DatabaseInput={"Name": DATABASE, "Description": "scratch space", "Parameters": MARKS},
    )
    assert glue.get_database(Name=DATABASE)["Database"]["Description"] == "scratch space"

    _repaired(config, drift, "updated database sales_analytics_db")

    db = glue.get_database(Name=DATABASE)["Database"]
    assert db["Description"] == (
        "Sales pipeline: raw tables (crawler) and curated tables (Athena DDL)"
    )
    assert db["Parameters"] == MARKS


def test_up_does_not_re_mark_a_database_that_lost_a_mark_it_refuses_and_changes_nothing(
    drift, config
):
    # Marks are the proof of ownership: `up` repairs only what carries them, never adopts.
    glue = drift.glue
    half_marked = {"pipeline-prefix": "test-sales"}
    glue.update_database(Name=DATABASE, DatabaseInput={"Name": DATABASE, "Parameters": half_marked})

    with pytest.raises(DeployError) as refused:
        infra.up(config, drift, tables=False)

    assert "glue-database sales_analytics_db (its managed-by parameter is not deploy.py)" in str(
        refused.value
    )
    assert glue.get_database(Name=DATABASE)["Database"]["Parameters"] == half_marked


# ------------------------------------------------------------------------ drift: crawler


@pytest.mark.parametrize(
    "drifted",
    [
        {"Role": f"arn:aws:iam::{ACCOUNT}:role/someone-elses-role"},
        {"Targets": {"S3Targets": [{"Path": "s3://test-sales-raw/input/"}]}},
        {
            "Targets": {
                "S3Targets": [
                    {"Path": SALES_URI},
                    {"Path": CUSTOMERS_URI},
                    {"Path": "s3://someone-elses-bucket/"},
                ]
            }
        },
        {
            "SchemaChangePolicy": {
                "UpdateBehavior": "LOG",
                "DeleteBehavior": "DELETE_FROM_DATABASE",
            }
        },
    ],
    ids=["role", "one-target-for-both", "extra-target", "schema-change-policy"],
)
def test_up_puts_back_a_crawler_changed_by_hand(drift, config, drifted):
    glue = drift.glue
    glue.update_crawler(Name=CRAWLER, **drifted)
    crawler = glue.get_crawler(Name=CRAWLER)["Crawler"]
    assert {k: crawler[k] for k in drifted} == drifted

    _repaired(config, drift, "updated crawler test-sales-raw-crawler")

    crawler = glue.get_crawler(Name=CRAWLER)["Crawler"]
    assert crawler["Role"] == ROLE_ARN
    assert crawler["DatabaseName"] == DATABASE
    assert crawler["Targets"]["S3Targets"] == [{"Path": SALES_URI}, {"Path": CUSTOMERS_URI}]
    assert crawler["SchemaChangePolicy"] == {
        "UpdateBehavior": "UPDATE_IN_DATABASE",
        "DeleteBehavior": "DEPRECATE_IN_DATABASE",
    }
    assert crawler["RecrawlPolicy"] == {"RecrawlBehavior": "CRAWL_EVERYTHING"}
    assert _glue_tags(glue, "crawler", CRAWLER) == MARKS


# ---------------------------------------------------------------------------- drift: job


def _job_update(job: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The job's current definition as a JobUpdate, with ``changes`` (UpdateJob replaces)."""
    keep = (
        "Description",
        "Role",
        "ExecutionProperty",
        "Command",
        "DefaultArguments",
        "MaxRetries",
        "Timeout",
        "WorkerType",
        "NumberOfWorkers",
        "GlueVersion",
    )
    return {**{k: job[k] for k in keep if k in job}, **changes}


def _without(arguments: dict[str, str], name: str) -> dict[str, str]:
    return {k: v for k, v in arguments.items() if k != name}


@pytest.mark.parametrize(
    "drifted",
    [
        {
            "Command": {
                "Name": "glueetl",
                "ScriptLocation": "s3://someone-elses-bucket/job.py",
                "PythonVersion": "3",
            }
        },
        {"GlueVersion": "4.0"},
        {"WorkerType": "G.2X"},
        {"NumberOfWorkers": 10},
        {"DefaultArguments": {**DEFAULT_ARGUMENTS, "--output_path": "s3://other-processed/"}},
        {"DefaultArguments": _without(DEFAULT_ARGUMENTS, "--customers_path")},
        # Code the job would load and run with the Glue role: drift like an extra policy.
        {"DefaultArguments": {**DEFAULT_ARGUMENTS, "--extra-py-files": "s3://elsewhere/x.py"}},
    ],
    ids=[
        "script-location",
        "glue-version",
        "worker-type",
        "number-of-workers",
        "argument-changed",
        "argument-removed",
        "argument-added",
    ],
)
def test_up_puts_back_a_job_changed_by_hand(drift, config, drifted):
    glue = drift.glue
    job = glue.get_job(JobName=JOB)["Job"]
    glue.update_job(JobName=JOB, JobUpdate=_job_update(job, **drifted))
    job = glue.get_job(JobName=JOB)["Job"]
    assert {k: job[k] for k in drifted} == drifted

    _repaired(config, drift, "updated job test-sales-etl-job")

    job = glue.get_job(JobName=JOB)["Job"]
    assert job["Command"] == {
        "Name": "glueetl",
        "ScriptLocation": "s3://test-sales-scripts/scripts/glue_etl_job.py",
        "PythonVersion": "3",
    }
    assert (job["GlueVersion"], job["WorkerType"], job["NumberOfWorkers"]) == ("5.0", "G.1X", 2)
    assert job["DefaultArguments"] == DEFAULT_ARGUMENTS
    assert job["Role"] == ROLE_ARN
    assert (job["Timeout"], job["MaxRetries"]) == (30, 0)
    assert _glue_tags(glue, "job", JOB) == MARKS


# ---------------------------------------------------------------------- drift: workgroup


@pytest.mark.parametrize(
    ("updates", "state"),
    [
        (
            {"ResultConfigurationUpdates": {"OutputLocation": "s3://someone-elses-bucket/q/"}},
            None,
        ),
        ({"ResultConfigurationUpdates": {"RemoveEncryptionConfiguration": True}}, None),
        (
            {
                "ResultConfigurationUpdates": {
                    "EncryptionConfiguration": {
                        "EncryptionOption": "SSE_KMS",
                        "KmsKey": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/abc",
                    }
                }
            },
            None,
        ),
        ({"EnforceWorkGroupConfiguration": False}, None),
        ({"RemoveBytesScannedCutoffPerQuery": True}, None),
        ({"BytesScannedCutoffPerQuery": 1024**4}, None),
        ({}, "DISABLED"),
    ],
    ids=[
        "result-location",
        "encryption-removed",
        "encryption-kms",
        "enforce-off",
        "cutoff-removed",
        "cutoff-raised",
        "disabled",
    ],
)
def test_up_puts_back_a_workgroup_changed_by_hand(drift, config, updates, state):
    athena = drift.athena
    kwargs: dict[str, Any] = {"ConfigurationUpdates": updates}
    if state:
        kwargs["State"] = state

    def as_set():
        wg = athena.get_work_group(WorkGroup=WORKGROUP)["WorkGroup"]
        return wg["State"], wg["Configuration"]

    before = as_set()
    athena.update_work_group(WorkGroup=WORKGROUP, **kwargs)
    assert as_set() != before

    _repaired(config, drift, "updated workgroup test-sales-workgroup")

    wg = athena.get_work_group(WorkGroup=WORKGROUP)["WorkGroup"]
    conf = wg["Configuration"]
    assert wg["State"] == "ENABLED"
    assert conf["ResultConfiguration"] == WORKGROUP_RESULTS
    assert conf["EnforceWorkGroupConfiguration"] is True
    assert conf["BytesScannedCutoffPerQuery"] == 1024**3
    assert conf["PublishCloudWatchMetricsEnabled"] is True
    tags = athena.list_tags_for_resource(
        ResourceARN=f"arn:aws:athena:us-east-1:{ACCOUNT}:workgroup/{WORKGROUP}"
    )["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == MARKS


# ---------------------------------------------------------------- drift: trust policy


@pytest.mark.parametrize(
    "trust",
    [
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "ec2.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        },
        {
            "Version": "2012-10-17",
            "Statement": [
                *GLUE_TRUST["Statement"],
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": "arn:aws:iam::210987654321:root"},
                    "Action": "sts:AssumeRole",
                },
            ],
        },
    ],
    ids=["another-service", "another-account-added"],
)
def test_up_puts_back_the_role_trust_policy_changed_by_hand(drift, config, trust):
    iam = drift.iam
    iam.update_assume_role_policy(RoleName="test-sales-glue-role", PolicyDocument=json.dumps(trust))
    assert iam.get_role(RoleName="test-sales-glue-role")["Role"]["AssumeRolePolicyDocument"] == (
        trust
    )

    _repaired(config, drift, "restored trust policy of test-sales-glue-role")

    role = iam.get_role(RoleName="test-sales-glue-role")["Role"]
    assert role["AssumeRolePolicyDocument"] == GLUE_TRUST
    assert {t["Key"]: t["Value"] for t in role["Tags"]} == MARKS


# ------------------------------------------------------------------- --dry-run, no AWS


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test on any AWS client being built or any API call being made."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a dry run touched AWS")

    monkeypatch.setattr("botocore.client.BaseClient._make_api_call", refuse)
    monkeypatch.setattr("botocore.session.Session.create_client", refuse)


def test_run_dry_run_prints_what_run_would_do_and_touches_nothing(
    aws_env, no_aws, capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIPELINE_LAKE", str(tmp_path / "lake"))
    argv = ["run", "--dry-run", "--prefix", "dry-test"]

    assert deploy.main(argv) == 0

    out, err = capsys.readouterr()
    assert err == ""
    [line] = out.splitlines()
    assert line.startswith("run would: generate data (or take --sales-path/--customers-path)")
    assert "start crawler dry-test-raw-crawler" in line
    assert "start job dry-test-etl-job" in line
    assert "workgroup dry-test-workgroup" in line
    assert list(tmp_path.iterdir()) == []  # nothing generated, no lake


def test_status_dry_run_says_it_only_reads_and_touches_nothing(aws_env, no_aws, capsys):
    argv = ["status", "--dry-run", "--prefix", "dry-test"]

    assert deploy.main(argv) == 0

    assert capsys.readouterr() == ("status reads only; nothing to dry-run\n", "")


# -------------------------------------------------------------------------- exit codes


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


# ----------------------------------------------------------------------------- --profile

OTHER_ACCOUNT = "111111111111"


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


# ------------------------------------------ the deployed job's arguments, as Glue passes them


def test_deployed_job_arguments_parse_through_awsglue_as_on_glue(deployed, config):
    pytest.importorskip("awsglue.utils")  # AWSGlueDataplanePython installs on Python 3.11 only
    pytest.importorskip("awsglue.context")
    import glue_etl_job

    glue = deployed.glue
    default_arguments = glue.get_job(JobName=JOB)["Job"]["DefaultArguments"]
    # What `run` starts the job with (AwsTarget.run_job), read back from the job run.
    target = AwsTarget(config, clients=deployed, poll_seconds=0, sleep=lambda _: None)
    job_run_id = target.run_job("run-42").details["job_run_id"]
    run_arguments = glue.get_job_run(JobName=JOB, RunId=job_run_id)["JobRun"]["Arguments"]
    assert run_arguments["--run_id"] == "run-42"
    # What the Glue service adds to every run, before the job's own arguments.
    added_by_glue = {
        "--JOB_ID": "j_0123456789abcdef",
        "--JOB_RUN_ID": job_run_id,
        "--JOB_NAME": JOB,
        "--TempDir": f"s3://aws-glue-assets-{ACCOUNT}-us-east-1/temporary/",
    }
    argv = ["glue_etl_job.py"]
    for name, value in {**added_by_glue, **default_arguments, **run_arguments}.items():
        argv += [name, value]

    args = glue_etl_job.parse_args(argv)

    assert glue_etl_job.is_glue_runtime(argv) is True
    assert args.sales_path == SALES_URI
    assert args.customers_path == CUSTOMERS_URI
    assert args.output_path == "s3://test-sales-processed/"
    assert args.run_id == "run-42"
    assert args.job_name == JOB
    assert args.job_run_id == job_run_id
    assert args.quarantine_path is None
