"""IAM and bucket policy documents: pure functions of the config, readable without AWS.

The bucket policy, the Glue role's trust and inline policies, and the deploying
identity's policy (``deploy.py policy``): what a person needs to run ``up``, ``run``,
``status`` and ``down`` for one prefix.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pipeline.config import (
    ENRICHED_PREFIX,
    METRICS_NAMESPACE,
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

# Marks that say "deploy.py made this" (tags, or the database's parameters); down
# deletes nothing without them.
MANAGED_BY_KEY = "managed-by"
MANAGED_BY_VALUE = "deploy.py"
PREFIX_KEY = "pipeline-prefix"

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


def rule_arn(config: PipelineConfig, account_id: str, partition: str = "aws") -> str:
    """The failures rule's ARN (on the default event bus)."""
    return f"arn:{partition}:events:{config.region}:{account_id}:rule/{config.failures_rule_name}"


def alarm_arn(config: PipelineConfig, account_id: str, partition: str = "aws") -> str:
    """The quarantine-rate alarm's ARN."""
    return (
        f"arn:{partition}:cloudwatch:{config.region}:{account_id}:alarm:"
        f"{config.quarantine_alarm_name}"
    )


def alerts_topic_policy(
    config: PipelineConfig, account_id: str, partition: str = "aws"
) -> dict[str, Any]:
    """The alerts topic's policy: EventBridge may publish for our failures rule only, and
    CloudWatch for our quarantine-rate alarm only (aws:SourceArn guards against another
    account's rule or alarm using the topic). No statement for the account itself: its
    identities manage the topic through their IAM policies (``deploy.py policy``).
    """
    topic = f"arn:{partition}:sns:{config.region}:{account_id}:{config.alerts_topic_name}"

    def publish(sid: str, service: str, source: str) -> dict[str, Any]:
        return {
            "Sid": sid,
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": "sns:Publish",
            "Resource": topic,
            "Condition": {"ArnEquals": {"aws:SourceArn": source}},
        }

    return {
        "Version": "2012-10-17",
        "Statement": [
            publish(
                "FailuresRulePublishes",
                "events.amazonaws.com",
                rule_arn(config, account_id, partition),
            ),
            publish(
                "QuarantineAlarmPublishes",
                "cloudwatch.amazonaws.com",
                alarm_arn(config, account_id, partition),
            ),
        ],
    }


# What EventBridge and CloudWatch need of the key to publish to the encrypted topic:
# Amazon SNS developer guide, "Enable compatibility between event sources from AWS
# services and encrypted topics" (sns-key-management.html).
ALERTS_KEY_PUBLISHER_ACTIONS = ["kms:GenerateDataKey*", "kms:Decrypt"]


def alerts_key_alias_arn(config: PipelineConfig, account_id: str, partition: str = "aws") -> str:
    """The ARN of the alerts key's alias; the topic names its key by it."""
    return f"arn:{partition}:kms:{config.region}:{account_id}:{config.alerts_key_alias}"


def alerts_key_policy(
    config: PipelineConfig, account_id: str, partition: str = "aws"
) -> dict[str, Any]:
    """The key policy of the customer managed key that encrypts the alerts topic.

    - The account (its root principal) holds ``kms:*``: the standard statement that lets
      IAM policies grant access to the key (``deploy.py policy``); without it the key
      could become unmanageable (AWS KMS developer guide, "Default key policy").
    - EventBridge (the failures rule) and CloudWatch (the quarantine-rate alarm) may
      ``kms:GenerateDataKey*`` and ``kms:Decrypt``: SNS encrypts a message with a data key
      generated as the publisher, which is what AWS's own managed key ``alias/aws/sns``
      cannot allow them (its policy cannot be changed).
    - CloudWatch only on behalf of this account (``aws:SourceAccount``). EventBridge with
      no condition: the SNS developer guide states that ``aws:SourceAccount`` and
      ``aws:SourceArn`` in a KMS key policy are not supported for EventBridge-to-encrypted
      topics (the request carries neither, so a condition would drop every alert). Which
      rule and alarm may publish is narrowed by the topic's policy (``aws:SourceArn``),
      and only that topic uses this key.
    - Nothing for ``sns.amazonaws.com``: SNS uses the key on the publisher's behalf, and
      email delivery needs no grant.
    """

    def publisher(sid: str, service: str) -> dict[str, Any]:
        return {
            "Sid": sid,
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": list(ALERTS_KEY_PUBLISHER_ACTIONS),
            "Resource": "*",
        }

    cloudwatch = publisher("QuarantineAlarmEncryptsAlerts", "cloudwatch.amazonaws.com")
    cloudwatch["Condition"] = {"StringEquals": {"aws:SourceAccount": account_id}}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountAdministersKeyThroughIAM",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            publisher("FailuresRuleEncryptsAlerts", "events.amazonaws.com"),
            cloudwatch,
        ],
    }


