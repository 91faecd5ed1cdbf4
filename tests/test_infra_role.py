"""The Glue role: its trust and inline policy, what it may do in S3, its drift, ownership, and the wait for IAM to propagate it (against moto)."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError
from moto_fixtures import (
    ACCOUNT,
    BUCKETS,
    MARKS,
    REGION,
    ROLE_ARN,
    GlueDouble,
    assert_repaired,
    with_clients,
)
from parliament import analyze_policy_string

import deploy
from pipeline import infra
from pipeline.config import JOB_SCRIPT
from pipeline.infra.shared import role_name
from pipeline.package import job_package_zip
from pipeline.targets.aws import AwsTarget

EC2_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
TEAM_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::team-data/*"}
    ],
}
SALES_KEY = "input/sales_data_csv/sales_data.csv"
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
# What Glue answers while a role made seconds ago is not usable yet.
NOT_PROPAGATED = {
    "Error": {
        "Code": "InvalidInputException",
        "Message": f"Role {ROLE_ARN} should be given assume role permissions for Glue Service.",
    }
}
# The caller's own missing right: its ARN says "assumed-role", but waiting cannot help.
NOT_AUTHORIZED = {
    "Error": {
        "Code": "AccessDeniedException",
        "Message": f"User: arn:aws:sts::{ACCOUNT}:assumed-role/dev/me is not authorized to "
        f"perform: glue:CreateJob on resource: arn:aws:glue:us-east-1:{ACCOUNT}:job/test-sales-etl-job",
    }
}


def _role_policy(iam):
    return iam.get_role_policy(
        RoleName="test-sales-glue-role", PolicyName="glue-etl-least-privilege"
    )["PolicyDocument"]


def _findings_above_low(policy: dict) -> list[tuple[str, str]]:
    result = analyze_policy_string(json.dumps(policy), include_community_auditors=True)
    return [(f.issue, f.severity) for f in result.findings if f.severity not in ("LOW", "INFO")]


def test_parliament_audit_flags_a_wide_open_policy():
    # Control: the audit above is live, it does flag what a least-privilege policy avoids.
    wide = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "*"},
            {"Effect": "Allow", "Action": "glue:GetTable", "Resource": "arn:aws:s3:::bucket"},
        ],
    }
    assert _findings_above_low(wide) != []


def _denied(call) -> bool:
    try:
        call()
    except ClientError as exc:
        return exc.response["Error"]["Code"] in ("AccessDenied", "403")
    return False


class TestOneDeployment:
    """One `up` for these tests: they read the role, act as it (and delete what they
    write), or change its trust policy by hand and check that the next `up` puts it back."""

    def test_glue_role_trusts_only_the_glue_service(self, deployed_once):
        role = deployed_once.iam.get_role(RoleName="test-sales-glue-role")["Role"]
        assert role["AssumeRolePolicyDocument"] == {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "glue.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        assert (
            deployed_once.iam.list_attached_role_policies(RoleName="test-sales-glue-role")[
                "AttachedPolicies"
            ]
            == []
        )
        assert deployed_once.iam.list_role_policies(RoleName="test-sales-glue-role")[
            "PolicyNames"
        ] == ["glue-etl-least-privilege"]

    def test_glue_role_policy_names_every_resource_and_no_wildcard_action(self, deployed_once):
        statements = {s["Sid"]: s for s in _role_policy(deployed_once.iam)["Statement"]}
        for statement in statements.values():
            actions = statement["Action"]
            assert "*" not in actions and "s3:*" not in actions
            assert all(not a.endswith(":*") for a in actions)
            if statement["Sid"] not in ("GlueJobMetrics", "PipelineRunMetrics"):
                assert "*" not in statement["Resource"]
        # PutMetricData has no resource ARN: '*' only with a namespace condition: Glue's own
        # job metrics, and the job's run metrics in the pipeline's namespace.
        assert statements["GlueJobMetrics"]["Action"] == ["cloudwatch:PutMetricData"]
        assert statements["GlueJobMetrics"]["Condition"] == {
            "StringEquals": {"cloudwatch:namespace": "Glue"}
        }
        assert statements["PipelineRunMetrics"] == {
            "Sid": "PipelineRunMetrics",
            "Effect": "Allow",
            "Action": ["cloudwatch:PutMetricData"],
            "Resource": ["*"],
            "Condition": {"StringEquals": {"cloudwatch:namespace": "SalesPipeline"}},
        }

        assert statements["ReadRawInput"]["Resource"] == [
            "arn:aws:s3:::test-sales-raw/input/sales_data_csv*",
            "arn:aws:s3:::test-sales-raw/input/customer_demographics_json*",
        ]
        assert statements["ReadJobScript"]["Resource"] == [
            "arn:aws:s3:::test-sales-scripts/scripts/glue_etl_job.py",
            "arn:aws:s3:::test-sales-scripts/scripts/sales_etl.zip",
        ]
        write = statements["WriteProcessedOutput"]
        assert write["Action"] == ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
        assert write["Resource"] == [
            "arn:aws:s3:::test-sales-processed/enriched*",
            "arn:aws:s3:::test-sales-processed/sales_summary*",
            "arn:aws:s3:::test-sales-processed/quarantine*",
            "arn:aws:s3:::test-sales-processed/superseded*",
            "arn:aws:s3:::test-sales-processed/_runs*",
            "arn:aws:s3:::test-sales-processed/_state*",
        ]
        # Listing is not narrowed by s3:prefix: Glue lists and HeadBuckets the bucket roots.
        assert statements["ListPipelineBuckets"] == {
            "Sid": "ListPipelineBuckets",
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
            "Resource": [
                "arn:aws:s3:::test-sales-raw",
                "arn:aws:s3:::test-sales-processed",
                "arn:aws:s3:::test-sales-scripts",
            ],
        }
        # The crawler's two raw tables only: not every table of the database.
        assert statements["CrawlerRawTables"]["Resource"] == [
            f"arn:aws:glue:us-east-1:{ACCOUNT}:catalog",
            f"arn:aws:glue:us-east-1:{ACCOUNT}:database/sales_analytics_db_test_sales",
            f"arn:aws:glue:us-east-1:{ACCOUNT}:table/sales_analytics_db_test_sales/sales_data_csv",
            f"arn:aws:glue:us-east-1:{ACCOUNT}:table/sales_analytics_db_test_sales/customer_demographics_json",
        ]
        assert statements["CrawlerRawTables"]["Action"] == [
            "glue:GetDatabase",
            "glue:GetTable",
            "glue:GetTables",
            "glue:CreateTable",
            "glue:UpdateTable",
            "glue:GetPartition",
            "glue:GetPartitions",
            "glue:BatchGetPartition",
            "glue:CreatePartition",
            "glue:BatchCreatePartition",
            "glue:UpdatePartition",
            "glue:BatchUpdatePartition",
        ]
        assert not any("glue:Delete" in a for s in statements.values() for a in s["Action"])
        assert statements["GlueLogs"]["Resource"] == [
            f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/aws-glue/*",
            f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/aws-glue/*:log-stream:*",
        ]

    def test_parliament_finds_nothing_above_low_in_the_deployed_policies(self, deployed_once):
        assert _findings_above_low(_role_policy(deployed_once.iam)) == []
        for bucket in BUCKETS:
            assert (
                _findings_above_low(
                    json.loads(deployed_once.s3.get_bucket_policy(Bucket=bucket)["Policy"])
                )
                == []
            )

    @pytest.fixture(scope="class")
    def glue_role_s3(self, deployed_once):
        """Seed input and another bucket as the admin, then assume the Glue role (each test turns IAM
        enforcement on: ``iam_enforced``). An S3 client holding the role's credentials."""
        s3 = deployed_once.s3
        s3.put_object(Bucket="test-sales-raw", Key=SALES_KEY, Body=b"transaction_id\nT1\n")
        s3.create_bucket(Bucket="someone-elses-data")
        s3.put_object(Bucket="someone-elses-data", Key="secret.csv", Body=b"x")
        role_arn = deployed_once.iam.get_role(RoleName="test-sales-glue-role")["Role"]["Arn"]
        creds = deployed_once.sts.assume_role(RoleArn=role_arn, RoleSessionName="glue-job")
        return boto3.client(
            "s3",
            region_name=REGION,
            aws_access_key_id=creds["Credentials"]["AccessKeyId"],
            aws_secret_access_key=creds["Credentials"]["SecretAccessKey"],
            aws_session_token=creds["Credentials"]["SessionToken"],
        )

    def test_glue_role_reads_raw_input_the_script_and_its_package(self, glue_role_s3, iam_enforced):
        body = glue_role_s3.get_object(Bucket="test-sales-raw", Key=SALES_KEY)["Body"].read()
        assert body == b"transaction_id\nT1\n"
        script = glue_role_s3.get_object(Bucket="test-sales-scripts", Key="scripts/glue_etl_job.py")
        assert script["Body"].read() == JOB_SCRIPT.read_bytes()  # what up uploaded
        package = glue_role_s3.get_object(Bucket="test-sales-scripts", Key="scripts/sales_etl.zip")
        assert package["Body"].read() == job_package_zip()

    def test_glue_role_writes_reads_back_and_overwrites_the_processed_prefixes(
        self, glue_role_s3, iam_enforced
    ):
        written = (
            "enriched/year=2024/month=1/part-0.parquet",
            "sales_summary/year=2024/month=1/part-0.parquet",
            "quarantine/run-1/rows.json",
            "superseded/run_date=2026-12-07/run-1.parquet",
            "_runs/run-1.json",
            "_state/manifest.json",
            "_state/staging/run-1/enriched/year=2024/month=1/part-0.parquet",
        )
        for key in written:
            glue_role_s3.put_object(Bucket="test-sales-processed", Key=key, Body=b"data")
            body = glue_role_s3.get_object(Bucket="test-sales-processed", Key=key)["Body"]
            assert body.read() == b"data"
        # Spark's S3 filesystems may write a folder marker next to the output folder.
        glue_role_s3.put_object(Bucket="test-sales-processed", Key="enriched_$folder$", Body=b"")
        # A daily run deletes the files it rewrote: here every one, which leaves the
        # bucket empty, as up made it, for the class's other tests.
        for key in (*written, "enriched_$folder$"):
            glue_role_s3.delete_object(Bucket="test-sales-processed", Key=key)
        assert glue_role_s3.list_objects_v2(Bucket="test-sales-processed")["KeyCount"] == 0

    def test_glue_role_cannot_write_raw_or_outside_the_processed_prefixes(
        self, glue_role_s3, iam_enforced
    ):
        assert _denied(
            lambda: glue_role_s3.put_object(
                Bucket="test-sales-raw", Key=SALES_KEY, Body=b"tampered"
            )
        )
        assert _denied(lambda: glue_role_s3.delete_object(Bucket="test-sales-raw", Key=SALES_KEY))
        assert _denied(
            lambda: glue_role_s3.put_object(
                Bucket="test-sales-processed", Key="elsewhere/x", Body=b"x"
            )
        )
        assert _denied(
            lambda: glue_role_s3.put_object(
                Bucket="test-sales-scripts", Key="scripts/glue_etl_job.py", Body=b"evil"
            )
        )

    def test_glue_role_cannot_read_another_bucket(self, glue_role_s3, iam_enforced):
        assert _denied(
            lambda: glue_role_s3.get_object(Bucket="someone-elses-data", Key="secret.csv")
        )
        assert _denied(lambda: glue_role_s3.list_objects_v2(Bucket="someone-elses-data"))

    def test_glue_role_cannot_delete_or_create_a_bucket(self, glue_role_s3, iam_enforced):
        assert _denied(lambda: glue_role_s3.delete_bucket(Bucket="test-sales-processed"))
        assert _denied(lambda: glue_role_s3.delete_bucket(Bucket="someone-elses-data"))
        assert _denied(lambda: glue_role_s3.create_bucket(Bucket="new-bucket-by-the-job"))

    def test_glue_role_lists_its_three_buckets_and_no_other(self, glue_role_s3, iam_enforced):
        listed = glue_role_s3.list_objects_v2(
            Bucket="test-sales-raw", Prefix="input/sales_data_csv/"
        )
        assert [o["Key"] for o in listed["Contents"]] == [SALES_KEY]
        # Without a prefix too: Glue's S3 clients list the bucket roots.
        listed = glue_role_s3.list_objects_v2(Bucket="test-sales-scripts")
        assert [o["Key"] for o in listed["Contents"]] == [
            "scripts/glue_etl_job.py",
            "scripts/sales_etl.zip",
        ]
        assert glue_role_s3.list_objects_v2(Bucket="test-sales-processed")["KeyCount"] == 0
        # The Athena results bucket is not the job's: no listing there.
        assert _denied(lambda: glue_role_s3.list_objects_v2(Bucket="test-sales-athena-results"))

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
    def test_up_puts_back_the_role_trust_policy_changed_by_hand(
        self, deployed_once, moto_updates, config, trust
    ):
        iam = deployed_once.iam
        iam.update_assume_role_policy(
            RoleName="test-sales-glue-role", PolicyDocument=json.dumps(trust)
        )
        assert iam.get_role(RoleName="test-sales-glue-role")["Role"][
            "AssumeRolePolicyDocument"
        ] == (trust)

        assert_repaired(config, deployed_once, ["restored trust policy of test-sales-glue-role"])

        role = iam.get_role(RoleName="test-sales-glue-role")["Role"]
        assert role["AssumeRolePolicyDocument"] == GLUE_TRUST
        assert {t["Key"]: t["Value"] for t in role["Tags"]} == MARKS


