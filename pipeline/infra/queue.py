"""The alerts' dead-letter queue: an SQS queue that keeps, for 14 days, each failure event
EventBridge could not deliver to the alerts topic after its retries (the topic deleted,
its key disabled, SNS throttling), so an alert is never lost silently. Encrypted with the
alerts key (whose policy lets EventBridge use it); only the failures rule may send to it."""

from __future__ import annotations

import json
import logging
from typing import Any

from botocore.exceptions import ClientError

from pipeline.config import PipelineConfig
from pipeline.errors import DeployError
from pipeline.infra.cfn import CfnResource, RefStyle, Sentinels, logical_id
from pipeline.infra.key import alias_arn
from pipeline.infra.ownership import by_tags
from pipeline.infra.shared import (
    QUEUE_ARN,
    RULE_ARN,
    Context,
    Found,
    Resource,
    error_code,
    read_or_none,
    status_row,
    tags,
)

log = logging.getLogger(__name__)

KIND = "sqs-queue"
NOT_FOUND = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
# SQS refuses a queue's name for 60 s after that queue was deleted (down, then up).
DELETED_RECENTLY = ("AWS.SimpleQueueService.QueueDeletedRecently", "QueueDeletedRecently")
RECREATE_POLL_SECONDS = 10.0
RECREATE_ATTEMPTS = 8  # 70 s in all: past SQS's 60 s
REF_STYLES = {
    "AWS::SQS::Queue": RefStyle("QueueName", "Arn", QUEUE_ARN),
    "AWS::SQS::QueuePolicy": RefStyle(None),
}
# SQS's longest retention: time to look at an alert EventBridge could not deliver.
RETENTION_SECONDS = 14 * 24 * 3600


def queue_arn(ctx: Context) -> str:
    return ctx.arn(QUEUE_ARN, ctx.config.alerts_dead_letter_queue_name)


def dead_letter_policy(ctx: Context) -> dict[str, Any]:
    """Only EventBridge, for our failures rule (``aws:SourceArn``), may send to the queue,
    as EventBridge's dead-letter queue documentation asks. The account's identities read
    it through their IAM policies."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "FailuresRuleDeadLetters",
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn(ctx),
                "Condition": {
                    "ArnEquals": {"aws:SourceArn": ctx.arn(RULE_ARN, ctx.config.failures_rule_name)}
                },
            }
        ],
    }


def queue_attributes(ctx: Context) -> dict[str, str]:
    """CreateQueue's Attributes (SQS takes every value as text): encrypted with the alerts
    key, named by its alias's ARN as the topic names it."""
    return {
        "KmsMasterKeyId": alias_arn(ctx),
        "MessageRetentionPeriod": str(RETENTION_SECONDS),
        "Policy": json.dumps(dead_letter_policy(ctx), sort_keys=True),
    }


def plan(ctx: Context) -> list[Resource]:
    name = ctx.config.alerts_dead_letter_queue_name
    settings = {"QueueName": name, "Attributes": queue_attributes(ctx), "Tags": tags(ctx.config)}
    return [Resource(KIND, name, settings)]


def _queue_url(sqs: Any, name: str) -> str | None:
    found = read_or_none(lambda: sqs.get_queue_url(QueueName=name), NOT_FOUND)
    return found["QueueUrl"] if found else None


def find(ctx: Context) -> list[Found]:
    """Read the queue's existence and tags (no change)."""
    sqs, name = ctx.client("sqs"), ctx.config.alerts_dead_letter_queue_name
    url = _queue_url(sqs, name)
    if url is None:
        return [Found(KIND, name, exists=False)]
    found_tags = sqs.list_queue_tags(QueueUrl=url).get("Tags", {})
    return [by_tags(ctx.config, KIND, name, found_tags)]


def _differs(name: str, want: str, current: str | None) -> bool:
    if name == "Policy":
        return json.loads(current or "{}") != json.loads(want)
    return current != want


