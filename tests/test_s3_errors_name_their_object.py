"""An S3 error says which bucket or object it was about: S3 answers a refused HeadObject
with a bare 403 and no body, and a run touches many objects."""

from __future__ import annotations

import pytest
from aws_faults import error, inject
from botocore.exceptions import ClientError

from pipeline import aws as pipeline_aws
from pipeline.cli import run_cli

BUCKET = "test-sales-raw"


@pytest.fixture
def s3(aws, config):
    """An S3 client as the pipeline makes them, on moto."""
    client = pipeline_aws.client(config, "s3")
    client.create_bucket(Bucket=BUCKET)
    return client


def test_a_refused_head_object_names_the_object_in_one_line(s3, capsys):
    inject(s3, "HeadObject", error("403", "Forbidden", 403))
    key = "input/sales_data_csv/sales_data.csv"
    assert run_cli(lambda: s3.head_object(Bucket=BUCKET, Key=key)) == 1
    assert capsys.readouterr().err == (
        "error: AWS call failed: An error occurred (403) when calling the HeadObject "
        f"operation: Forbidden (s3://{BUCKET}/{key})\n"
    )


def test_moto_s_own_errors_name_the_object_or_the_bucket(s3):
    with pytest.raises(ClientError) as missing:
        s3.get_object(Bucket=BUCKET, Key="no/such.csv")
    assert str(missing.value).endswith(f"(s3://{BUCKET}/no/such.csv)")
    assert missing.value.response["Error"]["Code"] == "NoSuchKey"  # the code is untouched
    with pytest.raises(ClientError) as no_bucket:
        s3.get_bucket_policy(Bucket="no-such-bucket-here")
    assert "(bucket no-such-bucket-here)" in str(no_bucket.value)


def test_a_successful_call_is_untouched(s3):
    s3.put_object(Bucket=BUCKET, Key="k", Body=b"x")
    assert s3.get_object(Bucket=BUCKET, Key="k")["Body"].read() == b"x"
