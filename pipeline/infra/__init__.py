"""The aws target's infrastructure with boto3: `up`, `down`, `status` and `plan`.

A run on a deployed stack goes through ``pipeline.targets.aws.AwsTarget``."""

from __future__ import annotations

from pipeline.config import JOB_SCRIPT
from pipeline.errors import DeployError, JobRunFailed, WorkflowRunFailed
from pipeline.infra.execution import (
    check_ready_to_run,
    job_run_of,
    last_crawl_dpu_hours,
    upload_job_script,
    wait_for_job_run,
    wait_for_workflow_run,
)
from pipeline.infra.inspection import format_status, status
from pipeline.infra.reconcile import up
from pipeline.infra.shared import Clients
from pipeline.infra.specs import (
    DPU_PER_WORKER,
    NUMBER_OF_WORKERS,
    WORKER_TYPE,
    Operations,
    format_plan,
    plan,
)
from pipeline.infra.teardown import down, down_plan

__all__ = [
    "DPU_PER_WORKER",
    "JOB_SCRIPT",
    "NUMBER_OF_WORKERS",
    "WORKER_TYPE",
    "Clients",
    "DeployError",
    "JobRunFailed",
    "Operations",
    "WorkflowRunFailed",
    "check_ready_to_run",
    "down",
    "down_plan",
    "format_plan",
    "format_status",
    "job_run_of",
    "last_crawl_dpu_hours",
    "plan",
    "status",
    "up",
    "upload_job_script",
    "wait_for_job_run",
    "wait_for_workflow_run",
]
