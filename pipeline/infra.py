"""Provision, inspect, run and tear down the ``aws`` target with boto3.

Every name comes from :class:`~pipeline.config.PipelineConfig`. The desired state of
each resource is a pure function of the config (``plan``); ``up`` reads what exists,
creates what is missing and puts drifted settings back; ``down`` deletes only what
carries this deployment's marks (tags on buckets, workgroup, role, crawler and job,
a parameter on the Glue database). ``up`` never takes over a resource with one of
its names that lacks those marks: it stops with :class:`DeployError` before changing
anything. Policy documents are plain functions so tests and auditors can read them
without AWS.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from pipeline import aws, costs
from pipeline.config import (
    ATHENA_RESULTS_PREFIX,
    ENRICHED_PREFIX,
    ENRICHED_TABLE,
    JOB_SCRIPT,
    QUARANTINE_PREFIX,
    RAW_CUSTOMERS_PREFIX,
    RAW_CUSTOMERS_TABLE,
    RAW_SALES_PREFIX,
    RAW_SALES_TABLE,
    RUNS_PREFIX,
    SCRIPT_KEY,
    SUMMARY_PREFIX,
    SUMMARY_TABLE,
    PipelineConfig,
    split_s3_uri,
)

log = logging.getLogger(__name__)


# Marks that say "deploy.py made this"; down deletes nothing without them.
MANAGED_BY_KEY = "managed-by"
MANAGED_BY_VALUE = "deploy.py"
PREFIX_KEY = "pipeline-prefix"

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

PROCESSED_PREFIXES = (ENRICHED_PREFIX, SUMMARY_PREFIX, QUARANTINE_PREFIX, RUNS_PREFIX)
RAW_PREFIXES = (RAW_SALES_PREFIX, RAW_CUSTOMERS_PREFIX)
# The only catalog tables the role touches: the crawler creates and updates these two
# (one per raw folder, named after it). The job reads and writes S3 paths and makes no
# catalog call; enriched_sales and sales_summary are created by Athena DDL run by the
# deploying identity, never by this role.
CRAWLER_TABLES = (RAW_SALES_TABLE, RAW_CUSTOMERS_TABLE)
# The tables the Athena DDL creates, each at a folder of the processed bucket.
CURATED_TABLES = {ENRICHED_TABLE: ENRICHED_PREFIX, SUMMARY_TABLE: SUMMARY_PREFIX}

ACCOUNT_PLACEHOLDER = "<account-id>"


# --------------------------------------------------------------------------- policies


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

    Every S3 statement names a bucket or a key prefix; Glue catalog actions name this
    database and the two tables the crawler writes; logs name the ``/aws-glue/*`` log
    groups. The only ``*``
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
                "Sid": "ListRawInput",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [f"{s3}{raw}"],
                "Condition": {"StringLike": {"s3:prefix": _folder_patterns(RAW_PREFIXES)}},
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
                # Spark lists output folders before a dynamic partition overwrite.
                "Sid": "ListProcessedOutput",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [f"{s3}{processed}"],
                "Condition": {"StringLike": {"s3:prefix": _folder_patterns(PROCESSED_PREFIXES)}},
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
                "Sid": "BucketLocation",
                "Effect": "Allow",
                "Action": ["s3:GetBucketLocation"],
                "Resource": [f"{s3}{b}" for b in (raw, processed, scripts)],
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


# ---------------------------------------------------------------- desired resources


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


class DeployError(RuntimeError):
    """A deployment problem the user must resolve (e.g. a bucket name taken)."""


@dataclass(frozen=True)
class Resource:
    """One resource of the plan: what it is, its name and every setting up enforces."""

    kind: str
    name: str
    settings: dict[str, Any] = field(default_factory=dict)


def role_arn(config: PipelineConfig, account_id: str, partition: str = "aws") -> str:
    """Return the Glue role's ARN."""
    return f"arn:{partition}:iam::{account_id}:role/{config.role_name}"


def plan(
    config: PipelineConfig, account_id: str = ACCOUNT_PLACEHOLDER, partition: str | None = None
) -> list[Resource]:
    """Return every resource ``up`` manages, in creation order, with its settings."""
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


# ------------------------------------------------------------------------- helpers


@dataclass
class Clients:
    """The boto3 clients one deployment talks to."""

    s3: Any
    iam: Any
    sts: Any
    glue: Any
    athena: Any

    @classmethod
    def for_config(cls, config: PipelineConfig) -> Clients:
        """Return clients honouring the config's profile, region and endpoint URL."""
        return cls(*(aws.client(config, s) for s in ("s3", "iam", "sts", "glue", "athena")))


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _contains(desired: Any, actual: Any) -> bool:
    """True when every key and value of ``desired`` is present in ``actual``."""
    if isinstance(desired, dict):
        return isinstance(actual, dict) and all(
            k in actual and _contains(v, actual[k]) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(actual, list)
            and len(desired) == len(actual)
            and all(_contains(d, a) for d, a in zip(desired, actual, strict=True))
        )
    return desired == actual