def test_up_refuses_a_foreign_role_with_our_name_and_down_keeps_it(aws, capsys):
    iam = aws.iam
    iam.create_role(
        RoleName="test-sales-glue-role",
        AssumeRolePolicyDocument=json.dumps(EC2_TRUST),
        Tags=[{"Key": "team", "Value": "finance"}],
    )
    iam.put_role_policy(
        RoleName="test-sales-glue-role",
        PolicyName="team-policy",
        PolicyDocument=json.dumps(TEAM_POLICY),
    )
    iam.create_policy(PolicyName="team-managed", PolicyDocument=json.dumps(TEAM_POLICY))
    iam.attach_role_policy(
        RoleName="test-sales-glue-role", PolicyArn="arn:aws:iam::123456789012:policy/team-managed"
    )

    assert deploy.main(["up", "--prefix", "test-sales"]) == 1
    err = capsys.readouterr().err
    assert "iam-role test-sales-glue-role (not tagged managed-by=deploy.py" in err
    assert "choose another --prefix" in err

    def role_as_found():
        role = iam.get_role(RoleName="test-sales-glue-role")["Role"]
        return {
            "trust": role["AssumeRolePolicyDocument"],
            "tags": {t["Key"]: t["Value"] for t in role.get("Tags", [])},
            "inline": iam.list_role_policies(RoleName="test-sales-glue-role")["PolicyNames"],
            "attached": [
                a["PolicyArn"]
                for a in iam.list_attached_role_policies(RoleName="test-sales-glue-role")[
                    "AttachedPolicies"
                ]
            ],
        }

    expected = {
        "trust": EC2_TRUST,
        "tags": {"team": "finance"},
        "inline": ["team-policy"],
        "attached": ["arn:aws:iam::123456789012:policy/team-managed"],
    }
    assert role_as_found() == expected
    assert aws.s3.list_buckets()["Buckets"] == []

    assert deploy.main(["down", "--yes", "--prefix", "test-sales"]) == 0
    assert role_as_found() == expected
    assert (
        iam.get_role_policy(RoleName="test-sales-glue-role", PolicyName="team-policy")[
            "PolicyDocument"
        ]
        == TEAM_POLICY
    )


