"""deploy.py / pipeline.infra against moto: every setting read back with boto3.

Expected values are written out literally (prefix ``test-sales``), not recomputed
from the code under test.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from botocore.exceptions import ClientError
from parliament import analyze_policy_string

import deploy
from pipeline import infra
from pipeline.config import PipelineConfig
from pipeline.errors import DeployError, JobRunFailed, StageFailed
from pipeline.infra import crawler
from pipeline.runner import RunOptions, run
from pipeline.targets.aws import AwsTarget

BUCKETS = (
    "test-sales-raw",
    "test-sales-processed",
    "test-sales-scripts",
    "test-sales-athena-results",
)
ACCOUNT = "123456789012"  # moto's default account


def _lifecycle(s3, bucket):
    return {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}


# ----------------------------------------------------------------------- buckets


@pytest.mark.parametrize("bucket", BUCKETS)
def test_every_bucket_blocks_public_access_encrypts_and_denies_plain_http(deployed, bucket):
    s3 = deployed.s3
    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"

    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    [statement] = policy["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    assert statement["Action"] == "s3:*"
    assert sorted(statement["Resource"]) == [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}

    rules = _lifecycle(s3, bucket)
    assert rules["abort-incomplete-multipart-uploads"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 1
    }
    tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
    assert tags == {"managed-by": "deploy.py", "pipeline-prefix": "test-sales"}


def test_raw_bucket_is_versioned_and_the_others_are_not(deployed):
    status = {b: deployed.s3.get_bucket_versioning(Bucket=b).get("Status") for b in BUCKETS}
    assert status == {
        "test-sales-raw": "Enabled",
        "test-sales-processed": None,
        "test-sales-scripts": None,
        "test-sales-athena-results": None,
    }
    rule = _lifecycle(deployed.s3, "test-sales-raw")["expire-noncurrent-raw-versions"]
    assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30


def test_athena_results_expire_after_a_week(deployed):
    rule = _lifecycle(deployed.s3, "test-sales-athena-results")["expire-athena-results"]
    assert rule["Status"] == "Enabled"
    assert rule["Filter"] == {"Prefix": "results/"}
    assert rule["Expiration"] == {"Days": 7}


def test_objects_are_stored_encrypted_over_tls(deployed):
    deployed.s3.put_object(Bucket="test-sales-raw", Key="input/x.csv", Body=b"a,b\n")
    head = deployed.s3.head_object(Bucket="test-sales-raw", Key="input/x.csv")
    assert head["ServerSideEncryption"] == "AES256"


def test_tls_fixture_still_enforces_every_other_deny(deployed):
    # The fixture only neutralises the insecure-transport deny; a plain Deny still bites.
    deny_all = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::test-sales-scripts/*",
            }
        ],
    }
    deployed.s3.put_object(Bucket="test-sales-scripts", Key="k", Body=b"x")
    deployed.s3.put_bucket_policy(Bucket="test-sales-scripts", Policy=json.dumps(deny_all))
    with pytest.raises(ClientError) as denied:
        deployed.s3.get_object(Bucket="test-sales-scripts", Key="k")
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


# --------------------------------------------------------------------------- IAM


def test_glue_role_trusts_only_the_glue_service(deployed):
    role = deployed.iam.get_role(RoleName="test-sales-glue-role")["Role"]
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
        deployed.iam.list_attached_role_policies(RoleName="test-sales-glue-role")[
            "AttachedPolicies"
        ]
        == []
    )
    assert deployed.iam.list_role_policies(RoleName="test-sales-glue-role")["PolicyNames"] == [
        "glue-etl-least-privilege"
    ]


def _role_policy(iam):
    return iam.get_role_policy(
        RoleName="test-sales-glue-role", PolicyName="glue-etl-least-privilege"
    )["PolicyDocument"]


def test_glue_role_policy_names_every_resource_and_no_wildcard_action(deployed):
    statements = {s["Sid"]: s for s in _role_policy(deployed.iam)["Statement"]}
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
        "arn:aws:s3:::test-sales-scripts/scripts/glue_etl_job.py"
    ]
    write = statements["WriteProcessedOutput"]
    assert write["Action"] == ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    assert write["Resource"] == [
        "arn:aws:s3:::test-sales-processed/enriched*",
        "arn:aws:s3:::test-sales-processed/sales_summary*",
        "arn:aws:s3:::test-sales-processed/quarantine*",
        "arn:aws:s3:::test-sales-processed/_runs*",
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
    # The crawler's two raw tables only: not every table of the shared database.
    assert statements["CrawlerRawTables"]["Resource"] == [
        f"arn:aws:glue:us-east-1:{ACCOUNT}:catalog",
        f"arn:aws:glue:us-east-1:{ACCOUNT}:database/sales_analytics_db",
        f"arn:aws:glue:us-east-1:{ACCOUNT}:table/sales_analytics_db/sales_data_csv",
        f"arn:aws:glue:us-east-1:{ACCOUNT}:table/sales_analytics_db/customer_demographics_json",
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


def _findings_above_low(policy: dict) -> list[tuple[str, str]]:
    result = analyze_policy_string(json.dumps(policy), include_community_auditors=True)
    return [(f.issue, f.severity) for f in result.findings if f.severity not in ("LOW", "INFO")]


def test_parliament_finds_nothing_above_low_in_the_deployed_policies(deployed):
    assert _findings_above_low(_role_policy(deployed.iam)) == []
    for bucket in BUCKETS:
        assert (
            _findings_above_low(json.loads(deployed.s3.get_bucket_policy(Bucket=bucket)["Policy"]))
            == []
        )


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


# ------------------------------------------------------------------- Glue, Athena


def test_glue_database_crawler_and_job_are_configured(deployed):
    glue = deployed.glue
    db = glue.get_database(Name="sales_analytics_db")["Database"]
    assert db["Parameters"] == {"pipeline-prefix": "test-sales", "managed-by": "deploy.py"}

    crawler = glue.get_crawler(Name="test-sales-raw-crawler")["Crawler"]
    assert crawler["Role"] == f"arn:aws:iam::{ACCOUNT}:role/test-sales-glue-role"
    assert crawler["DatabaseName"] == "sales_analytics_db"
    assert crawler["Targets"]["S3Targets"] == [
        {"Path": "s3://test-sales-raw/input/sales_data_csv/"},
        {"Path": "s3://test-sales-raw/input/customer_demographics_json/"},
    ]
    assert crawler["SchemaChangePolicy"] == {
        "UpdateBehavior": "UPDATE_IN_DATABASE",
        "DeleteBehavior": "DEPRECATE_IN_DATABASE",
    }

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
        "--job-language": "python",
        "--enable-metrics": "true",
        "--enable-continuous-cloudwatch-log": "true",
        "--metrics_namespace": "SalesPipeline",
        "--pipeline_prefix": "test-sales",
    }


def test_athena_workgroup_enforces_encrypted_results_and_a_scan_cutoff(deployed):
    wg = deployed.athena.get_work_group(WorkGroup="test-sales-workgroup")["WorkGroup"]
    conf = wg["Configuration"]
    assert wg["State"] == "ENABLED"
    assert conf["EnforceWorkGroupConfiguration"] is True
    assert conf["ResultConfiguration"] == {
        "OutputLocation": "s3://test-sales-athena-results/results/",
        "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"},
    }
    assert conf["BytesScannedCutoffPerQuery"] == 1024**3


# -------------------------------------------------------------- idempotence, drift


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


def test_deploy_twice_is_idempotent(deployed, config):
    before = _inventory(deployed)
    assert infra.up(config, deployed, tables=False) == []
    assert _inventory(deployed) == before
    assert before["buckets"] == sorted(BUCKETS)
    assert before["jobs"] == ["test-sales-etl-job"]


def test_up_puts_drifted_settings_back(deployed, config):
    s3, iam = deployed.s3, deployed.iam
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

    changes = infra.up(config, deployed, tables=False)

    assert len(changes) == 6
    assert s3.get_bucket_versioning(Bucket="test-sales-raw")["Status"] == "Enabled"
    pab = s3.get_public_access_block(Bucket="test-sales-processed")
    assert all(pab["PublicAccessBlockConfiguration"].values())
    assert "aws:SecureTransport" in s3.get_bucket_policy(Bucket="test-sales-scripts")["Policy"]
    assert "expire-athena-results" in _lifecycle(s3, "test-sales-athena-results")
    assert (
        iam.list_attached_role_policies(RoleName="test-sales-glue-role")["AttachedPolicies"] == []
    )
    assert iam.list_role_policies(RoleName="test-sales-glue-role")["PolicyNames"] == [
        "glue-etl-least-privilege"
    ]
    assert infra.up(config, deployed, tables=False) == []


def test_up_outside_us_east_1_sets_the_location_constraint(aws):
    from pipeline.config import PipelineConfig

    eu = PipelineConfig(prefix="eu-sales", target="aws", region="eu-west-1")
    infra.up(eu, tables=False)
    assert aws.s3.get_bucket_location(Bucket="eu-sales-raw")["LocationConstraint"] == "eu-west-1"


# ------------------------------------------------------------------------- down


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


def test_down_keeps_a_same_named_bucket_that_up_did_not_make(aws, config):
    aws.s3.create_bucket(Bucket="test-sales-raw")
    aws.s3.put_object(Bucket="test-sales-raw", Key="precious.csv", Body=b"x")
    assert infra.down(config, aws) == []
    assert aws.s3.get_object(Bucket="test-sales-raw", Key="precious.csv")["Body"].read() == b"x"


# ------------------------------------------------- ownership: never adopt, never delete

# The raw bucket's name as deploy.py names it: prefix, moto's account, region.
CLI_RAW = "test-sales-123456789012-us-east-1-raw"

# What a team made by hand before anyone ran deploy.py with prefix test-sales.
FOREIGN_BUCKET_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "TeamReads",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{CLI_RAW}/*",
        }
    ],
}


def _objects(s3, bucket):
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def _bucket_tags(s3, bucket):
    try:
        return {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchTagSet"
        return {}


def _has_public_access_block(s3, bucket):
    try:
        s3.get_public_access_block(Bucket=bucket)
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchPublicAccessBlockConfiguration"
        return False
    return True


@pytest.mark.parametrize(
    "foreign_tags",
    [
        {},
        {"team": "finance"},
        {"managed-by": "deploy.py", "pipeline-prefix": "other-sales"},
    ],
    ids=["untagged", "someone-elses-tags", "another-prefix"],
)
def test_up_refuses_a_foreign_bucket_with_our_name_and_down_keeps_it(aws, capsys, foreign_tags):
    s3 = aws.s3
    s3.create_bucket(Bucket=CLI_RAW)
    s3.put_object(Bucket=CLI_RAW, Key="precious.csv", Body=b"id\n1\n")
    s3.put_bucket_policy(Bucket=CLI_RAW, Policy=json.dumps(FOREIGN_BUCKET_POLICY))
    if foreign_tags:
        s3.put_bucket_tagging(
            Bucket=CLI_RAW,
            Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in foreign_tags.items()]},
        )

    assert deploy.main(["up", "--prefix", "test-sales"]) == 1
    err = capsys.readouterr().err
    assert f"s3-bucket {CLI_RAW}" in err
    assert "choose another --prefix" in err

    # Untouched: same policy, tags and objects; none of up's settings were applied.
    assert json.loads(s3.get_bucket_policy(Bucket=CLI_RAW)["Policy"]) == (FOREIGN_BUCKET_POLICY)
    assert _bucket_tags(s3, CLI_RAW) == foreign_tags
    assert _objects(s3, CLI_RAW) == {"precious.csv": b"id\n1\n"}
    assert s3.get_bucket_versioning(Bucket=CLI_RAW).get("Status") is None
    assert _has_public_access_block(s3, CLI_RAW) is False
    # up refused before creating anything else.
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [CLI_RAW]
    assert aws.iam.list_roles()["Roles"] == []

    assert deploy.main(["down", "--yes", "--prefix", "test-sales"]) == 0
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [CLI_RAW]
    assert _objects(s3, CLI_RAW) == {"precious.csv": b"id\n1\n"}
    assert _bucket_tags(s3, CLI_RAW) == foreign_tags


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
    assert _bucket_tags(aws.s3, "test-sales-processed") == {
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
        "created rule test-sales-failures",
        "set the target of rule test-sales-failures to topic test-sales-alerts",
        "created alarm test-sales-quarantine-rate",
    ]
    assert infra.up(config, aws, tables=False) == []


def test_a_bucket_left_untagged_by_a_crash_is_refused_with_a_hint(aws, config, monkeypatch):
    # A crash between CreateBucket and PutBucketTagging: the documented edge case.
    def crash(**kwargs):
        raise RuntimeError("killed")

    with monkeypatch.context() as patch, pytest.raises(RuntimeError):
        patch.setattr(aws.s3, "put_bucket_tagging", crash)
        infra.up(config, aws, tables=False)

    with pytest.raises(DeployError) as refused:
        infra.up(config, aws, tables=False)

    message = str(refused.value)
    assert "s3-bucket test-sales-raw (it has no tags)" in message
    assert "interrupted `up`" in message and "delete it yourself" in message
    assert infra.down(config, aws) == []
    assert [b["Name"] for b in aws.s3.list_buckets()["Buckets"]] == ["test-sales-raw"]


# ------------------------------------- the shared database and the tables' locations

OTHER_DB_PARAMETERS = {"pipeline-prefix": "other-sales", "managed-by": "deploy.py"}


def test_up_refuses_a_database_that_another_prefix_deployed(aws, config):
    other = PipelineConfig(prefix="other-sales", target="aws", region="us-east-1")
    infra.up(other, aws, tables=False)

    with pytest.raises(DeployError) as refused:
        infra.up(config, aws, tables=False)

    message = str(refused.value)
    assert (
        "glue-database sales_analytics_db (its pipeline-prefix parameter says it belongs to prefix 'other-sales')"
        in message
    )
    assert "run `deploy.py down --prefix other-sales`" in message
    db = aws.glue.get_database(Name="sales_analytics_db")["Database"]
    assert db["Parameters"] == OTHER_DB_PARAMETERS
    assert sorted(b["Name"] for b in aws.s3.list_buckets()["Buckets"]) == [
        "other-sales-athena-results",
        "other-sales-processed",
        "other-sales-raw",
        "other-sales-scripts",
    ]


@pytest.mark.parametrize("parameters", [{"pipeline-prefix": "other"}, {"team": "finance"}])
def test_down_keeps_a_database_that_up_did_not_make(aws, config, parameters):
    aws.glue.create_database(DatabaseInput={"Name": "sales_analytics_db", "Parameters": parameters})
    with pytest.raises(DeployError):
        infra.up(config, aws, tables=False)
    infra.down(config, aws)
    assert aws.glue.get_database(Name="sales_analytics_db")["Database"]["Parameters"] == parameters


def test_run_stops_before_uploading_when_the_database_belongs_to_another_prefix(
    deployed, config, tmp_path
):
    # As if other-sales had re-created the shared database after ours was deployed.
    deployed.glue.update_database(
        Name="sales_analytics_db",
        DatabaseInput={"Name": "sales_analytics_db", "Parameters": OTHER_DB_PARAMETERS},
    )
    sales, customers = tmp_path / "s.csv", tmp_path / "c.json"
    sales.write_text("transaction_id\nT1\n")
    customers.write_text("{}\n")

    with pytest.raises(StageFailed) as refused:
        run_on_aws(config, deployed, sales, customers)

    assert refused.value.stage == "upload"
    assert isinstance(refused.value.__cause__, DeployError)
    assert "belongs to prefix 'other-sales'" in str(refused.value.__cause__)
    assert deployed.s3.list_objects_v2(Bucket="test-sales-raw").get("Contents") is None
    assert "LastCrawl" not in deployed.glue.get_crawler(Name="test-sales-raw-crawler")["Crawler"]
    assert deployed.glue.get_job_runs(JobName="test-sales-etl-job")["JobRuns"] == []


def _athena_table(glue, name, location, template):
    """Create a table in the catalog as Athena's DDL would (moto runs no SQL)."""
    glue.create_table(
        DatabaseName="sales_analytics_db",
        TableInput={
            "Name": name,
            "TableType": "EXTERNAL_TABLE",
            "StorageDescriptor": {
                "Columns": [{"Name": "region", "Type": "string"}],
                "Location": location,
            },
            "PartitionKeys": [{"Name": "year", "Type": "int"}, {"Name": "month", "Type": "int"}],
            "Parameters": {"projection.enabled": "true", "storage.location.template": template},
        },
    )


