"""Storage: the same put/get/list/delete over s3:// URIs on the lake folder and on S3."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from moto_fixtures import REGION, aws_env  # noqa: F401  (fixture)

from pipeline.config import PipelineConfig
from pipeline.storage import LocalStorage, ObjectInfo, S3Storage, make_storage, upload_raw

BUCKET = "test-raw"


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """A LocalStorage on a temp lake, or an S3Storage on a moto bucket."""
    if request.param == "local":
        yield LocalStorage(tmp_path / "lake")
        return
    request.getfixturevalue("aws_env")
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        yield S3Storage(s3)


def test_put_get_list_and_delete_behave_alike_on_both_targets(storage, tmp_path: Path) -> None:
    source = tmp_path / "sales.csv"
    source.write_text("a,b\n1,2\n")
    storage.put_file(source, f"s3://{BUCKET}/input/sales/sales.csv")
    storage.put_bytes(b"{}\n", f"s3://{BUCKET}/input/customers/c.json")
    storage.put_bytes(b"xyz", f"s3://{BUCKET}/inputs-other/x.txt")

    assert storage.get_bytes(f"s3://{BUCKET}/input/sales/sales.csv") == b"a,b\n1,2\n"
    assert storage.list(f"s3://{BUCKET}/input/") == [
        ObjectInfo(f"s3://{BUCKET}/input/customers/c.json", 3),
        ObjectInfo(f"s3://{BUCKET}/input/sales/sales.csv", 8),
    ]
    # A prefix is a string prefix, as in S3, not a folder.
    assert [o.uri for o in storage.list(f"s3://{BUCKET}/input")] == [
        f"s3://{BUCKET}/input/customers/c.json",
        f"s3://{BUCKET}/input/sales/sales.csv",
        f"s3://{BUCKET}/inputs-other/x.txt",
    ]
    assert storage.delete_prefix(f"s3://{BUCKET}/input/") == 2
    assert storage.list(f"s3://{BUCKET}/input/") == []
    assert len(storage.list(f"s3://{BUCKET}/")) == 1


def test_missing_object_raises_file_not_found(storage) -> None:
    with pytest.raises(FileNotFoundError, match="no such object"):
        storage.get_bytes(f"s3://{BUCKET}/nope/missing.csv")


def test_local_storage_mirrors_s3_uri_as_lake_bucket_key(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put_bytes(b"1", "s3://bucket/a/b/c.txt")
    assert (tmp_path / "bucket" / "a" / "b" / "c.txt").read_bytes() == b"1"
    assert storage.list("s3://other-bucket/") == []


def test_upload_raw_puts_each_source_under_its_own_raw_prefix(tmp_path: Path) -> None:
    config = PipelineConfig(prefix="demo", target="local", lake=tmp_path / "lake")
    sales = tmp_path / "s.csv"
    customers = tmp_path / "c.json"
    sales.write_text("transaction_id\nT1\n")
    customers.write_text('{"customer_id": "CUST0001"}\n')

    uris = upload_raw(make_storage(config), config, sales, customers)

    assert uris == [
        "s3://demo-raw/input/sales_data_csv/sales_data.csv",
        "s3://demo-raw/input/customer_demographics_json/customer_demographics.json",
    ]
    lake = tmp_path / "lake" / "demo-raw" / "input"
    assert (lake / "sales_data_csv" / "sales_data.csv").read_text() == "transaction_id\nT1\n"
    assert (lake / "customer_demographics_json" / "customer_demographics.json").exists()


def test_upload_raw_fails_clearly_when_an_input_is_missing(tmp_path: Path) -> None:
    config = PipelineConfig(prefix="demo", target="local", lake=tmp_path / "lake")
    with pytest.raises(FileNotFoundError, match="raw input not found"):
        upload_raw(make_storage(config), config, tmp_path / "nope.csv", tmp_path / "nope.json")
