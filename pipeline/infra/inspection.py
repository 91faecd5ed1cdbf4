"""`status`: one read-only row per resource, with the last crawl and the last job run."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from pipeline.config import PipelineConfig
from pipeline.infra.execution import job_run_logs
from pipeline.infra.ownership import alias_key, get_alarm, get_workgroup
from pipeline.infra.shared import Account, Clients, _code, service_client
from pipeline.infra.specs import topic_arn

# What AWS answers for a resource that does not exist. Any other error (AccessDenied,
# say) stops status: a resource it may not read is not shown as missing.
BUCKET_NOT_FOUND = ("404", "NoSuchBucket", "NotFound")
ROLE_NOT_FOUND = ("NoSuchEntity",)
GLUE_NOT_FOUND = ("EntityNotFoundException",)


def _read(call: Any, not_found: tuple[str, ...]) -> Any:
    """``call()``'s answer, or None when AWS says the resource does not exist."""
    try:
        return call()
    except ClientError as exc:
        if _code(exc) in not_found:
            return None
        raise


def status(config: PipelineConfig, clients: Clients | None = None) -> list[dict[str, Any]]:
    """Return one row per resource (kind, name, state, detail) plus the last crawl and job run."""
    clients = clients or Clients.for_config(config)
    rows: list[dict[str, Any]] = []

    def row(kind: str, name: str, state: str, detail: str = "") -> None:
        rows.append({"kind": kind, "name": name, "state": state, "detail": detail})

    s3 = clients.s3
    for bucket in config.buckets:
        if _read(lambda b=bucket: s3.head_bucket(Bucket=b), BUCKET_NOT_FOUND) is None:
            row("s3-bucket", bucket, "missing")
            continue
        versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status", "Disabled")
        row("s3-bucket", bucket, "present", f"versioning={versioning}")
    if _read(lambda: clients.iam.get_role(RoleName=config.role_name), ROLE_NOT_FOUND) is None:
        row("iam-role", config.role_name, "missing")
    else:
        policies = clients.iam.list_role_policies(RoleName=config.role_name)["PolicyNames"]
        row("iam-role", config.role_name, "present", f"inline policies={','.join(policies)}")
    glue = clients.glue
    found = _read(lambda: glue.get_tables(DatabaseName=config.database), GLUE_NOT_FOUND)
    if found is None:
        row("glue-database", config.database, "missing")
    else:
        tables = found["TableList"]
        row(
            "glue-database",
            config.database,
            "present",
            f"tables={','.join(t['Name'] for t in tables)}",
        )
    found = _read(lambda: glue.get_crawler(Name=config.crawler_name), GLUE_NOT_FOUND)
    if found is None:
        row("glue-crawler", config.crawler_name, "missing")
    else:
        crawler = found["Crawler"]
        last = crawler.get("LastCrawl", {})
        detail = f"last crawl={last.get('Status', 'never')}"
        if last.get("StartTime"):
            detail += f" started {last['StartTime']}"
        if last.get("ErrorMessage"):
            detail += f" error={last['ErrorMessage']}"
        row("glue-crawler", config.crawler_name, crawler.get("State", "?"), detail)
    if _read(lambda: glue.get_job(JobName=config.job_name), GLUE_NOT_FOUND) is None:
        row("glue-job", config.job_name, "missing")
    else:
        runs = glue.get_job_runs(JobName=config.job_name, MaxResults=1).get("JobRuns", [])
        if runs:
            run = runs[0]
            detail = (
                f"last run={run['Id']} {run['JobRunState']} started {run.get('StartedOn')}"
                f" execution={run.get('ExecutionTime', 0)}s"
            )
            if run.get("ErrorMessage"):
                detail += f" error={run['ErrorMessage']}"
            # Glue 5: always logged, in <JobRunId>-driver streams (see job_run_logs).
            error_group, output_group, stream = job_run_logs(run)
            detail += f" logs={error_group},{output_group} stream={stream}"
        else:
            detail = "last run=never"
        row("glue-job", config.job_name, "present", detail)
    wg = get_workgroup(clients.athena, config.workgroup)
    if wg is None:
        row("athena-workgroup", config.workgroup, "missing")
    else:
        cutoff = wg.get("Configuration", {}).get("BytesScannedCutoffPerQuery")
        row("athena-workgroup", config.workgroup, wg.get("State", "?"), f"cutoff={cutoff} bytes")
    rows += operations_status(config, clients)
    return rows


def workflow_run_detail(run: dict[str, Any]) -> str:
    """One line for a workflow run: id, status, times and each crawler's and job's state."""
    detail = (
        f"last run={run['WorkflowRunId']} {run.get('Status', '?')} started {run.get('StartedOn')}"
    )
    if run.get("CompletedOn"):
        detail += f" completed {run['CompletedOn']}"
    states = [f"{name}={state}" for name, state in node_states(run).items()]
    if states:
        detail += " nodes: " + ", ".join(states)
    if run.get("ErrorMessage"):
        detail += f" error={run['ErrorMessage']}"
    return detail


