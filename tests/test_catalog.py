"""The crawler: Glue types inferred from generated and awkward files, and the aws crawler."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import boto3
import botocore.session
import pytest
from botocore.validate import ParamValidator
from moto import mock_aws
from moto.moto_api import state_manager
from moto_fixtures import REGION

from pipeline.catalog import catalog_dir, crawl_local, load_catalog
from pipeline.config import PipelineConfig
from pipeline.errors import CrawlerError
from pipeline.storage import LocalStorage, upload_raw
from pipeline.targets.aws import run_aws_crawler

REPO = Path(__file__).resolve().parent.parent


def columns(table: dict) -> dict[str, str]:
    return {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]}


def local_config(tmp_path: Path) -> PipelineConfig:
    return PipelineConfig(prefix="crawl", target="local", lake=tmp_path / "lake")


def put_raw(config: PipelineConfig, table: str, filename: str, text: str) -> None:
    path = config.local_path(f"{config.raw_uri}{table}/{filename}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode())


def assert_valid_table_input(table: dict) -> None:
    """The JSON is accepted by botocore as Glue CreateTable's TableInput."""
    model = botocore.session.get_session().get_service_model("glue")
    shape = model.operation_model("CreateTable").input_shape
    report = ParamValidator().validate({"DatabaseName": "db", "TableInput": table}, shape)
    assert not report.has_errors(), report.generate_report()


def test_crawl_of_generated_data_gives_the_contract_types(tmp_path: Path) -> None:
    sales, customers = tmp_path / "sales.csv", tmp_path / "customers.json"
    for cmd in (
        ["generate_sample_data.py", "--rows", "300", "--customers", "40", "--seed", "3"],
        ["generate_customer_data.py", "--customers", "40", "--seed", "3"],
    ):
        out = sales if cmd[0].startswith("generate_sample") else customers
        subprocess.run([sys.executable, *cmd, "--output", str(out)], cwd=REPO, check=True)
    config = local_config(tmp_path)
    upload_raw(LocalStorage(config.lake), config, sales, customers)

    tables = crawl_local(config)

    assert sorted(tables) == ["customer_demographics_json", "sales_data_csv"]
    assert columns(tables["sales_data_csv"]) == {
        "transaction_id": "string",
        "date": "date",
        "customer_id": "string",
        "product": "string",
        "quantity": "bigint",
        "unit_price": "double",
        "region": "string",
        "total_amount": "double",
    }
    assert columns(tables["customer_demographics_json"]) == {
        "customer_id": "string",
        "age_group": "string",
        "membership_tier": "string",
        "signup_date": "date",
    }
    sales_table = tables["sales_data_csv"]
    assert sales_table["Parameters"]["classification"] == "csv"
    assert sales_table["Parameters"]["recordCount"] == "300"
    assert sales_table["StorageDescriptor"]["Location"] == "s3://crawl-raw/input/sales_data_csv/"
    assert tables["customer_demographics_json"]["Parameters"]["recordCount"] == "40"
    for table in tables.values():
        assert_valid_table_input(table)
    # The catalog on disk holds the same tables, one JSON file each.
    assert load_catalog(config) == tables
    assert sorted(p.name for p in catalog_dir(config).iterdir()) == [
        "customer_demographics_json.json",
        "sales_data_csv.json",
    ]


def test_awkward_csv_empty_and_null_columns_dates_and_quoted_commas(tmp_path: Path) -> None:
    config = local_config(tmp_path)
    put_raw(
        config,
        "awkward_csv",
        "part-1.csv",
        "id,Name,empty,all_null,day,seen_at,amount,flag,\n"
        '1,"Smith, Jane",,NULL,2024-01-05,2024-01-05 10:00:00,1.5,true,x\n'
        '2,"O\'Neil, ""Bob""",,NULL,2024-02-29,2024-01-06 11:30:00,2,false,y\n'
        "3,plain,,NULL,2024-12-31,2024-01-07 00:00:00,-3,true,z\n",
    )

    table = crawl_local(config)["awkward_csv"]

    assert columns(table) == {
        "id": "bigint",
        "name": "string",  # names are lower-cased, as Glue does
        "empty": "string",  # no values at all: string
        "all_null": "string",
        "day": "date",
        "seen_at": "timestamp",
        "amount": "double",
        "flag": "boolean",
        "col8": "string",  # an empty header gets Glue's colN name
    }
    assert table["Parameters"]["recordCount"] == "3"
    assert_valid_table_input(table)