def role_arn(config: PipelineConfig, account_id: str, partition: str = "aws") -> str:
    """Return the Glue role's ARN."""
    return f"arn:{partition}:iam::{account_id}:role/{config.role_name}"


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
)
DEPLOYER_OBJECT_ACTIONS = (
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
)
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
# The database: up creates and repairs it, down deletes it (which needs the right on
# every table and function in it), status lists its tables. Athena, acting as the
# caller, reads the database and tables for each query and creates the two curated
# tables for the DDL.
DEPLOYER_CATALOG_ACTIONS = (
    "glue:GetDatabase",
    "glue:CreateDatabase",
    "glue:UpdateDatabase",
    "glue:DeleteDatabase",
    "glue:GetTable",
    "glue:GetTables",
    "glue:CreateTable",
    "glue:GetPartition",
    "glue:GetPartitions",
    "glue:BatchGetPartition",
)
DEPLOYER_CRAWLER_ACTIONS = (  # CreateCrawler: a statement of its own (no resource ARN)
    "glue:GetCrawler",
    "glue:UpdateCrawler",
    "glue:DeleteCrawler",
    "glue:StartCrawler",
    "glue:StopCrawler",
    "glue:ListCrawls",
    "glue:GetTags",
    "glue:TagResource",
)
DEPLOYER_JOB_ACTIONS = (
    "glue:GetJob",
    "glue:CreateJob",
    "glue:UpdateJob",
    "glue:DeleteJob",
    "glue:StartJobRun",
    "glue:GetJobRun",
    "glue:GetJobRuns",
    "glue:BatchStopJobRun",
    "glue:GetTags",
    "glue:TagResource",
)
DEPLOYER_WORKFLOW_ACTIONS = (
    "glue:CreateWorkflow",
    "glue:GetWorkflow",
    "glue:UpdateWorkflow",
    "glue:DeleteWorkflow",
    "glue:StartWorkflowRun",
    "glue:GetWorkflowRun",
    "glue:GetWorkflowRuns",
    "glue:StopWorkflowRun",
    "glue:GetTags",
    "glue:TagResource",
)
DEPLOYER_TRIGGER_ACTIONS = (
    "glue:CreateTrigger",
    "glue:GetTrigger",
    "glue:UpdateTrigger",
    "glue:DeleteTrigger",
    "glue:StartTrigger",
    "glue:StopTrigger",
    "glue:GetTags",
    "glue:TagResource",
)
DEPLOYER_RULE_ACTIONS = (
    "events:PutRule",
    "events:DescribeRule",
    "events:DeleteRule",
    "events:EnableRule",
    "events:PutTargets",
    "events:RemoveTargets",
    "events:ListTargetsByRule",
    "events:ListTagsForResource",
    "events:TagResource",
)
DEPLOYER_TOPIC_ACTIONS = (
    "sns:CreateTopic",
    "sns:GetTopicAttributes",
    "sns:SetTopicAttributes",
    "sns:DeleteTopic",
    "sns:Subscribe",
    "sns:ListSubscriptionsByTopic",
    "sns:ListTagsForResource",
    "sns:TagResource",
)
DEPLOYER_ALARM_ACTIONS = (
    "cloudwatch:PutMetricAlarm",
    "cloudwatch:DescribeAlarms",
    "cloudwatch:DeleteAlarms",
    "cloudwatch:ListTagsForResource",
    "cloudwatch:TagResource",
)
# The alerts key, on a key carrying up's tags: up creates, repairs and reads it, down
# schedules its deletion.
DEPLOYER_KEY_ACTIONS = (
    "kms:DescribeKey",
    "kms:ListResourceTags",
    "kms:GetKeyPolicy",
    "kms:PutKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:EnableKeyRotation",
    "kms:EnableKey",
    "kms:UpdateKeyDescription",
    "kms:ScheduleKeyDeletion",
)
DEPLOYER_ALIAS_ACTIONS = ("kms:CreateAlias", "kms:UpdateAlias", "kms:DeleteAlias")
DEPLOYER_WORKGROUP_ACTIONS = (
    "athena:GetWorkGroup",
    "athena:CreateWorkGroup",
    "athena:UpdateWorkGroup",
    "athena:DeleteWorkGroup",
    "athena:StartQueryExecution",
    "athena:GetQueryExecution",
    "athena:GetQueryResults",
    "athena:StopQueryExecution",
)


