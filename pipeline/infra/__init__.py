"""The aws target's infrastructure with boto3: `up` (and its dry run), `down`, `status` and `plan`.

One module per kind of resource (buckets.py, role.py, ..., alarm.py), walked in the order
of registry.py by commands.py. A run on a deployed stack goes through
``pipeline.targets.aws.AwsTarget``."""

from __future__ import annotations

from pipeline.config import JOB_SCRIPT
from pipeline.infra.commands import (
    check_ready_to_run,
    down,
    down_plan,
    format_status,
    plan,
    status,
    up,
)
from pipeline.infra.dry_run import as_json, dry_run, format_dry_run, offline_plan
from pipeline.infra.execution import (
    job_run_of,
    last_crawl_dpu_hours,
    wait_for_job_run,
    wait_for_workflow_run,
)
from pipeline.infra.job import DPU_PER_WORKER, NUMBER_OF_WORKERS, WORKER_TYPE
from pipeline.infra.operations import Operations
from pipeline.infra.script import upload_job_script
from pipeline.infra.shared import Clients

__all__ = [
    "DPU_PER_WORKER",
    "JOB_SCRIPT",
    "NUMBER_OF_WORKERS",
    "WORKER_TYPE",
    "Clients",
    "Operations",
    "check_ready_to_run",
    "down",
    "down_plan",
    "as_json",
    "dry_run",
    "format_dry_run",
    "format_status",
    "job_run_of",
    "last_crawl_dpu_hours",
    "offline_plan",
    "plan",
    "status",
    "up",
    "upload_job_script",
    "wait_for_job_run",
    "wait_for_workflow_run",
]