def node_states(run: dict[str, Any]) -> dict[str, str]:
    """The state of each crawler and job node of a workflow run's graph (``IncludeGraph``),
    by node name: its latest crawl's or job run's state, or NOT STARTED."""
    states = {}
    for node in (run.get("Graph") or {}).get("Nodes", []):
        if node.get("Type") == "CRAWLER":
            crawls = (node.get("CrawlerDetails") or {}).get("Crawls") or []
            states[node["Name"]] = crawls[-1].get("State", "?") if crawls else "NOT STARTED"
        elif node.get("Type") == "JOB":
            job_runs = (node.get("JobDetails") or {}).get("JobRuns") or []
            states[node["Name"]] = (
                job_runs[-1].get("JobRunState", "?") if job_runs else "NOT STARTED"
            )
    return states


def operations_status(config: PipelineConfig, clients: Clients) -> list[dict[str, Any]]:
    """Rows for the workflow (with its last run), triggers, topic, rule and alarm."""
    rows: list[dict[str, Any]] = []

    def row(kind: str, name: str, state: str, detail: str = "") -> None:
        rows.append({"kind": kind, "name": name, "state": state, "detail": detail})

    glue = clients.glue
    found = _read(lambda: glue.get_workflow(Name=config.workflow_name), GLUE_NOT_FOUND)
    if found is None:
        row("glue-workflow", config.workflow_name, "missing")
    else:
        last = found["Workflow"].get("LastRun")
        detail = "last run=never"
        if last:
            # GetWorkflowRun with IncludeGraph: the crawler's and job's node states.
            run = glue.get_workflow_run(
                Name=config.workflow_name, RunId=last["WorkflowRunId"], IncludeGraph=True
            )["Run"]
            detail = workflow_run_detail(run)
        row("glue-workflow", config.workflow_name, "present", detail)
    for name in (config.start_trigger_name, config.job_trigger_name):
        found = _read(lambda n=name: glue.get_trigger(Name=n), GLUE_NOT_FOUND)
        if found is None:
            row("glue-trigger", name, "missing")
            continue
        trigger = found["Trigger"]
        detail = f"type={trigger.get('Type')}"
        if trigger.get("Schedule"):
            detail += f" schedule={trigger['Schedule']}"
        row("glue-trigger", name, trigger.get("State", "?"), detail)

    account = Account.of(clients)
    rows.append(key_status(config, clients))
    sns = service_client(config, clients, "sns")
    arn = topic_arn(config, account.account_id, account.partition)
    if _read(lambda: sns.get_topic_attributes(TopicArn=arn), ("NotFound", "NotFoundException")):
        subs = sns.list_subscriptions_by_topic(TopicArn=arn).get("Subscriptions", [])
        shown = ", ".join(
            f"{s.get('Endpoint')}"
            + (
                " (pending confirmation)"
                if s.get("SubscriptionArn") == "PendingConfirmation"
                else ""
            )
            for s in subs
        )
        row("sns-topic", config.alerts_topic_name, "present", f"subscriptions: {shown or 'none'}")
    else:
        row("sns-topic", config.alerts_topic_name, "missing")

    events = service_client(config, clients, "events")
    rule = _read(
        lambda: events.describe_rule(Name=config.failures_rule_name), ("ResourceNotFoundException",)
    )
    if rule is None:
        row("events-rule", config.failures_rule_name, "missing")
    else:
        targets = events.list_targets_by_rule(Rule=config.failures_rule_name).get("Targets", [])
        row(
            "events-rule",
            config.failures_rule_name,
            rule.get("State", "?"),
            f"targets: {', '.join(t['Arn'] for t in targets) or 'none'}",
        )

    alarm = get_alarm(service_client(config, clients, "cloudwatch"), config.quarantine_alarm_name)
    if alarm is None:
        row("cloudwatch-alarm", config.quarantine_alarm_name, "missing")
    else:
        row(
            "cloudwatch-alarm",
            config.quarantine_alarm_name,
            alarm.get("StateValue", "?"),
            f"{alarm.get('MetricName')} > {alarm.get('Threshold')}",
        )
    return rows


def key_status(config: PipelineConfig, clients: Clients) -> dict[str, Any]:
    """The alerts key's row: its state (Enabled, PendingDeletion, ...), id and rotation."""
    kms = service_client(config, clients, "kms")
    alias = config.alerts_key_alias
    meta = alias_key(kms, alias)
    if meta is None:
        return {"kind": "kms-key", "name": alias, "state": "missing", "detail": ""}
    state = meta.get("KeyState", "?")
    detail = f"id={meta['KeyId']}"
    if state in ("Enabled", "Disabled"):
        rotation = kms.get_key_rotation_status(KeyId=meta["KeyId"]).get("KeyRotationEnabled")
        detail += f" rotation={'on' if rotation else 'off'}"
    if meta.get("DeletionDate"):
        detail += f" deletion on {meta['DeletionDate']}"
    return {"kind": "kms-key", "name": alias, "state": state, "detail": detail}


def format_status(rows: Iterable[dict[str, Any]]) -> str:
    """Return status rows as an aligned text table."""
    rows = list(rows)
    widths = [max(len(str(r[k])) for r in rows) for k in ("kind", "name", "state")]
    return "\n".join(
        f"{r['kind']:<{widths[0]}}  {r['name']:<{widths[1]}}  {r['state']:<{widths[2]}}  {r['detail']}"
        for r in rows
    )
