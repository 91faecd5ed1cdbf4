"""The workflow's two triggers: the start trigger (on demand, on ``up --schedule``, or on
the arrival of raw inputs with ``up --on-arrival``) starts the crawler; the conditional
one starts the job when the crawl succeeded."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from pipeline.config import PipelineConfig
from pipeline.errors import DeployError
from pipeline.infra.cfn import CfnResource, RefStyle, Sentinels, glue_resource
from pipeline.infra.operations import Operations
from pipeline.infra.ownership import by_tags
from pipeline.infra.shared import (
    GLUE_ARN,
    Context,
    Found,
    Resource,
    contains,
    glue_tags,
    read_or_none,
    status_row,
    tags,
)

log = logging.getLogger(__name__)

KIND = "glue-trigger"
NOT_FOUND = ("EntityNotFoundException",)
REF_STYLES = {"AWS::Glue::Trigger": RefStyle("Ref")}

# What UpdateTrigger can change; a trigger's Type and WorkflowName cannot be changed.
_TRIGGER_UPDATABLE = ("Description", "Schedule", "Actions", "Predicate", "EventBatchingCondition")
# A trigger passes through these on its own (being made, started, stopped, updated or
# deleted): up waits them out before acting on it.
TRIGGER_TRANSIENT_STATES = ("CREATING", "ACTIVATING", "DEACTIVATING", "UPDATING", "DELETING")
# The states StartTrigger is for (ACTIVATED needs nothing).
TRIGGER_STARTABLE_STATES = ("CREATED", "DEACTIVATED")
# Bounded like the bucket_exists and role_exists waits: every second, 30 times.
TRIGGER_POLL_SECONDS = 1.0
TRIGGER_POLL_ATTEMPTS = 30


def start_trigger_spec(config: PipelineConfig, ops: Operations) -> dict[str, Any]:
    """CreateTrigger's request (without Tags) for the trigger that starts the crawler:
    EVENT on arrival (the arrivals rule notifies the workflow; Glue starts a run per
    batch of events), SCHEDULED on a cron, else ON_DEMAND."""
    if ops.on_arrival:
        kind, when = "EVENT", "when raw inputs arrive"
    elif ops.cron:
        kind, when = "SCHEDULED", ops.cron
    else:
        kind, when = "ON_DEMAND", "on demand"
    spec: dict[str, Any] = {
        "Name": config.start_trigger_name,
        "WorkflowName": config.workflow_name,
        "Type": kind,
        "Description": f"Starts the crawler: {when}",
        "Actions": [{"CrawlerName": config.crawler_name}],
    }
    if kind == "SCHEDULED":
        spec["Schedule"] = ops.cron
    if kind == "EVENT":
        spec["EventBatchingCondition"] = ops.batching
    if kind != "ON_DEMAND":
        spec["StartOnCreation"] = True  # a scheduled or event trigger fires only when ACTIVATED
    return spec


def kept(ctx: Context) -> Operations:
    """``up``'s flags with what starts the workflow filled in from the deployed start
    trigger when no flag says (``up`` keeps a schedule or arrivals), and an on-arrival
    trigger's batching kept when ``--on-arrival`` comes without it."""
    ops = ctx.ops
    if ops.start_given and not ops.on_arrival:
        return ops
    name = ctx.config.start_trigger_name
    found = read_or_none(lambda: ctx.clients.glue.get_trigger(Name=name), NOT_FOUND)
    trigger = found["Trigger"] if found else {}
    batching = trigger.get("EventBatchingCondition") or {}
    if trigger.get("Type") == "EVENT" or ops.on_arrival:
        return dataclasses.replace(
            ops,
            on_arrival=True,
            batch_size=ops.batch_size or batching.get("BatchSize"),
            batch_window=ops.batch_window or batching.get("BatchWindow"),
        )
    if trigger.get("Type") == "SCHEDULED" and trigger.get("Schedule"):
        return dataclasses.replace(ops, schedule=trigger["Schedule"])
    return ops


def job_trigger_spec(config: PipelineConfig) -> dict[str, Any]:
    """CreateTrigger's request (without Tags): the job runs when the crawl SUCCEEDED."""
    return {
        "Name": config.job_trigger_name,
        "WorkflowName": config.workflow_name,
        "Type": "CONDITIONAL",
        "Description": "Starts the ETL job when the crawl succeeded",
        "Predicate": {
            "Logical": "ANY",
            "Conditions": [
                {
                    "LogicalOperator": "EQUALS",
                    "CrawlerName": config.crawler_name,
                    "CrawlState": "SUCCEEDED",
                }
            ],
        },
        "Actions": [{"JobName": config.job_name}],
        "StartOnCreation": True,
    }


def specs(ctx: Context) -> list[dict[str, Any]]:
    """Both triggers' requests, in creation order."""
    return [start_trigger_spec(ctx.config, ctx.ops), job_trigger_spec(ctx.config)]


def plan(ctx: Context) -> list[Resource]:
    return [Resource(KIND, s["Name"], {**s, "Tags": tags(ctx.config)}) for s in specs(ctx)]


def find(ctx: Context) -> list[Found]:
    """Read each trigger's existence and tags (no change)."""
    found = []
    for name in (ctx.config.start_trigger_name, ctx.config.job_trigger_name):
        if read_or_none(lambda n=name: ctx.clients.glue.get_trigger(Name=n), NOT_FOUND) is None:
            found.append(Found(KIND, name, exists=False))
        else:
            found.append(by_tags(ctx.config, KIND, name, glue_tags(ctx, f"trigger/{name}")))
    return found