def test_up_accepts_tables_that_read_this_prefix_processed_bucket(deployed, config):
    _athena_table(
        deployed.glue,
        "enriched_sales",
        "s3://test-sales-processed/enriched/",
        "s3://test-sales-processed/enriched/year=${year}/month=${month}/",
    )
    _athena_table(
        deployed.glue,
        "sales_summary",
        "s3://test-sales-processed/sales_summary/",
        "s3://test-sales-processed/sales_summary/year=${year}/month=${month}/",
    )
    assert infra.up(config, deployed, tables=True) == []


@pytest.mark.parametrize(
    ("location", "template", "expected_problem"),
    [
        (
            "s3://other-sales-processed/enriched/",
            "s3://other-sales-processed/enriched/year=${year}/month=${month}/",
            "enriched_sales LOCATION is s3://other-sales-processed/enriched/, "
            "expected s3://test-sales-processed/enriched/",
        ),
        (
            "s3://test-sales-processed/enriched/",
            "s3://other-sales-processed/enriched/year=${year}/month=${month}/",
            "enriched_sales storage.location.template is "
            "s3://other-sales-processed/enriched/year=${year}/month=${month}/, "
            "expected one under s3://test-sales-processed/enriched/",
        ),
    ],
    ids=["location", "projection-template"],
)
def test_up_and_run_fail_when_a_table_reads_another_prefix_bucket(
    deployed, config, tmp_path, location, template, expected_problem
):
    # Left over from another deployment: `create external table if not exists` keeps it.
    _athena_table(deployed.glue, "enriched_sales", location, template)

    with pytest.raises(DeployError) as from_up:
        infra.up(config, deployed, tables=True)
    message = str(from_up.value)
    assert expected_problem in message
    assert "DROP TABLE sales_analytics_db.enriched_sales:" in message
    assert "DROP TABLE sales_analytics_db.sales_summary" not in message

    sales, customers = tmp_path / "s.csv", tmp_path / "c.json"
    sales.write_text("transaction_id\nT1\n")
    customers.write_text("{}\n")
    with pytest.raises(StageFailed) as from_run:
        run_on_aws(config, deployed, sales, customers)
    assert isinstance(from_run.value.__cause__, DeployError)
    assert expected_problem in str(from_run.value.__cause__)
    assert deployed.s3.list_objects_v2(Bucket="test-sales-raw").get("Contents") is None