def _create(ctx: Context, sqs: Any) -> None:
    """CreateQueue (tagged in the same call), waiting out SQS's 60 s on a name just deleted."""
    name = ctx.config.alerts_dead_letter_queue_name
    for attempt in range(1, RECREATE_ATTEMPTS + 1):
        try:
            sqs.create_queue(
                QueueName=name, Attributes=queue_attributes(ctx), tags=tags(ctx.config)
            )
            return
        except ClientError as exc:
            if error_code(exc) not in DELETED_RECENTLY:
                raise
            if attempt == RECREATE_ATTEMPTS:
                raise DeployError(
                    f"SQS still refuses queue name {name} after "
                    f"{RECREATE_ATTEMPTS * RECREATE_POLL_SECONDS:.0f}s (a queue of that name "
                    "was deleted less than 60 s ago); run `deploy.py up` again"
                ) from exc
            log.info("waiting for SQS to accept queue name %s again (deleted recently)", name)
            ctx.sleep(RECREATE_POLL_SECONDS)


def ensure(ctx: Context) -> list[str]:
    sqs, name = ctx.client("sqs"), ctx.config.alerts_dead_letter_queue_name
    url = _queue_url(sqs, name)
    if url is None:
        _create(ctx, sqs)
        return [f"created queue {name}"]
    want = queue_attributes(ctx)
    current = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(want))["Attributes"]
    drifted = {k: v for k, v in want.items() if _differs(k, v, current.get(k))}
    if drifted:
        sqs.set_queue_attributes(QueueUrl=url, Attributes=drifted)
        return [f"set {', '.join(sorted(drifted))} of queue {name}"]
    return []


def delete(ctx: Context) -> list[str]:
    if not any(f.ours for f in ctx.found_of(KIND)):
        return []
    sqs, name = ctx.client("sqs"), ctx.config.alerts_dead_letter_queue_name
    url = _queue_url(sqs, name)
    if url is None:
        return []
    sqs.delete_queue(QueueUrl=url)
    return [f"queue {name} (and the undelivered alerts in it)"]


def down_plan(config: PipelineConfig) -> list[str]:
    return [f"{KIND} {config.alerts_dead_letter_queue_name} with the undelivered alerts in it"]


def status(ctx: Context) -> list[dict[str, Any]]:
    """The queue's row: how many undelivered alerts wait in it (a non-zero count is an
    alert that reached nobody: read it in the SQS console, Send and receive messages)."""
    sqs, name = ctx.client("sqs"), ctx.config.alerts_dead_letter_queue_name
    url = _queue_url(sqs, name)
    if url is None:
        return [status_row(KIND, name, "missing")]
    counts = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
    found = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(counts))["Attributes"]
    waiting = sum(int(found.get(c, 0)) for c in counts)
    return [status_row(KIND, name, "present", f"undelivered alerts waiting: {waiting}")]


def template(r: Resource, s: Sentinels) -> list[CfnResource]:
    """The queue (CloudFormation types the attributes SQS takes as text) and its policy."""
    attributes = r.settings["Attributes"]
    logical = logical_id("Queue", r.name, s)
    props = {
        "QueueName": r.settings["QueueName"],
        "KmsMasterKeyId": attributes["KmsMasterKeyId"],
        "MessageRetentionPeriod": int(attributes["MessageRetentionPeriod"]),
        "Tags": [{"Key": k, "Value": v} for k, v in sorted(r.settings["Tags"].items())],
    }
    policy = {"Queues": [{"Ref": logical}], "PolicyDocument": json.loads(attributes["Policy"])}
    return [
        CfnResource(logical, "AWS::SQS::Queue", props, "QueueName"),
        CfnResource(f"{logical}Policy", "AWS::SQS::QueuePolicy", policy, None),
    ]


DEPLOYER_QUEUE_ACTIONS = (
    "sqs:CreateQueue",
    "sqs:GetQueueUrl",
    "sqs:GetQueueAttributes",
    "sqs:SetQueueAttributes",
    "sqs:DeleteQueue",
    "sqs:ListQueueTags",
    "sqs:TagQueue",
)


def deployer_statements(ctx: Context) -> list[dict[str, Any]]:
    return [
        {
            # Creating with tags needs sqs:TagQueue too; reading the undelivered alerts
            # (ReceiveMessage, and kms:Decrypt on the key) is left to whoever looks into them.
            "Sid": "AlertsDeadLetterQueue",
            "Effect": "Allow",
            "Action": list(DEPLOYER_QUEUE_ACTIONS),
            "Resource": [queue_arn(ctx)],
        }
    ]
