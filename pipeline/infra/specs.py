"""Every resource's desired settings: pure functions of the config, and the plan `up` follows."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline.config import (
    ACCOUNT_PLACEHOLDER,
    ATHENA_RESULTS_PREFIX,
    ENRICHED_PREFIX,
    ENRICHED_TABLE,
    SUMMARY_PREFIX,
    SUMMARY_TABLE,
    PipelineConfig,
)
from pipeline.infra.policies import (  # the marks, re-exported for ownership and teardown
    MANAGED_BY_KEY,
    MANAGED_BY_VALUE,
    PREFIX_KEY,
    glue_role_policy,
    glue_trust_policy,
    partition_for_region,
    role_arn,
    tls_only_bucket_policy,
)

# The job: Glue 5.0 (Spark 3.5, Python 3.11), two G.1X workers (1 DPU each).
GLUE_VERSION = "5.0"
WORKER_TYPE = "G.1X"
NUMBER_OF_WORKERS = 2
DPU_PER_WORKER = {"G.1X": 1, "G.2X": 2, "G.4X": 4, "G.8X": 8}
JOB_TIMEOUT_MINUTES = 30
INLINE_POLICY_NAME = "glue-etl-least-privilege"

# Athena: fail any query that would scan more than 1 GiB (the data set is MBs).
BYTES_SCANNED_CUTOFF = 1024**3
ATHENA_ENGINE = "Athena engine version 3"

# Lifecycle (days).
RESULTS_EXPIRE_DAYS = 7
ABORT_MULTIPART_DAYS = 1
RAW_NONCURRENT_EXPIRE_DAYS = 30

# The tables the Athena DDL creates, each at a folder of the processed bucket.
CURATED_TABLES = {ENRICHED_TABLE: ENRICHED_PREFIX, SUMMARY_TABLE: SUMMARY_PREFIX}


def tags(config: PipelineConfig) -> dict[str, str]:
    """Return the tags every resource gets; ``down`` requires them before deleting."""
    return {MANAGED_BY_KEY: MANAGED_BY_VALUE, PREFIX_KEY: config.prefix}


def bucket_settings(config: PipelineConfig, bucket: str, partition: str = "aws") -> dict[str, Any]:
    """Return every setting ``up`` enforces on one bucket."""
    rules: list[dict[str, Any]] = [
        {
            "ID": "abort-incomplete-multipart-uploads",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_MULTIPART_DAYS},
        }
    ]
    if bucket == config.results_bucket:
        rules.append(
            {
                "ID": "expire-athena-results",
                "Status": "Enabled",
                "Filter": {"Prefix": ATHENA_RESULTS_PREFIX},
                "Expiration": {"Days": RESULTS_EXPIRE_DAYS},
            }
        )
    if bucket == config.raw_bucket:
        rules.append(
            {
                "ID": "expire-noncurrent-raw-versions",
                "Status": "Enabled",
                "Filter": {"Prefix": ""},
                "NoncurrentVersionExpiration": {"NoncurrentDays": RAW_NONCURRENT_EXPIRE_DAYS},
            }
        )
    return {
        "PublicAccessBlock": {
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
        "Encryption": {
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
        "Versioning": "Enabled" if bucket == config.raw_bucket else None,
        "Lifecycle": {"Rules": rules},
        "Policy": tls_only_bucket_policy(bucket, partition),
        "Tags": tags(config),
    }


def database_input(config: PipelineConfig) -> dict[str, Any]:
    """Return the Glue ``DatabaseInput``; the parameter marks it as this deployment's."""
    return {
        "Name": config.database,
        "Description": "Sales pipeline: raw tables (crawler) and curated tables (Athena DDL)",
        "Parameters": {PREFIX_KEY: config.prefix, MANAGED_BY_KEY: MANAGED_BY_VALUE},
    }