def test_role_name_accepts_an_arn_a_path_or_a_name():
    assert role_name(ROLE_ARN) == "test-sales-glue-role"
    assert role_name(f"arn:aws:iam::{ACCOUNT}:role/service-role/x-role") == "x-role"
    assert role_name("service-role/x-role") == "x-role"
    assert role_name("test-sales-glue-role") == "test-sales-glue-role"


def _up(config, clients, sleep):
    infra.up(config, clients, tables=False, sleep=sleep)


def _crawl(config, clients, sleep):
    AwsTarget(config, clients=clients, poll_seconds=0, sleep=sleep).crawl()


def _run_job(config, clients, sleep):
    AwsTarget(config, clients=clients, poll_seconds=0, sleep=sleep).run_job("r1")


def _nothing(aws, config):
    pass


def _deploy(aws, config):
    infra.up(config, aws, tables=False)


def _drifted_crawler(aws, config):
    # Ours (tagged), but with another description and one target: up updates it.
    aws.glue.create_crawler(
        Name="test-sales-raw-crawler",
        Role=ROLE_ARN,
        DatabaseName="sales_analytics_db_test_sales",
        Description="edited by hand",
        Targets={"S3Targets": [{"Path": "s3://test-sales-raw/input/sales_data_csv/"}]},
        Tags=MARKS,
    )