def _tag_list(tag_map: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tag_map.items())]


def _retry(
    call: Callable[[], Any], *, retryable: Callable[[ClientError], bool], attempts: int = 6
) -> Any:
    """Call ``call``, retrying with back-off on errors ``retryable`` accepts (IAM propagation)."""
    delay = 2.0
    for attempt in range(attempts):
        try:
            return call()
        except ClientError as exc:
            if attempt == attempts - 1 or not retryable(exc):
                raise
            log.info("waiting %.0fs for IAM propagation (%s)", delay, _code(exc))
            time.sleep(delay)
            delay *= 2
    return None  # unreachable


def _role_not_ready(exc: ClientError) -> bool:
    message = str(exc).lower()
    return _code(exc) in ("InvalidInputException", "AccessDeniedException") and "role" in message


@dataclass
class Account:
    """The caller's account id and ARN partition."""

    account_id: str
    partition: str

    @classmethod
    def of(cls, clients: Clients) -> Account:
        ident = clients.sts.get_caller_identity()
        return cls(ident["Account"], ident["Arn"].split(":")[1])


# ------------------------------------------------------------------------ ownership


@dataclass(frozen=True)
class Found:
    """What exists under one of this deployment's names, and whether it carries our marks."""

    kind: str
    name: str
    exists: bool
    ours: bool = False
    why_not_ours: str = ""
    owner: str | None = None  # the deploy.py prefix it is marked for, if another one


def _tag_map(tag_list: Iterable[dict[str, str]]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tag_list}


def _by_tags(config: PipelineConfig, kind: str, name: str, found_tags: dict[str, str]) -> Found:
    if _contains(tags(config), found_tags):
        return Found(kind, name, exists=True, ours=True)
    owner = found_tags.get(PREFIX_KEY)
    if found_tags.get(MANAGED_BY_KEY) == MANAGED_BY_VALUE and owner:
        why = f"tagged for deploy.py prefix {owner!r}, not {config.prefix!r}"
        return Found(kind, name, exists=True, ours=False, why_not_ours=why, owner=owner)
    if found_tags:
        why = f"not tagged {MANAGED_BY_KEY}={MANAGED_BY_VALUE}, {PREFIX_KEY}={config.prefix}"
    else:
        why = "it has no tags"
    return Found(kind, name, exists=True, ours=False, why_not_ours=why)


def find_bucket(config: PipelineConfig, clients: Clients, bucket: str) -> Found:
    """Read one bucket's existence and tags (no change)."""
    s3 = clients.s3
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if _code(exc) in ("404", "NoSuchBucket", "NotFound"):
            return Found("s3-bucket", bucket, exists=False)
        if _code(exc) in ("403", "AccessDenied"):
            why = "it exists but this account cannot use it (another account's?)"
            return Found("s3-bucket", bucket, exists=True, why_not_ours=why)
        raise
    try:
        tag_set = s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
    except ClientError as exc:
        if _code(exc) != "NoSuchTagSet":
            raise
        tag_set = []
    return _by_tags(config, "s3-bucket", bucket, _tag_map(tag_set))


def find_role(config: PipelineConfig, clients: Clients) -> Found:
    """Read the Glue role's existence and tags (no change)."""
    try:
        role = clients.iam.get_role(RoleName=config.role_name)["Role"]
    except ClientError as exc:
        if _code(exc) != "NoSuchEntity":
            raise
        return Found("iam-role", config.role_name, exists=False)
    return _by_tags(config, "iam-role", config.role_name, _tag_map(role.get("Tags", [])))


def find_database(config: PipelineConfig, clients: Clients) -> Found:
    """Read the Glue database's existence and owner parameters (no change)."""
    name = config.database
    try:
        db = clients.glue.get_database(Name=name)["Database"]
    except ClientError as exc:
        if _code(exc) != "EntityNotFoundException":
            raise
        return Found("glue-database", name, exists=False)
    params = db.get("Parameters") or {}
    owner = params.get(PREFIX_KEY)
    if owner == config.prefix and params.get(MANAGED_BY_KEY) == MANAGED_BY_VALUE:
        return Found("glue-database", name, exists=True, ours=True)
    if owner == config.prefix:
        why = f"its {MANAGED_BY_KEY} parameter is not {MANAGED_BY_VALUE}"
    elif owner:
        why = f"its {PREFIX_KEY} parameter says it belongs to prefix {owner!r}"
    else:
        why = f"it has no {PREFIX_KEY} parameter: deploy.py did not create it"
    return Found("glue-database", name, exists=True, why_not_ours=why, owner=owner)


def _glue_tags(
    clients: Clients, account: Account, config: PipelineConfig, kind: str, name: str
) -> dict:
    arn = f"arn:{account.partition}:glue:{config.region}:{account.account_id}:{kind}/{name}"
    return clients.glue.get_tags(ResourceArn=arn).get("Tags", {})