def deployer_policy(
    config: PipelineConfig, account_id: str, partition: str = "aws"
) -> dict[str, Any]:
    """Return the least-privilege policy of the identity that runs up, run, status and down.

    Built from the names ``up`` uses (the config's buckets, role, database, crawler, job
    and workgroup, and the tags ``up`` puts on what it creates), so it grants nothing on
    any other resource. Not in it: ``sts:GetCallerIdentity``, which needs no permission,
    and read access to your own ``s3://`` inputs (``--sales-path``), which the upload
    copies from a bucket of yours.

    Its holder can put the four buckets' policies and the Glue role's inline policy, and
    pass the role to Glue: treat it as the deployment's administrator. Because
    s3:PutBucketPolicy lets it grant itself any object right in those buckets, object
    rights are not narrowed to prefixes there (narrower ones would protect nothing).
    KMS: the rights on keys are conditioned on up's tags (``aws:ResourceTag``), so the
    holder manages only the key it created; as tagging at creation needs kms:TagResource
    on every key of the account and region, it could also put up's two tags on another
    key whose key policy lets IAM grant tagging, and so take that key over: one more
    reason to give this policy only to the deployment's administrators.
    """
    s3 = f"arn:{partition}:s3:::"
    glue = f"arn:{partition}:glue:{config.region}:{account_id}"
    athena = f"arn:{partition}:athena:{config.region}:{account_id}"
    role = role_arn(config, account_id, partition)
    marks = {MANAGED_BY_KEY: MANAGED_BY_VALUE, PREFIX_KEY: config.prefix}  # up's tags
    keys = f"arn:{partition}:kms:{config.region}:{account_id}:key/*"
    key_request_tags = {
        "StringEquals": {f"aws:RequestTag/{k}": v for k, v in marks.items()},
        "ForAllValues:StringEquals": {"aws:TagKeys": sorted(marks)},
    }
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PipelineBuckets",
                "Effect": "Allow",
                "Action": list(DEPLOYER_BUCKET_ACTIONS),
                "Resource": [f"{s3}{b}" for b in config.buckets],
            },
            {
                # run uploads the inputs and the script, compares the script's ETag and
                # reads the job's metrics; Athena, as the caller, reads the tables' data
                # and writes each query's results; down empties every bucket (versions,
                # delete markers, unfinished uploads).
                "Sid": "PipelineObjects",
                "Effect": "Allow",
                "Action": list(DEPLOYER_OBJECT_ACTIONS),
                "Resource": [f"{s3}{b}/*" for b in config.buckets],
            },
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
            {
                "Sid": "GlueDatabaseAndTables",
                "Effect": "Allow",
                "Action": list(DEPLOYER_CATALOG_ACTIONS),
                "Resource": [
                    f"{glue}:catalog",
                    f"{glue}:database/{config.database}",
                    f"{glue}:table/{config.database}/*",
                    f"{glue}:userDefinedFunction/{config.database}/*",
                ],
            },
            {
                # CreateCrawler has no resource ARN: only a crawler carrying up's marks.
                "Sid": "CreateGlueCrawler",
                "Effect": "Allow",
                "Action": ["glue:CreateCrawler"],
                "Resource": ["*"],
                "Condition": {"StringEquals": {f"aws:RequestTag/{k}": v for k, v in marks.items()}},
            },
            {
                "Sid": "GlueCrawler",
                "Effect": "Allow",
                "Action": list(DEPLOYER_CRAWLER_ACTIONS),
                "Resource": [f"{glue}:crawler/{config.crawler_name}"],
            },
            {
                "Sid": "GlueJob",
                "Effect": "Allow",
                "Action": list(DEPLOYER_JOB_ACTIONS),
                "Resource": [f"{glue}:job/{config.job_name}"],
            },
            {
                # The workflow and its two triggers (a trigger's ARN names the trigger).
                "Sid": "GlueWorkflow",
                "Effect": "Allow",
                "Action": list(DEPLOYER_WORKFLOW_ACTIONS),
                "Resource": [f"{glue}:workflow/{config.workflow_name}"],
            },
            {
                "Sid": "GlueWorkflowTriggers",
                "Effect": "Allow",
                "Action": list(DEPLOYER_TRIGGER_ACTIONS),
                "Resource": [
                    f"{glue}:trigger/{config.start_trigger_name}",
                    f"{glue}:trigger/{config.job_trigger_name}",
                ],
            },
            {
                "Sid": "FailuresRule",
                "Effect": "Allow",
                "Action": list(DEPLOYER_RULE_ACTIONS),
                "Resource": [rule_arn(config, account_id, partition)],
            },
            {
                # Deleting the topic deletes its subscriptions.
                "Sid": "AlertsTopic",
                "Effect": "Allow",
                "Action": list(DEPLOYER_TOPIC_ACTIONS),
                "Resource": [
                    f"arn:{partition}:sns:{config.region}:{account_id}:{config.alerts_topic_name}"
                ],
            },
            {
                "Sid": "QuarantineAlarm",
                "Effect": "Allow",
                "Action": list(DEPLOYER_ALARM_ACTIONS),
                "Resource": [alarm_arn(config, account_id, partition)],
            },
            {
                # CreateKey has no resource ARN: only a key carrying up's marks, and no
                # other tag. Tagging at creation needs kms:TagResource on every key of
                # the account and region (AWS KMS developer guide, "Controlling access to
                # tags"), also narrowed to up's marks.
                "Sid": "CreateAlertsKey",
                "Effect": "Allow",
                "Action": ["kms:CreateKey"],
                "Resource": ["*"],
                "Condition": key_request_tags,
            },
            {
                "Sid": "TagAlertsKeyOnCreate",
                "Effect": "Allow",
                "Action": ["kms:TagResource"],
                "Resource": [keys],
                "Condition": key_request_tags,
            },
            {
                "Sid": "AlertsKey",
                "Effect": "Allow",
                "Action": list(DEPLOYER_KEY_ACTIONS),
                "Resource": [keys],
                "Condition": {
                    "StringEquals": {f"aws:ResourceTag/{k}": v for k, v in marks.items()}
                },
            },
            {
                # The key behind our alias, looked up by the alias, even if it is not
                # tagged ours: up then refuses it by name (its tags, unreadable under
                # AlertsKey's condition, say it is not ours).
                "Sid": "DescribeKeyBehindAlertsAlias",
                "Effect": "Allow",
                "Action": ["kms:DescribeKey"],
                "Resource": [keys],
                "Condition": {"StringEquals": {"kms:RequestAlias": config.alerts_key_alias}},
            },
            {
                # An alias call is authorized on the alias and on the key(s) it points
                # at; the alias's name is what narrows it (no tag condition: an alias
                # has no tags). Pointing our alias at another key grants nothing on it.
                "Sid": "AlertsKeyAlias",
                "Effect": "Allow",
                "Action": list(DEPLOYER_ALIAS_ACTIONS),
                "Resource": [alerts_key_alias_arn(config, account_id, partition), keys],
            },
            {
                # Only when the alias was deleted: up (while the topic exists) looks for
                # the key tagged ours to point a new alias at, down to schedule its
                # deletion. No resource ARN.
                "Sid": "ListKeysToFindAlertsKey",
                "Effect": "Allow",
                "Action": ["kms:ListKeys"],
                "Resource": ["*"],
            },
            {
                "Sid": "AthenaWorkgroup",
                "Effect": "Allow",
                "Action": list(DEPLOYER_WORKGROUP_ACTIONS),
                "Resource": [f"{athena}:workgroup/{config.workgroup}"],
            },
            {
                # The workgroup's tags: read (is it ours?) and set when creating it. These
                # two actions also name capacity reservations and data catalogs, and
                # parliament wants one of each: named like the workgroup, they are ours.
                "Sid": "AthenaWorkgroupTags",
                "Effect": "Allow",
                "Action": ["athena:ListTagsForResource", "athena:TagResource"],
                "Resource": [
                    f"{athena}:{kind}/{config.workgroup}"
                    for kind in ("workgroup", "capacity-reservation", "datacatalog")
                ],
            },
            {
                # up and run check that Lake Formation does not govern the catalog; this
                # action has no resource ARN. Without it they warn and go on.
                "Sid": "ReadLakeFormationSettings",
                "Effect": "Allow",
                "Action": ["lakeformation:GetDataLakeSettings"],
                "Resource": ["*"],
            },
        ],
    }
