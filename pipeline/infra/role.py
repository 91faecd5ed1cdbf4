"""The Glue role the crawler and the job run as: trusted by Glue only, with one
least-privilege inline policy and no managed policy."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from pipeline.config import (
    ENRICHED_PREFIX,
    METRICS_NAMESPACE,
    PACKAGE_KEY,
    QUARANTINE_PREFIX,
    RAW_CUSTOMERS_PREFIX,
    RAW_CUSTOMERS_TABLE,
    RAW_SALES_PREFIX,
    RAW_SALES_TABLE,
    RUNS_PREFIX,
    SCRIPT_KEY,
    STATE_PREFIX,
    SUMMARY_PREFIX,
    SUPERSEDED_PREFIX,
    PipelineConfig,
)
from pipeline.infra.cfn import CfnResource, RefStyle, Sentinels, logical_id
from pipeline.infra.ownership import by_tags, not_ours_error
from pipeline.infra.shared import (
    ROLE_ARN,
    Context,
    Found,
    Resource,
    contains,
    error_code,
    read_or_none,
    status_row,
    tag_list,
    tag_map,
    tags,
)

KIND = "iam-role"
NOT_FOUND = ("NoSuchEntity",)
REF_STYLES = {"AWS::IAM::Role": RefStyle("Ref", "Arn", ROLE_ARN)}
INLINE_POLICY_NAME = "glue-etl-least-privilege"

PROCESSED_PREFIXES = (
    ENRICHED_PREFIX,
    SUMMARY_PREFIX,
    QUARANTINE_PREFIX,
    SUPERSEDED_PREFIX,
    RUNS_PREFIX,
    STATE_PREFIX,
)
RAW_PREFIXES = (RAW_SALES_PREFIX, RAW_CUSTOMERS_PREFIX)
# The only catalog tables the role touches: the crawler creates and updates these two
# (one per raw folder, named after it). The job reads and writes S3 paths and makes no
# catalog call; enriched_sales and sales_summary are created by Athena DDL run by the
# deploying identity, never by this role.
CRAWLER_TABLES = (RAW_SALES_TABLE, RAW_CUSTOMERS_TABLE)


def role_arn(ctx: Context) -> str:
    """Return the Glue role's ARN."""
    return ctx.arn(ROLE_ARN, ctx.config.role_name)


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
                "Resource": [f"{s3}{scripts}/{key}" for key in (SCRIPT_KEY, PACKAGE_KEY)],
            },
            {
                # The job stages its output under _state/, then moves it into place and
                # deletes the files it rewrote; nothing outside these prefixes.
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
            {
                # The job's own run metrics (rows read, written, quarantined, ...): only
                # in the pipeline's namespace, which the quality alarm watches.
                "Sid": "PipelineRunMetrics",
                "Effect": "Allow",
                "Action": ["cloudwatch:PutMetricData"],
                "Resource": ["*"],
                "Condition": {"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}},
            },
        ],
    }


def plan(ctx: Context) -> list[Resource]:
    account = ctx.account
    settings = {
        "AssumeRolePolicyDocument": glue_trust_policy(),
        "InlinePolicies": {
            INLINE_POLICY_NAME: glue_role_policy(ctx.config, account.account_id, account.partition)
        },
        "ManagedPolicies": [],
        "Tags": tags(ctx.config),
    }
    return [Resource(KIND, ctx.config.role_name, settings)]


def find(ctx: Context) -> list[Found]:
    """Read the Glue role's existence and tags (no change)."""
    name = ctx.config.role_name
    role = read_or_none(lambda: ctx.clients.iam.get_role(RoleName=name)["Role"], NOT_FOUND)
    if role is None:
        return [Found(KIND, name, exists=False)]
    return [by_tags(ctx.config, KIND, name, tag_map(role.get("Tags", [])))]


