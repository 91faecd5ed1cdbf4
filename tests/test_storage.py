"""Storage: the same put/get/list/delete over s3:// URIs on the lake folder and on S3."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from moto_fixtures import REGION

from pipeline.config import PipelineConfig
from pipeline.errors import UsageError
from pipeline.storage import LocalStorage, ObjectInfo, S3Storage, upload_raw
from pipeline.targets import make_target

BUCKET = "test-raw"
# A sales file the upload's checks take: the header and one row after it.
HEADER = "transaction_id,date,customer_id,product,quantity,unit_price,region,total_amount"


def sales_csv(*rows: str) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


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


def test_put_get_and_list_behave_alike_on_both_targets(storage, tmp_path: Path) -> None:
    for name, text, key in (
        ("sales.csv", "a,b\n1,2\n", "input/sales/sales.csv"),
        ("c.json", "{}\n", "input/customers/c.json"),
        ("x.txt", "xyz", "inputs-other/x.txt"),
    ):
        (tmp_path / name).write_text(text)
        storage.put_file(tmp_path / name, f"s3://{BUCKET}/{key}")

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


def test_missing_object_raises_file_not_found(storage) -> None:
    with pytest.raises(FileNotFoundError, match="no such object"):
        storage.get_bytes(f"s3://{BUCKET}/nope/missing.csv")


def test_local_storage_mirrors_s3_uri_as_lake_bucket_key(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "lake")
    (tmp_path / "c.txt").write_bytes(b"1")
    storage.put_file(tmp_path / "c.txt", "s3://bucket/a/b/c.txt")
    assert (tmp_path / "lake" / "bucket" / "a" / "b" / "c.txt").read_bytes() == b"1"
    assert storage.list("s3://other-bucket/") == []


def test_upload_raw_puts_each_source_under_its_own_raw_prefix_keeping_names(tmp_path: Path) -> None:
    config = PipelineConfig(prefix="demo", target="local", lake=tmp_path / "lake")
    sales = tmp_path / "s.csv"
    customers = tmp_path / "c.json"
    sales.write_text(sales_csv("T1"))
    customers.write_text('{"customer_id": "CUST0001"}\n')

    uris = upload_raw(make_target(config).storage, config, sales, customers).uris

    assert uris == [
        "s3://demo-raw/input/sales_data_csv/s.csv",
        "s3://demo-raw/input/customer_demographics_json/c.json",
    ]
    lake = tmp_path / "lake" / "demo-raw" / "input"
    assert (lake / "sales_data_csv" / "s.csv").read_text() == sales_csv("T1")
    assert (lake / "customer_demographics_json" / "c.json").exists()


def test_upload_raw_takes_folders_and_skips_hidden_files(tmp_path: Path) -> None:
    config = PipelineConfig(prefix="demo", target="local", lake=tmp_path / "lake")
    sales = tmp_path / "sales"
    (sales / "2024").mkdir(parents=True)
    (sales / "_tmp").mkdir()
    (sales / "a.csv").write_text(sales_csv("a"))
    (sales / "2024" / "b.csv").write_text(sales_csv("b"))
    (sales / ".a.csv.crc").write_text("x")
    (sales / "_SUCCESS").write_text("")
    (sales / "_tmp" / "c.csv").write_text("c\n")
    customers = tmp_path / "customers"
    customers.mkdir()
    (customers / "one.ndjson").write_text("{}\n")

    uris = upload_raw(make_target(config).storage, config, sales, customers).uris

    assert uris == [
        "s3://demo-raw/input/sales_data_csv/2024/b.csv",
        "s3://demo-raw/input/sales_data_csv/a.csv",
        "s3://demo-raw/input/customer_demographics_json/one.ndjson",
    ]


def test_a_new_file_lands_beside_the_earlier_ones(tmp_path: Path) -> None:
    config = PipelineConfig(prefix="demo", target="local", lake=tmp_path / "lake")
    storage = make_target(config).storage
    customers = tmp_path / "c.json"
    customers.write_text("{}\n")
    for name, text in (("jan.csv", "old"), ("feb.csv", "new"), ("jan.csv", "again")):
        (tmp_path / name).write_text(sales_csv(text))
        upload_raw(storage, config, tmp_path / name, customers)

    listed = storage.list(config.raw_sales_uri)
    header = len(HEADER) + 1
    assert [(o.uri.rsplit("/", 1)[1], o.size) for o in listed] == [
        ("feb.csv", header + 4),
        ("jan.csv", header + 6),
    ]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "nope.csv", "input not found: .*nope.csv"),
        (lambda d: (d / "empty").mkdir() or d / "empty", "no files in folder .*empty"),
        (lambda d: "s3://somebody-else/sales.csv", "s3:// inputs need the aws target"),
    ],
)
def test_upload_raw_fails_clearly_and_puts_nothing(tmp_path: Path, make, message) -> None:
    config = PipelineConfig(prefix="demo", target="local", lake=tmp_path / "lake")
    customers = tmp_path / "c.json"
    customers.write_text("{}\n")
    with pytest.raises((FileNotFoundError, UsageError), match=message):
        upload_raw(make_target(config).storage, config, make(tmp_path), customers)
    assert not (tmp_path / "lake").exists()


def test_upload_raw_copies_s3_objects_and_prefixes_keeping_names(aws_env, tmp_path: Path) -> None:  # noqa: F811
    config = PipelineConfig(prefix="demo", target="aws", region=REGION)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in ("their-data", config.raw_bucket):
            s3.create_bucket(Bucket=bucket)
        part1, part2 = sales_csv("s1").encode(), sales_csv("s22").encode()
        s3.put_object(Bucket="their-data", Key="exports/sales/part-1.csv", Body=part1)
        s3.put_object(Bucket="their-data", Key="exports/sales/day/part-2.csv", Body=part2)
        s3.put_object(Bucket="their-data", Key="exports/sales/_SUCCESS", Body=b"")
        s3.put_object(Bucket="their-data", Key="exports/customers.json", Body=b"{}")

        uris = upload_raw(
            S3Storage(s3),
            config,
            "s3://their-data/exports/sales",
            "s3://their-data/exports/customers.json",
        ).uris

        raw = f"s3://{config.raw_bucket}/input/"
        assert uris == [
            raw + "sales_data_csv/day/part-2.csv",
            raw + "sales_data_csv/part-1.csv",
            raw + "customer_demographics_json/customers.json",
        ]
        got = s3.get_object(Bucket=config.raw_bucket, Key="input/sales_data_csv/day/part-2.csv")
        assert got["Body"].read() == part2
        with pytest.raises(FileNotFoundError, match="no objects under s3://their-data/nothing"):
            upload_raw(S3Storage(s3), config, "s3://their-data/nothing", "s3://their-data/x")