def find_crawler(config: PipelineConfig, clients: Clients, account: Account) -> Found:
    """Read the crawler's existence and tags (no change)."""
    name = config.crawler_name
    try:
        clients.glue.get_crawler(Name=name)
    except ClientError as exc:
        if _code(exc) != "EntityNotFoundException":
            raise
        return Found("glue-crawler", name, exists=False)
    return _by_tags(
        config, "glue-crawler", name, _glue_tags(clients, account, config, "crawler", name)
    )


def find_job(config: PipelineConfig, clients: Clients, account: Account) -> Found:
    """Read the job's existence and tags (no change)."""
    name = config.job_name
    try:
        clients.glue.get_job(JobName=name)
    except ClientError as exc:
        if _code(exc) != "EntityNotFoundException":
            raise
        return Found("glue-job", name, exists=False)
    return _by_tags(config, "glue-job", name, _glue_tags(clients, account, config, "job", name))


def find_workgroup(config: PipelineConfig, clients: Clients, account: Account) -> Found:
    """Read the Athena workgroup's existence and tags (no change)."""
    name = config.workgroup
    if get_workgroup(clients.athena, name) is None:
        return Found("athena-workgroup", name, exists=False)
    arn = f"arn:{account.partition}:athena:{config.region}:{account.account_id}:workgroup/{name}"
    try:
        found_tags = clients.athena.list_tags_for_resource(ResourceARN=arn).get("Tags", [])
    except ClientError as exc:
        # moto answers this for a workgroup created without tags; either way the
        # workgroup exists and shows no marks of ours, so it is not ours.
        if _code(exc) != "InvalidRequestException":
            raise
        found_tags = []
    return _by_tags(config, "athena-workgroup", name, _tag_map(found_tags))


def find_all(config: PipelineConfig, clients: Clients, account: Account) -> list[Found]:
    """Every resource name this deployment uses: what exists and whether it is ours."""
    return [
        *(find_bucket(config, clients, b) for b in config.buckets),
        find_role(config, clients),
        find_database(config, clients),
        find_crawler(config, clients, account),
        find_job(config, clients, account),
        find_workgroup(config, clients, account),
    ]


def not_ours_error(config: PipelineConfig, foreign: list[Found]) -> DeployError:
    """The error for resources that carry one of our names but not our marks (one line)."""
    listed = "; ".join(f"{f.kind} {f.name} ({f.why_not_ours})" for f in foreign)
    hints = []
    if any(f.kind != "glue-database" for f in foreign):
        hints.append(
            "choose another --prefix (every name except the Glue database derives from it)"
        )
    for f in foreign:
        if f.kind != "glue-database":
            continue
        remedy = (
            f"run `deploy.py down --prefix {f.owner}` if that deployment is no longer needed"
            if f.owner
            else "drop it yourself if it is no longer needed"
        )
        hints.append(
            f"the database name {config.database} is fixed and shared by every prefix, so one "
            f"account and region holds one deployment at a time: {remedy}, or deploy to "
            "another region or account"
        )
    if any(f.kind == "s3-bucket" and f.why_not_ours == "it has no tags" for f in foreign):
        hints.append(
            "if an untagged bucket is an empty one that an interrupted `up` created just before "
            "it could tag it, delete it yourself and run `up` again"
        )
    return DeployError(
        f"refusing to touch prefix {config.prefix!r}: these already exist and deploy.py did not "
        f"create them for this prefix, so it will neither change nor delete them: {listed}. "
        f"To go on, {'; '.join(hints)}."
    )


def check_nothing_foreign(config: PipelineConfig, clients: Clients, account: Account) -> None:
    """Raise :class:`DeployError` if any of our names is taken by something we did not make."""
    foreign = [f for f in find_all(config, clients, account) if f.exists and not f.ours]
    if foreign:
        raise not_ours_error(config, foreign)


def table_location_problems(config: PipelineConfig, glue: Any) -> tuple[list[str], list[str]]:
    """Check that each Athena table reads this prefix's processed bucket.

    Returns ``(problems, missing)``: one line per table whose LOCATION (or partition
    projection ``storage.location.template``) is not the expected folder of
    ``<prefix>-processed``, and the tables that do not exist.
    """
    problems, missing = [], []
    for table, folder in CURATED_TABLES.items():
        want = f"s3://{config.processed_bucket}/{folder}"
        try:
            found = glue.get_table(DatabaseName=config.database, Name=table)["Table"]
        except ClientError as exc:
            if _code(exc) != "EntityNotFoundException":
                raise
            missing.append(table)
            continue
        location = found.get("StorageDescriptor", {}).get("Location") or ""
        if location.rstrip("/") + "/" != want:
            problems.append(f"{table} LOCATION is {location or '(none)'}, expected {want}")
        template = (found.get("Parameters") or {}).get("storage.location.template")
        if template is not None and not template.startswith(want):
            problems.append(
                f"{table} storage.location.template is {template}, expected one under {want}"
            )
    return problems, missing