# --------------------------------------------------------------------- CLI, status


def test_dry_run_prints_the_full_plan_without_calling_aws(monkeypatch, capsys):
    def no_aws(*args, **kwargs):
        raise AssertionError("dry run called AWS")

    monkeypatch.setattr("botocore.client.BaseClient._make_api_call", no_aws)
    argv = ["--prefix", "plan-test", "--region", "us-east-1", "--account-id", "111122223333"]
    assert deploy.main(["up", "--dry-run", *argv]) == 0
    out = capsys.readouterr().out
    for name in (
        "plan-test-111122223333-us-east-1-raw",
        "plan-test-111122223333-us-east-1-processed",
        "plan-test-111122223333-us-east-1-scripts",
        "plan-test-111122223333-us-east-1-athena-results",
        "plan-test-glue-role",
        "sales_analytics_db",
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
        '"UpdateBehavior": "UPDATE_IN_DATABASE"',
    ):
        assert setting in out
    assert deploy.main(["down", "--dry-run", *argv]) == 0
    assert "s3-bucket plan-test-111122223333-us-east-1-raw" in capsys.readouterr().out


def test_down_without_yes_deletes_nothing(deployed, capsys):
    assert deploy.main(["down", "--prefix", "test-sales"]) == 1
    assert "--yes" in capsys.readouterr().out
    assert len(deployed.s3.list_buckets()["Buckets"]) == 4