def test_csv_with_a_bad_value_late_in_a_column_widens_to_string(tmp_path: Path) -> None:
    config = local_config(tmp_path)
    rows = "".join(f"{i},2024-01-{i % 28 + 1:02d}\n" for i in range(1, 5000))
    put_raw(config, "late_csv", "a.csv", "n,d\n" + rows + "N/A,not a date\n")
    assert columns(crawl_local(config)["late_csv"]) == {"n": "string", "d": "string"}


def test_awkward_ndjson_missing_keys_nulls_and_date_like_strings(tmp_path: Path) -> None:
    config = local_config(tmp_path)
    put_raw(
        config,
        "awkward_json",
        "a.json",
        '{"customer_id":"CUST0001","signup_date":"2024-01-02","seen":"2024-01-02T10:00:00",'
        '"score":3,"nothing":null,"vip":true}\n'
        '{"customer_id":"CUST0002","signup_date":"2023-12-31","seen":"2024-01-03T00:00:00",'
        '"score":4.5,"nothing":null}\n',
    )
    table = crawl_local(config)["awkward_json"]
    assert columns(table) == {
        "customer_id": "string",
        "signup_date": "date",  # every value is a plain YYYY-MM-DD
        "seen": "timestamp",
        "score": "double",
        "nothing": "string",
        "vip": "boolean",
    }
    assert table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"] == (
        "org.openx.data.jsonserde.JsonSerDe"
    )


def test_files_of_one_table_are_merged_with_widened_types(tmp_path: Path) -> None:
    config = local_config(tmp_path)
    put_raw(config, "parts", "a.csv", "k,v\n1,10\n")
    put_raw(config, "parts", "b.csv", "k,v,extra\n2,2.5,x\n")
    table = crawl_local(config)["parts"]
    assert columns(table) == {"k": "bigint", "v": "double", "extra": "string"}
    assert table["Parameters"]["recordCount"] == "2"
    assert table["Parameters"]["objectCount"] == "2"


def test_recrawl_updates_the_catalog(tmp_path: Path) -> None:
    config = local_config(tmp_path)
    put_raw(config, "sales_data_csv", "sales_data.csv", "transaction_id,quantity\nT1,1\n")
    crawl_local(config)
    put_raw(
        config,
        "sales_data_csv",
        "sales_data.csv",
        "transaction_id,quantity,region\nT1,1.5,North\nT2,2,South\n",
    )

    crawl_local(config)

    table = json.loads((catalog_dir(config) / "sales_data_csv.json").read_text())
    assert columns(table) == {"transaction_id": "string", "quantity": "double", "region": "string"}
    assert table["Parameters"]["recordCount"] == "2"


def test_crawl_without_raw_data_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(CrawlerError, match="nothing to crawl"):
        crawl_local(local_config(tmp_path))


# --- aws ------------------------------------------------------------------------------


@pytest.fixture
def glue(aws_env):  # noqa: F811
    config = PipelineConfig(prefix="crawl", target="aws", region=REGION, endpoint_url=None)
    with mock_aws():
        client = boto3.client("glue", region_name=REGION)
        client.create_crawler(
            Name=config.crawler_name,
            Role="arn:aws:iam::123456789012:role/glue",
            DatabaseName=config.database,
            Targets={"S3Targets": [{"Path": config.raw_uri}]},
        )
        yield SimpleNamespace(client=client, config=config)
    state_manager.unset_transition(model_name="glue::crawl")


def test_aws_crawler_is_started_and_awaited(glue) -> None:
    state_manager.set_transition(model_name="glue::crawl", transition={"progression": "immediate"})
    last = run_aws_crawler(glue.config, glue.client, poll_seconds=0)
    assert last["Status"] == "COMPLETED"
    assert glue.client.get_crawler(Name=glue.config.crawler_name)["Crawler"]["State"] == "READY"


def test_aws_crawler_times_out_with_a_clear_message(glue) -> None:
    state_manager.set_transition(
        model_name="glue::crawl", transition={"progression": "manual", "times": 1000}
    )
    sleeps: list[float] = []
    with pytest.raises(CrawlerError, match=r"crawler crawl-raw-crawler still RUNNING after 0s"):
        run_aws_crawler(
            glue.config, glue.client, timeout_seconds=0, poll_seconds=5, sleep=sleeps.append
        )


