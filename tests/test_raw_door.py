"""The upload's door: every given file passes the job's whole-file checks before anything
is put into raw, on both targets; JSON-array customers are stored as NDJSON; raw files
can be taken out by name.

The aws cases run on moto's S3; every expectation is a hand-written file listing or text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from moto_fixtures import REGION

import run_pipeline
from pipeline.config import PipelineConfig
from pipeline.errors import UsageError
from pipeline.storage import LocalStorage, S3Storage, raw_files, remove_raw, upload_raw
from pipeline.targets.base import remove_hint

HEADER = "transaction_id,date,customer_id,product,quantity,unit_price,region,total_amount"
GOOD_SALES = f"{HEADER}\nT1,2025-01-02,C1,Desk,1,9.50,North,9.50\n"
GOOD_CUSTOMERS = '{"customer_id": "C1"}\n'


@pytest.fixture(params=["local", "aws"])
def door(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple]:
    """(config, storage) on a temp lake, or on moto's S3 with the raw bucket made."""
    if request.param == "local":
        config = PipelineConfig(prefix="door", target="local", lake=tmp_path / "lake")
        yield config, LocalStorage(config.lake)
        return
    request.getfixturevalue("aws_env")
    config = PipelineConfig(prefix="door", target="aws", region=REGION)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=config.raw_bucket)
        yield config, S3Storage(s3)


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


BAD_FILES = [
    # (source, bytes, what the one line says)
    ("sales", "id,when\n1,2\n", "header mismatch in {path}: expected " + HEADER + "; got id,when"),
    ("sales", b"\xff\xfeid,when\n", "header of {path} is not UTF-8 text"),
    ("sales", GOOD_CUSTOMERS, "{path} is JSON, not a sales CSV"),
    ("customers", GOOD_SALES, "{path} is the sales CSV, not customers"),
    ("customers", "customer_id,age\nC1,30\n", "{path} is not JSON: customers are NDJSON"),
    ("customers", '[{"customer_id": "C1"}, {broken', "{path} starts as a JSON array but does not parse"),
]  # fmt: skip


@pytest.mark.parametrize(("source", "data", "message"), BAD_FILES)
def test_a_bad_file_is_refused_by_its_own_name_and_nothing_is_put(
    door, tmp_path, source, data, message
):
    config, storage = door
    folder = tmp_path / "export"
    good = {"sales": GOOD_SALES, "customers": GOOD_CUSTOMERS}
    write(folder / source / "a_good_one", good[source])
    bad = write(folder / source / "bad.file", data)
    other = "customers" if source == "sales" else "sales"
    write(folder / other / "x", good[other])

    with pytest.raises(UsageError) as refused:
        upload_raw(storage, config, folder / "sales", folder / "customers")

    text = str(refused.value)
    assert text.startswith(message.format(path=bad))
    assert text.endswith(
        "nothing was uploaded: fix this file or take it out of the input, then run again"
    )
    assert "\n" not in text
    assert raw_files(storage, config) == {"sales": [], "customers": []}


def test_an_empty_file_among_good_ones_is_skipped_and_said(door, tmp_path):
    config, storage = door
    write(tmp_path / "sales" / "day1.csv", GOOD_SALES)
    write(tmp_path / "sales" / "day2.csv", b"")
    write(tmp_path / "customers" / "c.json", GOOD_CUSTOMERS)
    write(tmp_path / "customers" / "blank.json", " \n\n")

    upload = upload_raw(storage, config, tmp_path / "sales", tmp_path / "customers")

    assert upload.skipped == {"sales": ["day2.csv"], "customers": ["blank.json"]}
    assert raw_files(storage, config) == {"sales": ["day1.csv"], "customers": ["c.json"]}


def test_a_source_given_only_empty_files_is_refused(door, tmp_path):
    config, storage = door
    empty = write(tmp_path / "orders.csv", b"")
    customers = write(tmp_path / "c.json", GOOD_CUSTOMERS)
    with pytest.raises(UsageError, match=f"sales input is empty: every file given \\({empty}\\)"):
        upload_raw(storage, config, empty, customers)
    assert raw_files(storage, config) == {"sales": [], "customers": []}


def test_json_array_customers_are_stored_as_the_same_records_one_per_line(door, tmp_path):
    config, storage = door
    records = [
        {"customer_id": "C1", "age_group": "25-34", "membership_tier": "Gold"},
        {"customer_id": "C2", "signup_date": "2024-02-29", "note": 'caf\u00e9, "quoted"'},
        42,  # not an object: still one record, which the job quarantines as invalid_json
    ]
    array = write(
        tmp_path / "customers.json", b"\xef\xbb\xbf" + json.dumps(records, indent=2).encode()
    )
    sales = write(tmp_path / "s.csv", GOOD_SALES)

    upload = upload_raw(storage, config, sales, array)

    uri = config.raw_customers_uri + "customers.json"
    assert upload.as_ndjson == [uri]
    stored = storage.get_bytes(uri).decode("utf-8")
    assert [json.loads(line) for line in stored.splitlines()] == records
    assert stored.endswith("}\n42\n")
    # The same array again is the same bytes: not put again.
    assert upload_raw(storage, config, sales, array).uris == upload.uris
    assert storage.holds(tmp_path / "s.csv", config.raw_sales_uri + "s.csv")


