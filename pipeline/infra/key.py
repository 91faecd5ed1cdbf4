"""The customer managed KMS key the alerts topic is encrypted with, and its alias: rotated
yearly by KMS, usable by EventBridge and CloudWatch to publish, deleted by ``down`` after
the shortest waiting period KMS allows."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from pipeline.config import PipelineConfig
from pipeline.errors import DeployError
from pipeline.infra.cfn import CfnResource, RefStyle, Sentinels, logical_id
from pipeline.infra.ownership import by_tags, not_ours_error
from pipeline.infra.shared import (
    KMS_ARN,
    MANAGED_BY_KEY,
    MANAGED_BY_VALUE,
    PREFIX_KEY,
    Backoff,
    Context,
    Found,
    Resource,
    contains,
    error_code,
    read_or_none,
    retry_on_codes,
    status_row,
    tag_list,
    tag_map,
    tags,
)

T = TypeVar("T")

KIND = "kms-key"
NOT_FOUND = ("NotFoundException",)
REF_STYLES = {
    "AWS::KMS::Key": RefStyle(None),  # no name of its own: its alias has one
    "AWS::KMS::Alias": RefStyle("Ref"),
}
KEY_USAGE = "ENCRYPT_DECRYPT"
KEY_SPEC = "SYMMETRIC_DEFAULT"
KEY_DELETION_WINDOW_DAYS = 7
# Key states in which the key can encrypt again (Disabled: after EnableKey). A key
# PendingDeletion is never revived: up makes a new one (docs/aws.md, "Alerts key").
USABLE_KEY_STATES = ("Enabled", "Disabled")
# A key in these states is on its way out: down schedules nothing for it.
GONE_KEY_STATES = ("PendingDeletion", "PendingReplicaDeletion")
# deploy.py policy lets its holder read the tags of a key tagged ours only.
DENIED = ("AccessDeniedException", "AccessDenied")

# KMS: "a tag or alias change can take up to five minutes to affect authorization" (AWS
# KMS developer guide, "ABAC for AWS KMS"). deploy.py policy grants the calls on a key
# by its tags, so for the first minutes of a key's life those calls may be denied:
# they are retried on AccessDenied, 2 s doubling to 30 s, at most 5 minutes of waiting
# (each wait logged). A key counts as that young for TAG_PROPAGATION_SECONDS after its
# CreationDate, plus a minute for the clocks' skew; an older key is refused at once.
TAG_PROPAGATION_SECONDS = 300
CLOCK_SKEW_SECONDS = 60
TAG_PROPAGATION = Backoff(first=2.0, cap=30.0, budget=TAG_PROPAGATION_SECONDS)

# What EventBridge and CloudWatch need of the key to publish to the encrypted topic:
# Amazon SNS developer guide, "Enable compatibility between event sources from AWS
# services and encrypted topics" (sns-key-management.html).
ALERTS_KEY_PUBLISHER_ACTIONS = ["kms:GenerateDataKey*", "kms:Decrypt"]


def is_young(meta: dict[str, Any], now: datetime | None = None) -> bool:
    """True while a key's tags may not yet authorize calls on it (see TAG_PROPAGATION)."""
    created = meta.get("CreationDate")
    if not isinstance(created, datetime):
        return False
    now = now or datetime.now(UTC)
    age = (now - created).total_seconds()
    return age < TAG_PROPAGATION_SECONDS + CLOCK_SKEW_SECONDS


def on_key(ctx: Context, meta: dict[str, Any], call: Callable[[], T], what: str) -> T:
    """``call()`` on the key ``meta`` describes; retried on AccessDenied while the key is
    young enough for its tags not to authorize yet (see TAG_PROPAGATION)."""
    if not is_young(meta):
        return call()
    label = f"{what} on KMS key {meta['KeyId']} (its tags can take minutes to authorize)"
    return retry_on_codes(call, DENIED, label, TAG_PROPAGATION, ctx.sleep)


def alias_arn(ctx: Context) -> str:
    """The ARN of the alerts key's alias; the topic names its key by it."""
    return ctx.arn(KMS_ARN, ctx.config.alerts_key_alias)


def alerts_key_policy(ctx: Context) -> dict[str, Any]:
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
    account_id = ctx.account.account_id
    cloudwatch["Condition"] = {"StringEquals": {"aws:SourceAccount": account_id}}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountAdministersKeyThroughIAM",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{ctx.account.partition}:iam::{account_id}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            publisher("FailuresRuleEncryptsAlerts", "events.amazonaws.com"),
            cloudwatch,
        ],
    }


