"""Ownership: what exists under our names, whether it carries our marks, where tables read."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from pipeline.config import PipelineConfig
from pipeline.errors import DeployError
from pipeline.infra.policies import alarm_arn, rule_arn
from pipeline.infra.shared import Account, Clients, _code, _contains, service_client
from pipeline.infra.specs import (
    CURATED_TABLES,
    MANAGED_BY_KEY,
    MANAGED_BY_VALUE,
    PREFIX_KEY,
    tags,
    topic_arn,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Found:
    """What exists under one of this deployment's names, and whether it carries our marks."""

    kind: str
    name: str
    exists: bool
    ours: bool = False
    why_not_ours: str = ""
    owner: str | None = None  # the deploy.py prefix it is marked for, if another one


# HeadBucket answers 403: the bucket exists and this identity may not list it. S3
# names are global, so it is most likely another account's.
NAME_TAKEN = "the name is taken: HeadBucket answers 403 (another account's bucket?)"


def _tag_map(tag_list: Iterable[dict[str, str]]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tag_list}


def _by_tags(config: PipelineConfig, kind: str, name: str, found_tags: dict[str, str]) -> Found:
    if _contains(tags(config), found_tags):
        return Found(kind, name, exists=True, ours=True)
    owner = found_tags.get(PREFIX_KEY)
    if found_tags.get(MANAGED_BY_KEY) == MANAGED_BY_VALUE and owner:
        why = f"tagged for deploy.py prefix {owner!r}, not {config.prefix!r}"
        return Found(kind, name, exists=True, ours=False, why_not_ours=why, owner=owner)
    if found_tags:
        why = f"not tagged {MANAGED_BY_KEY}={MANAGED_BY_VALUE}, {PREFIX_KEY}={config.prefix}"
    else:
        why = "it has no tags"
    return Found(kind, name, exists=True, ours=False, why_not_ours=why)


def find_bucket(config: PipelineConfig, clients: Clients, bucket: str) -> Found:
    """Read one bucket's existence and tags (no change)."""
    s3 = clients.s3
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if _code(exc) in ("404", "NoSuchBucket", "NotFound"):
            return Found("s3-bucket", bucket, exists=False)
        if _code(exc) in ("403", "AccessDenied"):
            return Found("s3-bucket", bucket, exists=True, why_not_ours=NAME_TAKEN)
        raise
    try:
        tag_set = s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
    except ClientError as exc:
        if _code(exc) != "NoSuchTagSet":
            raise
        tag_set = []
    return _by_tags(config, "s3-bucket", bucket, _tag_map(tag_set))


def find_role(config: PipelineConfig, clients: Clients) -> Found:
    """Read the Glue role's existence and tags (no change)."""
    try:
        role = clients.iam.get_role(RoleName=config.role_name)["Role"]
    except ClientError as exc:
        if _code(exc) != "NoSuchEntity":
            raise
        return Found("iam-role", config.role_name, exists=False)
    return _by_tags(config, "iam-role", config.role_name, _tag_map(role.get("Tags", [])))


def find_database(config: PipelineConfig, clients: Clients) -> Found:
    """Read the Glue database's existence and owner parameters (no change)."""
    name = config.database
    try:
        db = clients.glue.get_database(Name=name)["Database"]
    except ClientError as exc:
        if _code(exc) != "EntityNotFoundException":
            raise
        return Found("glue-database", name, exists=False)
    params = db.get("Parameters") or {}
    owner = params.get(PREFIX_KEY)
    if owner == config.prefix and params.get(MANAGED_BY_KEY) == MANAGED_BY_VALUE:
        return Found("glue-database", name, exists=True, ours=True)
    if owner == config.prefix:
        why = f"its {MANAGED_BY_KEY} parameter is not {MANAGED_BY_VALUE}"
    elif owner:
        why = f"its {PREFIX_KEY} parameter says it belongs to prefix {owner!r}"
    else:
        why = f"it has no {PREFIX_KEY} parameter: deploy.py did not create it"
    return Found("glue-database", name, exists=True, why_not_ours=why, owner=owner)


def _glue_tags(
    clients: Clients, account: Account, config: PipelineConfig, kind: str, name: str
) -> dict:
    arn = f"arn:{account.partition}:glue:{config.region}:{account.account_id}:{kind}/{name}"
    return clients.glue.get_tags(ResourceArn=arn).get("Tags", {})


