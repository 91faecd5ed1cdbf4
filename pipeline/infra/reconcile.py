"""`up`: create what is missing and put drifted settings back, only on resources that are ours."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from pipeline.config import JOB_SCRIPT, PipelineConfig
from pipeline.engines import AthenaEngine as make_engine
from pipeline.errors import DeployError
from pipeline.infra.execution import check_lake_formation, upload_job_script
from pipeline.infra.ownership import (
    Found,
    _tag_map,
    alias_key,
    check_table_locations,
    find_all,
    find_database,
    find_key,
    find_role,
    get_alarm,
    get_workgroup,
    not_ours_error,
    tagged_keys,
)
from pipeline.infra.policies import glue_role_policy, glue_trust_policy
from pipeline.infra.shared import (
    Account,
    Clients,
    _code,
    _contains,
    retry_iam_propagation,
    role_name,
    service_client,
)
from pipeline.infra.specs import (
    ALERTS_TARGET_ID,
    INLINE_POLICY_NAME,
    KEY_SPEC,
    KEY_USAGE,
    Operations,
    alerts_key_spec,
    alerts_topic_attributes,
    bucket_settings,
    crawler_spec,
    database_input,
    failures_rule_spec,
    job_spec,
    job_trigger_spec,
    quarantine_alarm_spec,
    role_arn,
    start_trigger_spec,
    tags,
    topic_arn,
    workflow_spec,
    workgroup_configuration,
)

log = logging.getLogger(__name__)


def _tag_list(tag_map: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tag_map.items())]


def _ensure_bucket(
    config: PipelineConfig, clients: Clients, found: Found, partition: str
) -> list[str]:
    """Create the bucket (tags right after CreateBucket) or repair ours; ``found`` is ours or absent."""
    s3 = clients.s3
    bucket = found.name
    changes = []
    if not found.exists:
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if config.region != "us-east-1":  # us-east-1 rejects a LocationConstraint
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": config.region}
        try:
            s3.create_bucket(**kwargs)
        except ClientError as create_exc:
            if _code(create_exc) == "BucketAlreadyExists":
                raise DeployError(
                    f"bucket name {bucket} is taken by another account; choose another --prefix"
                ) from create_exc
            if _code(create_exc) == "BucketAlreadyOwnedByYou":
                # Made by someone else in this account after we looked: not ours.
                raise DeployError(
                    f"bucket {bucket} appeared while up was running and deploy.py did not "
                    "create it; it is left alone. Choose another --prefix"
                ) from create_exc
            raise
        # Tag at once: the tags are what tell a later `up` and `down` that it is ours.
        # A crash between these two calls leaves an untagged bucket that the next `up`
        # refuses to adopt (docs/aws.md, "Ownership").
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": _tag_list(tags(config))})
        changes.append(f"created bucket {bucket}")
        s3.get_waiter("bucket_exists").wait(
            Bucket=bucket, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
        )
    elif not found.ours:  # check_nothing_foreign already refused; never adopt
        raise not_ours_error(config, [found])

    want = bucket_settings(config, bucket, partition)

    def get_or_none(call: Callable[[], Any], missing: tuple[str, ...]) -> Any:
        try:
            return call()
        except ClientError as exc:
            if _code(exc) in missing:
                return None
            raise

    pab = get_or_none(
        lambda: s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"],
        ("NoSuchPublicAccessBlockConfiguration",),
    )
    if pab != want["PublicAccessBlock"]:
        s3.put_public_access_block(
            Bucket=bucket, PublicAccessBlockConfiguration=want["PublicAccessBlock"]
        )
        changes.append(f"set public access block on {bucket}")

    enc = get_or_none(
        lambda: s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"],
        ("ServerSideEncryptionConfigurationNotFoundError",),
    )
    if not _contains(want["Encryption"], enc):
        s3.put_bucket_encryption(
            Bucket=bucket, ServerSideEncryptionConfiguration=want["Encryption"]
        )
        changes.append(f"set default encryption on {bucket}")

    if want["Versioning"]:
        status = s3.get_bucket_versioning(Bucket=bucket).get("Status")
        if status != want["Versioning"]:
            s3.put_bucket_versioning(
                Bucket=bucket, VersioningConfiguration={"Status": want["Versioning"]}
            )
            changes.append(f"enabled versioning on {bucket}")

    rules = get_or_none(
        lambda: s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"],
        ("NoSuchLifecycleConfiguration",),
    )
    if not _contains(want["Lifecycle"]["Rules"], rules):
        s3.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration=want["Lifecycle"]
        )
        changes.append(f"set lifecycle rules on {bucket}")

    policy = get_or_none(
        lambda: json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]), ("NoSuchBucketPolicy",)
    )
    if policy != want["Policy"]:
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(want["Policy"]))
        changes.append(f"set TLS-only bucket policy on {bucket}")

    return changes


def _ensure_role(config: PipelineConfig, clients: Clients, account: Account) -> list[str]:
    iam = clients.iam
    name = config.role_name
    changes = []
    trust = glue_trust_policy()
    try:
        role = iam.get_role(RoleName=name)["Role"]
    except ClientError as exc:
        if _code(exc) != "NoSuchEntity":
            raise
        iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(trust),
            Description="Glue crawler and ETL job for the sales pipeline (least privilege)",
            Tags=_tag_list(tags(config)),
        )
        iam.get_waiter("role_exists").wait(
            RoleName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
        )
        changes.append(f"created role {name}")
    else:
        # Only a role tagged as ours gets here (check_nothing_foreign); never adopt one.
        if not _contains(tags(config), _tag_map(role.get("Tags", []))):
            raise not_ours_error(config, [find_role(config, clients)])
        if role["AssumeRolePolicyDocument"] != trust:
            iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))
            changes.append(f"restored trust policy of {name}")

    wanted = glue_role_policy(config, account.account_id, account.partition)
    for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        if policy_name != INLINE_POLICY_NAME:
            iam.delete_role_policy(RoleName=name, PolicyName=policy_name)
            changes.append(f"removed extra inline policy {policy_name} from {name}")
    try:
        current_doc = iam.get_role_policy(RoleName=name, PolicyName=INLINE_POLICY_NAME)[
            "PolicyDocument"
        ]
    except ClientError as exc:
        if _code(exc) != "NoSuchEntity":
            raise
        current_doc = None
    if current_doc != wanted:
        iam.put_role_policy(
            RoleName=name, PolicyName=INLINE_POLICY_NAME, PolicyDocument=json.dumps(wanted)
        )
        changes.append(f"put inline policy {INLINE_POLICY_NAME} on {name}")
    for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        iam.detach_role_policy(RoleName=name, PolicyArn=attached["PolicyArn"])
        changes.append(f"detached managed policy {attached['PolicyArn']} from {name}")
    return changes


def _ensure_database(config: PipelineConfig, clients: Clients) -> list[str]:
    glue = clients.glue
    want = database_input(config)
    try:
        db = glue.get_database(Name=config.database)["Database"]
    except ClientError as exc:
        if _code(exc) != "EntityNotFoundException":
            raise
        glue.create_database(DatabaseInput=want)
        return [f"created database {config.database}"]
    found = find_database(config, clients)
    if not found.ours:
        # Another prefix's (or a person's) database: its crawler tables and Athena tables
        # would be overwritten or silently point at the other deployment's buckets.
        raise not_ours_error(config, [found])
    if not _contains(want, db):
        glue.update_database(Name=config.database, DatabaseInput=want)
        return [f"updated database {config.database}"]
    return []


def _as_wanted_role(want: dict[str, Any], actual: dict[str, Any]) -> dict[str, Any]:
    """``actual`` with its Role in ``want``'s form when both name the same role.

    GetCrawler answers with the role's name where ``up`` passed its ARN: compared as
    given, every ``up`` would update the crawler (and fail while a crawl runs).
    """
    if role_name(actual.get("Role", "")) == role_name(want["Role"]):
        return {**actual, "Role": want["Role"]}
    return actual


def _ensure_crawler(
    config: PipelineConfig,
    clients: Clients,
    arn: str,
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    glue = clients.glue
    want = crawler_spec(config, arn)

    def retried(call: Callable[[], Any]) -> Any:
        # The role may be seconds old: Glue may not be able to use it yet.
        return retry_iam_propagation(call, role=config.role_name, sleep=sleep)

    try:
        crawler = glue.get_crawler(Name=config.crawler_name)["Crawler"]
    except ClientError as exc:
        if _code(exc) != "EntityNotFoundException":
            raise
        retried(lambda: glue.create_crawler(**want, Tags=tags(config)))
        return [f"created crawler {config.crawler_name}"]
    if not _contains(want, _as_wanted_role(want, crawler)):
        retried(lambda: glue.update_crawler(**want))
        return [f"updated crawler {config.crawler_name}"]
    return []


def _ensure_job(
    config: PipelineConfig,
    clients: Clients,
    arn: str,
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    glue = clients.glue
    want = job_spec(config, arn)

    def retried(call: Callable[[], Any]) -> Any:
        return retry_iam_propagation(call, role=config.role_name, sleep=sleep)

    try:
        job = glue.get_job(JobName=config.job_name)["Job"]
    except ClientError as exc:
        if _code(exc) != "EntityNotFoundException":
            raise
        retried(lambda: glue.create_job(Name=config.job_name, **want, Tags=tags(config)))
        return [f"created job {config.job_name}"]
    current = _as_wanted_role(want, job)
    # The arguments exactly: one added by hand (say --extra-py-files) is code the job
    # would load and run with the Glue role, drift as much as a changed one.
    if not _contains(want, current) or current.get("DefaultArguments") != want["DefaultArguments"]:
        retried(lambda: glue.update_job(JobName=config.job_name, JobUpdate=want))
        return [f"updated job {config.job_name}"]
    return []


def _ensure_workgroup(config: PipelineConfig, clients: Clients) -> list[str]:
    athena = clients.athena
    want = workgroup_configuration(config)
    wg = get_workgroup(athena, config.workgroup)
    if wg is None:
        athena.create_work_group(
            Name=config.workgroup,
            Configuration=want,
            Description="Sales pipeline queries: enforced settings, encrypted results",
            Tags=_tag_list(tags(config)),
        )
        return [f"created workgroup {config.workgroup}"]
    current = wg.get("Configuration", {})
    if wg.get("State") != "ENABLED" or not _contains(want, current):
        athena.update_work_group(
            WorkGroup=config.workgroup,
            State="ENABLED",
            ConfigurationUpdates={
                "ResultConfigurationUpdates": want["ResultConfiguration"],
                "EnforceWorkGroupConfiguration": want["EnforceWorkGroupConfiguration"],
                "PublishCloudWatchMetricsEnabled": want["PublishCloudWatchMetricsEnabled"],
                "BytesScannedCutoffPerQuery": want["BytesScannedCutoffPerQuery"],
                "EngineVersion": want["EngineVersion"],
            },
        )
        return [f"updated workgroup {config.workgroup}"]
    return []


def _ensure_workflow(config: PipelineConfig, clients: Clients) -> list[str]:
    glue = clients.glue
    want = workflow_spec(config)
    try:
        workflow = glue.get_workflow(Name=config.workflow_name)["Workflow"]
    except ClientError as exc:
        if _code(exc) != "EntityNotFoundException":
            raise
        glue.create_workflow(**want, Tags=tags(config))
        return [f"created workflow {config.workflow_name}"]
    if not _contains(want, workflow):
        glue.update_workflow(**want)
        return [f"updated workflow {config.workflow_name}"]
    return []


# What UpdateTrigger can change; a trigger's Type and WorkflowName cannot be changed.
_TRIGGER_UPDATABLE = ("Description", "Schedule", "Actions", "Predicate")
# A trigger passes through these on its own (being made, started, stopped, updated or
# deleted): up waits them out before acting on it.
TRIGGER_TRANSIENT_STATES = ("CREATING", "ACTIVATING", "DEACTIVATING", "UPDATING", "DELETING")
# The states StartTrigger is for (ACTIVATED needs nothing).
TRIGGER_STARTABLE_STATES = ("CREATED", "DEACTIVATED")
# Bounded like the bucket_exists and role_exists waits above: every second, 30 times.
TRIGGER_POLL_SECONDS = 1.0
TRIGGER_POLL_ATTEMPTS = 30


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
        try:
            trigger = glue.get_trigger(Name=name)["Trigger"]
        except ClientError as exc:
            if _code(exc) != "EntityNotFoundException":
                raise
            return None
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


def _ensure_trigger(
    config: PipelineConfig,
    clients: Clients,
    want: dict[str, Any],
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    """Create the trigger, update it, or (for another type or workflow) replace it; then
    activate it when it must be active (a scheduled or conditional trigger fires only then).

    A trigger in a transient state (CREATING, ACTIVATING, ...) is waited for first, and a
    replaced one until it is gone (DELETING takes a while on AWS, and CreateTrigger under
    its name fails meanwhile); ``sleep`` is how these waits sleep.
    """
    glue = clients.glue
    name = want["Name"]
    create = {**want, "Tags": tags(config)}
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
    if not _contains(wanted, current) or set(current) - set(wanted):
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


# Key states in which the key can encrypt again (Disabled: after EnableKey). A key
# PendingDeletion is never revived: up makes a new one (docs/aws.md, "Alerts key").
USABLE_KEY_STATES = ("Enabled", "Disabled")


def _create_key(config: PipelineConfig, kms: Any, account: Account) -> dict[str, Any]:
    """CreateKey (tagged in the same call) and EnableKeyRotation; the new key's metadata."""
    meta = kms.create_key(**alerts_key_spec(config, account.account_id, account.partition))[
        "KeyMetadata"
    ]
    kms.enable_key_rotation(KeyId=meta["KeyId"])
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


