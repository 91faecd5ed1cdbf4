"""The Glue ETL job: Glue 5.0 on two G.1X workers, running the uploaded script.

This module is the one place where the job's default arguments and the files uploaded
beside it (``uploads``, which the ``s3-object`` kind uploads) are defined.
"""

from __future__ import annotations

from typing import Any

from pipeline.config import JOB_PACKAGE, JOB_SCRIPT, METRICS_NAMESPACE, PipelineConfig
from pipeline.infra import role
from pipeline.infra.cfn import (
    GLUE_SECURITY_CONFIGURATION_SKIP,
    CfnResource,
    RefStyle,
    Sentinels,
    checkov_skips,
    glue_resource,
)
from pipeline.infra.execution import job_run_logs
from pipeline.infra.ownership import by_tags
from pipeline.infra.shared import (
    GLUE_ARN,
    Context,
    Found,
    Resource,
    as_wanted_role,
    contains,
    glue_tags,
    read_or_none,
    retry_iam_propagation,
    status_row,
    tags,
)
from pipeline.package import job_package_zip

KIND = "glue-job"
NOT_FOUND = ("EntityNotFoundException",)
REF_STYLES = {"AWS::Glue::Job": RefStyle("Ref")}

# The job: Glue 5.0 (Spark 3.5, Python 3.11), two G.1X workers (1 DPU each).
GLUE_VERSION = "5.0"
WORKER_TYPE = "G.1X"
NUMBER_OF_WORKERS = 2
DPU_PER_WORKER = {"G.1X": 1, "G.2X": 2, "G.4X": 4, "G.8X": 8}
JOB_TIMEOUT_MINUTES = 30


def uploads(config: PipelineConfig) -> dict[str, tuple[str, bytes]]:
    """What is uploaded beside the job before it runs: S3 URI -> (what it is, its bytes):
    the entry script, and its package as a deterministic zip (same code, same bytes, so
    an unchanged upload is skipped)."""
    return {
        config.script_uri: (JOB_SCRIPT.name, JOB_SCRIPT.read_bytes()),
        config.package_uri: (f"{JOB_PACKAGE.name}/ as a zip", job_package_zip()),
    }


def default_arguments(config: PipelineConfig) -> dict[str, str]:
    """The job's DefaultArguments: where it reads and writes, and its metrics."""
    return {
        "--sales_path": config.raw_sales_uri,
        "--customers_path": config.raw_customers_uri,
        "--output_path": config.processed_uri,
        # The job's code beside its entry script (pipeline.package).
        "--extra-py-files": config.package_uri,
        "--job-language": "python",
        "--enable-metrics": "true",
        "--enable-continuous-cloudwatch-log": "true",
        # The job publishes its run metrics (rows read, written, quarantined, ...)
        # to this namespace, each with the dimension Pipeline=<prefix>.
        "--metrics_namespace": METRICS_NAMESPACE,
        "--pipeline_prefix": config.prefix,
        # The job's own region for its CloudWatch client: Glue's container may set
        # AWS_REGION only, which botocore does not read.
        "--aws_region": config.region,
    }


def job_spec(config: PipelineConfig, role_arn: str) -> dict[str, Any]:
    """Return the Glue job definition (without its name and tags)."""
    return {
        "Description": "Cleans, enriches and summarises sales into partitioned Parquet",
        "Role": role_arn,
        "Command": {"Name": "glueetl", "ScriptLocation": config.script_uri, "PythonVersion": "3"},
        "DefaultArguments": default_arguments(config),
        "ExecutionProperty": {"MaxConcurrentRuns": 1},
        "GlueVersion": GLUE_VERSION,
        "WorkerType": WORKER_TYPE,
        "NumberOfWorkers": NUMBER_OF_WORKERS,
        "Timeout": JOB_TIMEOUT_MINUTES,
        "MaxRetries": 0,
    }


def plan(ctx: Context) -> list[Resource]:
    settings = {**job_spec(ctx.config, role.role_arn(ctx)), "Tags": tags(ctx.config)}
    return [Resource(KIND, ctx.config.job_name, settings)]


def find(ctx: Context) -> list[Found]:
    """Read the job's existence and tags (no change)."""
    name = ctx.config.job_name
    if read_or_none(lambda: ctx.clients.glue.get_job(JobName=name), NOT_FOUND) is None:
        return [Found(KIND, name, exists=False)]
    return [by_tags(ctx.config, KIND, name, glue_tags(ctx, f"job/{name}"))]


def ensure(ctx: Context) -> list[str]:
    config, glue = ctx.config, ctx.clients.glue
    want = job_spec(config, role.role_arn(ctx))

    def retried(call: Any) -> Any:
        return retry_iam_propagation(call, role=config.role_name, sleep=ctx.sleep)

    found = read_or_none(lambda: glue.get_job(JobName=config.job_name), NOT_FOUND)
    if found is None:
        retried(lambda: glue.create_job(Name=config.job_name, **want, Tags=tags(config)))
        return [f"created job {config.job_name}"]
    current = as_wanted_role(want, found["Job"])
    # The arguments exactly: one added by hand (say --extra-py-files) is code the job
    # would load and run with the Glue role, drift as much as a changed one.
    if not contains(want, current) or current.get("DefaultArguments") != want["DefaultArguments"]:
        retried(lambda: glue.update_job(JobName=config.job_name, JobUpdate=want))
        return [f"updated job {config.job_name}"]
    return []


def delete(ctx: Context) -> list[str]:
    if not any(f.ours for f in ctx.found_of(KIND)):
        return []
    ctx.clients.glue.delete_job(JobName=ctx.config.job_name)
    return [f"job {ctx.config.job_name}"]


def down_plan(config: PipelineConfig) -> list[str]:
    return [f"{KIND} {config.job_name}"]


def status(ctx: Context) -> list[dict[str, Any]]:
    glue, name = ctx.clients.glue, ctx.config.job_name
    if read_or_none(lambda: glue.get_job(JobName=name), NOT_FOUND) is None:
        return [status_row(KIND, name, "missing")]
    runs = glue.get_job_runs(JobName=name, MaxResults=1).get("JobRuns", [])
    if not runs:
        return [status_row(KIND, name, "present", "last run=never")]
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
    return [status_row(KIND, name, "present", detail)]


def template(r: Resource, s: Sentinels) -> list[CfnResource]:
    skips = checkov_skips(GLUE_SECURITY_CONFIGURATION_SKIP)
    return glue_resource(r, s, "AWS::Glue::Job", "Job", skips)


DEPLOYER_JOB_ACTIONS = (
    "glue:GetJob",
    "glue:CreateJob",
    "glue:UpdateJob",
    "glue:DeleteJob",
    "glue:StartJobRun",
    "glue:GetJobRun",
    "glue:GetJobRuns",
    "glue:BatchStopJobRun",
    "glue:GetTags",
    "glue:TagResource",
)


def deployer_statements(ctx: Context) -> list[dict[str, Any]]:
    return [
        {
            "Sid": "GlueJob",
            "Effect": "Allow",
            "Action": list(DEPLOYER_JOB_ACTIONS),
            "Resource": [ctx.arn(GLUE_ARN, f"job/{ctx.config.job_name}")],
        }
    ]
