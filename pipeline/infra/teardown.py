"""`down`: delete only what carries `up`'s marks, each bucket emptied first.

The alarm and the failures rule go first, so that stopping a run mails no failure
alert; then a running crawl or job run is stopped, and waited for, before anything
else is deleted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from pipeline.config import PipelineConfig
from pipeline.errors import DeployError
from pipeline.infra.ownership import (
    Found,
    alias_key,
    find_alarm,
    find_bucket,
    find_crawler,
    find_database,
    find_job,
    find_key,
    find_role,
    find_rule,
    find_topic,
    find_trigger,
    find_workflow,
    find_workgroup,
    tagged_keys,
)
from pipeline.infra.shared import Account, Clients, _code, service_client
from pipeline.infra.specs import (
    KEY_DELETION_WINDOW_DAYS,
    MANAGED_BY_KEY,
    MANAGED_BY_VALUE,
    PREFIX_KEY,
    topic_arn,
)

log = logging.getLogger(__name__)

# Job runs in these states still hold the job (WAITING: queued by Glue job queuing).
ACTIVE_JOB_STATES = ("STARTING", "RUNNING", "STOPPING", "WAITING")
STOPPABLE_JOB_STATES = ("STARTING", "RUNNING", "WAITING")  # STOPPING ones are on their way
STOP_POLL_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 600.0
BATCH_STOP_MAX_IDS = 25  # BatchStopJobRun takes at most 25 JobRunIds


def _active_job_runs(glue: Any, job_name: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    for page in glue.get_paginator("get_job_runs").paginate(JobName=job_name):
        runs += [r for r in page.get("JobRuns", []) if r["JobRunState"] in ACTIVE_JOB_STATES]
    return runs


def _crawler_state(glue: Any, crawler_name: str) -> str:
    return glue.get_crawler(Name=crawler_name)["Crawler"].get("State", "READY")


def stop_runs(
    config: PipelineConfig,
    glue: Any,
    *,
    crawler: bool,
    job: bool,
    sleep: Callable[[float], None] = time.sleep,
    poll_seconds: float = STOP_POLL_SECONDS,
    timeout_seconds: float = STOP_TIMEOUT_SECONDS,
) -> list[str]:
    """Stop a running crawl (StopCrawler) and the job's active runs (BatchStopJobRun),
    then wait until the crawler is READY and no run is active; return what was stopped.

    Deleting a running crawler fails, and a run left going keeps writing: so ``down``
    stops both before deleting them. Waits at most ``timeout_seconds``, then raises
    :class:`DeployError` (saying what is still going; the caller says what it deleted).
    """
    stopped: list[str] = []
    if crawler and _crawler_state(glue, config.crawler_name) == "RUNNING":
        try:
            glue.stop_crawler(Name=config.crawler_name)
            stopped.append(f"crawl of {config.crawler_name}")
        except ClientError as exc:
            # It ended, or someone else is stopping it, since we looked: wait below.
            if _code(exc) not in ("CrawlerNotRunningException", "CrawlerStoppingException"):
                raise
    if job:
        ids = [
            r["Id"]
            for r in _active_job_runs(glue, config.job_name)
            if r["JobRunState"] in STOPPABLE_JOB_STATES
        ]
        for i in range(0, len(ids), BATCH_STOP_MAX_IDS):
            answer = glue.batch_stop_job_run(
                JobName=config.job_name, JobRunIds=ids[i : i + BATCH_STOP_MAX_IDS]
            )
            for error in answer.get("Errors", []):
                # Typically a run that ended meanwhile; one that did not is waited for below.
                detail = error.get("ErrorDetail", {})
                log.warning(
                    "could not stop job run %s: %s %s",
                    error.get("JobRunId"),
                    detail.get("ErrorCode"),
                    detail.get("ErrorMessage"),
                )
            stopped += [f"job run {s['JobRunId']}" for s in answer.get("SuccessfulSubmissions", [])]
    for item in stopped:
        log.info("stopping %s", item)

    def busy() -> list[str]:
        still = []
        if crawler:
            state = _crawler_state(glue, config.crawler_name)
            if state != "READY":
                still.append(f"crawler {config.crawler_name} is {state}")
        if job:
            still += [
                f"job run {r['Id']} is {r['JobRunState']}"
                for r in _active_job_runs(glue, config.job_name)
            ]
        return still

    polls = max(1, int(timeout_seconds / poll_seconds)) if poll_seconds > 0 else 1
    for _ in range(polls):
        still = busy()
        if not still:
            return stopped
        log.info("waiting for %s", "; ".join(still))
        sleep(poll_seconds)
    still = busy()
    if still:
        raise DeployError(
            f"{'; '.join(still)} after {timeout_seconds:.0f}s of waiting for it to stop; "
            "check it in the Glue console and run `deploy.py down --yes` again"
        )
    return stopped


# A key in these states is on its way out: down schedules nothing for it.
GONE_KEY_STATES = ("PendingDeletion", "PendingReplicaDeletion")


def _schedule_key_deletion(kms: Any, key_id: str, note: str = "") -> str:
    """ScheduleKeyDeletion with KMS's shortest waiting period; the line for ``down``'s list."""
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=KEY_DELETION_WINDOW_DAYS)
    more = f"; {note}" if note else ""
    return f"KMS key {key_id} (scheduled for deletion in {KEY_DELETION_WINDOW_DAYS} days{more})"


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every object version, delete marker and unfinished upload; return the count."""
    removed = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        batch = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        for i in range(0, len(batch), 1000):
            resp = s3.delete_objects(
                Bucket=bucket, Delete={"Objects": batch[i : i + 1000], "Quiet": True}
            )
            if resp.get("Errors"):
                raise DeployError(f"could not empty {bucket}: {resp['Errors'][:3]}")
            removed += len(batch[i : i + 1000])
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        for upload in page.get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    return removed


