"""The failures rule: EventBridge sends our job runs and crawls that fail to the topic."""

from __future__ import annotations

import json
from typing import Any

from pipeline.config import PipelineConfig
from pipeline.infra.cfn import CfnResource, RefStyle, Sentinels, logical_id
from pipeline.infra.ownership import by_tags
from pipeline.infra.shared import (
    RULE_ARN,
    Context,
    Found,
    Resource,
    check_batch,
    read_or_none,
    status_row,
    tag_list,
    tag_map,
    tags,
)
from pipeline.infra.topic import topic_arn

KIND = "events-rule"
NOT_FOUND = ("ResourceNotFoundException",)
REF_STYLES = {"AWS::Events::Rule": RefStyle(None, "Arn", RULE_ARN)}

ALERTS_TARGET_ID = "alerts-topic"
# Glue job runs and crawls that end badly, as EventBridge reports them.
FAILED_JOB_STATES = ("FAILED", "TIMEOUT", "STOPPED")
FAILED_CRAWLER_STATES = ("Failed",)


def failures_event_pattern(config: PipelineConfig) -> dict[str, Any]:
    """The rule's pattern: our job's runs ending FAILED/TIMEOUT/STOPPED, our crawler's Failed.

    One rule: both detail-types, and ``$or`` in ``detail`` pairs each name with its states
    (a job event carries jobName, a crawler event crawlerName).
    """
    return {
        "source": ["aws.glue"],
        "detail-type": ["Glue Job State Change", "Glue Crawler State Change"],
        "detail": {
            "$or": [
                {"jobName": [config.job_name], "state": list(FAILED_JOB_STATES)},
                {"crawlerName": [config.crawler_name], "state": list(FAILED_CRAWLER_STATES)},
            ]
        },
    }


def failures_rule_spec(config: PipelineConfig) -> dict[str, Any]:
    """PutRule's request (without Tags); EventPattern is the JSON text PutRule takes."""
    return {
        "Name": config.failures_rule_name,
        "Description": "Glue job runs and crawls of this pipeline that fail: to the alerts topic",
        "EventPattern": json.dumps(failures_event_pattern(config), sort_keys=True),
        "State": "ENABLED",
    }


def targets(ctx: Context) -> list[dict[str, str]]:
    """PutTargets' request for this rule: the alerts topic."""
    return [{"Id": ALERTS_TARGET_ID, "Arn": topic_arn(ctx)}]


def plan(ctx: Context) -> list[Resource]:
    settings = {
        **failures_rule_spec(ctx.config),
        "Tags": tag_list(tags(ctx.config)),
        "Targets": targets(ctx),
    }
    return [Resource(KIND, ctx.config.failures_rule_name, settings)]


def find(ctx: Context) -> list[Found]:
    """Read the failures rule's existence and tags (no change)."""
    events, name = ctx.client("events"), ctx.config.failures_rule_name
    if read_or_none(lambda: events.describe_rule(Name=name), NOT_FOUND) is None:
        return [Found(KIND, name, exists=False)]
    arn = ctx.arn(RULE_ARN, name)
    found_tags = events.list_tags_for_resource(ResourceARN=arn).get("Tags", [])
    return [by_tags(ctx.config, KIND, name, tag_map(found_tags))]


def ensure(ctx: Context) -> list[str]:
    config, events = ctx.config, ctx.client("events")
    name = config.failures_rule_name
    want = failures_rule_spec(config)
    changes = []
    rule = read_or_none(lambda: events.describe_rule(Name=name), NOT_FOUND)
    if rule is None:
        events.put_rule(**want, Tags=tag_list(tags(config)))
        changes.append(f"created rule {name}")
    else:
        same = (
            json.loads(rule.get("EventPattern") or "{}") == json.loads(want["EventPattern"])
            and rule.get("State") == want["State"]
            and rule.get("Description") == want["Description"]
            and not rule.get("ScheduleExpression")
        )
        if not same:
            events.put_rule(**want)  # PutRule on an existing rule replaces its settings
            changes.append(f"updated rule {name}")
    wanted = targets(ctx)
    current = events.list_targets_by_rule(Rule=name).get("Targets", [])
    if current != wanted:
        extra = [t["Id"] for t in current if t["Id"] != ALERTS_TARGET_ID]
        if extra:
            answer = events.remove_targets(Rule=name, Ids=extra)
            check_targets("RemoveTargets", name, answer, len(extra))
        answer = events.put_targets(Rule=name, Targets=wanted)
        check_targets("PutTargets", name, answer, len(wanted))
        changes.append(f"set the target of rule {name} to topic {config.alerts_topic_name}")
    return changes


def check_targets(call: str, rule: str, answer: dict[str, Any], sent: int) -> None:
    """PutTargets and RemoveTargets answer 200 with FailedEntryCount > 0 when a target
    failed: a rule without its target alerts no one, so that stops ``up``/``down``."""
    failed = answer.get("FailedEntries", [])
    if answer.get("FailedEntryCount", 0) and not failed:
        failed = [{"ErrorCode": "FailedEntryCount"}] * answer["FailedEntryCount"]
    check_batch(
        call,
        f"rule {rule}",
        failed,
        sent,
        lambda e: f"target {e.get('TargetId')}: {e.get('ErrorCode')} {e.get('ErrorMessage', '')}",
    )


def delete(ctx: Context) -> list[str]:
    """The rule's targets, then the rule."""
    if not any(f.ours for f in ctx.found_of(KIND)):
        return []
    events, rule = ctx.client("events"), ctx.config.failures_rule_name
    ids = [t["Id"] for t in events.list_targets_by_rule(Rule=rule).get("Targets", [])]
    if ids:
        answer = events.remove_targets(Rule=rule, Ids=ids)
        check_targets("RemoveTargets", rule, answer, len(ids))
    events.delete_rule(Name=rule)
    return [f"rule {rule} (and its {len(ids)} target(s))"]


def down_plan(config: PipelineConfig) -> list[str]:
    return [f"{KIND} {config.failures_rule_name} (its targets first)"]


def status(ctx: Context) -> list[dict[str, Any]]:
    events, name = ctx.client("events"), ctx.config.failures_rule_name
    rule = read_or_none(lambda: events.describe_rule(Name=name), NOT_FOUND)
    if rule is None:
        return [status_row(KIND, name, "missing")]
    found = events.list_targets_by_rule(Rule=name).get("Targets", [])
    shown = ", ".join(t["Arn"] for t in found) or "none"
    return [status_row(KIND, name, rule.get("State", "?"), f"targets: {shown}")]


def template(r: Resource, s: Sentinels) -> list[CfnResource]:
    props = {**r.settings, "EventPattern": json.loads(r.settings["EventPattern"])}
    return [CfnResource(logical_id("Rule", r.name, s), "AWS::Events::Rule", props, "Name")]


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


def deployer_statements(ctx: Context) -> list[dict[str, Any]]:
    return [
        {
            "Sid": "FailuresRule",
            "Effect": "Allow",
            "Action": list(DEPLOYER_RULE_ACTIONS),
            "Resource": [ctx.arn(RULE_ARN, ctx.config.failures_rule_name)],
        }
    ]
