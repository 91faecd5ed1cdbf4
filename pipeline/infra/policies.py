"""IAM and bucket policy documents: pure functions of the config, readable without AWS."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pipeline.config import (
    ENRICHED_PREFIX,
    QUARANTINE_PREFIX,
    RAW_CUSTOMERS_PREFIX,
    RAW_CUSTOMERS_TABLE,
    RAW_SALES_PREFIX,
    RAW_SALES_TABLE,
    RUNS_PREFIX,
    SCRIPT_KEY,
    SUMMARY_PREFIX,
    PipelineConfig,
)

PROCESSED_PREFIXES = (ENRICHED_PREFIX, SUMMARY_PREFIX, QUARANTINE_PREFIX, RUNS_PREFIX)
RAW_PREFIXES = (RAW_SALES_PREFIX, RAW_CUSTOMERS_PREFIX)
# The only catalog tables the role touches: the crawler creates and updates these two
# (one per raw folder, named after it). The job reads and writes S3 paths and makes no
# catalog call; enriched_sales and sales_summary are created by Athena DDL run by the
# deploying identity, never by this role.
CRAWLER_TABLES = (RAW_SALES_TABLE, RAW_CUSTOMERS_TABLE)


def partition_for_region(region: str) -> str:
    """Return the ARN partition (``aws``, ``aws-cn``, ``aws-us-gov``) of a region."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def tls_only_bucket_policy(bucket: str, partition: str = "aws") -> dict[str, Any]:
    """Return the bucket policy that denies every request not made over TLS."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [
                    f"arn:{partition}:s3:::{bucket}",
                    f"arn:{partition}:s3:::{bucket}/*",
                ],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def glue_trust_policy() -> dict[str, Any]:
    """Return the role trust policy: only the Glue service may assume the role.

    No ``aws:SourceAccount`` / ``aws:SourceArn`` condition: AWS Glue's documentation
    (its IAM chapter, "Create an IAM role for AWS Glue", crawler prerequisites) has no
    cross-service confused-deputy section and never shows these keys in a Glue role's
    trust policy. A ``StringEquals`` on a key the service does not send evaluates to
    false, so Glue could no longer assume the role and every crawl and job run would
    fail. Cross-account misuse is already blocked by ``iam:PassRole``: only identities
    of this account that may pass the role can attach it to a crawler or job.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "glue.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }


def _folder_patterns(prefixes: Iterable[str]) -> list[str]:
    """``enriched/`` -> ``enriched*``: the folder's objects plus the keys Spark's S3
    filesystems probe for the folder itself (``enriched``, ``enriched_$folder$``), so a
    HEAD on them gets 404 rather than 403 (which Hadoop treats as a failure)."""
    return [f"{p.rstrip('/')}*" for p in prefixes]


def glue_role_policy(
    config: PipelineConfig, account_id: str, partition: str = "aws"
) -> dict[str, Any]:
    """Return the least-privilege inline policy for the crawler and the job.

    Every S3 statement names a bucket or a key prefix: the role may list the raw,
    processed and scripts buckets whole, and read or write objects only under the
    prefixes it uses. Glue catalog actions name this database and the two tables the
    crawler writes; logs name the ``/aws-glue/*`` log groups. The only ``*``
    resource is ``cloudwatch:PutMetricData``, which has no resource ARN, narrowed by
    a namespace condition.
    """
    s3 = f"arn:{partition}:s3:::"
    raw, processed, scripts = config.raw_bucket, config.processed_bucket, config.scripts_bucket
    glue = f"arn:{partition}:glue:{config.region}:{account_id}"
    logs = f"arn:{partition}:logs:{config.region}:{account_id}:log-group:/aws-glue/*"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                # Listing names keys, not contents. Glue's S3 clients and the crawler list
                # and HeadBucket these buckets without a prefix (the output root, a
                # probe), which an s3:prefix condition would deny.
                "Sid": "ListPipelineBuckets",
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                "Resource": [f"{s3}{b}" for b in (raw, processed, scripts)],
            },
            {
                "Sid": "ReadRawInput",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [f"{s3}{raw}/{p}" for p in _folder_patterns(RAW_PREFIXES)],
            },
            {
                "Sid": "ReadJobScript",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [f"{s3}{scripts}/{SCRIPT_KEY}"],
            },
            {
                # Dynamic partition overwrite deletes the partitions it replaces and
                # reads back its staging files; nothing outside the four prefixes.
                "Sid": "WriteProcessedOutput",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                "Resource": [f"{s3}{processed}/{p}" for p in _folder_patterns(PROCESSED_PREFIXES)],
            },
            {
                # The crawler (running as this role) reads the database and creates or
                # updates its two raw tables. GetTables on named tables returns only
                # those tables. The job itself makes no catalog call.
                "Sid": "CrawlerRawTables",
                "Effect": "Allow",
                "Action": [
                    "glue:GetDatabase",
                    "glue:GetTable",
                    "glue:GetTables",
                    "glue:CreateTable",
                    "glue:UpdateTable",
                    "glue:GetPartition",
                    "glue:GetPartitions",
                    "glue:BatchGetPartition",
                    "glue:CreatePartition",
                    "glue:BatchCreatePartition",
                    "glue:UpdatePartition",
                    "glue:BatchUpdatePartition",
                ],
                "Resource": [
                    f"{glue}:catalog",
                    f"{glue}:database/{config.database}",
                    *(f"{glue}:table/{config.database}/{t}" for t in CRAWLER_TABLES),
                ],
            },
            {
                "Sid": "GlueLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": [logs, f"{logs}:log-stream:*"],
            },
            {
                # PutMetricData has no resource ARN; the namespace condition narrows it.
                "Sid": "GlueJobMetrics",
                "Effect": "Allow",
                "Action": ["cloudwatch:PutMetricData"],
                "Resource": ["*"],
                "Condition": {"StringEquals": {"cloudwatch:namespace": "Glue"}},
            },
        ],
    }
