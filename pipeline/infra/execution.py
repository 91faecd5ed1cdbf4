"""What a run on the aws target needs of Glue and Lake Formation (``pipeline.targets.aws``
runs it): the Lake Formation check, job run polling and where its logs are, a workflow run
followed node by node, crawl billing. Reads nothing of the kinds of resource."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from pipeline.config import PipelineConfig
from pipeline.errors import DeployError, JobRunFailed, WorkflowRunFailed
from pipeline.infra.shared import error_code, service_client

log = logging.getLogger(__name__)


TERMINAL_JOB_STATES = {"SUCCEEDED", "FAILED", "STOPPED", "TIMEOUT", "ERROR", "EXPIRED"}


# A workflow node that ended badly: a crawl (CrawlState) or a job run (JobRunState).
FAILED_CRAWL_STATES = {"FAILED", "CANCELLED", "ERROR"}
FAILED_NODE_JOB_STATES = TERMINAL_JOB_STATES - {"SUCCEEDED"}

# Glue 5.0 logs every job run in real time (continuous logging is always on; the
# --enable-continuous-cloudwatch-log argument is for Glue 4.0 and earlier): system,
# Spark and GlueLogger lines go to <group>/error, print()/stdout and stderr to
# <group>/output, in streams named <JobRunId>-driver and <JobRunId>-<executor>.
# --custom-logGroup-prefix and --custom-logStream-prefix replace <group> and <JobRunId>.
DEFAULT_LOG_GROUP = "/aws-glue/jobs"


def job_run_logs(run: dict[str, Any]) -> tuple[str, str, str]:
    """Return ``(error log group, output log group, driver log stream)`` of a Glue 5 job run."""
    arguments = run.get("Arguments") or {}
    group = (
        arguments.get("--custom-logGroup-prefix") or run.get("LogGroupName") or DEFAULT_LOG_GROUP
    ).rstrip("/")
    stream = arguments.get("--custom-logStream-prefix") or run["Id"]
    return f"{group}/error", f"{group}/output", f"{stream}-driver"


def wait_for_job_run(
    glue: Any,
    job_name: str,
    job_run_id: str,
    *,
    first_poll: float = 5.0,
    max_poll: float = 60.0,
    timeout_seconds: float = 3600.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll a job run with exponential back-off, logging each state change; return the run.

    On any terminal state other than SUCCEEDED, raise :class:`JobRunFailed` whose
    message carries the error and the CloudWatch log group and stream to read.
    """
    deadline = time.monotonic() + timeout_seconds
    delay, state = first_poll, None
    while True:
        run = glue.get_job_run(JobName=job_name, RunId=job_run_id)["JobRun"]
        if run["JobRunState"] != state:
            state = run["JobRunState"]
            log.info("job run %s: %s", job_run_id, state)
        if state in TERMINAL_JOB_STATES:
            if state != "SUCCEEDED":
                error_group, output_group, stream = job_run_logs({"Id": job_run_id, **run})
                raise JobRunFailed(
                    f"job run {job_run_id} {state}: {run.get('ErrorMessage') or 'no error message'}; "
                    f"logs: CloudWatch log groups {error_group} (Spark, GlueLogger) and "
                    f"{output_group} (print, stderr), stream {stream}"
                )
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"job run {job_run_id} still {state} after {timeout_seconds:.0f}s")
        sleep(delay)
        delay = min(delay * 2, max_poll)


def last_crawl_dpu_hours(glue: Any, crawler_name: str) -> float | None:
    """Return the DPU-hours Glue reports for the crawler's latest crawl, if any."""
    try:
        crawls = glue.list_crawls(CrawlerName=crawler_name).get("Crawls", [])
    except ClientError as exc:
        log.warning("could not read the crawl's DPU-hours: %s", exc)
        return None
    if not crawls:
        return None
    latest = max(crawls, key=lambda c: c.get("StartTime") or 0)
    return latest.get("DPUHour")


IAM_ALLOWED_PRINCIPALS = "IAM_ALLOWED_PRINCIPALS"
DEFAULT_PERMISSION_SETTINGS = ("CreateDatabaseDefaultPermissions", "CreateTableDefaultPermissions")


def _iam_only(entries: list[dict[str, Any]]) -> bool:
    """True for the "Use only IAM access control" default: ALL granted to IAM_ALLOWED_PRINCIPALS."""
    return any(
        e.get("Principal", {}).get("DataLakePrincipalIdentifier") == IAM_ALLOWED_PRINCIPALS
        and "ALL" in e.get("Permissions", [])
        for e in entries
    )


def lake_formation_governs(settings: dict[str, Any]) -> str | None:
    """Why Lake Formation, not IAM alone, governs new databases and tables; None if it does not.

    Governed: a default permission list that is not IAM_ALLOWED_PRINCIPALS ALL, or data
    lake administrators set and a default list empty.
    """
    admins = settings.get("DataLakeAdmins") or []
    for name in DEFAULT_PERMISSION_SETTINGS:
        entries = settings.get(name) or []
        if entries and not _iam_only(entries):
            return f"{name} is not {IAM_ALLOWED_PRINCIPALS} ALL"
        if not entries and admins:
            return f"{name} is empty and data lake administrators are set"
    return None


