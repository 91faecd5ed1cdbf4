"""The four S3 buckets (raw, processed, scripts, Athena results): private, encrypted,
TLS only, with lifecycle rules; the raw one versioned."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from pipeline.config import ATHENA_RESULTS_PREFIX, PipelineConfig
from pipeline.errors import DeployError
from pipeline.infra.cfn import CfnResource, RefStyle, Sentinels, checkov_skips, logical_id
from pipeline.infra.ownership import NAME_TAKEN, by_tags, not_ours_error
from pipeline.infra.shared import (
    Backoff,
    Context,
    Found,
    Resource,
    check_batch,
    contains,
    error_code,
    read_or_none,
    retry_on_codes,
    status_row,
    tag_list,
    tag_map,
    tags,
)

KIND = "s3-bucket"
NOT_FOUND = ("404", "NoSuchBucket", "NotFound")
REF_STYLES = {
    "AWS::S3::Bucket": RefStyle("Ref"),
    "AWS::S3::BucketPolicy": RefStyle(None),
}

# Lifecycle (days).
RESULTS_EXPIRE_DAYS = 7
ABORT_MULTIPART_DAYS = 1
RAW_NONCURRENT_EXPIRE_DAYS = 30


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


def bucket_settings(
    config: PipelineConfig, bucket: str, partition: str = "aws", on_arrival: bool = False
) -> dict[str, Any]:
    """Return every setting ``up`` enforces on one bucket; with ``on_arrival`` the raw
    bucket also sends its events to EventBridge (the arrivals rule picks the inputs)."""
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
    settings: dict[str, Any] = {
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
    if on_arrival and bucket == config.raw_bucket:
        settings["Notifications"] = {"EventBridgeConfiguration": {}}
    return settings


def plan(ctx: Context) -> list[Resource]:
    partition = ctx.account.partition
    return [
        Resource(KIND, b, bucket_settings(ctx.config, b, partition, ctx.ops.on_arrival))
        for b in ctx.config.buckets
    ]


def find(ctx: Context) -> list[Found]:
    """Read each bucket's existence and tags (no change)."""
    return [_find_one(ctx, bucket) for bucket in ctx.config.buckets]


def _find_one(ctx: Context, bucket: str) -> Found:
    s3 = ctx.clients.s3
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if error_code(exc) in NOT_FOUND:
            return Found(KIND, bucket, exists=False)
        if error_code(exc) in ("403", "AccessDenied"):
            return Found(KIND, bucket, exists=True, why_not_ours=NAME_TAKEN)
        raise
    tag_set = read_or_none(
        lambda: s3.get_bucket_tagging(Bucket=bucket)["TagSet"], ("NoSuchTagSet",)
    )
    return by_tags(ctx.config, KIND, bucket, tag_map(tag_set or []))


def ensure(ctx: Context) -> list[str]:
    changes = []
    for found in ctx.found_of(KIND):
        changes += _ensure_one(ctx, found)
    return changes


def _ensure_one(ctx: Context, found: Found) -> list[str]:
    """Create the bucket (tags right after CreateBucket) or repair ours; ``found`` is ours or absent."""
    config, s3, bucket = ctx.config, ctx.clients.s3, found.name
    changes = []
    if not found.exists:
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if config.region != "us-east-1":  # us-east-1 rejects a LocationConstraint
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": config.region}
        try:
            s3.create_bucket(**kwargs)
        except ClientError as create_exc:
            if error_code(create_exc) == "BucketAlreadyExists":
                raise DeployError(
                    f"bucket name {bucket} is taken by another account; choose another --prefix"
                ) from create_exc
            if error_code(create_exc) == "BucketAlreadyOwnedByYou":
                # Made by someone else in this account after we looked: not ours.
                raise DeployError(
                    f"bucket {bucket} appeared while up was running and deploy.py did not "
                    "create it; it is left alone. Choose another --prefix"
                ) from create_exc
            raise
        _tag_new_bucket(ctx, bucket)
        changes.append(f"created bucket {bucket}")
    elif not found.ours:  # up refused foreign names already; never adopt
        raise not_ours_error(config, [found])

    want = bucket_settings(config, bucket, ctx.account.partition, ctx.ops.on_arrival)

    pab = read_or_none(
        lambda: s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"],
        ("NoSuchPublicAccessBlockConfiguration",),
    )
    if pab != want["PublicAccessBlock"]:
        s3.put_public_access_block(
            Bucket=bucket, PublicAccessBlockConfiguration=want["PublicAccessBlock"]
        )
        changes.append(f"set public access block on {bucket}")

    enc = read_or_none(
        lambda: s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"],
        ("ServerSideEncryptionConfigurationNotFoundError",),
    )
    if not contains(want["Encryption"], enc):
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

    rules = read_or_none(
        lambda: s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"],
        ("NoSuchLifecycleConfiguration",),
    )
    if not contains(want["Lifecycle"]["Rules"], rules):
        s3.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration=want["Lifecycle"]
        )
        changes.append(f"set lifecycle rules on {bucket}")

    policy = read_or_none(
        lambda: json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]), ("NoSuchBucketPolicy",)
    )
    if policy != want["Policy"]:
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(want["Policy"]))
        changes.append(f"set TLS-only bucket policy on {bucket}")
    if bucket == config.raw_bucket:
        changes += _ensure_eventbridge(s3, bucket, "Notifications" in want)
    return changes