def check_table_locations(config: PipelineConfig, glue: Any, *, warn_missing: bool) -> None:
    """Raise :class:`DeployError` when a table reads another bucket's data (one line)."""
    problems, missing = table_location_problems(config, glue)
    if problems:
        wrong = sorted({p.split(" ", 1)[0] for p in problems})
        drops = "; ".join(f"DROP TABLE {config.database}.{t}" for t in wrong)
        raise DeployError(
            f"tables in {config.database} would read data that is not this prefix's: "
            f"{'; '.join(problems)}. The DDL is `create external table if not exists`, so it "
            f"keeps an existing table as it is. Drop it in Athena ({drops}: an external "
            "table, so only the definition goes, no data) and run `deploy.py up` again"
        )
    if missing and warn_missing:
        log.warning(
            "after the DDL, %s not in the Glue catalog (an endpoint that runs no SQL, "
            "such as moto, creates none)",
            ", ".join(f"{config.database}.{t}" for t in missing)
            + (" is" if len(missing) == 1 else " are"),
        )


# ------------------------------------------------------------------------------ up


def _ensure_bucket(
    config: PipelineConfig, clients: Clients, found: Found, partition: str
) -> list[str]:
    """Create the bucket (tags right after CreateBucket) or repair ours; ``found`` is ours or absent."""
    s3 = clients.s3
    bucket = found.name
    changes = []
    if not found.exists:
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if config.region != "us-east-1":  # us-east-1 rejects a LocationConstraint
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": config.region}
        try:
            s3.create_bucket(**kwargs)
        except ClientError as create_exc:
            if _code(create_exc) == "BucketAlreadyExists":
                raise DeployError(
                    f"bucket name {bucket} is taken by another account; choose another --prefix"
                ) from create_exc
            if _code(create_exc) == "BucketAlreadyOwnedByYou":
                # Made by someone else in this account after we looked: not ours.
                raise DeployError(
                    f"bucket {bucket} appeared while up was running and deploy.py did not "
                    "create it; it is left alone. Choose another --prefix"
                ) from create_exc
            raise
        # Tag at once: the tags are what tell a later `up` and `down` that it is ours.
        # A crash between these two calls leaves an untagged bucket that the next `up`
        # refuses to adopt (docs/aws.md, "Ownership").
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": _tag_list(tags(config))})
        changes.append(f"created bucket {bucket}")
        s3.get_waiter("bucket_exists").wait(
            Bucket=bucket, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
        )
    elif not found.ours:  # check_nothing_foreign already refused; never adopt
        raise not_ours_error(config, [found])

    want = bucket_settings(config, bucket, partition)

    def get_or_none(call: Callable[[], Any], missing: tuple[str, ...]) -> Any:
        try:
            return call()
        except ClientError as exc:
            if _code(exc) in missing:
                return None
            raise

    pab = get_or_none(
        lambda: s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"],
        ("NoSuchPublicAccessBlockConfiguration",),
    )
    if pab != want["PublicAccessBlock"]:
        s3.put_public_access_block(
            Bucket=bucket, PublicAccessBlockConfiguration=want["PublicAccessBlock"]
        )
        changes.append(f"set public access block on {bucket}")

    enc = get_or_none(
        lambda: s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"],
        ("ServerSideEncryptionConfigurationNotFoundError",),
    )
    if not _contains(want["Encryption"], enc):
        s3.put_bucket_encryption(
            Bucket=bucket, ServerSideEncryptionConfiguration=want["Encryption"]
        )
        changes.append(f"set default encryption on {bucket}")

    if want["Versioning"]:
        status = s3.get_bucket_versioning(Bucket=bucket).get("Status")
        if status != want["Versioning"]:
            s3.put_bucket_versioning(
                Bucket=bucket, VersioningConfiguration={"Status": want["Versioning"]}
            )
            changes.append(f"enabled versioning on {bucket}")

    rules = get_or_none(
        lambda: s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"],
        ("NoSuchLifecycleConfiguration",),
    )
    if not _contains(want["Lifecycle"]["Rules"], rules):
        s3.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration=want["Lifecycle"]
        )
        changes.append(f"set lifecycle rules on {bucket}")

    policy = get_or_none(
        lambda: json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]), ("NoSuchBucketPolicy",)
    )
    if policy != want["Policy"]:
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(want["Policy"]))
        changes.append(f"set TLS-only bucket policy on {bucket}")

    return changes


