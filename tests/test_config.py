from pathlib import Path

import pytest

from pipeline.config import PipelineConfig, split_s3_uri


def test_every_bucket_name_derives_from_the_prefix():
    config = PipelineConfig(prefix="acme-sales", target="local", lake=Path("/tmp/lake"))
    assert config.buckets == (
        "acme-sales-raw",
        "acme-sales-processed",
        "acme-sales-scripts",
        "acme-sales-athena-results",
    )
    assert config.raw_sales_uri == "s3://acme-sales-raw/input/sales_data_csv/"
    assert config.enriched_uri == "s3://acme-sales-processed/enriched/"
    assert config.database == "sales_analytics_db_acme_sales"


def test_local_path_mirrors_s3_layout():
    config = PipelineConfig(prefix="p", target="local", lake=Path("/data/lake"))
    assert config.local_path("s3://p-raw/input/x.csv") == Path("/data/lake/p-raw/input/x.csv")


@pytest.mark.parametrize("prefix", ["", "Upper", "has_underscore", "dots.bad"])
def test_prefix_that_cannot_name_a_bucket_is_rejected(prefix):
    with pytest.raises(ValueError):
        PipelineConfig(prefix=prefix, target="local")


def test_unknown_target_is_rejected():
    with pytest.raises(ValueError, match="target"):
        PipelineConfig(target="gcp")


def test_split_s3_uri():
    assert split_s3_uri("s3://b/k/x") == ("b", "k/x")
    assert split_s3_uri("s3://b") == ("b", "")
    with pytest.raises(ValueError):
        split_s3_uri("/local/path")
