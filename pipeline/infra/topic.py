"""The alerts topic: encrypted with the alerts key, published to by the failures rule and
the quarantine-rate alarm only. Deleting it deletes its subscriptions."""

from __future__ import annotations

import json
from typing import Any

from pipeline.config import PipelineConfig
from pipeline.infra.cfn import CfnResource, RefStyle, Sentinels, logical_id
from pipeline.infra.key import alias_arn
from pipeline.infra.ownership import by_tags
from pipeline.infra.shared import (
    ALARM_ARN,
    RULE_ARN,
    TOPIC_ARN,
    Context,
    Found,
    Resource,
    read_or_none,
    status_row,
    tag_list,
    tag_map,
    tags,
)

KIND = "sns-topic"
NOT_FOUND = ("NotFound", "NotFoundException")
REF_STYLES = {
    "AWS::SNS::Topic": RefStyle("TopicName", "Ref", TOPIC_ARN),
    "AWS::SNS::TopicPolicy": RefStyle(None),
}


def topic_arn(ctx: Context) -> str:
    return ctx.arn(TOPIC_ARN, ctx.config.alerts_topic_name)


def alerts_topic_policy(ctx: Context) -> dict[str, Any]:
    """The alerts topic's policy: EventBridge may publish for our failures rule only, and
    CloudWatch for our quarantine-rate alarm only (aws:SourceArn guards against another
    account's rule or alarm using the topic). No statement for the account itself: its
    identities manage the topic through their IAM policies (``deploy.py policy``).
    """
    topic = topic_arn(ctx)

    def publish(sid: str, service: str, source: str) -> dict[str, Any]:
        return {
            "Sid": sid,
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": "sns:Publish",
            "Resource": topic,
            "Condition": {"ArnEquals": {"aws:SourceArn": source}},
        }

    rule = ctx.arn(RULE_ARN, ctx.config.failures_rule_name)
    alarm = ctx.arn(ALARM_ARN, ctx.config.quarantine_alarm_name)
    return {
        "Version": "2012-10-17",
        "Statement": [
            publish("FailuresRulePublishes", "events.amazonaws.com", rule),
            publish("QuarantineAlarmPublishes", "cloudwatch.amazonaws.com", alarm),
        ],
    }


def alerts_topic_attributes(ctx: Context) -> dict[str, str]:
    """CreateTopic's Attributes: encrypted with our key (named by its alias's ARN, so
    the topic follows the alias to a new key), and only our rule and alarm may publish."""
    return {
        "KmsMasterKeyId": alias_arn(ctx),
        "Policy": json.dumps(alerts_topic_policy(ctx), sort_keys=True),
    }


def plan(ctx: Context) -> list[Resource]:
    name = ctx.config.alerts_topic_name
    settings = {
        "Name": name,
        "Attributes": alerts_topic_attributes(ctx),
        "Tags": tag_list(tags(ctx.config)),
    }
    return [Resource(KIND, name, settings)]


def find(ctx: Context) -> list[Found]:
    """Read the alerts topic's existence and tags (no change)."""
    sns, name, arn = ctx.client("sns"), ctx.config.alerts_topic_name, topic_arn(ctx)
    if read_or_none(lambda: sns.get_topic_attributes(TopicArn=arn), NOT_FOUND) is None:
        return [Found(KIND, name, exists=False)]
    found_tags = sns.list_tags_for_resource(ResourceArn=arn).get("Tags", [])
    return [by_tags(ctx.config, KIND, name, tag_map(found_tags))]


def ensure(ctx: Context) -> list[str]:
    config, sns, arn = ctx.config, ctx.client("sns"), topic_arn(ctx)
    name = config.alerts_topic_name
    want = alerts_topic_attributes(ctx)
    changes = []
    found = read_or_none(lambda: sns.get_topic_attributes(TopicArn=arn), NOT_FOUND)
    if found is None:
        sns.create_topic(Name=name, Attributes=want, Tags=tag_list(tags(config)))
        changes.append(f"created topic {name}")
        current = want
    else:
        current = found["Attributes"]
    if current.get("KmsMasterKeyId") != want["KmsMasterKeyId"]:
        sns.set_topic_attributes(
            TopicArn=arn, AttributeName="KmsMasterKeyId", AttributeValue=want["KmsMasterKeyId"]
        )
        changes.append(f"set encryption of topic {name}")
    if json.loads(current.get("Policy") or "{}") != json.loads(want["Policy"]):
        sns.set_topic_attributes(
            TopicArn=arn, AttributeName="Policy", AttributeValue=want["Policy"]
        )
        changes.append(f"set policy of topic {name}")
    return changes


def delete(ctx: Context) -> list[str]:
    if not any(f.ours for f in ctx.found_of(KIND)):
        return []
    ctx.client("sns").delete_topic(TopicArn=topic_arn(ctx))
    return [f"topic {ctx.config.alerts_topic_name} (and its subscriptions)"]


def down_plan(config: PipelineConfig) -> list[str]:
    return [f"{KIND} {config.alerts_topic_name} with its subscriptions"]


def status(ctx: Context) -> list[dict[str, Any]]:
    sns, name, arn = ctx.client("sns"), ctx.config.alerts_topic_name, topic_arn(ctx)
    if not read_or_none(lambda: sns.get_topic_attributes(TopicArn=arn), NOT_FOUND):
        return [status_row(KIND, name, "missing")]
    subs = sns.list_subscriptions_by_topic(TopicArn=arn).get("Subscriptions", [])
    shown = ", ".join(
        f"{s.get('Endpoint')}"
        + (" (pending confirmation)" if s.get("SubscriptionArn") == "PendingConfirmation" else "")
        for s in subs
    )
    return [status_row(KIND, name, "present", f"subscriptions: {shown or 'none'}")]


def template(r: Resource, s: Sentinels) -> list[CfnResource]:
    attributes = dict(r.settings["Attributes"])
    policy = json.loads(attributes.pop("Policy"))
    logical = logical_id("Topic", r.name, s)
    props = {"TopicName": r.settings["Name"], **attributes, "Tags": r.settings["Tags"]}
    return [
        CfnResource(logical, "AWS::SNS::Topic", props, "TopicName"),
        CfnResource(
            f"{logical}Policy",
            "AWS::SNS::TopicPolicy",
            {"Topics": [s.arn(TOPIC_ARN, r.name)], "PolicyDocument": policy},
            None,
        ),
    ]


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


def deployer_statements(ctx: Context) -> list[dict[str, Any]]:
    return [
        {
            # Deleting the topic deletes its subscriptions.
            "Sid": "AlertsTopic",
            "Effect": "Allow",
            "Action": list(DEPLOYER_TOPIC_ACTIONS),
            "Resource": [topic_arn(ctx)],
        }
    ]
