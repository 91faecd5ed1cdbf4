"""The alert address's email subscription to the alerts topic (``up --alert-email``).

``up`` adds it and keeps every subscription it finds; ``up --no-alert-email`` removes the
topic's email subscriptions, and the topic's deletion deletes them all. AWS mails a
confirmation link: alerts reach the address once it is clicked."""

from __future__ import annotations

from typing import Any

from pipeline.config import PipelineConfig
from pipeline.infra.cfn import CfnResource, RefStyle, Sentinels
from pipeline.infra.shared import Context, Found, Resource
from pipeline.infra.topic import topic_arn

KIND = "sns-subscription"
REF_STYLES = {"AWS::SNS::Subscription": RefStyle(None)}


def plan(ctx: Context) -> list[Resource]:
    email = ctx.ops.alert_email
    if not email:
        return []
    settings = {"TopicArn": topic_arn(ctx), "Protocol": "email", "Endpoint": email}
    return [Resource(KIND, email, settings)]


def find(ctx: Context) -> list[Found]:
    return []  # the topic's: its marks are what count


def _email_subscriptions(ctx: Context) -> list[dict[str, Any]]:
    sns, arn = ctx.client("sns"), topic_arn(ctx)
    return [
        s
        for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=arn)
        for s in page.get("Subscriptions", [])
        if s.get("Protocol") == "email"
    ]


def _unsubscribe_all(ctx: Context) -> list[str]:
    """``--no-alert-email``: every confirmed email subscription goes. A pending one has no
    ARN to unsubscribe; SNS drops it when its link expires (3 days), or it is never clicked."""
    changes = []
    for sub in _email_subscriptions(ctx):
        if sub.get("SubscriptionArn", "").startswith("arn:"):
            ctx.client("sns").unsubscribe(SubscriptionArn=sub["SubscriptionArn"])
            changes.append(f"unsubscribed {sub['Endpoint']} from {ctx.config.alerts_topic_name}")
    return changes


def ensure(ctx: Context) -> list[str]:
    if ctx.ops.no_alert_email:
        return _unsubscribe_all(ctx)
    email = ctx.ops.alert_email
    if not email:
        return []
    sns, arn = ctx.client("sns"), topic_arn(ctx)
    if any(s.get("Endpoint") == email for s in _email_subscriptions(ctx)):
        return []
    sns.subscribe(TopicArn=arn, Protocol="email", Endpoint=email)
    return [
        f"subscribed {email} to {ctx.config.alerts_topic_name} (AWS emails a "
        "confirmation link: alerts reach the address once it is clicked)"
    ]


def delete(ctx: Context) -> list[str]:
    return []  # deleted with the topic


def down_plan(config: PipelineConfig) -> list[str]:
    return []


def status(ctx: Context) -> list[dict[str, Any]]:
    return []  # shown on the topic's row


def template(r: Resource, s: Sentinels) -> list[CfnResource]:
    return [CfnResource("AlertEmailSubscription", "AWS::SNS::Subscription", r.settings, None)]


def deployer_statements(ctx: Context) -> list[dict[str, Any]]:
    return []  # sns:Subscribe is on the topic (topic.py)