def _ensure_role(config: PipelineConfig, clients: Clients, account: Account) -> list[str]:
    iam = clients.iam
    name = config.role_name
    changes = []
    trust = glue_trust_policy()
    try:
        role = iam.get_role(RoleName=name)["Role"]
    except ClientError as exc:
        if _code(exc) != "NoSuchEntity":
            raise
        iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(trust),
            Description="Glue crawler and ETL job for the sales pipeline (least privilege)",
            Tags=_tag_list(tags(config)),
        )
        iam.get_waiter("role_exists").wait(
            RoleName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
        )
        changes.append(f"created role {name}")
    else:
        # Only a role tagged as ours gets here (check_nothing_foreign); never adopt one.
        if not _contains(tags(config), _tag_map(role.get("Tags", []))):
            raise not_ours_error(config, [find_role(config, clients)])
        if role["AssumeRolePolicyDocument"] != trust:
            iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))
            changes.append(f"restored trust policy of {name}")

    wanted = glue_role_policy(config, account.account_id, account.partition)
    for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        if policy_name != INLINE_POLICY_NAME:
            iam.delete_role_policy(RoleName=name, PolicyName=policy_name)
            changes.append(f"removed extra inline policy {policy_name} from {name}")
    try:
        current_doc = iam.get_role_policy(RoleName=name, PolicyName=INLINE_POLICY_NAME)[
            "PolicyDocument"
        ]
    except ClientError as exc:
        if _code(exc) != "NoSuchEntity":
            raise
        current_doc = None
    if current_doc != wanted:
        iam.put_role_policy(
            RoleName=name, PolicyName=INLINE_POLICY_NAME, PolicyDocument=json.dumps(wanted)
        )
        changes.append(f"put inline policy {INLINE_POLICY_NAME} on {name}")
    for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        iam.detach_role_policy(RoleName=name, PolicyArn=attached["PolicyArn"])
        changes.append(f"detached managed policy {attached['PolicyArn']} from {name}")
    return changes


def upload_job_script(config: PipelineConfig, clients: Clients, script: Path | None = None) -> bool:
    """Upload the Glue job script to ``config.script_uri`` unless S3 already has these bytes.

    Returns True when it uploaded. Raises FileNotFoundError when the script is missing.
    """
    script = script or JOB_SCRIPT
    body = script.read_bytes()
    bucket, key = split_s3_uri(config.script_uri)
    try:
        # Single-part SSE-S3 uploads have the MD5 of the body as their ETag.
        etag = clients.s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
    except ClientError as exc:
        if _code(exc) not in ("404", "NoSuchKey", "NotFound"):
            raise
        etag = None
    if etag == hashlib.md5(body, usedforsecurity=False).hexdigest():
        return False
    clients.s3.upload_file(str(script), bucket, key)
    return True


def _ensure_database(config: PipelineConfig, clients: Clients) -> list[str]:
    glue = clients.glue
    want = database_input(config)
    try:
        db = glue.get_database(Name=config.database)["Database"]
    except ClientError as exc:
        if _code(exc) != "EntityNotFoundException":
            raise
        glue.create_database(DatabaseInput=want)
        return [f"created database {config.database}"]
    found = find_database(config, clients)
    if not found.ours:
        # Another prefix's (or a person's) database: its crawler tables and Athena tables
        # would be overwritten or silently point at the other deployment's buckets.
        raise not_ours_error(config, [found])
    if not _contains(want, db):
        glue.update_database(Name=config.database, DatabaseInput=want)
        return [f"updated database {config.database}"]
    return []


def _ensure_crawler(config: PipelineConfig, clients: Clients, arn: str) -> list[str]:
    glue = clients.glue
    want = crawler_spec(config, arn)
    try:
        crawler = glue.get_crawler(Name=config.crawler_name)["Crawler"]
    except ClientError as exc:
        if _code(exc) != "EntityNotFoundException":
            raise
        _retry(lambda: glue.create_crawler(**want, Tags=tags(config)), retryable=_role_not_ready)
        return [f"created crawler {config.crawler_name}"]
    if not _contains(want, crawler):
        glue.update_crawler(**want)
        return [f"updated crawler {config.crawler_name}"]
    return []


def _ensure_job(config: PipelineConfig, clients: Clients, arn: str) -> list[str]:
    glue = clients.glue
    want = job_spec(config, arn)
    try:
        job = glue.get_job(JobName=config.job_name)["Job"]
    except ClientError as exc:
        if _code(exc) != "EntityNotFoundException":
            raise
        glue.create_job(Name=config.job_name, **want, Tags=tags(config))
        return [f"created job {config.job_name}"]
    if not _contains(want, job):
        glue.update_job(JobName=config.job_name, JobUpdate=want)
        return [f"updated job {config.job_name}"]
    return []


def get_workgroup(athena: Any, name: str) -> dict[str, Any] | None:
    """Return the workgroup description, or None when it does not exist."""
    try:
        # moto answers an empty body for a missing workgroup, AWS an InvalidRequestException.
        return athena.get_work_group(WorkGroup=name).get("WorkGroup")
    except ClientError as exc:
        if _code(exc) != "InvalidRequestException":
            raise
        return None


def _ensure_workgroup(config: PipelineConfig, clients: Clients) -> list[str]:
    athena = clients.athena
    want = workgroup_configuration(config)
    wg = get_workgroup(athena, config.workgroup)
    if wg is None:
        athena.create_work_group(
            Name=config.workgroup,
            Configuration=want,
            Description="Sales pipeline queries: enforced settings, encrypted results",
            Tags=_tag_list(tags(config)),
        )
        return [f"created workgroup {config.workgroup}"]
    current = wg.get("Configuration", {})
    if wg.get("State") != "ENABLED" or not _contains(want, current):
        athena.update_work_group(
            WorkGroup=config.workgroup,
            State="ENABLED",
            ConfigurationUpdates={
                "ResultConfigurationUpdates": want["ResultConfiguration"],
                "EnforceWorkGroupConfiguration": want["EnforceWorkGroupConfiguration"],
                "PublishCloudWatchMetricsEnabled": want["PublishCloudWatchMetricsEnabled"],
                "BytesScannedCutoffPerQuery": want["BytesScannedCutoffPerQuery"],
                "EngineVersion": want["EngineVersion"],
            },
        )
        return [f"updated workgroup {config.workgroup}"]
    return []


