"""The Glue role's inline policy, enforced by moto's IAM: what the job can and cannot do."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from moto_fixtures import REGION

SALES_KEY = "input/sales_data_csv/sales_data.csv"


@pytest.fixture
def glue_role_s3(deployed, request):
    """Seed objects as the admin, assume the Glue role, then turn IAM enforcement on.

    Yields an S3 client holding the role's temporary credentials.
    """
    s3 = deployed.s3
    s3.put_object(Bucket="test-sales-raw", Key=SALES_KEY, Body=b"transaction_id\nT1\n")
    s3.put_object(Bucket="test-sales-scripts", Key="scripts/glue_etl_job.py", Body=b"print(1)\n")
    s3.create_bucket(Bucket="someone-elses-data")
    s3.put_object(Bucket="someone-elses-data", Key="secret.csv", Body=b"x")
    role_arn = deployed.iam.get_role(RoleName="test-sales-glue-role")["Role"]["Arn"]
    creds = deployed.sts.assume_role(RoleArn=role_arn, RoleSessionName="glue-job")["Credentials"]
    request.getfixturevalue("iam_enforced")
    yield boto3.client(
        "s3",
        region_name=REGION,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def _denied(call) -> bool:
    try:
        call()
    except ClientError as exc:
        return exc.response["Error"]["Code"] in ("AccessDenied", "403")
    return False


def test_glue_role_reads_raw_input_and_the_script(glue_role_s3):
    body = glue_role_s3.get_object(Bucket="test-sales-raw", Key=SALES_KEY)["Body"].read()
    assert body == b"transaction_id\nT1\n"
    script = glue_role_s3.get_object(Bucket="test-sales-scripts", Key="scripts/glue_etl_job.py")
    assert script["Body"].read() == b"print(1)\n"


def test_glue_role_writes_reads_back_and_overwrites_the_processed_prefixes(glue_role_s3):
    for key in (
        "enriched/year=2024/month=1/part-0.parquet",
        "sales_summary/year=2024/month=1/part-0.parquet",
        "quarantine/run-1/rows.json",
        "_runs/run-1.json",
    ):
        glue_role_s3.put_object(Bucket="test-sales-processed", Key=key, Body=b"data")
        assert (
            glue_role_s3.get_object(Bucket="test-sales-processed", Key=key)["Body"].read()
            == b"data"
        )
    # Spark's S3 filesystems may write a folder marker next to the output folder.
    glue_role_s3.put_object(Bucket="test-sales-processed", Key="enriched_$folder$", Body=b"")
    # Dynamic partition overwrite deletes the partition files it replaces.
    glue_role_s3.delete_object(
        Bucket="test-sales-processed", Key="enriched/year=2024/month=1/part-0.parquet"
    )


def test_glue_role_cannot_write_raw_or_outside_the_processed_prefixes(glue_role_s3):
    assert _denied(
        lambda: glue_role_s3.put_object(Bucket="test-sales-raw", Key=SALES_KEY, Body=b"tampered")
    )
    assert _denied(lambda: glue_role_s3.delete_object(Bucket="test-sales-raw", Key=SALES_KEY))
    assert _denied(
        lambda: glue_role_s3.put_object(Bucket="test-sales-processed", Key="elsewhere/x", Body=b"x")
    )
    assert _denied(
        lambda: glue_role_s3.put_object(
            Bucket="test-sales-scripts", Key="scripts/glue_etl_job.py", Body=b"evil"
        )
    )


def test_glue_role_cannot_read_another_bucket(glue_role_s3):
    assert _denied(lambda: glue_role_s3.get_object(Bucket="someone-elses-data", Key="secret.csv"))
    assert _denied(lambda: glue_role_s3.list_objects_v2(Bucket="someone-elses-data"))


def test_glue_role_cannot_delete_or_create_a_bucket(glue_role_s3):
    assert _denied(lambda: glue_role_s3.delete_bucket(Bucket="test-sales-processed"))
    assert _denied(lambda: glue_role_s3.delete_bucket(Bucket="someone-elses-data"))
    assert _denied(lambda: glue_role_s3.create_bucket(Bucket="new-bucket-by-the-job"))


def test_glue_role_lists_its_three_buckets_and_no_other(glue_role_s3):
    listed = glue_role_s3.list_objects_v2(Bucket="test-sales-raw", Prefix="input/sales_data_csv/")
    assert [o["Key"] for o in listed["Contents"]] == [SALES_KEY]
    # Without a prefix too: Glue's S3 clients list the bucket roots.
    listed = glue_role_s3.list_objects_v2(Bucket="test-sales-scripts")
    assert [o["Key"] for o in listed["Contents"]] == ["scripts/glue_etl_job.py"]
    assert glue_role_s3.list_objects_v2(Bucket="test-sales-processed")["KeyCount"] == 0
    # The Athena results bucket is not the job's: no listing there.
    assert _denied(lambda: glue_role_s3.list_objects_v2(Bucket="test-sales-athena-results"))
