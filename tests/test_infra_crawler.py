"""The Glue crawler: its drift, and its role named by ARN or by name (against moto)."""

from __future__ import annotations

import pytest
from moto_fixtures import (
    ACCOUNT,
    CRAWLER,
    CUSTOMERS_URI,
    DATABASE,
    MARKS,
    ROLE_ARN,
    SALES_URI,
    GlueDouble,
    assert_repaired,
    glue_tags,
    with_clients,
)

from pipeline import infra


class TestOneDeployment:
    """One `up` for these cases: each changes the crawler by hand and checks that the next
    `up` puts it back."""

    @pytest.mark.parametrize(
        "drifted",
        [
            {"Role": f"arn:aws:iam::{ACCOUNT}:role/someone-elses-role"},
            {"Targets": {"S3Targets": [{"Path": "s3://test-sales-raw/input/"}]}},
            {
                "Targets": {
                    "S3Targets": [
                        {"Path": SALES_URI},
                        {"Path": CUSTOMERS_URI},
                        {"Path": "s3://someone-elses-bucket/"},
                    ]
                }
            },
            {
                "SchemaChangePolicy": {
                    "UpdateBehavior": "UPDATE_IN_DATABASE",
                    "DeleteBehavior": "DEPRECATE_IN_DATABASE",
                },
                "RecrawlPolicy": {"RecrawlBehavior": "CRAWL_EVERYTHING"},
            },
        ],
        ids=["role", "one-target-for-both", "extra-target", "recrawl-everything"],
    )
    def test_up_puts_back_a_crawler_changed_by_hand(
        self, deployed_once, moto_updates, config, drifted
    ):
        glue = deployed_once.glue
        glue.update_crawler(Name=CRAWLER, **drifted)
        crawler = glue.get_crawler(Name=CRAWLER)["Crawler"]
        assert {k: crawler[k] for k in drifted} == drifted

        assert_repaired(config, deployed_once, ["updated crawler test-sales-raw-crawler"])

        crawler = glue.get_crawler(Name=CRAWLER)["Crawler"]
        assert crawler["Role"] == ROLE_ARN
        assert crawler["DatabaseName"] == DATABASE
        assert crawler["Targets"]["S3Targets"] == [{"Path": SALES_URI}, {"Path": CUSTOMERS_URI}]
        assert crawler["SchemaChangePolicy"] == {"UpdateBehavior": "LOG", "DeleteBehavior": "LOG"}
        assert crawler["RecrawlPolicy"] == {"RecrawlBehavior": "CRAWL_NEW_FOLDERS_ONLY"}
        assert glue_tags(glue, "crawler", CRAWLER) == MARKS


def _crawler_as_up_makes_it(glue, role):
    glue.create_crawler(
        Name="test-sales-raw-crawler",
        Role=role,
        DatabaseName="sales_analytics_db_test_sales",
        Description="Catalogs the raw sales CSV and customers NDJSON",
        Targets={
            "S3Targets": [
                {"Path": "s3://test-sales-raw/input/sales_data_csv/"},
                {"Path": "s3://test-sales-raw/input/customer_demographics_json/"},
            ]
        },
        SchemaChangePolicy={"UpdateBehavior": "LOG", "DeleteBehavior": "LOG"},
        RecrawlPolicy={"RecrawlBehavior": "CRAWL_NEW_FOLDERS_ONLY"},
        Tags=MARKS,
    )


def test_a_crawler_whose_role_reads_as_its_name_is_not_updated(aws, config):
    # Real GetCrawler answers the role's name where up passed its ARN.
    _crawler_as_up_makes_it(aws.glue, "test-sales-glue-role")
    glue = GlueDouble(aws.glue, "update_crawler")

    changes = infra.up(config, with_clients(aws, glue=glue), tables=False)

    assert [c for c in changes if "crawler" in c] == []
    assert glue.sent == []
    assert infra.up(config, with_clients(aws, glue=glue), tables=False) == []


@pytest.mark.parametrize("other", ["someone-elses-role", f"arn:aws:iam::{ACCOUNT}:role/other"])
def test_a_crawler_with_another_role_is_put_back(aws, config, other):
    _crawler_as_up_makes_it(aws.glue, other)
    glue = GlueDouble(aws.glue, "update_crawler")

    changes = infra.up(config, with_clients(aws, glue=glue), tables=False)

    assert "updated crawler test-sales-raw-crawler" in changes
    assert [sent["Role"] for sent in glue.sent] == [ROLE_ARN]
