"""Every name the pipeline uses, derived from one prefix.

No bucket, database, crawler, job, role or workgroup name is written anywhere else:
scripts build a :class:`PipelineConfig` (from CLI flags and environment) and ask it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PREFIX = "sales-pipeline"
DEFAULT_REGION = "us-east-1"
DEFAULT_LAKE = "lake"
TARGETS = ("local", "aws")

DATABASE = "sales_analytics_db"

# The repository's own files that the pipeline runs or uploads.
REPO_ROOT = Path(__file__).resolve().parents[1]
JOB_SCRIPT = REPO_ROOT / "glue_etl_job.py"
QUERIES_FILE = REPO_ROOT / "athena_queries.sql"

# Raw layout: one folder per source so a crawler makes one table each, named after
# the folder: `sales_data_csv` and `customer_demographics_json`.
RAW_SALES_TABLE = "sales_data_csv"
RAW_CUSTOMERS_TABLE = "customer_demographics_json"
RAW_SALES_PREFIX = f"input/{RAW_SALES_TABLE}/"
RAW_CUSTOMERS_PREFIX = f"input/{RAW_CUSTOMERS_TABLE}/"
SALES_FILENAME = "sales_data.csv"
CUSTOMERS_FILENAME = "customer_demographics.json"

# Processed layout, under the processed bucket.
ENRICHED_PREFIX = "enriched/"
SUMMARY_PREFIX = "sales_summary/"
QUARANTINE_PREFIX = "quarantine/"
RUNS_PREFIX = "_runs/"

ENRICHED_TABLE = "enriched_sales"
SUMMARY_TABLE = "sales_summary"

SCRIPT_KEY = "scripts/glue_etl_job.py"
ATHENA_RESULTS_PREFIX = "results/"


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name) or default


@dataclass(frozen=True)
class PipelineConfig:
    """Names and locations for one deployment of the pipeline."""

    prefix: str = field(default_factory=lambda: _env("PIPELINE_PREFIX", DEFAULT_PREFIX))
    target: str = field(default_factory=lambda: _env("PIPELINE_TARGET", "local"))
    lake: Path = field(default_factory=lambda: Path(_env("PIPELINE_LAKE", DEFAULT_LAKE)))
    region: str = field(
        default_factory=lambda: _env("AWS_REGION", _env("AWS_DEFAULT_REGION", DEFAULT_REGION))
    )
    profile: str | None = field(default_factory=lambda: _env("AWS_PROFILE"))
    endpoint_url: str | None = field(default_factory=lambda: _env("AWS_ENDPOINT_URL"))

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, not {self.target!r}")
        if (
            not self.prefix
            or not self.prefix.replace("-", "").isalnum()
            or self.prefix != self.prefix.lower()
        ):
            raise ValueError(
                f"prefix {self.prefix!r} must be lowercase letters, digits and hyphens "
                "(it becomes part of S3 bucket names)"
            )
        object.__setattr__(self, "lake", Path(self.lake))

    # S3 buckets
    @property
    def raw_bucket(self) -> str:
        return f"{self.prefix}-raw"

    @property
    def processed_bucket(self) -> str:
        return f"{self.prefix}-processed"

    @property
    def scripts_bucket(self) -> str:
        return f"{self.prefix}-scripts"

    @property
    def results_bucket(self) -> str:
        return f"{self.prefix}-athena-results"

    @property
    def buckets(self) -> tuple[str, str, str, str]:
        return (self.raw_bucket, self.processed_bucket, self.scripts_bucket, self.results_bucket)

    # Glue, IAM and Athena names
    @property
    def database(self) -> str:
        return DATABASE

    @property
    def crawler_name(self) -> str:
        return f"{self.prefix}-raw-crawler"

    @property
    def job_name(self) -> str:
        return f"{self.prefix}-etl-job"

    @property
    def role_name(self) -> str:
        return f"{self.prefix}-glue-role"

    @property
    def workgroup(self) -> str:
        return f"{self.prefix}-workgroup"

    # URIs (the same on both targets; the local lake maps them to folders)
    @property
    def raw_uri(self) -> str:
        return f"s3://{self.raw_bucket}/input/"

    @property
    def raw_sales_uri(self) -> str:
        return f"s3://{self.raw_bucket}/{RAW_SALES_PREFIX}"

    @property
    def raw_customers_uri(self) -> str:
        return f"s3://{self.raw_bucket}/{RAW_CUSTOMERS_PREFIX}"

    @property
    def processed_uri(self) -> str:
        return f"s3://{self.processed_bucket}/"

    @property
    def enriched_uri(self) -> str:
        return f"s3://{self.processed_bucket}/{ENRICHED_PREFIX}"

    @property
    def summary_uri(self) -> str:
        return f"s3://{self.processed_bucket}/{SUMMARY_PREFIX}"

    @property
    def quarantine_uri(self) -> str:
        return f"s3://{self.processed_bucket}/{QUARANTINE_PREFIX}"

    @property
    def runs_uri(self) -> str:
        return f"s3://{self.processed_bucket}/{RUNS_PREFIX}"

    @property
    def script_uri(self) -> str:
        return f"s3://{self.scripts_bucket}/{SCRIPT_KEY}"

    @property
    def athena_results_uri(self) -> str:
        return f"s3://{self.results_bucket}/{ATHENA_RESULTS_PREFIX}"

    def local_path(self, uri: str) -> Path:
        """Return the lake folder path that mirrors ``s3://bucket/key``."""
        bucket, key = split_s3_uri(uri)
        return self.lake / bucket / key

    def sql_parameters(self) -> dict[str, str]:
        """Values for the ``${...}`` placeholders in athena_queries.sql."""
        return {
            "database": self.database,
            "raw_bucket": self.raw_bucket,
            "processed_bucket": self.processed_bucket,
            "results_bucket": self.results_bucket,
        }


def split_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into ``(bucket, key)``; the key may be empty."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in URI: {uri!r}")
    return bucket, key
