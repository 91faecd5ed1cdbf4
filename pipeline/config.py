"""Every name the pipeline uses, derived from one prefix.

No bucket, database, crawler, job, role or workgroup name is written anywhere else:
scripts build a :class:`PipelineConfig` (from CLI flags and environment) and ask it.

S3 bucket names are global across every AWS account. With an ``account_id`` (the aws
CLIs ask STS for it: ``pipeline.targets.resolve_config``) the buckets are named
``<prefix>-<account>-<region>-raw`` and so on, as CDK names its bootstrap bucket, so
the default names are this account's and region's alone. Without one (the local target,
the in-process tests) they are ``<prefix>-raw`` and so on.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from sales_etl import published

DEFAULT_PREFIX = "sales-pipeline"
DEFAULT_REGION = "us-east-1"
DEFAULT_LAKE = "lake"
# Your own data never shares the sample's lake or its committed charts: with your own
# files the lake defaults to this folder, and the charts go to <lake>/_charts/.
OWN_DATA_LAKE = "own-lake"
OWN_DATA_CHARTS = "_charts"
# The generate stage writes the sample's raw files here, under the lake.
GENERATED_DIR = "_generated"
TARGETS = ("local", "aws")

# The Glue database of the default prefix; any other prefix's is DATABASE_<prefix>, its
# hyphens as underscores (Athena names take no hyphen unquoted), so two prefixes in one
# account and region never share one.
DATABASE = "sales_analytics_db"

# What a plan shows where the account id goes when no AWS call was made to learn it.
# As long as an account id (12 characters), so the length checks still hold for it.
ACCOUNT_PLACEHOLDER = "<account-id>"
MAX_BUCKET_NAME = 63

# The repository's own files that the pipeline runs or uploads.
REPO_ROOT = Path(__file__).resolve().parents[1]
JOB_SCRIPT = REPO_ROOT / "glue_etl_job.py"
# The job's code, shipped beside the script as a zip (pipeline.package).
JOB_PACKAGE = REPO_ROOT / "sales_etl"
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
# Records a newer file's version replaced, and the job's state (what it has processed).
SUPERSEDED_PREFIX = "superseded/"
STATE_PREFIX = "_state/"

ENRICHED_TABLE = "enriched_sales"
SUMMARY_TABLE = "sales_summary"
QUARANTINE_TABLE = "quarantine"

SCRIPT_KEY = "scripts/glue_etl_job.py"
# The job's package beside it (pipeline.package), for --extra-py-files.
PACKAGE_KEY = "scripts/sales_etl.zip"

# CloudWatch: the namespace the Glue job publishes its run metrics to (each with the
# dimension Pipeline=<prefix>); the Glue role may put metrics in no other of its own.
# The job names them (sales_etl/published.py); the alarm reads the same names.
METRICS_NAMESPACE = published.NAMESPACE
METRICS_DIMENSION = published.PIPELINE_DIMENSION

# The data-quality check's default, on both targets (run_pipeline.py's and deploy.py's
# --max-quarantine-rate, and the CloudWatch alarm's threshold): at most 5% of the rows
# read may be quarantined.
DEFAULT_MAX_QUARANTINE_RATE = 0.05
ATHENA_RESULTS_PREFIX = "results/"
# Each run's HTML report, in the results bucket beside the Athena results (kept: no expiry).
REPORTS_PREFIX = "reports/"


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name) or default


# S3's rules for a bucket name (general purpose buckets), less dots, which the pipeline
# never puts in a name: 3 to 63 characters, lowercase letters, digits and hyphens,
# starting and ending with a letter or digit, and none of the reserved prefixes and
# suffixes.
_BUCKET_CHARS = re.compile(r"[a-z0-9][a-z0-9-]*[a-z0-9]")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", "--x-s3", "--table-s3")


def bucket_name_problem(name: str) -> str | None:
    """What makes ``name`` an invalid S3 bucket name, or None when S3 accepts it."""
    if not 3 <= len(name) <= MAX_BUCKET_NAME:
        return f"{len(name)} characters; S3 allows 3 to {MAX_BUCKET_NAME}"
    if not _BUCKET_CHARS.fullmatch(name):
        return (
            "S3 allows only lowercase letters, digits and hyphens, starting and ending "
            "with a letter or digit"
        )
    for reserved in _RESERVED_PREFIXES:
        if name.startswith(reserved):
            return f"S3 reserves names starting with {reserved!r}"
    for reserved in _RESERVED_SUFFIXES:
        if name.endswith(reserved):
            return f"S3 reserves names ending with {reserved!r}"
    return None


def _session_region(profile: str | None) -> str | None:
    """The region the AWS config files give the profile (or the default profile)."""
    import boto3
    from botocore.exceptions import ProfileNotFound

    try:
        return boto3.Session(profile_name=profile).region_name
    except ProfileNotFound as exc:
        raise ValueError(f"AWS profile {profile!r} is not in the AWS config files") from exc


@dataclass(frozen=True)
class PipelineConfig:
    """Names and locations for one deployment of the pipeline."""

    prefix: str = field(default_factory=lambda: _env("PIPELINE_PREFIX", DEFAULT_PREFIX))
    target: str = field(default_factory=lambda: _env("PIPELINE_TARGET", "local"))
    lake: Path = field(default_factory=lambda: Path(_env("PIPELINE_LAKE", DEFAULT_LAKE)))
    # None: resolved in __post_init__ from the environment (AWS_REGION,
    # AWS_DEFAULT_REGION), then, on the aws target, the profile's region in the AWS
    # config files, then DEFAULT_REGION. Never None after construction.
    region: str | None = None
    profile: str | None = field(default_factory=lambda: _env("AWS_PROFILE"))
    endpoint_url: str | None = field(default_factory=lambda: _env("AWS_ENDPOINT_URL"))
    # The AWS account the buckets are named for; None keeps the account-free names.
    account_id: str | None = None

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, not {self.target!r}")
        if not self.prefix or not re.fullmatch(r"[a-z0-9-]+", self.prefix):
            raise ValueError(
                f"prefix {self.prefix!r} must be lowercase letters, digits and hyphens "
                "(it becomes part of S3 bucket names)"
            )
        if self.account_id is not None and not (
            self.account_id == ACCOUNT_PLACEHOLDER or re.fullmatch(r"\d{12}", self.account_id)
        ):
            raise ValueError(f"account id {self.account_id!r} must be 12 digits")
        if self.region is None:
            region = _env("AWS_REGION", _env("AWS_DEFAULT_REGION"))
            if region is None and self.target == "aws":
                region = _session_region(self.profile)
            object.__setattr__(self, "region", region or DEFAULT_REGION)
        object.__setattr__(self, "lake", Path(self.lake))
        self._check_bucket_names()

    def _check_bucket_names(self) -> None:
        for name in self.buckets:
            # The placeholder stands for 12 digits: check the name an account would give.
            problem = bucket_name_problem(name.replace(ACCOUNT_PLACEHOLDER, "0" * 12))
            if problem is None:
                continue
            # The account, region and longest suffix leave this much room for the prefix.
            longest = MAX_BUCKET_NAME - (max(map(len, self.buckets)) - len(self.prefix))
            hint = (
                f"; choose a --prefix of at most {longest} characters"
                if len(name) > MAX_BUCKET_NAME and longest > 0
                else ""
            )
            raise ValueError(
                f"bucket name {name!r} from prefix {self.prefix!r} is not a valid S3 bucket "
                f"name: {problem}{hint}"
            )

    # S3 buckets
    @property
    def bucket_stem(self) -> str:
        """What every bucket name starts with: the prefix, and the account and region if known."""
        if self.account_id is None:
            return self.prefix
        return f"{self.prefix}-{self.account_id}-{self.region}"

    @property
    def raw_bucket(self) -> str:
        return f"{self.bucket_stem}-raw"

    @property
    def processed_bucket(self) -> str:
        return f"{self.bucket_stem}-processed"

    @property
    def scripts_bucket(self) -> str:
        return f"{self.bucket_stem}-scripts"

    @property
    def results_bucket(self) -> str:
        return f"{self.bucket_stem}-athena-results"

    @property
    def buckets(self) -> tuple[str, str, str, str]:
        return (self.raw_bucket, self.processed_bucket, self.scripts_bucket, self.results_bucket)

    # Glue, IAM and Athena names
    @property
    def database(self) -> str:
        return database_name(self.prefix)

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

    # Operations: the Glue workflow and its triggers, failure alerts, the quality alarm
    @property
    def workflow_name(self) -> str:
        return f"{self.prefix}-workflow"

    @property
    def start_trigger_name(self) -> str:
        """The workflow's first trigger (on demand or on a schedule): starts the crawler."""
        return f"{self.prefix}-workflow-start"

    @property
    def job_trigger_name(self) -> str:
        """The workflow's conditional trigger: starts the job when the crawl SUCCEEDED."""
        return f"{self.prefix}-workflow-after-crawl"

    @property
    def failures_rule_name(self) -> str:
        return f"{self.prefix}-failures"

    @property
    def alerts_topic_name(self) -> str:
        return f"{self.prefix}-alerts"

    @property
    def alerts_key_alias(self) -> str:
        """The alias of the customer managed KMS key that encrypts the alerts topic."""
        return f"alias/{self.prefix}-alerts"

    @property
    def quarantine_alarm_name(self) -> str:
        return f"{self.prefix}-quarantine-rate"

    @property
    def alerts_dead_letter_queue_name(self) -> str:
        """The SQS queue that keeps what the failures rule could not deliver to the topic."""
        return f"{self.prefix}-alerts-dlq"

    @property
    def arrivals_rule_name(self) -> str:
        """The rule that tells the workflow a raw input landed (``up --on-arrival``)."""
        return f"{self.prefix}-arrivals"

    @property
    def events_role_name(self) -> str:
        """The role the arrivals rule notifies the workflow as (``glue:NotifyEvent``)."""
        return f"{self.prefix}-events-role"

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
    def package_uri(self) -> str:
        return f"s3://{self.scripts_bucket}/{PACKAGE_KEY}"

    @property
    def athena_results_uri(self) -> str:
        return f"s3://{self.results_bucket}/{ATHENA_RESULTS_PREFIX}"

    @property
    def reports_uri(self) -> str:
        return f"s3://{self.results_bucket}/{REPORTS_PREFIX}"

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


def database_name(prefix: str) -> str:
    """The Glue database of ``prefix``: DATABASE for the default prefix, else
    ``DATABASE_<prefix>`` with hyphens as underscores (one name per prefix: prefixes
    hold no underscore, and every other prefix's name is longer than DATABASE)."""
    if prefix == DEFAULT_PREFIX:
        return DATABASE
    return f"{DATABASE}_{prefix.replace('-', '_')}"


def split_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into ``(bucket, key)``; the key may be empty."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in URI: {uri!r}")
    return bucket, key