def _drifted_job(aws, config):
    aws.glue.create_job(
        Name="test-sales-etl-job",
        Role=ROLE_ARN,
        Command={"Name": "glueetl", "ScriptLocation": "s3://elsewhere/job.py"},
        Tags=MARKS,
    )


def _crawlers(glue, sent):
    return glue.list_crawlers()["CrawlerNames"]


def _jobs(glue, sent):
    return glue.list_jobs()["JobNames"]


def _sent_crawler(glue, sent):
    return sent[-1]["Description"], sent[-1]["Role"], len(sent[-1]["Targets"]["S3Targets"])


def _sent_job(glue, sent):
    return sent[-1]["JobName"], sent[-1]["JobUpdate"]["Command"]["ScriptLocation"]


def _crawls(glue, sent):
    return [c["State"] for c in glue.list_crawls(CrawlerName="test-sales-raw-crawler")["Crawls"]]


def _job_runs(glue, sent):
    return [r["JobRunState"] for r in glue.get_job_runs(JobName="test-sales-etl-job")["JobRuns"]]


@pytest.mark.parametrize(
    ("method", "before", "drive", "read_back", "expected"),
    [
        ("create_crawler", _nothing, _up, _crawlers, ["test-sales-raw-crawler"]),
        ("create_job", _nothing, _up, _jobs, ["test-sales-etl-job"]),
        (
            "update_crawler",
            _drifted_crawler,
            _up,
            _sent_crawler,
            ("Catalogs the raw sales CSV and customers NDJSON", ROLE_ARN, 2),
        ),
        (
            "update_job",
            _drifted_job,
            _up,
            _sent_job,
            ("test-sales-etl-job", "s3://test-sales-scripts/scripts/glue_etl_job.py"),
        ),
        ("start_crawler", _deploy, _crawl, _crawls, ["COMPLETED"]),
        ("start_job_run", _deploy, _run_job, _job_runs, ["SUCCEEDED"]),
    ],
)
def test_a_call_that_meets_an_unpropagated_role_is_retried_with_back_off(
    aws, config, method, before, drive, read_back, expected
):
    before(aws, config)
    glue = GlueDouble(aws.glue, method, failures=2, error=NOT_PROPAGATED)
    sleeps = []

    drive(config, with_clients(aws, glue=glue), sleeps.append)

    assert len(glue.sent) == 3
    assert sleeps == [2.0, 4.0]
    assert read_back(aws.glue, glue.sent) == expected