def _ensure_key(config: PipelineConfig, clients: Clients, account: Account) -> list[str]:
    """The customer managed key the alerts topic is encrypted with, and its alias.

    Created (tagged, rotation on, alias pointed at it) when the alias is missing; when the
    alias points at a key of ours pending deletion (after ``down``), a new key is made
    and the alias moved to it. A key of ours that drifted gets its policy, rotation,
    description and enabled state back; an alias deleted by hand is made again for the
    key still tagged ours.
    """
    kms = service_client(config, clients, "kms")
    alias = config.alerts_key_alias
    want = alerts_key_spec(config, account.account_id, account.partition)
    meta = alias_key(kms, alias)
    if meta is not None:
        found = find_key(config, clients, account)  # find_all refused already; never adopt
        if not found.ours:
            raise not_ours_error(config, [found])
    if meta is None:
        sns = service_client(config, clients, "sns")
        topic = topic_arn(config, account.account_id, account.partition)
        try:
            sns.get_topic_attributes(TopicArn=topic)
            kept = _find_our_key(config, kms)
        except ClientError as exc:
            if _code(exc) not in ("NotFound", "NotFoundException"):
                raise
            kept = None
        if kept is not None:
            kms.create_alias(AliasName=alias, TargetKeyId=kept["KeyId"])
            changes = [f"restored alias {alias} for KMS key {kept['KeyId']}"]
            meta = kept
        else:
            meta = _create_key(config, kms, account)
            kms.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
            return [f"created KMS key {meta['KeyId']} (alias {alias}, rotation on)"]
    elif meta.get("KeyState") not in USABLE_KEY_STATES:
        old = meta
        meta = _create_key(config, kms, account)
        kms.update_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
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
    if meta.get("KeyState") == "Disabled":
        kms.enable_key(KeyId=key_id)
        changes.append(f"enabled KMS key {key_id}")
    if meta.get("Description") != want["Description"]:
        kms.update_key_description(KeyId=key_id, Description=want["Description"])
        changes.append(f"set description of KMS key {key_id}")
    policy = kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]
    if json.loads(policy or "{}") != json.loads(want["Policy"]):
        kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=want["Policy"])
        changes.append(f"set key policy of KMS key {key_id}")
    if not kms.get_key_rotation_status(KeyId=key_id).get("KeyRotationEnabled"):
        kms.enable_key_rotation(KeyId=key_id)
        changes.append(f"enabled rotation of KMS key {key_id}")
    return changes