def down(
    config: PipelineConfig,
    clients: Clients | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    stop_poll_seconds: float = STOP_POLL_SECONDS,
    stop_timeout_seconds: float = STOP_TIMEOUT_SECONDS,
) -> list[str]:
    """Delete what ``up`` made (only resources carrying its marks); return what was deleted.

    The alarm and the failures rule first: a job run stopped by ``down`` ends STOPPED, an
    event the rule matches, and a planned teardown must not mail the on-call address a
    failure. Then a running workflow run, crawl or job run of ours is stopped and waited
    for (see :func:`stop_runs`; ``sleep`` is how that wait sleeps), before anything else.
    """
    clients = clients or Clients.for_config(config)
    account = Account.of(clients)
    deleted: list[str] = []

    def ours(found: Found) -> bool:
        if found.exists and not found.ours:
            log.warning(
                "%s %s exists but deploy.py did not make it for prefix %s (%s); kept",
                found.kind,
                found.name,
                config.prefix,
                found.why_not_ours,
            )
        return found.ours

    job_is_ours = ours(find_job(config, clients, account))
    crawler_is_ours = ours(find_crawler(config, clients, account))
    workflow_is_ours = ours(find_workflow(config, clients, account))

    # What alerts first, before any run is stopped (a rule's targets go before the rule).
    if ours(find_alarm(config, clients, account)):
        cloudwatch = service_client(config, clients, "cloudwatch")
        cloudwatch.delete_alarms(AlarmNames=[config.quarantine_alarm_name])
        deleted.append(f"alarm {config.quarantine_alarm_name}")
    if ours(find_rule(config, clients, account)):
        events = service_client(config, clients, "events")
        rule = config.failures_rule_name
        ids = [t["Id"] for t in events.list_targets_by_rule(Rule=rule).get("Targets", [])]
        if ids:
            events.remove_targets(Rule=rule, Ids=ids)
        events.delete_rule(Name=rule)
        deleted.append(f"rule {rule} (and its {len(ids)} target(s))")

    # Before any other delete: a running crawler cannot be deleted, and down must not
    # stop half-way.
    try:
        if workflow_is_ours:
            # A running workflow run would start the job after the crawl: stop it first.
            runs = clients.glue.get_workflow_runs(Name=config.workflow_name).get("Runs", [])
            for run in runs:
                if run.get("Status") == "RUNNING":
                    clients.glue.stop_workflow_run(
                        Name=config.workflow_name, RunId=run["WorkflowRunId"]
                    )
                    log.info("stopping workflow run %s", run["WorkflowRunId"])
        stop_runs(
            config,
            clients.glue,
            crawler=crawler_is_ours,
            job=job_is_ours,
            sleep=sleep,
            poll_seconds=stop_poll_seconds,
            timeout_seconds=stop_timeout_seconds,
        )
    except DeployError as exc:
        done = f"nothing but {', '.join(deleted)}" if deleted else "nothing"
        raise DeployError(f"down deleted {done}: {exc}") from exc

    # The topic the alarm and the rule notified, then what schedules the pipeline: the
    # triggers belong to the workflow.
    if ours(find_topic(config, clients, account)):
        arn = topic_arn(config, account.account_id, account.partition)
        service_client(config, clients, "sns").delete_topic(TopicArn=arn)
        deleted.append(f"topic {config.alerts_topic_name} (and its subscriptions)")
    # The key after the topic it encrypts. KMS deletes a key only after a waiting period
    # (the shortest, 7 days); one already pending deletion counts as gone.
    kms = service_client(config, clients, "kms")
    alias = config.alerts_key_alias
    key = find_key(config, clients, account)
    if ours(key):
        meta = alias_key(kms, alias)
        if meta is not None:
            if meta.get("KeyState") not in GONE_KEY_STATES:
                deleted.append(_schedule_key_deletion(kms, meta["KeyId"]))
            kms.delete_alias(AliasName=alias)
            deleted.append(f"alias {alias}")
    elif not key.exists:
        # The alias was deleted by hand: the key, still tagged ours, is found by its tags
        # (as `up` finds it to restore the alias); left, it would cost $1/month forever.
        for meta in tagged_keys(config, kms):
            if meta.get("KeyState") not in GONE_KEY_STATES:
                note = f"found by its tags, {alias} was missing"
                deleted.append(_schedule_key_deletion(kms, meta["KeyId"], note))
    for trigger in (config.job_trigger_name, config.start_trigger_name):
        if ours(find_trigger(config, clients, account, trigger)):
            clients.glue.delete_trigger(Name=trigger)
            deleted.append(f"trigger {trigger}")
    if workflow_is_ours:
        clients.glue.delete_workflow(Name=config.workflow_name)
        deleted.append(f"workflow {config.workflow_name}")
    # Athena workgroup (and its saved queries).
    if ours(find_workgroup(config, clients, account)):
        clients.athena.delete_work_group(WorkGroup=config.workgroup, RecursiveDeleteOption=True)
        deleted.append(f"workgroup {config.workgroup}")
    if job_is_ours:
        clients.glue.delete_job(JobName=config.job_name)
        deleted.append(f"job {config.job_name}")
    if crawler_is_ours:
        clients.glue.delete_crawler(Name=config.crawler_name)
        deleted.append(f"crawler {config.crawler_name}")
    if ours(find_database(config, clients)):
        clients.glue.delete_database(Name=config.database)
        deleted.append(f"database {config.database} (and its tables)")

    iam = clients.iam
    if ours(find_role(config, clients)):
        for policy_name in iam.list_role_policies(RoleName=config.role_name)["PolicyNames"]:
            iam.delete_role_policy(RoleName=config.role_name, PolicyName=policy_name)
        for attached in iam.list_attached_role_policies(RoleName=config.role_name)[
            "AttachedPolicies"
        ]:
            iam.detach_role_policy(RoleName=config.role_name, PolicyArn=attached["PolicyArn"])
        iam.delete_role(RoleName=config.role_name)
        deleted.append(f"role {config.role_name}")

    for bucket in config.buckets:
        if not ours(find_bucket(config, clients, bucket)):
            continue
        removed = empty_bucket(clients.s3, bucket)
        clients.s3.delete_bucket(Bucket=bucket)
        deleted.append(f"bucket {bucket} ({removed} object versions)")
    for item in deleted:
        log.info("deleted %s", item)
    return deleted