def test_remove_raw_takes_files_out_by_name_or_glob_with_a_dry_run(door, tmp_path):
    config, storage = door
    for name in ("orders_01.csv", "orders_02.csv", "returns.csv"):
        write(tmp_path / "sales" / name, GOOD_SALES)
    write(tmp_path / "customers" / "c.json", GOOD_CUSTOMERS)
    upload_raw(storage, config, tmp_path / "sales", tmp_path / "customers")
    everything = raw_files(storage, config)

    would = remove_raw(storage, config, ["orders_0*.csv"], dry_run=True)
    assert would == [
        config.raw_sales_uri + "orders_01.csv",
        config.raw_sales_uri + "orders_02.csv",
    ]
    assert raw_files(storage, config) == everything

    with pytest.raises(UsageError, match="no raw file named 'nope.csv'; the raw files are: "):
        remove_raw(storage, config, ["orders_01.csv", "nope.csv"])
    assert raw_files(storage, config) == everything  # every name must match first

    removed = remove_raw(storage, config, ["orders_01.csv", "c.json"])
    assert removed == [config.raw_sales_uri + "orders_01.csv", config.raw_customers_uri + "c.json"]
    assert raw_files(storage, config) == {
        "sales": ["orders_02.csv", "returns.csv"],
        "customers": [],
    }


def test_a_failing_run_that_names_a_raw_file_says_how_to_remove_it():
    roots = ["/lake/p-raw/input/sales_data_csv/", "s3://b/input/customer_demographics_json/"]
    reason = "ERROR: header mismatch in /lake/p-raw/input/sales_data_csv/2024/bad.csv: expected x"
    assert remove_hint(reason, roots, "--lake own-lake") == (
        f"{reason}; take it out of raw with: python run_pipeline.py --remove-raw 2024/bad.csv "
        "--lake own-lake (--dry-run lists what goes)"
    )
    assert remove_hint("job failed: out of memory", roots, "") == "job failed: out of memory"


# --- run_pipeline.py: one line and exit 2 for each bad input, before any stage writes ------


@pytest.mark.parametrize(
    ("sales_data", "customers_data", "says"),
    [
        (b"", GOOD_CUSTOMERS, "stage 'upload' failed: sales input is empty: every file given"),
        (GOOD_SALES, GOOD_SALES, "stage 'upload' failed: {customers} is the sales CSV"),
        (GOOD_CUSTOMERS, GOOD_CUSTOMERS, "stage 'upload' failed: {sales} is JSON, not a sales"),
        (GOOD_SALES, "id;age\n", "stage 'upload' failed: {customers} is not JSON"),
    ],
)
def test_run_pipeline_refuses_bad_input_in_one_line_with_exit_2(
    tmp_path, capsys, sales_data, customers_data, says
):
    sales = write(tmp_path / "in" / "orders.csv", sales_data)
    customers = write(tmp_path / "in" / "customers.json", customers_data)
    lake = tmp_path / "lake"
    argv = ["--lake", str(lake), "--sales-path", str(sales), "--customers-path", str(customers)]
    assert run_pipeline.main(argv) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: " + says.format(sales=sales, customers=customers))
    assert not (lake / "sales-pipeline-raw").exists()


def test_remove_raw_flags_are_checked(tmp_path, capsys):
    with pytest.raises(SystemExit) as usage:
        run_pipeline.main(["--dry-run"])
    assert usage.value.code == 2
    assert "--dry-run goes with --remove-raw" in capsys.readouterr().err
    assert run_pipeline.main(["--lake", str(tmp_path), "--remove-raw", "x.csv"]) == 2
    assert capsys.readouterr().err == (
        "error: no raw file named 'x.csv'; the raw files are: none\n"
    )


def test_s3_inputs_pass_the_same_door(aws_env):
    config = PipelineConfig(prefix="door", target="aws", region=REGION)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in ("their-data", config.raw_bucket):
            s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket="their-data", Key="sales/ok.csv", Body=GOOD_SALES.encode())
        s3.put_object(Bucket="their-data", Key="sales/empty.csv", Body=b"")
        s3.put_object(Bucket="their-data", Key="bad.csv", Body=b"order,when\n")
        s3.put_object(Bucket="their-data", Key="c.json", Body=b'[{"customer_id": "C1"}]')
        storage = S3Storage(s3)

        with pytest.raises(UsageError, match="^header mismatch in s3://their-data/bad.csv: "):
            upload_raw(storage, config, "s3://their-data/bad.csv", "s3://their-data/c.json")
        assert raw_files(storage, config) == {"sales": [], "customers": []}

        upload = upload_raw(storage, config, "s3://their-data/sales", "s3://their-data/c.json")
        assert upload.skipped == {"sales": ["empty.csv"]}
        assert raw_files(storage, config) == {"sales": ["ok.csv"], "customers": ["c.json"]}
        stored = storage.get_bytes(config.raw_customers_uri + "c.json")
        assert stored == b'{"customer_id":"C1"}\n'