@pytest.mark.parametrize(
    ("method", "before", "drive"),
    [
        ("create_job", _nothing, _up),
        ("update_crawler", _drifted_crawler, _up),
        ("start_crawler", _deploy, _crawl),
        ("start_job_run", _deploy, _run_job),
    ],
)
def test_a_role_that_never_propagates_fails_after_six_attempts(aws, config, method, before, drive):
    before(aws, config)
    glue = GlueDouble(aws.glue, method, failures=100, error=NOT_PROPAGATED)
    sleeps = []

    with pytest.raises(ClientError) as failed:
        drive(config, with_clients(aws, glue=glue), sleeps.append)

    assert failed.value.response["Error"]["Code"] == "InvalidInputException"
    assert len(glue.sent) == 6
    assert sleeps == [2.0, 4.0, 8.0, 16.0, 32.0]


def test_a_missing_right_of_the_caller_is_not_waited_for(aws, config):
    glue = GlueDouble(aws.glue, "create_job", failures=1, error=NOT_AUTHORIZED)
    sleeps = []

    with pytest.raises(ClientError) as failed:
        infra.up(config, with_clients(aws, glue=glue), tables=False, sleep=sleeps.append)

    assert failed.value.response["Error"]["Code"] == "AccessDeniedException"
    assert (len(glue.sent), sleeps) == (1, [])