def find_crawler(config: PipelineConfig, clients: Clients, account: Account) -> Found:
    """Read the crawler's existence and tags (no change)."""
    name = config.crawler_name
    try:
        clients.glue.get_crawler(Name=name)
    except ClientError as exc:
        if _code(exc) != "EntityNotFoundException":
            raise
        return Found("glue-crawler", name, exists=False)
    return _by_tags(
        config, "glue-crawler", name, _glue_tags(clients, account, config, "crawler", name)
    )


def find_job(config: PipelineConfig, clients: Clients, account: Account) -> Found:
    """Read the job's existence and tags (no change)."""
    name = config.job_name
    try:
        clients.glue.get_job(JobName=name)
    except ClientError as exc:
        if _code(exc) != "EntityNotFoundException":
            raise
        return Found("glue-job", name, exists=False)
    return _by_tags(config, "glue-job", name, _glue_tags(clients, account, config, "job", name))


def find_workgroup(config: PipelineConfig, clients: Clients, account: Account) -> Found:
    """Read the Athena workgroup's existence and tags (no change)."""
    name = config.workgroup
    if get_workgroup(clients.athena, name) is None:
        return Found("athena-workgroup", name, exists=False)
    arn = f"arn:{account.partition}:athena:{config.region}:{account.account_id}:workgroup/{name}"
    try:
        found_tags = clients.athena.list_tags_for_resource(ResourceARN=arn).get("Tags", [])
    except ClientError as exc:
        # moto answers this for a workgroup created without tags; either way the
        # workgroup exists and shows no marks of ours, so it is not ours.
        if _code(exc) != "InvalidRequestException":
            raise
        found_tags = []
    return _by_tags(config, "athena-workgroup", name, _tag_map(found_tags))


def find_workflow(config: PipelineConfig, clients: Clients, account: Account) -> Found:
    """Read the Glue workflow's existence and tags (no change)."""
    name = config.workflow_name
    try:
        clients.glue.get_workflow(Name=name)
    except ClientError as exc:
        if _code(exc) != "EntityNotFoundException":
            raise
        return Found("glue-workflow", name, exists=False)
    found_tags = _glue_tags(clients, account, config, "workflow", name)
    return _by_tags(config, "glue-workflow", name, found_tags)


def find_trigger(config: PipelineConfig, clients: Clients, account: Account, name: str) -> Found:
    """Read one of the workflow's triggers: existence and tags (no change)."""
    try:
        clients.glue.get_trigger(Name=name)
    except ClientError as exc:
        if _code(exc) != "EntityNotFoundException":
            raise
        return Found("glue-trigger", name, exists=False)
    return _by_tags(
        config, "glue-trigger", name, _glue_tags(clients, account, config, "trigger", name)
    )


def find_topic(config: PipelineConfig, clients: Clients, account: Account) -> Found:
    """Read the alerts topic's existence and tags (no change)."""
    sns = service_client(config, clients, "sns")
    name = config.alerts_topic_name
    arn = topic_arn(config, account.account_id, account.partition)
    try:
        sns.get_topic_attributes(TopicArn=arn)
    except ClientError as exc:
        if _code(exc) not in ("NotFound", "NotFoundException"):
            raise
        return Found("sns-topic", name, exists=False)
    found_tags = sns.list_tags_for_resource(ResourceArn=arn).get("Tags", [])
    return _by_tags(config, "sns-topic", name, _tag_map(found_tags))


def find_rule(config: PipelineConfig, clients: Clients, account: Account) -> Found:
    """Read the failures rule's existence and tags (no change)."""
    events = service_client(config, clients, "events")
    name = config.failures_rule_name
    try:
        events.describe_rule(Name=name)
    except ClientError as exc:
        if _code(exc) != "ResourceNotFoundException":
            raise
        return Found("events-rule", name, exists=False)
    arn = rule_arn(config, account.account_id, account.partition)
    found_tags = events.list_tags_for_resource(ResourceARN=arn).get("Tags", [])
    return _by_tags(config, "events-rule", name, _tag_map(found_tags))