def create_tables(config: PipelineConfig, engine: Any = None) -> None:
    """Run the DDL blocks of athena_queries.sql through Athena."""
    # Imported here: only `up` with tables needs the engines (pandas, sqlglot).
    from pipeline.engines import make_engine

    (engine or make_engine(config)).setup_tables()


def up(config: PipelineConfig, clients: Clients | None = None, *, tables: bool = True) -> list[str]:
    """Create what is missing and put drifted settings back; return the changes made."""
    clients = clients or Clients.for_config(config)
    account = Account.of(clients)
    # Read everything first: refuse before any change if one of our names is taken.
    found = find_all(config, clients, account)
    foreign = [f for f in found if f.exists and not f.ours]
    if foreign:
        raise not_ours_error(config, foreign)
    changes: list[str] = []
    for bucket_found in found[: len(config.buckets)]:
        changes += _ensure_bucket(config, clients, bucket_found, account.partition)
    changes += _ensure_role(config, clients, account)
    if not JOB_SCRIPT.is_file():
        log.warning("%s not found; the job's script is not uploaded yet", JOB_SCRIPT.name)
    elif upload_job_script(config, clients):
        changes.append(f"uploaded job script to {config.script_uri}")
    changes += _ensure_database(config, clients)
    arn = role_arn(config, account.account_id, account.partition)
    changes += _ensure_crawler(config, clients, arn)
    changes += _ensure_job(config, clients, arn)
    changes += _ensure_workgroup(config, clients)
    for change in changes:
        log.info("%s", change)
    # The DDL is CREATE ... IF NOT EXISTS: safe to repeat, so not counted as a change,
    # but it keeps a table that already exists, wherever it points: check the locations.
    if tables:
        create_tables(config)
        log.info("ran the DDL blocks of athena_queries.sql in workgroup %s", config.workgroup)
    check_table_locations(config, clients.glue, warn_missing=tables)
    return changes