def test_status_shows_each_resource_and_the_last_crawl_and_job_run(deployed, config):
    deployed.glue.start_crawler(Name="test-sales-raw-crawler")
    deployed.glue.get_crawler(Name="test-sales-raw-crawler")  # moto advances on read
    run_id = deployed.glue.start_job_run(JobName="test-sales-etl-job")["JobRunId"]

    rows = {(r["kind"], r["name"]): r for r in infra.status(config, deployed)}

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
        "events-rule",
        "cloudwatch-alarm",
    }
    assert rows[("s3-bucket", "test-sales-raw")]["detail"] == "versioning=Enabled"
    assert rows[("glue-crawler", "test-sales-raw-crawler")]["state"] == "READY"
    assert "last crawl=COMPLETED" in rows[("glue-crawler", "test-sales-raw-crawler")]["detail"]
    assert f"last run={run_id} SUCCEEDED" in rows[("glue-job", "test-sales-etl-job")]["detail"]


def test_status_reports_missing_resources_before_up(aws, config):
    assert {r["state"] for r in infra.status(config, aws)} == {"missing"}


# -------------------------------------------------------------------------- run


def run_on_aws(config, clients, sales, customers, run_id="r1"):
    """The runner's stages on the aws target, on the given moto clients."""
    target = AwsTarget(config, clients=clients, poll_seconds=0, sleep=lambda _: None)
    options = RunOptions(sales_path=sales, customers_path=customers, run_id=run_id)
    return run(config, options, target=target)