def test_aws_crawler_failure_reports_glue_error_message() -> None:
    class FailedCrawler:
        class exceptions:  # noqa: N801  (the boto3 client attribute name)
            CrawlerRunningException = type("CrawlerRunningException", (Exception,), {})
            EntityNotFoundException = type("EntityNotFoundException", (Exception,), {})

        def start_crawler(self, Name: str) -> None:  # noqa: N803
            pass

        def get_crawler(self, Name: str) -> dict:  # noqa: N803
            last = {"Status": "FAILED", "ErrorMessage": "Access denied to s3://x", "LogGroup": "g"}
            return {"Crawler": {"State": "READY", "LastCrawl": last}}

    config = PipelineConfig(prefix="crawl", target="aws")
    with pytest.raises(CrawlerError, match="status FAILED: Access denied to s3://x"):
        run_aws_crawler(config, FailedCrawler(), poll_seconds=0)


def test_aws_crawler_that_does_not_exist_says_to_deploy(aws_env) -> None:  # noqa: F811
    config = PipelineConfig(prefix="nothere", target="aws", region=REGION, endpoint_url=None)
    with mock_aws():
        with pytest.raises(CrawlerError, match="does not exist: deploy"):
            run_aws_crawler(config, boto3.client("glue", region_name=REGION), poll_seconds=0)


def test_ragged_csv_rows_are_left_to_the_job_and_the_rest_is_typed(tmp_path: Path) -> None:
    config = local_config(tmp_path)
    put_raw(
        config, "sales_data_csv", "s.csv", "id,qty,price\n1,2,3.5\n2,3\n3,4,5.25,extra\n4,5,6.0\n"
    )
    table = crawl_local(config)["sales_data_csv"]
    assert columns(table) == {"id": "bigint", "qty": "bigint", "price": "double"}
    assert table["Parameters"]["recordCount"] == "2"


def test_customers_as_a_json_array_are_typed_per_element(tmp_path: Path) -> None:
    config = local_config(tmp_path)
    records = [
        {"customer_id": "CUST0001", "age_group": "18-25", "visits": 3},
        {"customer_id": "CUST0002", "age_group": None, "visits": 5},
    ]
    put_raw(config, "customer_demographics_json", "c.json", json.dumps(records, indent=2))
    table = crawl_local(config)["customer_demographics_json"]
    assert columns(table) == {"customer_id": "string", "age_group": "string", "visits": "bigint"}
    assert table["Parameters"]["recordCount"] == "2"


def test_json_array_and_ndjson_of_the_same_records_give_the_same_table(tmp_path: Path) -> None:
    records = [
        {"customer_id": "CUST0001", "membership_tier": "Gold", "signup_date": "2022-03-14"},
        {"customer_id": "CUST0002", "membership_tier": None, "signup_date": "2023-07-01"},
        {"customer_id": "CUST0003", "visits": 4, "signup_date": None},
    ]
    as_lines = "".join(json.dumps(r) + "\n" for r in records)
    as_array = "\ufeff" + json.dumps(records, indent=2)  # a BOM, as some editors write
    tables = {}
    for layout, text in (("ndjson", as_lines), ("array", as_array)):
        config = local_config(tmp_path / layout)
        put_raw(config, "customer_demographics_json", "c.json", text)
        tables[layout] = crawl_local(config)["customer_demographics_json"]
    expected = {
        "customer_id": "string",
        "membership_tier": "string",
        "signup_date": "date",  # every value a plain YYYY-MM-DD, in both layouts
        "visits": "bigint",
    }
    for table in tables.values():
        assert columns(table) == expected
        assert table["Parameters"]["recordCount"] == "3"


def test_an_empty_json_array_is_a_table_of_no_rows(tmp_path: Path) -> None:
    config = local_config(tmp_path)
    put_raw(config, "customer_demographics_json", "empty.json", "[]\n")
    put_raw(config, "customer_demographics_json", "more.json", '{"customer_id": "C1"}\n')
    table = crawl_local(config)["customer_demographics_json"]
    assert columns(table) == {"customer_id": "string"}
    assert table["Parameters"]["recordCount"] == "1"