def alias_key(kms: Any, alias: str) -> dict[str, Any] | None:
    """DescribeKey's KeyMetadata of the key the alias points at, or None without the alias."""
    try:
        return kms.describe_key(KeyId=alias)["KeyMetadata"]
    except ClientError as exc:
        if _code(exc) != "NotFoundException":
            raise
        return None


def key_tags(kms: Any, key_id: str) -> dict[str, str]:
    """A KMS key's tags as a map (KMS names them TagKey/TagValue)."""
    found: dict[str, str] = {}
    for page in kms.get_paginator("list_resource_tags").paginate(KeyId=key_id):
        found |= {t["TagKey"]: t["TagValue"] for t in page.get("Tags", [])}
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
                if _code(exc) not in ("AccessDeniedException", "AccessDenied", "NotFoundException"):
                    raise
                continue
            if _contains(tags(config), marks):
                found.append(kms.describe_key(KeyId=entry["KeyId"])["KeyMetadata"])
    return found


def find_key(config: PipelineConfig, clients: Clients, account: Account) -> Found:
    """Read the alerts key behind our alias: existence and tags (no change). A key pending
    deletion still holds the alias, so it is found too."""
    kms = service_client(config, clients, "kms")
    name = config.alerts_key_alias
    meta = alias_key(kms, name)
    if meta is None:
        return Found("kms-key", name, exists=False)
    try:
        found_tags = key_tags(kms, meta["KeyId"])
    except ClientError as exc:
        # deploy.py policy lets its holder read the tags of a key tagged ours only.
        if _code(exc) not in ("AccessDeniedException", "AccessDenied"):
            raise
        why = (
            f"its tags cannot be read, which deploy.py policy allows on a key tagged "
            f"{MANAGED_BY_KEY}={MANAGED_BY_VALUE}, {PREFIX_KEY}={config.prefix} only"
        )
        return Found("kms-key", name, exists=True, why_not_ours=why)
    return _by_tags(config, "kms-key", name, found_tags)


def get_alarm(cloudwatch: Any, name: str) -> dict[str, Any] | None:
    """The metric alarm's description, or None when there is none by that name."""
    alarms = cloudwatch.describe_alarms(AlarmNames=[name], AlarmTypes=["MetricAlarm"])
    found = alarms.get("MetricAlarms", [])
    return found[0] if found else None


def find_alarm(config: PipelineConfig, clients: Clients, account: Account) -> Found:
    """Read the quarantine-rate alarm's existence and tags (no change)."""
    cloudwatch = service_client(config, clients, "cloudwatch")
    name = config.quarantine_alarm_name
    if get_alarm(cloudwatch, name) is None:
        return Found("cloudwatch-alarm", name, exists=False)
    arn = alarm_arn(config, account.account_id, account.partition)
    found_tags = cloudwatch.list_tags_for_resource(ResourceARN=arn).get("Tags", [])
    return _by_tags(config, "cloudwatch-alarm", name, _tag_map(found_tags))


def find_operations(config: PipelineConfig, clients: Clients, account: Account) -> list[Found]:
    """The workflow, its triggers, the alerts key, the topic, the rule and the alarm."""
    return [
        find_workflow(config, clients, account),
        find_trigger(config, clients, account, config.start_trigger_name),
        find_trigger(config, clients, account, config.job_trigger_name),
        find_key(config, clients, account),
        find_topic(config, clients, account),
        find_rule(config, clients, account),
        find_alarm(config, clients, account),
    ]


def find_all(config: PipelineConfig, clients: Clients, account: Account) -> list[Found]:
    """Every resource name this deployment uses: what exists and whether it is ours."""
    return [
        *(find_bucket(config, clients, b) for b in config.buckets),
        find_role(config, clients),
        find_database(config, clients),
        find_crawler(config, clients, account),
        find_job(config, clients, account),
        find_workgroup(config, clients, account),
        *find_operations(config, clients, account),
    ]


