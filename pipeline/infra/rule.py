"""The EventBridge rules: the failures rule sends our job runs and crawls that fail to the
topic (retried, and kept in the dead-letter queue when undeliverable); with
``up --on-arrival``, the arrivals rule tells the workflow that a raw input landed."""

from __future__ import annotations

import json
from typing import Any

from pipeline.config import RAW_CUSTOMERS_PREFIX, RAW_SALES_PREFIX, PipelineConfig
from pipeline.infra.cfn import CfnResource, RefStyle, Sentinels, logical_id
from pipeline.infra.events_role import events_role_arn
from pipeline.infra.ownership import by_tags
from pipeline.infra.queue import queue_arn
from pipeline.infra.shared import (
    GLUE_ARN,
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
WORKFLOW_TARGET_ID = "workflow"
# Glue job runs and crawls that end badly, as EventBridge reports them.
FAILED_JOB_STATES = ("FAILED", "TIMEOUT", "STOPPED")
FAILED_CRAWLER_STATES = ("Failed",)
# How long EventBridge keeps trying a target (its longest: 24 hours, 185 attempts) before
# the event goes to the dead-letter queue.
RETRY_POLICY = {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 24 * 3600}


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


def arrivals_event_pattern(config: PipelineConfig) -> dict[str, Any]:
    """S3's Object Created events (EventBridge notifications of the raw bucket) for a key
    under one of the two raw input folders: what the job reads. Nothing else in the bucket
    starts a run."""
    return {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {
            "bucket": {"name": [config.raw_bucket]},
            "object": {"key": [{"prefix": RAW_SALES_PREFIX}, {"prefix": RAW_CUSTOMERS_PREFIX}]},
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


def arrivals_rule_spec(config: PipelineConfig) -> dict[str, Any]:
    """PutRule's request (without Tags) of the rule that starts the workflow on arrival."""
    return {
        "Name": config.arrivals_rule_name,
        "Description": "Raw inputs landing in the raw bucket: to the Glue workflow",
        "EventPattern": json.dumps(arrivals_event_pattern(config), sort_keys=True),
        "State": "ENABLED",
    }


def targets(ctx: Context) -> list[dict[str, Any]]:
    """PutTargets' request for the failures rule: the alerts topic, retried, and the
    dead-letter queue for what still cannot be delivered."""
    return [
        {
            "Id": ALERTS_TARGET_ID,
            "Arn": topic_arn(ctx),
            "RetryPolicy": dict(RETRY_POLICY),
            "DeadLetterConfig": {"Arn": queue_arn(ctx)},
        }
    ]


def arrivals_targets(ctx: Context) -> list[dict[str, Any]]:
    """PutTargets' request for the arrivals rule: the workflow, notified as the events role
    (Glue's event trigger counts the events and starts a run per batch)."""
    return [
        {
            "Id": WORKFLOW_TARGET_ID,
            "Arn": ctx.arn(GLUE_ARN, f"workflow/{ctx.config.workflow_name}"),
            "RoleArn": events_role_arn(ctx),
            "RetryPolicy": dict(RETRY_POLICY),
        }
    ]


def wanted(ctx: Context) -> list[tuple[dict[str, Any], list[dict[str, Any]], str]]:
    """Each rule up keeps: its PutRule request, its targets and what they are, in
    creation order."""
    config = ctx.config
    rules = [(failures_rule_spec(config), targets(ctx), f"topic {config.alerts_topic_name}")]
    if ctx.ops.on_arrival:
        rules.append(
            (arrivals_rule_spec(config), arrivals_targets(ctx), f"workflow {config.workflow_name}")
        )
    return rules


def plan(ctx: Context) -> list[Resource]:
    tag_entries = tag_list(tags(ctx.config))
    return [
        Resource(KIND, spec["Name"], {**spec, "Tags": tag_entries, "Targets": rule_targets})
        for spec, rule_targets, _ in wanted(ctx)
    ]


def _describe(events: Any, name: str) -> dict[str, Any] | None:
    return read_or_none(lambda: events.describe_rule(Name=name), NOT_FOUND)


def find(ctx: Context) -> list[Found]:
    """Read each rule's existence and tags (no change). The arrivals rule counts only when
    it exists: a deployment without ``--on-arrival`` has none."""
    events, found = ctx.client("events"), []
    for name in (ctx.config.failures_rule_name, ctx.config.arrivals_rule_name):
        if _describe(events, name) is None:
            if name == ctx.config.failures_rule_name:
                found.append(Found(KIND, name, exists=False))
            continue
        arn = ctx.arn(RULE_ARN, name)
        found_tags = events.list_tags_for_resource(ResourceARN=arn).get("Tags", [])
        found.append(by_tags(ctx.config, KIND, name, tag_map(found_tags)))
    return found


def put_targets(events: Any, rule: str, rule_targets: list[dict[str, Any]]) -> None:
    """PutTargets: every target of our rules goes through here, its answer checked."""
    answer = events.put_targets(Rule=rule, Targets=rule_targets)
    check_targets("PutTargets", rule, answer, len(rule_targets))


def ensure(ctx: Context) -> list[str]:
    changes = []
    for spec, rule_targets, shown in wanted(ctx):
        changes += _ensure_one(ctx, spec, rule_targets, shown)
    if not ctx.ops.on_arrival:
        changes += _delete_one(ctx, ctx.config.arrivals_rule_name)
    return changes


def _ensure_one(
    ctx: Context, want: dict[str, Any], wanted_targets: list[dict[str, Any]], shown: str
) -> list[str]:
    events, name = ctx.client("events"), want["Name"]
    changes = []
    rule = _describe(events, name)
    if rule is None:
        events.put_rule(**want, Tags=tag_list(tags(ctx.config)))
        changes.append(f"created rule {name}")
        current: list[dict[str, Any]] = []  # a rule just made has no targets to list
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
        current = events.list_targets_by_rule(Rule=name).get("Targets", [])
    if current != wanted_targets:
        keep = {t["Id"] for t in wanted_targets}
        extra = [t["Id"] for t in current if t["Id"] not in keep]
        if extra:
            answer = events.remove_targets(Rule=name, Ids=extra)
            check_targets("RemoveTargets", name, answer, len(extra))
        put_targets(events, name, wanted_targets)
        changes.append(f"set the target of rule {name} to {shown}")
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


def _delete_one(ctx: Context, name: str) -> list[str]:
    """The rule's targets, then the rule, when it exists and is ours."""
    if not any(f.ours and f.name == name for f in ctx.found_of(KIND)):
        return []
    events = ctx.client("events")
    if _describe(events, name) is None:
        return []
    ids = [t["Id"] for t in events.list_targets_by_rule(Rule=name).get("Targets", [])]
    if ids:
        answer = events.remove_targets(Rule=name, Ids=ids)
        check_targets("RemoveTargets", name, answer, len(ids))
    events.delete_rule(Name=name)
    return [f"rule {name} (and its {len(ids)} target(s))"]


def delete(ctx: Context) -> list[str]:
    """Each rule of ours: its targets, then the rule."""
    deleted = []
    for name in (ctx.config.arrivals_rule_name, ctx.config.failures_rule_name):
        deleted += _delete_one(ctx, name)
    return deleted


def down_plan(config: PipelineConfig) -> list[str]:
    return [
        f"{KIND} {config.arrivals_rule_name} if there is one (its targets first)",
        f"{KIND} {config.failures_rule_name} (its targets first)",
    ]


def status(ctx: Context) -> list[dict[str, Any]]:
    events, rows = ctx.client("events"), []
    for name in (ctx.config.failures_rule_name, ctx.config.arrivals_rule_name):
        rule = _describe(events, name)
        if rule is None:
            if name == ctx.config.failures_rule_name:
                rows.append(status_row(KIND, name, "missing"))
            continue
        found = events.list_targets_by_rule(Rule=name).get("Targets", [])
        shown = ", ".join(_target_shown(t) for t in found) or "none"
        rows.append(status_row(KIND, name, rule.get("State", "?"), f"targets: {shown}"))
    return rows


def _target_shown(target: dict[str, Any]) -> str:
    dead_letters = (target.get("DeadLetterConfig") or {}).get("Arn")
    return target["Arn"] + (f" (dead letters: {dead_letters})" if dead_letters else "")


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
    config = ctx.config
    return [
        {
            "Sid": "EventRules",
            "Effect": "Allow",
            "Action": list(DEPLOYER_RULE_ACTIONS),
            "Resource": [
                ctx.arn(RULE_ARN, config.failures_rule_name),
                ctx.arn(RULE_ARN, config.arrivals_rule_name),
            ],
        }
    ]