def ensure(ctx: Context) -> list[str]:
    config, iam = ctx.config, ctx.clients.iam
    name = config.role_name
    changes = []
    trust = glue_trust_policy()
    role = read_or_none(lambda: iam.get_role(RoleName=name)["Role"], NOT_FOUND)
    if role is None:
        iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(trust),
            Description="Glue crawler and ETL job for the sales pipeline (least privilege)",
            Tags=tag_list(tags(config)),
        )
        iam.get_waiter("role_exists").wait(
            RoleName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
        )
        changes.append(f"created role {name}")
    else:
        # Only a role tagged as ours gets here (up refused foreign names); never adopt one.
        if not contains(tags(config), tag_map(role.get("Tags", []))):
            raise not_ours_error(config, find(ctx))
        if role["AssumeRolePolicyDocument"] != trust:
            iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))
            changes.append(f"restored trust policy of {name}")

    wanted = glue_role_policy(config, ctx.account.account_id, ctx.account.partition)
    for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        if policy_name != INLINE_POLICY_NAME:
            iam.delete_role_policy(RoleName=name, PolicyName=policy_name)
            changes.append(f"removed extra inline policy {policy_name} from {name}")
    try:
        current_doc = iam.get_role_policy(RoleName=name, PolicyName=INLINE_POLICY_NAME)[
            "PolicyDocument"
        ]
    except ClientError as exc:
        if error_code(exc) not in NOT_FOUND:
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


def delete(ctx: Context) -> list[str]:
    if not any(f.ours for f in ctx.found_of(KIND)):
        return []
    iam, name = ctx.clients.iam, ctx.config.role_name
    for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        iam.delete_role_policy(RoleName=name, PolicyName=policy_name)
    for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        iam.detach_role_policy(RoleName=name, PolicyArn=attached["PolicyArn"])
    iam.delete_role(RoleName=name)
    return [f"role {name}"]


def down_plan(config: PipelineConfig) -> list[str]:
    return [f"{KIND} {config.role_name} with its policies"]


def status(ctx: Context) -> list[dict[str, Any]]:
    iam, name = ctx.clients.iam, ctx.config.role_name
    if read_or_none(lambda: iam.get_role(RoleName=name), NOT_FOUND) is None:
        return [status_row(KIND, name, "missing")]
    policies = iam.list_role_policies(RoleName=name)["PolicyNames"]
    return [status_row(KIND, name, "present", f"inline policies={','.join(policies)}")]


def template(r: Resource, s: Sentinels) -> list[CfnResource]:
    want = r.settings
    props = {
        "RoleName": r.name,
        "AssumeRolePolicyDocument": want["AssumeRolePolicyDocument"],
        "Policies": [
            {"PolicyName": name, "PolicyDocument": doc}
            for name, doc in sorted(want["InlinePolicies"].items())
        ],
        "ManagedPolicyArns": list(want["ManagedPolicies"]),
        "Tags": tag_list(want["Tags"]),
    }
    return [CfnResource(logical_id("Role", r.name, s), "AWS::IAM::Role", props, "RoleName")]


DEPLOYER_ROLE_ACTIONS = (
    "iam:GetRole",
    "iam:CreateRole",
    "iam:TagRole",
    "iam:UpdateAssumeRolePolicy",
    "iam:DeleteRole",
    "iam:ListRolePolicies",
    "iam:GetRolePolicy",
    "iam:PutRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:ListAttachedRolePolicies",
    "iam:DetachRolePolicy",
)


def deployer_statements(ctx: Context) -> list[dict[str, Any]]:
    role = role_arn(ctx)
    return [
        {
            "Sid": "GlueRole",
            "Effect": "Allow",
            "Action": list(DEPLOYER_ROLE_ACTIONS),
            "Resource": [role],
        },
        {
            # The crawler and the job are created with the role; to Glue only.
            "Sid": "PassGlueRoleToGlue",
            "Effect": "Allow",
            "Action": ["iam:PassRole"],
            "Resource": [role],
            "Condition": {"StringEquals": {"iam:PassedToService": "glue.amazonaws.com"}},
        },
    ]