def down_plan(config: PipelineConfig) -> list[str]:
    """Return what ``down`` would delete, without calling AWS."""
    return [
        f"cloudwatch-alarm {config.quarantine_alarm_name}",
        f"events-rule {config.failures_rule_name} (its targets first)",
        f"(then: stop a running run of workflow {config.workflow_name}, a running crawl of "
        f"{config.crawler_name} and active runs of {config.job_name}, and wait for them; "
        "after the alarm and the rule, so that a stopped run mails no failure alert)",
        f"sns-topic {config.alerts_topic_name} with its subscriptions",
        f"kms-key behind {config.alerts_key_alias}: scheduled for deletion in "
        f"{KEY_DELETION_WINDOW_DAYS} days (unless already pending), then the alias; "
        "without the alias, the keys tagged ours",
        f"glue-trigger {config.job_trigger_name}",
        f"glue-trigger {config.start_trigger_name}",
        f"glue-workflow {config.workflow_name}",
        f"athena-workgroup {config.workgroup} (with its saved queries)",
        f"glue-job {config.job_name}",
        f"glue-crawler {config.crawler_name}",
        f"glue-database {config.database} with its tables (only if its {PREFIX_KEY} parameter is {config.prefix})",
        f"iam-role {config.role_name} with its policies",
        *(f"s3-bucket {b} with every object version and delete marker" for b in config.buckets),
        f"(each only if tagged {MANAGED_BY_KEY}={MANAGED_BY_VALUE}, {PREFIX_KEY}={config.prefix})",
    ]