def _wait_for_trigger(
    glue: Any, name: str, *, gone: bool, sleep: Callable[[float], None]
) -> dict[str, Any] | None:
    """GetTrigger until the trigger is in no transient state (return it) or is gone
    (return None); with ``gone``, until it is gone, whatever its state.

    Polls every :data:`TRIGGER_POLL_SECONDS`, at most :data:`TRIGGER_POLL_ATTEMPTS`
    times, then raises :class:`DeployError`.
    """
    state = None
    for attempt in range(TRIGGER_POLL_ATTEMPTS + 1):
        found = read_or_none(lambda: glue.get_trigger(Name=name), NOT_FOUND)
        if found is None:
            return None
        trigger = found["Trigger"]
        state = trigger.get("State")
        if not gone and state not in TRIGGER_TRANSIENT_STATES:
            return trigger
        if attempt < TRIGGER_POLL_ATTEMPTS:
            log.info("waiting for trigger %s: %s", name, state)
            sleep(TRIGGER_POLL_SECONDS)
    waited = TRIGGER_POLL_ATTEMPTS * TRIGGER_POLL_SECONDS
    until = "to be deleted" if gone else "to settle"
    raise DeployError(
        f"trigger {name} is still {state} after {waited:.0f}s of waiting for it {until}; "
        "check it in the Glue console and run `deploy.py up` again"
    )


def ensure(ctx: Context) -> list[str]:
    changes = []
    for want in specs(ctx):
        changes += _ensure_one(ctx, want)
    return changes


def _ensure_one(ctx: Context, want: dict[str, Any]) -> list[str]:
    """Create the trigger, update it, or (for another type or workflow) replace it; then
    activate it when it must be active (a scheduled or conditional trigger fires only then).

    A trigger in a transient state (CREATING, ACTIVATING, ...) is waited for first, and a
    replaced one until it is gone (DELETING takes a while on AWS, and CreateTrigger under
    its name fails meanwhile); ``ctx.sleep`` is how these waits sleep.
    """
    glue, sleep = ctx.clients.glue, ctx.sleep
    name = want["Name"]
    create = {**want, "Tags": tags(ctx.config)}
    trigger = _wait_for_trigger(glue, name, gone=False, sleep=sleep)
    if trigger is None:
        glue.create_trigger(**create)
        return [f"created trigger {name} ({want['Type']})"]
    changes = []
    if trigger.get("Type") != want["Type"] or trigger.get("WorkflowName") != want["WorkflowName"]:
        glue.delete_trigger(Name=name)
        _wait_for_trigger(glue, name, gone=True, sleep=sleep)
        glue.create_trigger(**create)
        return [f"replaced trigger {name}: {trigger.get('Type')} -> {want['Type']}"]
    # An empty member (say a Predicate {} on an ON_DEMAND trigger) counts as absent.
    current = {k: trigger[k] for k in _TRIGGER_UPDATABLE if trigger.get(k)}
    wanted = {k: want[k] for k in _TRIGGER_UPDATABLE if k in want}
    if not contains(wanted, current) or set(current) - set(wanted):
        glue.update_trigger(Name=name, TriggerUpdate={"Name": name, **wanted})
        changes.append(f"updated trigger {name}")
        trigger = _wait_for_trigger(glue, name, gone=False, sleep=sleep)
        if trigger is None:
            raise DeployError(
                f"trigger {name} was deleted while up was updating it; run `deploy.py up` again"
            )
    # Only CREATED or DEACTIVATED: an ACTIVATED trigger needs nothing, and the transient
    # states were waited out above.
    if want.get("StartOnCreation") and trigger.get("State") in TRIGGER_STARTABLE_STATES:
        glue.start_trigger(Name=name)
        changes.append(f"activated trigger {name} (was {trigger.get('State')})")
    return changes


def delete(ctx: Context) -> list[str]:
    deleted = []
    for found in reversed(ctx.found_of(KIND)):  # the job's trigger, then the start
        if found.ours:
            ctx.clients.glue.delete_trigger(Name=found.name)
            deleted.append(f"trigger {found.name}")
    return deleted


def down_plan(config: PipelineConfig) -> list[str]:
    return [f"{KIND} {config.job_trigger_name}", f"{KIND} {config.start_trigger_name}"]


def status(ctx: Context) -> list[dict[str, Any]]:
    rows = []
    for name in (ctx.config.start_trigger_name, ctx.config.job_trigger_name):
        found = read_or_none(lambda n=name: ctx.clients.glue.get_trigger(Name=n), NOT_FOUND)
        if found is None:
            rows.append(status_row(KIND, name, "missing"))
            continue
        trigger = found["Trigger"]
        detail = f"type={trigger.get('Type')}"
        if trigger.get("Schedule"):
            detail += f" schedule={trigger['Schedule']}"
        if trigger.get("EventBatchingCondition"):
            batching = trigger["EventBatchingCondition"]
            detail += (
                f" batch: {batching.get('BatchSize')} file(s) or "
                f"{batching.get('BatchWindow', 900)}s after the first"
            )
        rows.append(status_row(KIND, name, trigger.get("State", "?"), detail))
    return rows


def template(r: Resource, s: Sentinels) -> list[CfnResource]:
    return glue_resource(r, s, "AWS::Glue::Trigger", "Trigger")


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


def deployer_statements(ctx: Context) -> list[dict[str, Any]]:
    return [
        {
            "Sid": "GlueWorkflowTriggers",
            "Effect": "Allow",
            "Action": list(DEPLOYER_TRIGGER_ACTIONS),
            "Resource": [
                ctx.arn(GLUE_ARN, f"trigger/{ctx.config.start_trigger_name}"),
                ctx.arn(GLUE_ARN, f"trigger/{ctx.config.job_trigger_name}"),
            ],
        }
    ]