def alerts_key_spec(ctx: Context) -> dict[str, Any]:
    """CreateKey's request for the key that encrypts the alerts topic."""
    config = ctx.config
    return {
        # Not the topic's name: in the template that would make the key depend on the
        # topic, which depends on the key.
        "Description": f"Encrypts the alerts topic of sales pipeline {config.prefix} (deploy.py)",
        "KeyUsage": KEY_USAGE,
        "KeySpec": KEY_SPEC,
        "Policy": json.dumps(alerts_key_policy(ctx), sort_keys=True),
        "Tags": tag_list(tags(config), "TagKey", "TagValue"),
    }


def plan(ctx: Context) -> list[Resource]:
    """CreateKey's request, its rotation (EnableKeyRotation) and its alias (CreateAlias)."""
    alias = ctx.config.alerts_key_alias
    settings = {**alerts_key_spec(ctx), "EnableKeyRotation": True, "AliasName": alias}
    return [Resource(KIND, alias, settings)]


def alias_key(kms: Any, alias: str) -> dict[str, Any] | None:
    """DescribeKey's KeyMetadata of the key the alias points at, or None without the alias."""
    found = read_or_none(lambda: kms.describe_key(KeyId=alias), NOT_FOUND)
    return found["KeyMetadata"] if found else None


def key_tags(kms: Any, key_id: str) -> dict[str, str]:
    """A KMS key's tags as a map (KMS names them TagKey/TagValue)."""
    found: dict[str, str] = {}
    for page in kms.get_paginator("list_resource_tags").paginate(KeyId=key_id):
        found |= tag_map(page.get("Tags", []), "TagKey", "TagValue")
    return found


def tagged_keys(config: PipelineConfig, kms: Any) -> list[dict[str, Any]]:
    """DescribeKey's KeyMetadata of every KMS key tagged ours, in any state, looked for key
    by key (ListKeys, ListResourceTags). For when our alias is gone: ``up`` points a new
    alias at the key still there, ``down`` schedules its deletion (else it stays, $1/month)."""
    found = []
    for page in kms.get_paginator("list_keys").paginate():
        for entry in page.get("Keys", []):
            try:
                marks = key_tags(kms, entry["KeyId"])
            except ClientError as exc:
                # Another team's key, an AWS managed key: not readable under
                # deploy.py policy's tag conditions, and not ours either way.
                if error_code(exc) not in (*DENIED, "NotFoundException"):
                    raise
                continue
            if contains(tags(config), marks):
                found.append(kms.describe_key(KeyId=entry["KeyId"])["KeyMetadata"])
    return found


def find(ctx: Context) -> list[Found]:
    """Read the alerts key behind our alias: existence and tags (no change). A key pending
    deletion still holds the alias, so it is found too."""
    kms, name = ctx.client("kms"), ctx.config.alerts_key_alias
    meta = alias_key(kms, name)
    if meta is None:
        return [Found(KIND, name, exists=False)]
    try:
        found_tags = on_key(ctx, meta, lambda: key_tags(kms, meta["KeyId"]), "ListResourceTags")
    except ClientError as exc:
        if error_code(exc) not in DENIED:
            raise
        why = (
            f"its tags cannot be read, which deploy.py policy allows on a key tagged "
            f"{MANAGED_BY_KEY}={MANAGED_BY_VALUE}, {PREFIX_KEY}={ctx.config.prefix} only"
        )
        return [Found(KIND, name, exists=True, why_not_ours=why)]
    return [by_tags(ctx.config, KIND, name, found_tags)]


def _create_key(ctx: Context, kms: Any) -> dict[str, Any]:
    """CreateKey (tagged in the same call) and EnableKeyRotation; the new key's metadata.

    CreateKey leaves BypassPolicyLockoutSafetyCheck off (AWS advises against setting it):
    the key policy's first statement gives the account's root ``kms:*``, so IAM policies
    (``deploy.py policy``) can always manage the key and the check has nothing to refuse.
    """
    meta = kms.create_key(**alerts_key_spec(ctx))["KeyMetadata"]
    key_id = meta["KeyId"]
    on_key(ctx, meta, lambda: kms.enable_key_rotation(KeyId=key_id), "EnableKeyRotation")
    return meta


def _find_our_key(config: PipelineConfig, kms: Any) -> dict[str, Any] | None:
    """The newest usable key tagged ours (see :func:`tagged_keys`), or None. Only when the
    alias is gone but the topic is there: the key is most likely still there too, and
    making another would leave it behind, billed, unmanaged."""
    found = [
        meta
        for meta in tagged_keys(config, kms)
        if (meta.get("KeyUsage"), meta.get("KeySpec")) == (KEY_USAGE, KEY_SPEC)
        and meta.get("KeyState") in USABLE_KEY_STATES
    ]
    return max(found, key=lambda m: m.get("CreationDate") or 0, default=None)