# ---------------------------------------------------------------------------- down


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every object version, delete marker and unfinished upload; return the count."""
    removed = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        batch = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        for i in range(0, len(batch), 1000):
            resp = s3.delete_objects(
                Bucket=bucket, Delete={"Objects": batch[i : i + 1000], "Quiet": True}
            )
            if resp.get("Errors"):
                raise RuntimeError(f"could not empty {bucket}: {resp['Errors'][:3]}")
            removed += len(batch[i : i + 1000])
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        for upload in page.get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    return removed


def down(config: PipelineConfig, clients: Clients | None = None) -> list[str]:
    """Delete what ``up`` made (only resources carrying its marks); return what was deleted."""
    clients = clients or Clients.for_config(config)
    account = Account.of(clients)
    deleted: list[str] = []

    def ours(found: Found) -> bool:
        if found.exists and not found.ours:
            log.warning(
                "%s %s exists but deploy.py did not make it for prefix %s (%s); kept",
                found.kind,
                found.name,
                config.prefix,
                found.why_not_ours,
            )
        return found.ours

    # Athena workgroup (and its saved queries).
    if ours(find_workgroup(config, clients, account)):
        clients.athena.delete_work_group(WorkGroup=config.workgroup, RecursiveDeleteOption=True)
        deleted.append(f"workgroup {config.workgroup}")
    if ours(find_job(config, clients, account)):
        clients.glue.delete_job(JobName=config.job_name)
        deleted.append(f"job {config.job_name}")
    if ours(find_crawler(config, clients, account)):
        clients.glue.delete_crawler(Name=config.crawler_name)
        deleted.append(f"crawler {config.crawler_name}")
    if ours(find_database(config, clients)):
        clients.glue.delete_database(Name=config.database)
        deleted.append(f"database {config.database} (and its tables)")

    iam = clients.iam
    if ours(find_role(config, clients)):
        for policy_name in iam.list_role_policies(RoleName=config.role_name)["PolicyNames"]:
            iam.delete_role_policy(RoleName=config.role_name, PolicyName=policy_name)
        for attached in iam.list_attached_role_policies(RoleName=config.role_name)[
            "AttachedPolicies"
        ]:
            iam.detach_role_policy(RoleName=config.role_name, PolicyArn=attached["PolicyArn"])
        iam.delete_role(RoleName=config.role_name)
        deleted.append(f"role {config.role_name}")

    for bucket in config.buckets:
        if not ours(find_bucket(config, clients, bucket)):
            continue
        removed = empty_bucket(clients.s3, bucket)
        clients.s3.delete_bucket(Bucket=bucket)
        deleted.append(f"bucket {bucket} ({removed} object versions)")
    for item in deleted:
        log.info("deleted %s", item)
    return deleted


def down_plan(config: PipelineConfig) -> list[str]:
    """Return what ``down`` would delete, without calling AWS."""
    return [
        f"athena-workgroup {config.workgroup} (with its saved queries)",
        f"glue-job {config.job_name}",
        f"glue-crawler {config.crawler_name}",
        f"glue-database {config.database} with its tables (only if its {PREFIX_KEY} parameter is {config.prefix})",
        f"iam-role {config.role_name} with its policies",
        *(f"s3-bucket {b} with every object version and delete marker" for b in config.buckets),
        f"(each only if tagged {MANAGED_BY_KEY}={MANAGED_BY_VALUE}, {PREFIX_KEY}={config.prefix})",
    ]


# -------------------------------------------------------------------------- status


def status(config: PipelineConfig, clients: Clients | None = None) -> list[dict[str, Any]]:
    """Return one row per resource (kind, name, state, detail) plus the last crawl and job run."""
    clients = clients or Clients.for_config(config)
    rows: list[dict[str, Any]] = []

    def row(kind: str, name: str, state: str, detail: str = "") -> None:
        rows.append({"kind": kind, "name": name, "state": state, "detail": detail})

    s3 = clients.s3
    for bucket in config.buckets:
        try:
            s3.head_bucket(Bucket=bucket)
        except ClientError:
            row("s3-bucket", bucket, "missing")
            continue
        versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status", "Disabled")
        row("s3-bucket", bucket, "present", f"versioning={versioning}")
    try:
        clients.iam.get_role(RoleName=config.role_name)
        policies = clients.iam.list_role_policies(RoleName=config.role_name)["PolicyNames"]
        row("iam-role", config.role_name, "present", f"inline policies={','.join(policies)}")
    except ClientError:
        row("iam-role", config.role_name, "missing")
    glue = clients.glue
    try:
        tables = glue.get_tables(DatabaseName=config.database)["TableList"]
        row(
            "glue-database",
            config.database,
            "present",
            f"tables={','.join(t['Name'] for t in tables)}",
        )
    except ClientError:
        row("glue-database", config.database, "missing")
    try:
        crawler = glue.get_crawler(Name=config.crawler_name)["Crawler"]
        last = crawler.get("LastCrawl", {})
        detail = f"last crawl={last.get('Status', 'never')}"
        if last.get("StartTime"):
            detail += f" started {last['StartTime']}"
        if last.get("ErrorMessage"):
            detail += f" error={last['ErrorMessage']}"
        row("glue-crawler", config.crawler_name, crawler.get("State", "?"), detail)
    except ClientError:
        row("glue-crawler", config.crawler_name, "missing")
    try:
        glue.get_job(JobName=config.job_name)
        runs = glue.get_job_runs(JobName=config.job_name, MaxResults=1).get("JobRuns", [])
        if runs:
            run = runs[0]
            detail = (
                f"last run={run['Id']} {run['JobRunState']} started {run.get('StartedOn')}"
                f" execution={run.get('ExecutionTime', 0)}s"
            )
            if run.get("ErrorMessage"):
                detail += f" error={run['ErrorMessage']}"
        else:
            detail = "last run=never"
        row("glue-job", config.job_name, "present", detail)
    except ClientError:
        row("glue-job", config.job_name, "missing")
    wg = get_workgroup(clients.athena, config.workgroup)
    if wg is None:
        row("athena-workgroup", config.workgroup, "missing")
    else:
        cutoff = wg.get("Configuration", {}).get("BytesScannedCutoffPerQuery")
        row("athena-workgroup", config.workgroup, wg.get("State", "?"), f"cutoff={cutoff} bytes")
    return rows


def format_status(rows: Iterable[dict[str, Any]]) -> str:
    """Return status rows as an aligned text table."""
    rows = list(rows)
    widths = [max(len(str(r[k])) for r in rows) for k in ("kind", "name", "state")]
    return "\n".join(
        f"{r['kind']:<{widths[0]}}  {r['name']:<{widths[1]}}  {r['state']:<{widths[2]}}  {r['detail']}"
        for r in rows
    )


# ----------------------------------------------------------------------------- run


class JobRunFailed(RuntimeError):
    """The Glue job run ended in a state other than SUCCEEDED."""


TERMINAL_JOB_STATES = {"SUCCEEDED", "FAILED", "STOPPED", "TIMEOUT", "ERROR", "EXPIRED"}


def wait_for_job_run(
    glue: Any,
    job_name: str,
    job_run_id: str,
    *,
    first_poll: float = 5.0,
    max_poll: float = 60.0,
    timeout_seconds: float = 3600.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll a job run with exponential back-off, logging each state change; return the run.

    On any terminal state other than SUCCEEDED, raise :class:`JobRunFailed` whose
    message carries the error and the CloudWatch log group and stream to read.
    """
    deadline = time.monotonic() + timeout_seconds
    delay, state = first_poll, None
    while True:
        run = glue.get_job_run(JobName=job_name, RunId=job_run_id)["JobRun"]
        if run["JobRunState"] != state:
            state = run["JobRunState"]
            log.info("job run %s: %s", job_run_id, state)
        if state in TERMINAL_JOB_STATES:
            if state != "SUCCEEDED":
                group = run.get("LogGroupName") or "/aws-glue/jobs"
                raise JobRunFailed(
                    f"job run {job_run_id} {state}: {run.get('ErrorMessage') or 'no error message'}; "
                    f"logs: CloudWatch log groups {group}/error and {group}/output, "
                    f"stream {job_run_id}"
                )
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"job run {job_run_id} still {state} after {timeout_seconds:.0f}s")
        sleep(delay)
        delay = min(delay * 2, max_poll)


