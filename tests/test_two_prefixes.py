"""Two deployments, two prefixes, one account and region: no name in common, each `up`
and `down` minds its own; the default prefix keeps the names it always had."""

from __future__ import annotations

import dataclasses

import pytest
from moto_fixtures import ACCOUNT
from test_template import Stack

from pipeline import infra
from pipeline.config import PipelineConfig, database_name
from pipeline.infra.template import template


def test_the_database_derives_from_the_prefix_and_the_default_keeps_its_name():
    assert database_name("sales-pipeline") == "sales_analytics_db"
    assert database_name("acme-sales") == "sales_analytics_db_acme_sales"
    assert database_name("db") == "sales_analytics_db_db"  # never the default's name
    default = PipelineConfig(target="aws", region="us-east-1", prefix="sales-pipeline")
    assert (default.database, default.role_name) == (
        "sales_analytics_db",
        "sales-pipeline-glue-role",
    )
    assert default.sql_parameters()["database"] == "sales_analytics_db"


def test_two_prefixes_plan_no_name_in_common():
    one = PipelineConfig(prefix="sales-pipeline", target="aws", region="us-east-1",
                         account_id=ACCOUNT)  # fmt: skip
    two = dataclasses.replace(one, prefix="acme")
    names = [{(r.kind, r.name) for r in infra.plan(c)} for c in (one, two)]
    assert len(names[0]) == len(infra.plan(one))  # every resource has its own name
    assert {n for _, n in names[0]} & {n for _, n in names[1]} == set()
    assert one.sql_parameters()["database"] != two.sql_parameters()["database"]


@pytest.mark.parametrize(
    ("prefix", "database"),
    [("sales-pipeline", "sales_analytics_db"), ("acme-sales", "sales_analytics_db_acme_sales")],
)
def test_the_template_names_the_database_as_up_does(prefix, database):
    stack = Stack(template(), {"Prefix": prefix}, ACCOUNT, "us-east-1")
    [db] = stack.of_type("AWS::Glue::Database")
    assert db["DatabaseInput"]["Name"] == database
    [crawler] = stack.of_type("AWS::Glue::Crawler")
    assert crawler["DatabaseName"] == database
    [role] = stack.of_type("AWS::IAM::Role")
    assert role["RoleName"] == f"{prefix}-glue-role"


def test_two_prefixes_deploy_side_by_side_and_down_takes_only_its_own(aws, config):
    other = dataclasses.replace(config, prefix="other-sales")
    infra.up(config, aws, tables=False)
    infra.up(other, aws, tables=False)  # no refusal: nothing of the first is in its way
    assert infra.up(config, aws, tables=False) == []
    assert infra.up(other, aws, tables=False) == []
    databases = {d["Name"]: d["Parameters"] for d in aws.glue.get_databases()["DatabaseList"]}
    assert {name: p["pipeline-prefix"] for name, p in databases.items()} == {
        "sales_analytics_db_test_sales": "test-sales",
        "sales_analytics_db_other_sales": "other-sales",
    }
    roles = sorted(r["RoleName"] for r in aws.iam.list_roles()["Roles"])
    assert roles == ["other-sales-glue-role", "test-sales-glue-role"]
    crawlers = {c["Name"]: c["DatabaseName"] for c in aws.glue.get_crawlers()["Crawlers"]}
    assert crawlers == {
        "test-sales-raw-crawler": "sales_analytics_db_test_sales",
        "other-sales-raw-crawler": "sales_analytics_db_other_sales",
    }

    infra.down(config, aws)
    assert [d["Name"] for d in aws.glue.get_databases()["DatabaseList"]] == [
        "sales_analytics_db_other_sales"
    ]
    assert [r["RoleName"] for r in aws.iam.list_roles()["Roles"]] == ["other-sales-glue-role"]
    assert infra.up(other, aws, tables=False) == []  # the other deployment is whole