# A bucket just created may answer NoSuchBucket for a while (S3 is eventually
# consistent for bucket operations): its tagging is retried, 1 s doubling to 8 s, for
# at most a minute of waiting.
NEW_BUCKET_BACKOFF = Backoff(first=1.0, cap=8.0, budget=60.0)


def _tag_new_bucket(ctx: Context, bucket: str) -> None:
    """Tag a bucket just created, once S3 knows it; else delete it again and stop.

    The tags are what tell a later ``up`` and ``down`` that the bucket is ours: an
    untagged one would be refused by every later ``up`` (docs/aws.md, "Ownership"). So a
    bucket that cannot be tagged is not left behind: it is empty (made seconds ago), and
    deleting it lets the next ``up`` start afresh.
    """
    s3, config = ctx.clients.s3, ctx.config
    s3.get_waiter("bucket_exists").wait(Bucket=bucket, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    try:
        retry_on_codes(
            lambda: s3.put_bucket_tagging(
                Bucket=bucket, Tagging={"TagSet": tag_list(tags(config))}
            ),
            NOT_FOUND,
            f"tagging new bucket {bucket}",
            NEW_BUCKET_BACKOFF,
            ctx.sleep,
        )
    except ClientError as exc:
        try:
            s3.delete_bucket(Bucket=bucket)
            left = "it was deleted again, so the next `up` creates it afresh"
        except ClientError as delete_exc:
            left = (
                f"deleting it failed too ({error_code(delete_exc)}): delete the empty bucket "
                "yourself, then run `up` again"
            )
        raise DeployError(
            f"bucket {bucket} was created but could not be tagged ({error_code(exc)}: "
            f"{exc.response.get('Error', {}).get('Message', '')}); {left}"
        ) from exc


# The other destinations a bucket's notification configuration may hold: kept as found
# when up switches EventBridge on or off (PutBucketNotificationConfiguration replaces all).
OTHER_NOTIFICATIONS = (
    "TopicConfigurations",
    "QueueConfigurations",
    "LambdaFunctionConfigurations",
)


def _ensure_eventbridge(s3: Any, bucket: str, wanted: bool) -> list[str]:
    """Switch the bucket's EventBridge notifications on (``up --on-arrival``) or off."""
    current = s3.get_bucket_notification_configuration(Bucket=bucket)
    if ("EventBridgeConfiguration" in current) == wanted:
        return []
    config = {k: current[k] for k in OTHER_NOTIFICATIONS if current.get(k)}
    if wanted:
        config["EventBridgeConfiguration"] = {}
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=config)
    return [f"{'enabled' if wanted else 'disabled'} EventBridge notifications on {bucket}"]


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every object version, delete marker and unfinished upload; return the count."""
    removed = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        batch = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        for i in range(0, len(batch), 1000):
            chunk = batch[i : i + 1000]
            resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
            check_batch(
                "DeleteObjects",
                f"bucket {bucket}",
                resp.get("Errors", []),
                len(chunk),
                lambda e: (
                    f"s3://{bucket}/{e.get('Key')} version {e.get('VersionId')}: "
                    f"{e.get('Code')} {e.get('Message')}"
                ),
            )
            removed += len(chunk)
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        for upload in page.get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    return removed


def delete(ctx: Context) -> list[str]:
    deleted = []
    for found in ctx.found_of(KIND):
        if found.ours:
            removed = empty_bucket(ctx.clients.s3, found.name)
            ctx.clients.s3.delete_bucket(Bucket=found.name)
            deleted.append(f"bucket {found.name} ({removed} object versions)")
    return deleted


def down_plan(config: PipelineConfig) -> list[str]:
    return [f"{KIND} {b} with every object version and delete marker" for b in config.buckets]


def status(ctx: Context) -> list[dict[str, Any]]:
    s3, rows = ctx.clients.s3, []
    for bucket in ctx.config.buckets:
        if read_or_none(lambda b=bucket: s3.head_bucket(Bucket=b), NOT_FOUND) is None:
            rows.append(status_row(KIND, bucket, "missing"))
            continue
        versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status", "Disabled")
        detail = f"versioning={versioning}"
        if bucket == ctx.config.raw_bucket:
            notifications = s3.get_bucket_notification_configuration(Bucket=bucket)
            on = "EventBridgeConfiguration" in notifications
            detail += f" eventbridge={'on' if on else 'off'}"
        rows.append(status_row(KIND, bucket, "present", detail))
    return rows


LOGGING_SKIP = (
    "CKV_AWS_18",
    "no server access logs: up makes no log bucket; CloudTrail data events are the "
    "audit trail where one is wanted",
)
VERSIONING_SKIP = (
    "CKV_AWS_21",
    "only the raw bucket (the inputs) is versioned; outputs are rewritten by each run, "
    "the script is uploaded again, query results expire",
)


def template(r: Resource, s: Sentinels) -> list[CfnResource]:
    want = r.settings
    logical = logical_id("Bucket", r.name, s)
    lifecycle_rules = []
    for rule in want["Lifecycle"]["Rules"]:
        cfn_rule: dict[str, Any] = {}
        for key, value in rule.items():
            if key == "ID":
                cfn_rule["Id"] = value
            elif key == "Filter":
                cfn_rule.update(value)  # {"Prefix": ...}: CloudFormation's rule has no Filter
            elif key == "Expiration" and set(value) == {"Days"}:
                cfn_rule["ExpirationInDays"] = value["Days"]
            else:  # Status, AbortIncompleteMultipartUpload, NoncurrentVersionExpiration
                cfn_rule[key] = value
        lifecycle_rules.append(cfn_rule)
    props: dict[str, Any] = {
        "BucketName": r.name,
        "PublicAccessBlockConfiguration": want["PublicAccessBlock"],
        "BucketEncryption": {
            "ServerSideEncryptionConfiguration": [
                {
                    "ServerSideEncryptionByDefault"
                    if k == "ApplyServerSideEncryptionByDefault"
                    else k: v
                    for k, v in rule.items()
                }
                for rule in want["Encryption"]["Rules"]
            ]
        },
        "LifecycleConfiguration": {"Rules": lifecycle_rules},
        "Tags": tag_list(want["Tags"]),
    }
    skips = [LOGGING_SKIP]
    if "Notifications" in want:
        props["NotificationConfiguration"] = {
            "EventBridgeConfiguration": {"EventBridgeEnabled": True}
        }
    if want["Versioning"]:
        props["VersioningConfiguration"] = {"Status": want["Versioning"]}
    else:
        skips.append(VERSIONING_SKIP)
    return [
        CfnResource(logical, "AWS::S3::Bucket", props, "BucketName", checkov_skips(*skips)),
        CfnResource(
            f"{logical}Policy",
            "AWS::S3::BucketPolicy",
            {"Bucket": r.name, "PolicyDocument": want["Policy"]},
            None,
        ),
    ]


# What up, run, status and down call on the four buckets themselves (HeadBucket and
# ListObjects are s3:ListBucket; the rest are named after the call).
DEPLOYER_BUCKET_ACTIONS = (
    "s3:CreateBucket",
    "s3:DeleteBucket",
    "s3:ListBucket",
    "s3:ListBucketVersions",
    "s3:ListBucketMultipartUploads",
    "s3:GetBucketLocation",
    "s3:GetBucketTagging",
    "s3:PutBucketTagging",
    "s3:GetBucketPublicAccessBlock",
    "s3:PutBucketPublicAccessBlock",
    "s3:GetEncryptionConfiguration",
    "s3:PutEncryptionConfiguration",
    "s3:GetBucketVersioning",
    "s3:PutBucketVersioning",
    "s3:GetLifecycleConfiguration",
    "s3:PutLifecycleConfiguration",
    "s3:GetBucketPolicy",
    "s3:PutBucketPolicy",
    "s3:GetBucketNotification",
    "s3:PutBucketNotification",
)
DEPLOYER_OBJECT_ACTIONS = (
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
)


def deployer_statements(ctx: Context) -> list[dict[str, Any]]:
    s3 = f"arn:{ctx.account.partition}:s3:::"
    return [
        {
            "Sid": "PipelineBuckets",
            "Effect": "Allow",
            "Action": list(DEPLOYER_BUCKET_ACTIONS),
            "Resource": [f"{s3}{b}" for b in ctx.config.buckets],
        },
        {
            # run uploads the inputs and the script, compares the script's ETag and
            # reads the job's metrics; Athena, as the caller, reads the tables' data
            # and writes each query's results; down empties every bucket (versions,
            # delete markers, unfinished uploads).
            "Sid": "PipelineObjects",
            "Effect": "Allow",
            "Action": list(DEPLOYER_OBJECT_ACTIONS),
            "Resource": [f"{s3}{b}/*" for b in ctx.config.buckets],
        },
    ]