def _ensure_topic(
    config: PipelineConfig, clients: Clients, account: Account, ops: Operations
) -> list[str]:
    sns = service_client(config, clients, "sns")
    arn = topic_arn(config, account.account_id, account.partition)
    want = alerts_topic_attributes(config, account.account_id, account.partition)
    changes = []
    try:
        current = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    except ClientError as exc:
        if _code(exc) not in ("NotFound", "NotFoundException"):
            raise
        sns.create_topic(
            Name=config.alerts_topic_name,
            Attributes=want,
            Tags=[{"Key": k, "Value": v} for k, v in sorted(tags(config).items())],
        )
        changes.append(f"created topic {config.alerts_topic_name}")
        current = want
    if current.get("KmsMasterKeyId") != want["KmsMasterKeyId"]:
        sns.set_topic_attributes(
            TopicArn=arn, AttributeName="KmsMasterKeyId", AttributeValue=want["KmsMasterKeyId"]
        )
        changes.append(f"set encryption of topic {config.alerts_topic_name}")
    if json.loads(current.get("Policy") or "{}") != json.loads(want["Policy"]):
        sns.set_topic_attributes(
            TopicArn=arn, AttributeName="Policy", AttributeValue=want["Policy"]
        )
        changes.append(f"set policy of topic {config.alerts_topic_name}")
    if ops.alert_email:
        subscribed = [
            s
            for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=arn)
            for s in page.get("Subscriptions", [])
            if s.get("Protocol") == "email" and s.get("Endpoint") == ops.alert_email
        ]
        if not subscribed:
            sns.subscribe(TopicArn=arn, Protocol="email", Endpoint=ops.alert_email)
            changes.append(
                f"subscribed {ops.alert_email} to {config.alerts_topic_name} (AWS emails a "
                "confirmation link: alerts reach the address once it is clicked)"
            )
    return changes


