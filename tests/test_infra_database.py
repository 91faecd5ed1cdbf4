"""The Glue database: its drift and its ownership by one prefix (against moto)."""

from __future__ import annotations

import pytest
from moto_fixtures import DATABASE, MARKS, assert_repaired, run_on_aws

from pipeline import infra
from pipeline.errors import DeployError, StageFailed

OTHER_DB_PARAMETERS = {"pipeline-prefix": "other-sales", "managed-by": "deploy.py"}


def test_up_refuses_a_database_with_our_name_marked_for_another_prefix(aws, config):
    # Two prefixes never share a name (tests/test_two_prefixes.py): this one was made by
    # hand with our name and another prefix's marks.
    aws.glue.create_database(DatabaseInput={"Name": DATABASE, "Parameters": OTHER_DB_PARAMETERS})

    with pytest.raises(DeployError) as refused:
        infra.up(config, aws, tables=False)

    message = str(refused.value)
    assert (
        f"glue-database {DATABASE} (its pipeline-prefix parameter says it belongs to prefix "
        "'other-sales')" in message
    )
    assert message.endswith("To go on, choose another --prefix (every name derives from it).")
    assert aws.glue.get_database(Name=DATABASE)["Database"]["Parameters"] == OTHER_DB_PARAMETERS
    assert aws.s3.list_buckets()["Buckets"] == []  # refused before any change


@pytest.mark.parametrize("parameters", [{"pipeline-prefix": "other"}, {"team": "finance"}])
def test_down_keeps_a_database_that_up_did_not_make(aws, config, parameters):
    aws.glue.create_database(
        DatabaseInput={"Name": "sales_analytics_db_test_sales", "Parameters": parameters}
    )
    with pytest.raises(DeployError):
        infra.up(config, aws, tables=False)
    infra.down(config, aws)
    assert (
        aws.glue.get_database(Name="sales_analytics_db_test_sales")["Database"]["Parameters"]
        == parameters
    )


def test_run_stops_before_uploading_when_the_database_belongs_to_another_prefix(
    deployed, config, tmp_path
):
    # As if someone had re-marked our database for other-sales after it was deployed.
    deployed.glue.update_database(
        Name="sales_analytics_db_test_sales",
        DatabaseInput={"Name": "sales_analytics_db_test_sales", "Parameters": OTHER_DB_PARAMETERS},
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


def test_up_puts_back_the_database_description_changed_by_hand(drift, config):
    glue = drift.glue
    glue.update_database(
        Name=DATABASE,
        DatabaseInput={"Name": DATABASE, "Description": "scratch space", "Parameters": MARKS},
    )
    assert glue.get_database(Name=DATABASE)["Database"]["Description"] == "scratch space"

    assert_repaired(config, drift, ["updated database sales_analytics_db_test_sales"])

    db = glue.get_database(Name=DATABASE)["Database"]
    assert db["Description"] == (
        "Sales pipeline: raw tables (crawler) and curated tables (Athena DDL)"
    )
    assert db["Parameters"] == MARKS


def test_up_does_not_re_mark_a_database_that_lost_a_mark_it_refuses_and_changes_nothing(
    drift, config
):
    # Marks are the proof of ownership: `up` repairs only what carries them, never adopts.
    glue = drift.glue
    half_marked = {"pipeline-prefix": "test-sales"}
    glue.update_database(Name=DATABASE, DatabaseInput={"Name": DATABASE, "Parameters": half_marked})

    with pytest.raises(DeployError) as refused:
        infra.up(config, drift, tables=False)

    assert (
        "glue-database sales_analytics_db_test_sales (its managed-by parameter is not deploy.py)"
        in str(refused.value)
    )
    assert glue.get_database(Name=DATABASE)["Database"]["Parameters"] == half_marked