def crawler_spec(config: PipelineConfig, role_arn: str) -> dict[str, Any]:
    """Return the crawler definition (one S3 target per raw source)."""
    return {
        "Name": config.crawler_name,
        "Role": role_arn,
        "DatabaseName": config.database,
        "Description": "Catalogs the raw sales CSV and customers NDJSON",
        "Targets": {
            "S3Targets": [{"Path": config.raw_sales_uri}, {"Path": config.raw_customers_uri}]
        },
        "SchemaChangePolicy": {
            "UpdateBehavior": "UPDATE_IN_DATABASE",
            "DeleteBehavior": "DEPRECATE_IN_DATABASE",
        },
        "RecrawlPolicy": {"RecrawlBehavior": "CRAWL_EVERYTHING"},
    }


def job_spec(config: PipelineConfig, role_arn: str) -> dict[str, Any]:
    """Return the Glue job definition (without its name and tags)."""
    return {
        "Description": "Cleans, enriches and summarises sales into partitioned Parquet",
        "Role": role_arn,
        "Command": {"Name": "glueetl", "ScriptLocation": config.script_uri, "PythonVersion": "3"},
        "DefaultArguments": {
            "--sales_path": config.raw_sales_uri,
            "--customers_path": config.raw_customers_uri,
            "--output_path": config.processed_uri,
            "--job-language": "python",
            "--enable-metrics": "true",
            "--enable-continuous-cloudwatch-log": "true",
        },
        "ExecutionProperty": {"MaxConcurrentRuns": 1},
        "GlueVersion": GLUE_VERSION,
        "WorkerType": WORKER_TYPE,
        "NumberOfWorkers": NUMBER_OF_WORKERS,
        "Timeout": JOB_TIMEOUT_MINUTES,
        "MaxRetries": 0,
    }


def workgroup_configuration(config: PipelineConfig) -> dict[str, Any]:
    """Return the Athena workgroup configuration (enforced on every query)."""
    return {
        "ResultConfiguration": {
            "OutputLocation": config.athena_results_uri,
            "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"},
        },
        "EnforceWorkGroupConfiguration": True,
        "PublishCloudWatchMetricsEnabled": True,
        "BytesScannedCutoffPerQuery": BYTES_SCANNED_CUTOFF,
        "EngineVersion": {"SelectedEngineVersion": ATHENA_ENGINE},
    }


@dataclass(frozen=True)
class Resource:
    """One resource of the plan: what it is, its name and every setting up enforces."""

    kind: str
    name: str
    settings: dict[str, Any] = field(default_factory=dict)


def plan(
    config: PipelineConfig, account_id: str | None = None, partition: str | None = None
) -> list[Resource]:
    """Return every resource ``up`` manages, in creation order, with its settings.

    The account is ``account_id``, else the config's, else a placeholder.
    """
    account_id = account_id or config.account_id or ACCOUNT_PLACEHOLDER
    partition = partition or partition_for_region(config.region)
    arn = role_arn(config, account_id, partition)
    resources = [
        Resource("s3-bucket", b, bucket_settings(config, b, partition)) for b in config.buckets
    ]
    resources += [
        Resource(
            "iam-role",
            config.role_name,
            {
                "AssumeRolePolicyDocument": glue_trust_policy(),
                "InlinePolicies": {
                    INLINE_POLICY_NAME: glue_role_policy(config, account_id, partition)
                },
                "ManagedPolicies": [],
                "Tags": tags(config),
            },
        ),
        Resource("s3-object", config.script_uri, {"Source": "glue_etl_job.py"}),
        Resource("glue-database", config.database, database_input(config)),
        Resource(
            "glue-crawler", config.crawler_name, {**crawler_spec(config, arn), "Tags": tags(config)}
        ),
        Resource("glue-job", config.job_name, {**job_spec(config, arn), "Tags": tags(config)}),
        Resource(
            "athena-workgroup",
            config.workgroup,
            {"Configuration": workgroup_configuration(config), "Tags": tags(config)},
        ),
        Resource(
            "athena-tables",
            config.database,
            {"Source": "athena_queries.sql (DDL blocks, run through the workgroup)"},
        ),
    ]
    return resources


def format_plan(resources: Iterable[Resource]) -> str:
    """Return the plan as readable text: one header per resource, settings as JSON."""
    lines = []
    for r in resources:
        lines.append(f"== {r.kind}: {r.name}")
        lines.append(json.dumps(r.settings, indent=2, sort_keys=True, default=str))
    return "\n".join(lines)
