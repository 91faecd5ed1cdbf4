"""`up` across kinds: what it makes, idempotence, drift, resuming, refusing what is not ours, Lake Formation (against moto)."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError
from moto_fixtures import (
    ACCOUNT,
    AFTER_CRAWL,
    ALARM,
    BUCKETS,
    REGION,
    RULE,
    assert_repaired,
    bucket_tags,
    lifecycle_rules,
    look_alikes,
    with_clients,
)

import deploy
from pipeline import infra
from pipeline.errors import (
    DeployError,
)
from pipeline.infra import crawler
from pipeline.targets.aws import AwsTarget

IAM_ONLY = [
    {"Principal": {"DataLakePrincipalIdentifier": "IAM_ALLOWED_PRINCIPALS"}, "Permissions": ["ALL"]}
]
ADMINS = [{"DataLakePrincipalIdentifier": f"arn:aws:iam::{ACCOUNT}:role/lake-admin"}]
ANALYST_ALL = [
    {
        "Principal": {"DataLakePrincipalIdentifier": f"arn:aws:iam::{ACCOUNT}:role/analyst"},
        "Permissions": ["ALL"],
    }
]


def _lake_settings(admins, database_defaults, table_defaults):
    return {
        "DataLakeAdmins": admins,
        "CreateDatabaseDefaultPermissions": database_defaults,
        "CreateTableDefaultPermissions": table_defaults,
    }


GOVERNED = [
    (
        _lake_settings(ADMINS, [], []),
        "CreateDatabaseDefaultPermissions is empty and data lake administrators are set",
    ),
    (
        _lake_settings(ADMINS, IAM_ONLY, []),
        "CreateTableDefaultPermissions is empty and data lake administrators are set",
    ),
    (
        _lake_settings([], ANALYST_ALL, IAM_ONLY),
        "CreateDatabaseDefaultPermissions is not IAM_ALLOWED_PRINCIPALS ALL",
    ),
]
GOVERNED_IDS = ["admins-and-no-defaults", "admins-and-no-table-default", "other-principal"]


def _inventory(aws):
    return {
        "buckets": sorted(b["Name"] for b in aws.s3.list_buckets()["Buckets"]),
        "roles": sorted(r["RoleName"] for r in aws.iam.list_roles()["Roles"]),
        "role_policies": aws.iam.list_role_policies(RoleName="test-sales-glue-role")["PolicyNames"],
        "databases": [d["Name"] for d in aws.glue.get_databases()["DatabaseList"]],
        "crawlers": aws.glue.list_crawlers()["CrawlerNames"],
        "jobs": aws.glue.list_jobs()["JobNames"],
        "workgroups": sorted(w["Name"] for w in aws.athena.list_work_groups()["WorkGroups"]),
    }


class TestOneDeployment:
    """One `up` for these tests: they read it, or change what it made by hand and check that
    the next `up` puts it back."""

    def test_glue_database_crawler_and_job_are_configured(self, deployed_once):
        glue = deployed_once.glue
        db = glue.get_database(Name="sales_analytics_db_test_sales")["Database"]
        assert db["Parameters"] == {"pipeline-prefix": "test-sales", "managed-by": "deploy.py"}

        crawler = glue.get_crawler(Name="test-sales-raw-crawler")["Crawler"]
        assert crawler["Role"] == f"arn:aws:iam::{ACCOUNT}:role/test-sales-glue-role"
        assert crawler["DatabaseName"] == "sales_analytics_db_test_sales"
        assert crawler["Targets"]["S3Targets"] == [
            {"Path": "s3://test-sales-raw/input/sales_data_csv/"},
            {"Path": "s3://test-sales-raw/input/customer_demographics_json/"},
        ]
        assert crawler["SchemaChangePolicy"] == {"UpdateBehavior": "LOG", "DeleteBehavior": "LOG"}
        assert crawler["RecrawlPolicy"] == {"RecrawlBehavior": "CRAWL_NEW_FOLDERS_ONLY"}

        job = glue.get_job(JobName="test-sales-etl-job")["Job"]
        assert job["Role"] == f"arn:aws:iam::{ACCOUNT}:role/test-sales-glue-role"
        assert (job["GlueVersion"], job["WorkerType"], job["NumberOfWorkers"]) == ("5.0", "G.1X", 2)
        assert (job["Timeout"], job["MaxRetries"]) == (30, 0)
        assert job["Command"] == {
            "Name": "glueetl",
            "ScriptLocation": "s3://test-sales-scripts/scripts/glue_etl_job.py",
            "PythonVersion": "3",
        }
        assert job["DefaultArguments"] == {
            "--sales_path": "s3://test-sales-raw/input/sales_data_csv/",
            "--customers_path": "s3://test-sales-raw/input/customer_demographics_json/",
            "--output_path": "s3://test-sales-processed/",
            "--extra-py-files": "s3://test-sales-scripts/scripts/sales_etl.zip",
            "--job-language": "python",
            "--enable-metrics": "true",
            "--enable-continuous-cloudwatch-log": "true",
            "--metrics_namespace": "SalesPipeline",
            "--pipeline_prefix": "test-sales",
            "--aws_region": "us-east-1",
        }

    def test_deploy_twice_is_idempotent(self, deployed_once, config):
        before = _inventory(deployed_once)
        assert infra.up(config, deployed_once, tables=False) == []
        assert _inventory(deployed_once) == before
        assert before["buckets"] == sorted(BUCKETS)
        assert before["jobs"] == ["test-sales-etl-job"]

    def test_up_puts_drifted_settings_back(self, deployed_once, config):
        s3, iam = deployed_once.s3, deployed_once.iam
        s3.put_bucket_versioning(
            Bucket="test-sales-raw", VersioningConfiguration={"Status": "Suspended"}
        )
        s3.delete_public_access_block(Bucket="test-sales-processed")
        s3.delete_bucket_policy(Bucket="test-sales-scripts")
        s3.delete_bucket_lifecycle(Bucket="test-sales-athena-results")
        wide = iam.create_policy(
            PolicyName="wide-open",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
                }
            ),
        )["Policy"]["Arn"]
        iam.attach_role_policy(RoleName="test-sales-glue-role", PolicyArn=wide)
        iam.put_role_policy(
            RoleName="test-sales-glue-role",
            PolicyName="extra",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
                }
            ),
        )

        changes = infra.up(config, deployed_once, tables=False)

        assert len(changes) == 6
        assert s3.get_bucket_versioning(Bucket="test-sales-raw")["Status"] == "Enabled"
        pab = s3.get_public_access_block(Bucket="test-sales-processed")
        assert all(pab["PublicAccessBlockConfiguration"].values())
        assert "aws:SecureTransport" in s3.get_bucket_policy(Bucket="test-sales-scripts")["Policy"]
        assert "expire-athena-results" in lifecycle_rules(s3, "test-sales-athena-results")
        assert (
            iam.list_attached_role_policies(RoleName="test-sales-glue-role")["AttachedPolicies"]
            == []
        )
        assert iam.list_role_policies(RoleName="test-sales-glue-role")["PolicyNames"] == [
            "glue-etl-least-privilege"
        ]
        assert infra.up(config, deployed_once, tables=False) == []

    def test_up_recreates_operations_resources_deleted_by_hand(self, deployed_once, config):
        deployed_once.cloudwatch.delete_alarms(AlarmNames=[ALARM])
        deployed_once.events.remove_targets(Rule=RULE, Ids=["alerts-topic"])
        deployed_once.events.delete_rule(Name=RULE)
        deployed_once.glue.delete_trigger(Name=AFTER_CRAWL)
        assert_repaired(
            config,
            deployed_once,
            [
                f"created trigger {AFTER_CRAWL} (CONDITIONAL)",
                f"created rule {RULE}",
                f"set the target of rule {RULE} to topic test-sales-alerts",
                f"created alarm {ALARM}",
            ],
        )


def _foreign_crawler(aws):
    aws.glue.create_crawler(
        Name="test-sales-raw-crawler",
        Role="arn:aws:iam::123456789012:role/team-role",
        DatabaseName="team_db",
        Targets={"S3Targets": [{"Path": "s3://team-data/"}]},
    )
    return lambda: aws.glue.get_crawler(Name="test-sales-raw-crawler")["Crawler"]["Role"]


def _foreign_job(aws):
    aws.glue.create_job(
        Name="test-sales-etl-job",
        Role="arn:aws:iam::123456789012:role/team-role",
        Command={"Name": "glueetl", "ScriptLocation": "s3://team-data/job.py"},
    )
    return lambda: aws.glue.get_job(JobName="test-sales-etl-job")["Job"]["Role"]


def _foreign_workgroup(aws):
    aws.athena.create_work_group(
        Name="test-sales-workgroup",
        Configuration={"ResultConfiguration": {"OutputLocation": "s3://team-data/athena/"}},
    )
    return lambda: aws.athena.get_work_group(WorkGroup="test-sales-workgroup")["WorkGroup"][
        "Configuration"
    ]["ResultConfiguration"]["OutputLocation"]


@pytest.mark.parametrize(
    ("make", "kind", "untouched"),
    [
        (
            _foreign_crawler,
            "glue-crawler test-sales-raw-crawler",
            "arn:aws:iam::123456789012:role/team-role",
        ),
        (_foreign_job, "glue-job test-sales-etl-job", "arn:aws:iam::123456789012:role/team-role"),
        (_foreign_workgroup, "athena-workgroup test-sales-workgroup", "s3://team-data/athena/"),
    ],
    ids=["crawler", "job", "workgroup"],
)
def test_up_refuses_a_foreign_crawler_job_or_workgroup_and_down_keeps_it(
    aws, config, make, kind, untouched
):
    read_back = make(aws)

    with pytest.raises(DeployError) as refused:
        infra.up(config, aws, tables=False)

    assert f"{kind} (it has no tags)" in str(refused.value)
    assert read_back() == untouched
    assert aws.s3.list_buckets()["Buckets"] == []
    infra.down(config, aws)
    assert read_back() == untouched


def test_up_resumes_after_a_failure_part_way(aws, config, monkeypatch):
    def crawler_fails(*args, **kwargs):
        raise RuntimeError("network dropped")

    with monkeypatch.context() as patch, pytest.raises(RuntimeError):
        # `up` walks the registry's kind modules: the crawler kind's ensure.
        patch.setattr(crawler, "ensure", crawler_fails)
        infra.up(config, aws, tables=False)
    # What the interrupted run made already carries the marks, so it is not "foreign".
    assert bucket_tags(aws.s3, "test-sales-processed") == {
        "managed-by": "deploy.py",
        "pipeline-prefix": "test-sales",
    }
    assert aws.glue.list_crawlers()["CrawlerNames"] == []

    changes = infra.up(config, aws, tables=False)

    key_id = aws.kms.describe_key(KeyId="alias/test-sales-alerts")["KeyMetadata"]["KeyId"]
    assert changes == [
        "created crawler test-sales-raw-crawler",
        "created job test-sales-etl-job",
        "created workgroup test-sales-workgroup",
        "created workflow test-sales-workflow",
        "created trigger test-sales-workflow-start (ON_DEMAND)",
        "created trigger test-sales-workflow-after-crawl (CONDITIONAL)",
        f"created KMS key {key_id} (alias alias/test-sales-alerts, rotation on)",
        "created topic test-sales-alerts",
        "created queue test-sales-alerts-dlq",
        "created rule test-sales-failures",
        "set the target of rule test-sales-failures to topic test-sales-alerts",
        "created alarm test-sales-quarantine-rate",
    ]
    assert infra.up(config, aws, tables=False) == []


def test_up_refuses_a_workflow_rule_topic_or_alarm_it_did_not_make(aws, config):
    look_alikes(aws)
    with pytest.raises(DeployError) as error:
        infra.up(config, aws, tables=False)
    message = str(error.value)
    for taken in (
        "glue-workflow test-sales-workflow (it has no tags)",
        "sns-topic test-sales-alerts (it has no tags)",
        "events-rule test-sales-failures (it has no tags)",
        "cloudwatch-alarm test-sales-quarantine-rate (it has no tags)",
    ):
        assert taken in message
    assert aws.s3.list_buckets()["Buckets"] == []  # refused before any change


@pytest.mark.parametrize(("settings", "why"), GOVERNED, ids=GOVERNED_IDS)
def test_up_stops_with_one_line_where_lake_formation_governs_the_catalog(
    aws, config, capsys, settings, why
):
    boto3.client("lakeformation", region_name=REGION).put_data_lake_settings(
        DataLakeSettings=settings
    )

    with pytest.raises(DeployError) as stopped:
        infra.up(config, aws, tables=False)

    message = str(stopped.value)
    assert "\n" not in message
    assert message.startswith(f"Lake Formation governs the Glue Data Catalog in us-east-1 ({why})")
    assert "fail with 'Insufficient Lake Formation permission(s)'" in message
    assert "tick 'Use only IAM access control' for new databases and for new tables" in message
    # Stopped before making anything.
    assert aws.s3.list_buckets()["Buckets"] == []
    assert aws.iam.list_roles()["Roles"] == []
    # The command line: exit 1 and the same line.
    assert deploy.main(["up", "--prefix", "test-sales"]) == 1
    assert why in capsys.readouterr().err


@pytest.mark.parametrize(("settings", "why"), GOVERNED, ids=GOVERNED_IDS)
def test_the_run_readiness_check_stops_where_lake_formation_governs_the_catalog(
    deployed, config, settings, why
):
    target = AwsTarget(config, clients=deployed, poll_seconds=0, sleep=lambda _: None)
    target.check_ready()  # deployed under IAM access control: ready
    boto3.client("lakeformation", region_name=REGION).put_data_lake_settings(
        DataLakeSettings=settings
    )

    with pytest.raises(DeployError, match=r"^Lake Formation governs") as stopped:
        target.check_ready()
    assert f"({why})" in str(stopped.value)


def test_moto_starts_with_iam_access_control_only(aws):
    # What the "default" case below runs against: an account as Lake Formation leaves it.
    settings = boto3.client("lakeformation", region_name=REGION).get_data_lake_settings()
    assert settings["DataLakeSettings"]["CreateDatabaseDefaultPermissions"] == IAM_ONLY
    assert settings["DataLakeSettings"]["CreateTableDefaultPermissions"] == IAM_ONLY
    assert settings["DataLakeSettings"]["DataLakeAdmins"] == []


@pytest.mark.parametrize(
    "settings",
    [
        None,
        _lake_settings(ADMINS, IAM_ONLY, IAM_ONLY),
        # Empty defaults without an administrator: not governed by the rule up follows.
        _lake_settings([], [], []),
    ],
    ids=["default", "admins-but-iam-defaults", "no-admins-no-defaults"],
)
def test_up_and_run_go_ahead_where_the_catalog_uses_iam_access_control(aws, config, settings):
    if settings is not None:
        boto3.client("lakeformation", region_name=REGION).put_data_lake_settings(
            DataLakeSettings=settings
        )

    changes = infra.up(config, aws, tables=False)

    assert "created crawler test-sales-raw-crawler" in changes
    AwsTarget(config, clients=aws, poll_seconds=0, sleep=lambda _: None).check_ready()


class _DeniedLakeFormation:
    def get_data_lake_settings(self, **kwargs):
        raise ClientError(
            {"Error": {"Code": "AccessDeniedException", "Message": "no lakeformation rights"}},
            "GetDataLakeSettings",
        )


def test_up_warns_and_goes_ahead_when_it_cannot_read_the_lake_formation_settings(
    aws, config, caplog
):
    caplog.set_level("WARNING", logger="pipeline.infra")

    changes = infra.up(
        config, with_clients(aws, lakeformation=_DeniedLakeFormation()), tables=False
    )

    assert "created crawler test-sales-raw-crawler" in changes
    assert "could not read the Lake Formation settings (AccessDeniedException)" in "\n".join(
        caplog.messages
    )
