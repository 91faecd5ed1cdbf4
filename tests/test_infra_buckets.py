"""The buckets: their names, settings, drift, and ownership (against moto)."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from moto_fixtures import BUCKETS, bucket_tags, lifecycle_rules

import deploy
from pipeline import infra
from pipeline.config import PipelineConfig, bucket_name_problem
from pipeline.errors import DeployError

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


class TestOneDeployment:
    """One `up` for these tests, which read what it made (and put one object)."""

    @pytest.mark.parametrize("bucket", BUCKETS)
    def test_every_bucket_blocks_public_access_encrypts_and_denies_plain_http(
        self, deployed_once, bucket
    ):
        s3 = deployed_once.s3
        assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        }
        encryption = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
        rule = encryption["Rules"][0]
        assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"

        policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
        [statement] = policy["Statement"]
        assert statement["Effect"] == "Deny"
        assert statement["Principal"] == "*"
        assert statement["Action"] == "s3:*"
        assert sorted(statement["Resource"]) == [
            f"arn:aws:s3:::{bucket}",
            f"arn:aws:s3:::{bucket}/*",
        ]
        assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}

        rules = lifecycle_rules(s3, bucket)
        assert rules["abort-incomplete-multipart-uploads"]["AbortIncompleteMultipartUpload"] == {
            "DaysAfterInitiation": 1
        }
        tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
        assert tags == {"managed-by": "deploy.py", "pipeline-prefix": "test-sales"}

    def test_raw_bucket_is_versioned_and_the_others_are_not(self, deployed_once):
        status = {
            b: deployed_once.s3.get_bucket_versioning(Bucket=b).get("Status") for b in BUCKETS
        }
        assert status == {
            "test-sales-raw": "Enabled",
            "test-sales-processed": None,
            "test-sales-scripts": None,
            "test-sales-athena-results": None,
        }
        rule = lifecycle_rules(deployed_once.s3, "test-sales-raw")["expire-noncurrent-raw-versions"]
        assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30

    def test_athena_results_expire_after_a_week(self, deployed_once):
        rule = lifecycle_rules(deployed_once.s3, "test-sales-athena-results")[
            "expire-athena-results"
        ]
        assert rule["Status"] == "Enabled"
        assert rule["Filter"] == {"Prefix": "results/"}
        assert rule["Expiration"] == {"Days": 7}

    def test_objects_are_stored_encrypted_over_tls(self, deployed_once):
        deployed_once.s3.put_object(Bucket="test-sales-raw", Key="input/x.csv", Body=b"a,b\n")
        head = deployed_once.s3.head_object(Bucket="test-sales-raw", Key="input/x.csv")
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


def test_up_outside_us_east_1_sets_the_location_constraint(aws):
    from pipeline.config import PipelineConfig

    eu = PipelineConfig(prefix="eu-sales", target="aws", region="eu-west-1")
    infra.up(eu, tables=False)
    assert aws.s3.get_bucket_location(Bucket="eu-sales-raw")["LocationConstraint"] == "eu-west-1"


def test_down_keeps_a_same_named_bucket_that_up_did_not_make(aws, config):
    aws.s3.create_bucket(Bucket="test-sales-raw")
    aws.s3.put_object(Bucket="test-sales-raw", Key="precious.csv", Body=b"x")
    assert infra.down(config, aws) == []
    assert aws.s3.get_object(Bucket="test-sales-raw", Key="precious.csv")["Body"].read() == b"x"


def _objects(s3, bucket):
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


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
    assert bucket_tags(s3, CLI_RAW) == foreign_tags
    assert _objects(s3, CLI_RAW) == {"precious.csv": b"id\n1\n"}
    assert s3.get_bucket_versioning(Bucket=CLI_RAW).get("Status") is None
    assert _has_public_access_block(s3, CLI_RAW) is False
    # up refused before creating anything else.
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [CLI_RAW]
    assert aws.iam.list_roles()["Roles"] == []

    assert deploy.main(["down", "--yes", "--prefix", "test-sales"]) == 0
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [CLI_RAW]
    assert _objects(s3, CLI_RAW) == {"precious.csv": b"id\n1\n"}
    assert bucket_tags(s3, CLI_RAW) == foreign_tags


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


def test_bucket_names_carry_the_account_and_region():
    config = PipelineConfig(
        prefix="acme-sales", target="aws", region="eu-west-1", account_id="111122223333"
    )
    assert config.buckets == (
        "acme-sales-111122223333-eu-west-1-raw",
        "acme-sales-111122223333-eu-west-1-processed",
        "acme-sales-111122223333-eu-west-1-scripts",
        "acme-sales-111122223333-eu-west-1-athena-results",
    )
    assert (
        config.raw_sales_uri == "s3://acme-sales-111122223333-eu-west-1-raw/input/sales_data_csv/"
    )
    assert config.athena_results_uri == (
        "s3://acme-sales-111122223333-eu-west-1-athena-results/results/"
    )
    assert config.sql_parameters()["processed_bucket"] == (
        "acme-sales-111122223333-eu-west-1-processed"
    )
    # The other names live inside the account: unchanged.
    assert (config.role_name, config.crawler_name, config.job_name, config.workgroup) == (
        "acme-sales-glue-role",
        "acme-sales-raw-crawler",
        "acme-sales-etl-job",
        "acme-sales-workgroup",
    )


def test_without_an_account_the_names_are_as_before():
    config = PipelineConfig(prefix="acme-sales", target="aws", region="eu-west-1")
    assert config.raw_bucket == "acme-sales-raw"
    assert PipelineConfig(prefix="acme-sales", target="local").raw_bucket == "acme-sales-raw"


def test_the_longest_name_fits_s3s_63_characters_and_a_longer_prefix_is_refused():
    # "-111122223333-us-east-1-athena-results" is 38 characters: 25 are left.
    longest = "p" * 25
    config = PipelineConfig(
        prefix=longest, target="aws", region="us-east-1", account_id="111122223333"
    )
    assert len(config.results_bucket) == 63
    with pytest.raises(ValueError, match="at most 25 characters"):
        PipelineConfig(
            prefix=longest + "p", target="aws", region="us-east-1", account_id="111122223333"
        )
    # A longer region leaves less: ap-southeast-2 is 14 characters, 5 more.
    with pytest.raises(ValueError, match="at most 20 characters"):
        PipelineConfig(
            prefix="p" * 21, target="aws", region="ap-southeast-2", account_id="111122223333"
        )


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("ab", "2 characters; S3 allows 3 to 63"),
        ("a" * 64, "64 characters; S3 allows 3 to 63"),
        ("-sales-raw", "starting and ending with a letter or digit"),
        ("Sales-raw", "only lowercase letters, digits and hyphens"),
        ("sales_raw", "only lowercase letters, digits and hyphens"),
        ("xn--sales-raw", "S3 reserves names starting with 'xn--'"),
        ("sthree-sales-raw", "S3 reserves names starting with 'sthree-'"),
        ("sales-s3alias", "S3 reserves names ending with '-s3alias'"),
    ],
)
def test_bucket_name_rules(name, problem):
    assert problem in bucket_name_problem(name)


def test_valid_bucket_names_pass():
    assert bucket_name_problem("abc") is None
    assert bucket_name_problem("sales-pipeline-123456789012-us-east-1-athena-results") is None
    assert bucket_name_problem("a" * 63) is None


@pytest.mark.parametrize("prefix", ["-sales", "café", "sthree-sales"])
def test_a_prefix_that_makes_an_invalid_bucket_name_is_refused(prefix):
    with pytest.raises(ValueError, match="prefix"):
        PipelineConfig(prefix=prefix, target="local")