def _ensure_rule(config: PipelineConfig, clients: Clients, account: Account) -> list[str]:
    events = service_client(config, clients, "events")
    name = config.failures_rule_name
    want = failures_rule_spec(config)
    changes = []
    try:
        rule = events.describe_rule(Name=name)
    except ClientError as exc:
        if _code(exc) != "ResourceNotFoundException":
            raise
        events.put_rule(
            **want, Tags=[{"Key": k, "Value": v} for k, v in sorted(tags(config).items())]
        )
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
    wanted = [
        {"Id": ALERTS_TARGET_ID, "Arn": topic_arn(config, account.account_id, account.partition)}
    ]
    targets = events.list_targets_by_rule(Rule=name).get("Targets", [])
    if targets != wanted:
        extra = [t["Id"] for t in targets if t["Id"] != ALERTS_TARGET_ID]
        if extra:
            events.remove_targets(Rule=name, Ids=extra)
        events.put_targets(Rule=name, Targets=wanted)
        changes.append(f"set the target of rule {name} to topic {config.alerts_topic_name}")
    return changes


def _ensure_alarm(
    config: PipelineConfig, clients: Clients, account: Account, ops: Operations
) -> list[str]:
    cloudwatch = service_client(config, clients, "cloudwatch")
    want = quarantine_alarm_spec(
        config, ops, topic_arn(config, account.account_id, account.partition)
    )
    alarm = get_alarm(cloudwatch, config.quarantine_alarm_name)
    if alarm is None:
        cloudwatch.put_metric_alarm(
            **want, Tags=[{"Key": k, "Value": v} for k, v in sorted(tags(config).items())]
        )
        return [f"created alarm {config.quarantine_alarm_name}"]
    extra_actions = alarm.get("OKActions") or alarm.get("InsufficientDataActions")
    if not _contains(want, alarm) or extra_actions:
        cloudwatch.put_metric_alarm(**want)  # replaces the alarm's whole definition
        return [f"updated alarm {config.quarantine_alarm_name}"]
    return []


