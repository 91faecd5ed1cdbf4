"""The alert address's email subscription to the alerts topic (``up --alert-email``).

``up`` only adds it (never removes one); the topic's deletion deletes it. AWS mails a
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


def ensure(ctx: Context) -> list[str]:
    email = ctx.ops.alert_email
    if not email:
        return []
    sns, arn = ctx.client("sns"), topic_arn(ctx)
    subscribed = [
        s
        for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=arn)
        for s in page.get("Subscriptions", [])
        if s.get("Protocol") == "email" and s.get("Endpoint") == email
    ]
    if subscribed:
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
