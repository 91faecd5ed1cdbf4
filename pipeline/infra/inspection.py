"""`status`: one read-only row per resource, with the last crawl and the last job run."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from pipeline.config import PipelineConfig
from pipeline.infra.execution import job_run_logs
from pipeline.infra.ownership import get_workgroup
from pipeline.infra.shared import Clients, _code

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
    return rows


def format_status(rows: Iterable[dict[str, Any]]) -> str:
    """Return status rows as an aligned text table."""
    rows = list(rows)
    widths = [max(len(str(r[k])) for r in rows) for k in ("kind", "name", "state")]
    return "\n".join(
        f"{r['kind']:<{widths[0]}}  {r['name']:<{widths[1]}}  {r['state']:<{widths[2]}}  {r['detail']}"
        for r in rows
    )
