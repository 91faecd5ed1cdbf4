"""The Athena tables: each must read this prefix's processed bucket (against moto)."""

from __future__ import annotations

import pytest
from moto_fixtures import run_on_aws

from pipeline import infra
from pipeline.errors import DeployError, StageFailed


def _athena_table(glue, name, location, template):
    """Create a table in the catalog as Athena's DDL would (moto runs no SQL)."""
    glue.create_table(
        DatabaseName="sales_analytics_db_test_sales",
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
    assert "DROP TABLE sales_analytics_db_test_sales.enriched_sales:" in message
    assert "DROP TABLE sales_analytics_db_test_sales.sales_summary" not in message

    sales, customers = tmp_path / "s.csv", tmp_path / "c.json"
    sales.write_text("transaction_id\nT1\n")
    customers.write_text("{}\n")
    with pytest.raises(StageFailed) as from_run:
        run_on_aws(config, deployed, sales, customers)
    assert isinstance(from_run.value.__cause__, DeployError)
    assert expected_problem in str(from_run.value.__cause__)
    assert deployed.s3.list_objects_v2(Bucket="test-sales-raw").get("Contents") is None