def ensure(ctx: Context) -> list[str]:
    """Created (tagged, rotation on, alias pointed at it) when the alias is missing; when the
    alias points at a key of ours pending deletion (after ``down``), a new key is made
    and the alias moved to it. A key of ours that drifted gets its policy, rotation,
    description and enabled state back; an alias deleted by hand is made again for the
    key still tagged ours (when the topic is there, as ``find`` saw it before ``up``).
    """
    config, kms = ctx.config, ctx.client("kms")
    alias = config.alerts_key_alias
    want = alerts_key_spec(ctx)
    meta = alias_key(kms, alias)
    if meta is not None:
        found = find(ctx)  # up refused foreign names already; never adopt
        if not found[0].ours:
            raise not_ours_error(config, found)
    if meta is None:
        topic_there = any(f.exists for f in ctx.found_of("sns-topic"))
        kept = _find_our_key(config, kms) if topic_there else None
        if kept is None:
            meta = _create_key(ctx, kms)
            create = partial(kms.create_alias, AliasName=alias, TargetKeyId=meta["KeyId"])
            on_key(ctx, meta, create, "CreateAlias")
            return [f"created KMS key {meta['KeyId']} (alias {alias}, rotation on)"]
        kms.create_alias(AliasName=alias, TargetKeyId=kept["KeyId"])
        changes = [f"restored alias {alias} for KMS key {kept['KeyId']}"]
        meta = kept
    elif meta.get("KeyState") not in USABLE_KEY_STATES:
        old = meta
        meta = _create_key(ctx, kms)
        update = partial(kms.update_alias, AliasName=alias, TargetKeyId=meta["KeyId"])
        on_key(ctx, meta, update, "UpdateAlias")
        return [
            f"created KMS key {meta['KeyId']} (rotation on) and moved alias {alias} to it "
            f"from key {old['KeyId']}, which is {old.get('KeyState')}"
        ]
    else:
        changes = []
    key_id = meta["KeyId"]
    if (meta.get("KeyUsage"), meta.get("KeySpec")) != (KEY_USAGE, KEY_SPEC):
        raise DeployError(
            f"KMS key {key_id} behind {alias} is {meta.get('KeySpec')}/{meta.get('KeyUsage')}, "
            f"not {KEY_SPEC}/{KEY_USAGE}, which SNS needs; a key's spec cannot be changed: "
            f"delete the alias {alias} (and schedule that key's deletion) and run "
            "`deploy.py up` again for a new key"
        )
    return changes + _repair_key(ctx, kms, meta, want)


def _repair_key(ctx: Context, kms: Any, meta: dict[str, Any], want: dict[str, Any]) -> list[str]:
    """Put back a key of ours that drifted: enabled, description, policy, rotation. Each
    call goes through :func:`on_key`: the key may be minutes old (an ``up`` again)."""
    key_id, changes = meta["KeyId"], []

    def call(what: str, fn: Callable[[], T]) -> T:
        return on_key(ctx, meta, fn, what)

    if meta.get("KeyState") == "Disabled":
        call("EnableKey", lambda: kms.enable_key(KeyId=key_id))
        changes.append(f"enabled KMS key {key_id}")
    if meta.get("Description") != want["Description"]:
        description = want["Description"]
        call(
            "UpdateKeyDescription",
            lambda: kms.update_key_description(KeyId=key_id, Description=description),
        )
        changes.append(f"set description of KMS key {key_id}")
    policy = call("GetKeyPolicy", lambda: kms.get_key_policy(KeyId=key_id, PolicyName="default"))[
        "Policy"
    ]
    if json.loads(policy or "{}") != json.loads(want["Policy"]):
        wanted = want["Policy"]
        call(
            "PutKeyPolicy",
            lambda: kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=wanted),
        )
        changes.append(f"set key policy of KMS key {key_id}")
    rotation = call("GetKeyRotationStatus", lambda: kms.get_key_rotation_status(KeyId=key_id))
    if not rotation.get("KeyRotationEnabled"):
        call("EnableKeyRotation", lambda: kms.enable_key_rotation(KeyId=key_id))
        changes.append(f"enabled rotation of KMS key {key_id}")
    return changes


def _schedule_key_deletion(ctx: Context, kms: Any, meta: dict[str, Any], note: str = "") -> str:
    """ScheduleKeyDeletion with KMS's shortest waiting period; the line for ``down``'s list.
    A ``down`` minutes after ``up`` may be denied it while the key's tags propagate."""
    key_id = meta["KeyId"]
    schedule = partial(
        kms.schedule_key_deletion, KeyId=key_id, PendingWindowInDays=KEY_DELETION_WINDOW_DAYS
    )
    on_key(ctx, meta, schedule, "ScheduleKeyDeletion")
    more = f"; {note}" if note else ""
    return f"KMS key {key_id} (scheduled for deletion in {KEY_DELETION_WINDOW_DAYS} days{more})"