def test_aws_target_uploads_inputs_and_script_crawls_and_runs_the_job(deployed, config, tmp_path):
    sales = tmp_path / "sales_data.csv"
    sales.write_text("transaction_id,date\nT1,2024-01-01\n")
    customers = tmp_path / "customer_demographics.json"
    customers.write_text('{"customer_id": "C1"}\n')
    target = AwsTarget(config, clients=deployed, poll_seconds=0, sleep=lambda _: None)

    target.check_ready()
    uploaded = target.upload(sales, customers)
    crawl = target.crawl()
    job = target.run_job("run-42")

    s3 = deployed.s3
    assert uploaded == [
        "s3://test-sales-raw/input/sales_data_csv/sales_data.csv",
        "s3://test-sales-raw/input/customer_demographics_json/customer_demographics.json",
    ]
    got = s3.get_object(Bucket="test-sales-raw", Key="input/sales_data_csv/sales_data.csv")
    assert got["Body"].read() == b"transaction_id,date\nT1,2024-01-01\n"
    got = s3.get_object(
        Bucket="test-sales-raw", Key="input/customer_demographics_json/customer_demographics.json"
    )
    assert got["Body"].read() == b'{"customer_id": "C1"}\n'
    script = s3.get_object(Bucket="test-sales-scripts", Key="scripts/glue_etl_job.py")
    assert script["Body"].read() == infra.JOB_SCRIPT.read_bytes()
    crawler = deployed.glue.get_crawler(Name="test-sales-raw-crawler")["Crawler"]
    assert crawler["LastCrawl"]["Status"] == "COMPLETED"
    assert crawl.status == "COMPLETED"
    assert crawl.dpu_hours == 100  # moto's fixed figure for every crawl
    job_run = deployed.glue.get_job_run(
        JobName="test-sales-etl-job", RunId=job.details["job_run_id"]
    )
    assert job_run["JobRun"]["Arguments"]["--run_id"] == "run-42"

    assert job.details["state"] == "SUCCEEDED"
    assert (job.details["workers"], job.details["worker_type"]) == (2, "G.1X")
    # moto reports ExecutionTime=123 s: 2 workers x 1 DPU x 123 s / 3600.
    assert job.seconds == 123
    assert job.details["dpu_hours"] == pytest.approx(2 * 123 / 3600)
    assert job.details["glue_usd"] == pytest.approx(2 * 123 / 3600 * 0.44)
    # moto's job runs no code: put the metrics file the job would write, read it back.
    s3.put_object(
        Bucket="test-sales-processed", Key="_runs/run-42.json", Body=b'{"run_id": "run-42"}'
    )
    assert target.read_metrics("run-42") == {"run_id": "run-42"}