def check_lake_formation(config: PipelineConfig, clients: Any) -> None:
    """Raise :class:`DeployError` when Lake Formation governs the catalog in this region.

    deploy.py grants no Lake Formation permissions, so the crawler and Athena would fail
    with "Insufficient Lake Formation permission(s)". When the settings cannot be read
    (no lakeformation:GetDataLakeSettings), warn and go on.
    """
    try:
        settings = service_client(config, clients, "lakeformation").get_data_lake_settings()
    except ClientError as exc:
        log.warning(
            "could not read the Lake Formation settings (%s); if the crawler or Athena fails "
            "with 'Insufficient Lake Formation permission(s)', see docs/aws.md",
            error_code(exc),
        )
        return
    why = lake_formation_governs(settings.get("DataLakeSettings", {}))
    if why:
        raise DeployError(
            f"Lake Formation governs the Glue Data Catalog in {config.region} ({why}) and "
            "deploy.py grants no Lake Formation permissions, so the crawler and Athena would "
            "fail with 'Insufficient Lake Formation permission(s)': have a data lake "
            "administrator tick 'Use only IAM access control' for new databases and for new "
            "tables (Lake Formation console, Data Catalog settings), or deploy in an account "
            "or region where both are ticked"
        )


def _node_failure(run_id: str, node: dict[str, Any]) -> str | None:
    """One line when this crawler or job node of a workflow run's graph ended badly."""
    if node.get("Type") == "CRAWLER":
        crawls = (node.get("CrawlerDetails") or {}).get("Crawls") or []
        if crawls and crawls[-1].get("State") in FAILED_CRAWL_STATES:
            crawl = crawls[-1]
            return (
                f"workflow run {run_id}: crawler {node['Name']} {crawl['State']}: "
                f"{crawl.get('ErrorMessage') or 'no error message'}; logs: CloudWatch log "
                f"group {crawl.get('LogGroup') or '/aws-glue/crawlers'}, stream "
                f"{crawl.get('LogStream') or node['Name']}"
            )
    if node.get("Type") == "JOB":
        job_runs = (node.get("JobDetails") or {}).get("JobRuns") or []
        if job_runs and job_runs[-1].get("JobRunState") in FAILED_NODE_JOB_STATES:
            job_run = job_runs[-1]
            error_group, output_group, stream = job_run_logs(job_run)
            return (
                f"workflow run {run_id}: job {node['Name']} run {job_run['Id']} "
                f"{job_run['JobRunState']}: {job_run.get('ErrorMessage') or 'no error message'}; "
                f"logs: CloudWatch log groups {error_group} and {output_group}, stream {stream}"
            )
    return None


def job_run_of(run: dict[str, Any], job_name: str) -> dict[str, Any] | None:
    """The latest run of ``job_name`` in a workflow run's graph, if it has started."""
    for node in (run.get("Graph") or {}).get("Nodes", []):
        if node.get("Type") == "JOB" and node.get("Name") == job_name:
            job_runs = (node.get("JobDetails") or {}).get("JobRuns") or []
            return job_runs[-1] if job_runs else None
    return None


def wait_for_workflow_run(
    glue: Any,
    config: PipelineConfig,
    run_id: str,
    *,
    first_poll: float = 5.0,
    max_poll: float = 60.0,
    timeout_seconds: float = 3600.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Follow a workflow run node by node (GetWorkflowRun with its graph), logging each
    crawler's and job's state change; return the run once it COMPLETED with the job
    SUCCEEDED.

    Raises :class:`WorkflowRunFailed` with one line when a crawl or job run fails, the run
    is STOPPED or ERROR, or it completes without the job having succeeded (a crawl that
    did not succeed leaves the conditional trigger unfired).
    """
    deadline = time.monotonic() + timeout_seconds
    delay = first_poll
    seen: dict[str, str] = {}
    status = None
    while True:
        run = glue.get_workflow_run(Name=config.workflow_name, RunId=run_id, IncludeGraph=True)[
            "Run"
        ]
        for name, state in node_states(run).items():
            if seen.get(name) != state:
                seen[name] = state
                log.info("workflow run %s: %s %s", run_id, name, state)
        if run.get("Status") != status:
            status = run.get("Status")
            log.info("workflow run %s: %s", run_id, status)
        for node in (run.get("Graph") or {}).get("Nodes", []):
            failure = _node_failure(run_id, node)
            if failure:
                raise WorkflowRunFailed(failure)
        if status in ("STOPPED", "STOPPING", "ERROR"):
            states = ", ".join(f"{n}={s}" for n, s in seen.items()) or "no node ran"
            raise WorkflowRunFailed(
                f"workflow run {run_id} {status}: {run.get('ErrorMessage') or 'no error message'} "
                f"({states}); logs: the run's history in the Glue console, Workflows, "
                f"{config.workflow_name}"
            )
        if status == "COMPLETED":
            job_run = job_run_of(run, config.job_name)
            if job_run and job_run.get("JobRunState") == "SUCCEEDED":
                return run
            states = ", ".join(f"{n}={s}" for n, s in seen.items()) or "no node ran"
            raise WorkflowRunFailed(
                f"workflow run {run_id} COMPLETED without a successful run of job "
                f"{config.job_name} ({states}); see the run in the Glue console, Workflows"
            )
        if time.monotonic() > deadline:
            raise TimeoutError(f"workflow run {run_id} still {status} after {timeout_seconds:.0f}s")
        sleep(delay)
        delay = min(delay * 2, max_poll)


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