def ensure_operations(
    config: PipelineConfig,
    clients: Clients,
    account: Account,
    ops: Operations,
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    """The workflow and its triggers, the alerts key, the alerts topic (and subscription),
    the failures rule and the quarantine-rate alarm: created, or put back to ``ops`` and the
    specs. ``sleep`` is how the waits for a trigger in a transient state sleep."""
    changes = _ensure_workflow(config, clients)
    changes += _ensure_trigger(config, clients, start_trigger_spec(config, ops), sleep=sleep)
    changes += _ensure_trigger(config, clients, job_trigger_spec(config), sleep=sleep)
    changes += _ensure_key(config, clients, account)
    changes += _ensure_topic(config, clients, account, ops)
    changes += _ensure_rule(config, clients, account)
    changes += _ensure_alarm(config, clients, account, ops)
    return changes


def create_tables(config: PipelineConfig, engine: Any = None) -> None:
    """Run the DDL blocks of athena_queries.sql through Athena."""
    (engine or make_engine(config)).setup_tables()


def up(
    config: PipelineConfig,
    clients: Clients | None = None,
    *,
    tables: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    ops: Operations | None = None,
) -> list[str]:
    """Create what is missing and put drifted settings back; return the changes made.

    ``ops`` are the flags for the workflow's schedule, the alert email and the alarm's
    threshold (default: on demand, none, 5%). ``sleep`` is how the IAM-propagation
    retries and the waits for a trigger in a transient state sleep (tests pass a recorder).
    """
    ops = ops or Operations()
    problems = ops.problems()
    if problems:
        raise DeployError("; ".join(problems))
    clients = clients or Clients.for_config(config)
    account = Account.of(clients)
    # Read everything first: refuse before any change if one of our names is taken.
    found = find_all(config, clients, account)
    foreign = [f for f in found if f.exists and not f.ours]
    if foreign:
        raise not_ours_error(config, foreign)
    # Where Lake Formation governs the catalog, the crawler and Athena would fail later.
    check_lake_formation(config, clients)
    changes: list[str] = []
    for bucket_found in found[: len(config.buckets)]:
        changes += _ensure_bucket(config, clients, bucket_found, account.partition)
    changes += _ensure_role(config, clients, account)
    if not JOB_SCRIPT.is_file():
        log.warning("%s not found; the job's script is not uploaded yet", JOB_SCRIPT.name)
    elif upload_job_script(config, clients):
        changes.append(f"uploaded job script to {config.script_uri}")
    changes += _ensure_database(config, clients)
    arn = role_arn(config, account.account_id, account.partition)
    changes += _ensure_crawler(config, clients, arn, sleep=sleep)
    changes += _ensure_job(config, clients, arn, sleep=sleep)
    changes += _ensure_workgroup(config, clients)
    changes += ensure_operations(config, clients, account, ops, sleep=sleep)
    for change in changes:
        log.info("%s", change)
    # The DDL is CREATE ... IF NOT EXISTS: safe to repeat, so not counted as a change,
    # but it keeps a table that already exists, wherever it points: check the locations.
    if tables:
        create_tables(config)
        log.info("ran the DDL blocks of athena_queries.sql in workgroup %s", config.workgroup)
    check_table_locations(config, clients.glue, warn_missing=tables)
    return changes