def test_upload_job_script_puts_it_through_the_clients_it_is_given(deployed, config):
    # No session can load this profile: a client built from the config would fail.
    unreachable = dataclasses.replace(config, profile="no-such-profile")
    deployed.s3.delete_object(Bucket="test-sales-scripts", Key="scripts/glue_etl_job.py")

    assert infra.upload_job_script(unreachable, deployed) is True
    script = deployed.s3.get_object(Bucket="test-sales-scripts", Key="scripts/glue_etl_job.py")
    assert script["Body"].read() == infra.JOB_SCRIPT.read_bytes()
    assert infra.upload_job_script(unreachable, deployed) is False  # same bytes: no upload


class _GlueRuns:
    """A stand-in for Glue's GetJobRun that walks through the given states."""

    def __init__(self, *states, error=None):
        self.states = list(states)
        self.error = error

    def get_job_run(self, JobName, RunId):
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        run = {"Id": RunId, "JobRunState": state, "LogGroupName": "/aws-glue/jobs"}
        if self.error and state == "FAILED":
            run["ErrorMessage"] = self.error
        return {"JobRun": run}


def test_failed_job_run_names_the_error_and_the_log_streams(caplog):
    glue = _GlueRuns("STARTING", "RUNNING", "RUNNING", "FAILED", error="reconciliation failed")
    sleeps = []
    caplog.set_level("INFO", logger="pipeline.infra")

    with pytest.raises(JobRunFailed) as failed:
        infra.wait_for_job_run(glue, "job", "jr_1", first_poll=5, max_poll=15, sleep=sleeps.append)

    message = str(failed.value)
    assert "jr_1 FAILED: reconciliation failed" in message
    assert "/aws-glue/jobs/error" in message and "/aws-glue/jobs/output" in message
    assert "stream jr_1" in message
    assert sleeps == [5, 10, 15]  # back-off doubles up to the cap
    # One log line per state change, not per poll.
    changes = [r.getMessage() for r in caplog.records if r.getMessage().startswith("job run")]
    assert changes == ["job run jr_1: STARTING", "job run jr_1: RUNNING", "job run jr_1: FAILED"]