def last_crawl_dpu_hours(glue: Any, crawler_name: str) -> float | None:
    """Return the DPU-hours Glue reports for the crawler's latest crawl, if any."""
    try:
        crawls = glue.list_crawls(CrawlerName=crawler_name).get("Crawls", [])
    except ClientError as exc:
        log.warning("could not read the crawl's DPU-hours: %s", exc)
        return None
    if not crawls:
        return None
    latest = max(crawls, key=lambda c: c.get("StartTime") or 0)
    return latest.get("DPUHour")


def check_ready_to_run(config: PipelineConfig, clients: Clients) -> None:
    """Raise :class:`DeployError` unless this prefix's deployment is complete and its own.

    A crawler writing into another prefix's database, or Athena tables left pointing
    at another prefix's bucket, would make this run read someone else's data.
    """
    account = Account.of(clients)
    found = find_all(config, clients, account)
    foreign = [f for f in found if f.exists and not f.ours]
    if foreign:
        raise not_ours_error(config, foreign)
    missing = [f"{f.kind} {f.name}" for f in found if not f.exists]
    if missing:
        raise DeployError(
            f"not deployed for prefix {config.prefix!r}: {', '.join(missing)} missing; "
            "run `deploy.py up` first"
        )
    check_table_locations(config, clients.glue, warn_missing=False)


def run(
    config: PipelineConfig,
    sales_file: str | Path,
    customers_file: str | Path,
    *,
    run_id: str,
    clients: Clients | None = None,
    poll_seconds: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Run the deployed pipeline's AWS half: upload, crawl, run the Glue job.

    First checks, without changing anything, that every resource is deployed and
    carries this prefix's marks, and that existing Athena tables read this prefix's
    processed bucket (:func:`check_ready_to_run`). Then uploads the raw files and the
    job script, starts the crawler and waits for it, starts the job with ``--run_id``
    and polls it with back-off. Returns the job run id and state, ``job_seconds``
    (billed execution time), workers, DPU-hours and stage durations; the caller runs
    the Athena tables, queries and charts.
    """
    from pipeline.catalog import run_aws_crawler
    from pipeline.storage import make_storage, upload_raw

    clients = clients or Clients.for_config(config)
    check_ready_to_run(config, clients)
    durations: dict[str, float] = {}

    t = time.perf_counter()
    uploaded = upload_raw(make_storage(config), config, sales_file, customers_file)
    upload_job_script(config, clients)
    durations["upload"] = time.perf_counter() - t

    t = time.perf_counter()
    crawl = run_aws_crawler(config, glue=clients.glue, poll_seconds=poll_seconds, sleep=sleep)
    durations["crawl"] = time.perf_counter() - t
    crawl_dpu_hours = last_crawl_dpu_hours(clients.glue, config.crawler_name)

    t = time.perf_counter()
    job_run_id = clients.glue.start_job_run(
        JobName=config.job_name, Arguments={"--run_id": run_id}
    )["JobRunId"]
    log.info("started job run %s (run_id %s)", job_run_id, run_id)
    job_run = wait_for_job_run(
        clients.glue, config.job_name, job_run_id, first_poll=poll_seconds, sleep=sleep
    )
    durations["job"] = time.perf_counter() - t

    workers = int(job_run.get("NumberOfWorkers") or NUMBER_OF_WORKERS)
    worker_type = job_run.get("WorkerType") or WORKER_TYPE
    # ExecutionTime is what Glue bills (seconds); fall back to the polled wall time.
    job_seconds = float(job_run.get("ExecutionTime") or durations["job"])
    dpu_hours = costs.glue_dpu_hours(job_seconds, workers, DPU_PER_WORKER.get(worker_type, 1))
    return {
        "job_run_id": job_run_id,
        "run_id": run_id,
        "state": job_run["JobRunState"],
        "job_seconds": job_seconds,
        "workers": workers,
        "worker_type": worker_type,
        "dpu_hours": dpu_hours,
        "glue_usd": dpu_hours * costs.GLUE_USD_PER_DPU_HOUR,
        "crawl_status": crawl.get("Status"),
        # Crawls bill $0.44/DPU-hour too (10-minute minimum); None if not reported.
        "crawl_dpu_hours": crawl_dpu_hours,
        "uploaded": uploaded,
        "metrics_uri": f"{config.runs_uri}{run_id}.json",
        "durations_seconds": durations,
    }