def not_ours_error(config: PipelineConfig, foreign: list[Found]) -> DeployError:
    """The error for resources that carry one of our names but not our marks (one line)."""
    taken = [f.name for f in foreign if f.kind == "s3-bucket" and f.why_not_ours == NAME_TAKEN]
    if taken and len(taken) == len(foreign):
        return DeployError(
            f"bucket name{'s' if len(taken) > 1 else ''} {', '.join(taken)} taken: S3 bucket "
            "names are global and HeadBucket answers 403 (another account owns the name, or "
            "this identity may not list it); choose another --prefix"
        )
    listed = "; ".join(f"{f.kind} {f.name} ({f.why_not_ours})" for f in foreign)
    hints = []
    if any(f.kind != "glue-database" for f in foreign):
        hints.append(
            "choose another --prefix (every name except the Glue database derives from it)"
        )
    for f in foreign:
        if f.kind != "glue-database":
            continue
        remedy = (
            f"run `deploy.py down --prefix {f.owner}` if that deployment is no longer needed"
            if f.owner
            else "drop it yourself if it is no longer needed"
        )
        hints.append(
            f"the database name {config.database} is fixed and shared by every prefix, so one "
            f"account and region holds one deployment at a time: {remedy}, or deploy to "
            "another region or account"
        )
    if any(f.kind == "s3-bucket" and f.why_not_ours == "it has no tags" for f in foreign):
        hints.append(
            "if an untagged bucket is an empty one that an interrupted `up` created just before "
            "it could tag it, delete it yourself and run `up` again"
        )
    return DeployError(
        f"refusing to touch prefix {config.prefix!r}: these already exist and deploy.py did not "
        f"create them for this prefix, so it will neither change nor delete them: {listed}. "
        f"To go on, {'; '.join(hints)}."
    )


def check_nothing_foreign(config: PipelineConfig, clients: Clients, account: Account) -> None:
    """Raise :class:`DeployError` if any of our names is taken by something we did not make."""
    foreign = [f for f in find_all(config, clients, account) if f.exists and not f.ours]
    if foreign:
        raise not_ours_error(config, foreign)


def table_location_problems(config: PipelineConfig, glue: Any) -> tuple[list[str], list[str]]:
    """Check that each Athena table reads this prefix's processed bucket.

    Returns ``(problems, missing)``: one line per table whose LOCATION (or partition
    projection ``storage.location.template``) is not the expected folder of
    ``<prefix>-processed``, and the tables that do not exist.
    """
    problems, missing = [], []
    for table, folder in CURATED_TABLES.items():
        want = f"s3://{config.processed_bucket}/{folder}"
        try:
            found = glue.get_table(DatabaseName=config.database, Name=table)["Table"]
        except ClientError as exc:
            if _code(exc) != "EntityNotFoundException":
                raise
            missing.append(table)
            continue
        location = found.get("StorageDescriptor", {}).get("Location") or ""
        if location.rstrip("/") + "/" != want:
            problems.append(f"{table} LOCATION is {location or '(none)'}, expected {want}")
        template = (found.get("Parameters") or {}).get("storage.location.template")
        if template is not None and not template.startswith(want):
            problems.append(
                f"{table} storage.location.template is {template}, expected one under {want}"
            )
    return problems, missing


def check_table_locations(config: PipelineConfig, glue: Any, *, warn_missing: bool) -> None:
    """Raise :class:`DeployError` when a table reads another bucket's data (one line)."""
    problems, missing = table_location_problems(config, glue)
    if problems:
        wrong = sorted({p.split(" ", 1)[0] for p in problems})
        drops = "; ".join(f"DROP TABLE {config.database}.{t}" for t in wrong)
        raise DeployError(
            f"tables in {config.database} would read data that is not this prefix's: "
            f"{'; '.join(problems)}. The DDL is `create external table if not exists`, so it "
            f"keeps an existing table as it is. Drop it in Athena ({drops}: an external "
            "table, so only the definition goes, no data) and run `deploy.py up` again"
        )
    if missing and warn_missing:
        log.warning(
            "after the DDL, %s not in the Glue catalog (an endpoint that runs no SQL, "
            "such as moto, creates none)",
            ", ".join(f"{config.database}.{t}" for t in missing)
            + (" is" if len(missing) == 1 else " are"),
        )


def get_workgroup(athena: Any, name: str) -> dict[str, Any] | None:
    """Return the workgroup description, or None when it does not exist."""
    try:
        # moto answers an empty body for a missing workgroup, AWS an InvalidRequestException.
        return athena.get_work_group(WorkGroup=name).get("WorkGroup")
    except ClientError as exc:
        if _code(exc) != "InvalidRequestException":
            raise
        return None