def delete(ctx: Context) -> list[str]:
    """After the topic it encrypts. KMS deletes a key only after a waiting period (the
    shortest, 7 days); one already pending deletion counts as gone."""
    kms, alias = ctx.client("kms"), ctx.config.alerts_key_alias
    key = ctx.found_of(KIND)[0]
    deleted = []
    if key.ours:
        meta = alias_key(kms, alias)
        if meta is not None:
            if meta.get("KeyState") not in GONE_KEY_STATES:
                deleted.append(_schedule_key_deletion(ctx, kms, meta))
            kms.delete_alias(AliasName=alias)
            deleted.append(f"alias {alias}")
    elif not key.exists:
        # The alias was deleted by hand: the key, still tagged ours, is found by its tags
        # (as `up` finds it to restore the alias); left, it would cost $1/month forever.
        for meta in tagged_keys(ctx.config, kms):
            if meta.get("KeyState") not in GONE_KEY_STATES:
                note = f"found by its tags, {alias} was missing"
                deleted.append(_schedule_key_deletion(ctx, kms, meta, note))
    return deleted


def down_plan(config: PipelineConfig) -> list[str]:
    return [
        f"{KIND} behind {config.alerts_key_alias}: scheduled for deletion in "
        f"{KEY_DELETION_WINDOW_DAYS} days (unless already pending), then the alias; "
        "without the alias, the keys tagged ours"
    ]


def status(ctx: Context) -> list[dict[str, Any]]:
    """The alerts key's row: its state (Enabled, PendingDeletion, ...), id and rotation."""
    kms, alias = ctx.client("kms"), ctx.config.alerts_key_alias
    meta = alias_key(kms, alias)
    if meta is None:
        return [status_row(KIND, alias, "missing")]
    state = meta.get("KeyState", "?")
    detail = f"id={meta['KeyId']}"
    if state in USABLE_KEY_STATES:
        read = partial(kms.get_key_rotation_status, KeyId=meta["KeyId"])
        rotation = on_key(ctx, meta, read, "GetKeyRotationStatus").get("KeyRotationEnabled")
        detail += f" rotation={'on' if rotation else 'off'}"
    if meta.get("DeletionDate"):
        detail += f" deletion on {meta['DeletionDate']}"
    return [status_row(KIND, alias, state, detail)]


def template(r: Resource, s: Sentinels) -> list[CfnResource]:
    """The key (CreateKey's request, its rotation) and its alias, which the topic names:
    the topic refers to the alias, the alias to the key, so they come in order."""
    want = r.settings
    logical = logical_id("Key", r.name.removeprefix("alias/"), s)
    props = {
        "Description": want["Description"],
        "KeyUsage": want["KeyUsage"],
        "KeySpec": want["KeySpec"],
        "KeyPolicy": json.loads(want["Policy"]),
        "EnableKeyRotation": want["EnableKeyRotation"],
        # As `down` deletes it: after KMS's shortest waiting period.
        "PendingWindowInDays": KEY_DELETION_WINDOW_DAYS,
        "Tags": tag_list(tag_map(want["Tags"], "TagKey", "TagValue")),
    }
    return [
        CfnResource(logical, "AWS::KMS::Key", props, None),
        CfnResource(
            f"{logical}Alias",
            "AWS::KMS::Alias",
            {"AliasName": want["AliasName"], "TargetKeyId": {"Ref": logical}},
            "AliasName",
        ),
    ]


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


def deployer_statements(ctx: Context) -> list[dict[str, Any]]:
    """KMS rights on keys are conditioned on up's tags (``aws:ResourceTag``)."""
    marks = tags(ctx.config)
    keys = ctx.arn(KMS_ARN, "key/*")
    key_request_tags = {
        "StringEquals": {f"aws:RequestTag/{k}": v for k, v in marks.items()},
        "ForAllValues:StringEquals": {"aws:TagKeys": sorted(marks)},
    }
    return [
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
            "Condition": {"StringEquals": {f"aws:ResourceTag/{k}": v for k, v in marks.items()}},
        },
        {
            # The key behind our alias, looked up by the alias, even if it is not
            # tagged ours: up then refuses it by name (its tags, unreadable under
            # AlertsKey's condition, say it is not ours).
            "Sid": "DescribeKeyBehindAlertsAlias",
            "Effect": "Allow",
            "Action": ["kms:DescribeKey"],
            "Resource": [keys],
            "Condition": {"StringEquals": {"kms:RequestAlias": ctx.config.alerts_key_alias}},
        },
        {
            # An alias call is authorized on the alias and on the key(s) it points
            # at; the alias's name is what narrows it (no tag condition: an alias
            # has no tags). Pointing our alias at another key grants nothing on it.
            "Sid": "AlertsKeyAlias",
            "Effect": "Allow",
            "Action": list(DEPLOYER_ALIAS_ACTIONS),
            "Resource": [alias_arn(ctx), keys],
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
    ]
