"""The role EventBridge notifies the Glue workflow as (``up --on-arrival``): trusted by
EventBridge for this account only, allowed ``glue:NotifyEvent`` on our workflow only.
Without ``--on-arrival`` there is none (``up`` removes the one it made)."""

from __future__ import annotations

import json
from typing import Any

from pipeline.config import PipelineConfig
from pipeline.infra import role as glue_role
from pipeline.infra.cfn import RefStyle
from pipeline.infra.ownership import by_tags
from pipeline.infra.shared import (
    GLUE_ARN,
    ROLE_ARN,
    Context,
    Found,
    Resource,
    read_or_none,
    status_row,
    tag_list,
    tag_map,
    tags,
)

KIND = "events-role"
NOT_FOUND = ("NoSuchEntity",)
REF_STYLES = {"AWS::IAM::Role": RefStyle("Ref", "Arn", ROLE_ARN)}
INLINE_POLICY_NAME = "notify-workflow"


def events_role_arn(ctx: Context) -> str:
    return ctx.arn(ROLE_ARN, ctx.config.events_role_name)


def events_trust_policy(ctx: Context) -> dict[str, Any]:
    """Only EventBridge, for a rule of this account (``aws:SourceAccount``, a key
    EventBridge sets to the rule's account), may assume the role. Not ``aws:SourceArn``:
    in the template the rule names the role, so the role naming the rule would be a cycle."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": ctx.account.account_id}},
            }
        ],
    }


def notify_policy(ctx: Context) -> dict[str, Any]:
    """What the role may do: tell our workflow an event arrived, nothing else (AWS Glue
    developer guide, "Starting an AWS Glue workflow with an Amazon EventBridge event")."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "NotifyWorkflow",
                "Effect": "Allow",
                "Action": ["glue:NotifyEvent"],
                "Resource": [ctx.arn(GLUE_ARN, f"workflow/{ctx.config.workflow_name}")],
            }
        ],
    }


def plan(ctx: Context) -> list[Resource]:
    if not ctx.ops.on_arrival:
        return []
    settings = {
        "AssumeRolePolicyDocument": events_trust_policy(ctx),
        "InlinePolicies": {INLINE_POLICY_NAME: notify_policy(ctx)},
        "ManagedPolicies": [],
        "Tags": tags(ctx.config),
    }
    return [Resource(KIND, ctx.config.events_role_name, settings)]


def _get_role(ctx: Context) -> dict[str, Any] | None:
    iam, name = ctx.client("iam"), ctx.config.events_role_name
    return read_or_none(lambda: iam.get_role(RoleName=name)["Role"], NOT_FOUND)


def find(ctx: Context) -> list[Found]:
    """The role's tags when it exists (a deployment without ``--on-arrival`` has none)."""
    role = _get_role(ctx)
    if role is None:
        return []
    name = ctx.config.events_role_name
    return [by_tags(ctx.config, KIND, name, tag_map(role.get("Tags", [])))]


def ensure(ctx: Context) -> list[str]:
    if not ctx.ops.on_arrival:
        return delete(ctx)
    iam, name = ctx.client("iam"), ctx.config.events_role_name
    trust, changes = events_trust_policy(ctx), []
    role = _get_role(ctx)
    if role is None:
        iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(trust),
            Description="EventBridge notifies the sales pipeline's Glue workflow (deploy.py)",
            Tags=tag_list(tags(ctx.config)),
        )
        iam.get_waiter("role_exists").wait(
            RoleName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
        )
        changes.append(f"created role {name}")
    elif role["AssumeRolePolicyDocument"] != trust:
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))
        changes.append(f"restored trust policy of {name}")
    for extra in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        if extra != INLINE_POLICY_NAME:
            iam.delete_role_policy(RoleName=name, PolicyName=extra)
            changes.append(f"removed extra inline policy {extra} from {name}")
    want = notify_policy(ctx)
    current = read_or_none(
        lambda: iam.get_role_policy(RoleName=name, PolicyName=INLINE_POLICY_NAME),
        NOT_FOUND,
    )
    if current is None or current["PolicyDocument"] != want:
        iam.put_role_policy(
            RoleName=name, PolicyName=INLINE_POLICY_NAME, PolicyDocument=json.dumps(want)
        )
        changes.append(f"put inline policy {INLINE_POLICY_NAME} on {name}")
    for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        iam.detach_role_policy(RoleName=name, PolicyArn=attached["PolicyArn"])
        changes.append(f"detached managed policy {attached['PolicyArn']} from {name}")
    return changes


def delete(ctx: Context) -> list[str]:
    if not any(f.ours for f in ctx.found_of(KIND)):
        return []
    iam, name = ctx.client("iam"), ctx.config.events_role_name
    if _get_role(ctx) is None:
        return []
    for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        iam.delete_role_policy(RoleName=name, PolicyName=policy_name)
    for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        iam.detach_role_policy(RoleName=name, PolicyArn=attached["PolicyArn"])
    iam.delete_role(RoleName=name)
    return [f"role {name}"]


def down_plan(config: PipelineConfig) -> list[str]:
    return [f"{KIND} {config.events_role_name} with its policy, if there is one"]


def status(ctx: Context) -> list[dict[str, Any]]:
    if _get_role(ctx) is None:
        return []
    iam, name = ctx.client("iam"), ctx.config.events_role_name
    policies = iam.list_role_policies(RoleName=name)["PolicyNames"]
    return [status_row(KIND, name, "present", f"inline policies={','.join(policies)}")]


# The same kind of resource as the Glue role: the same template fragment and rights.
template = glue_role.template


def deployer_statements(ctx: Context) -> list[dict[str, Any]]:
    role = events_role_arn(ctx)
    return [
        {
            "Sid": "EventsRole",
            "Effect": "Allow",
            "Action": list(glue_role.DEPLOYER_ROLE_ACTIONS),
            "Resource": [role],
        },
        {
            # PutTargets with the role's ARN passes it; to EventBridge only.
            "Sid": "PassEventsRoleToEventBridge",
            "Effect": "Allow",
            "Action": ["iam:PassRole"],
            "Resource": [role],
            "Condition": {"StringEquals": {"iam:PassedToService": "events.amazonaws.com"}},
        },
    ]
