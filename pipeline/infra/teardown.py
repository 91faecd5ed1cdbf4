"""`down`: delete only what carries `up`'s marks, each bucket emptied first."""

from __future__ import annotations

import logging
from typing import Any

from pipeline.config import PipelineConfig
from pipeline.infra.ownership import (
    Found,
    find_bucket,
    find_crawler,
    find_database,
    find_job,
    find_role,
    find_workgroup,
)
from pipeline.infra.shared import Account, Clients
from pipeline.infra.specs import MANAGED_BY_KEY, MANAGED_BY_VALUE, PREFIX_KEY

log = logging.getLogger(__name__)


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
                raise RuntimeError(f"could not empty {bucket}: {resp['Errors'][:3]}")
            removed += len(batch[i : i + 1000])
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        for upload in page.get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    return removed


def down(config: PipelineConfig, clients: Clients | None = None) -> list[str]:
    """Delete what ``up`` made (only resources carrying its marks); return what was deleted."""
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

    # Athena workgroup (and its saved queries).
    if ours(find_workgroup(config, clients, account)):
        clients.athena.delete_work_group(WorkGroup=config.workgroup, RecursiveDeleteOption=True)
        deleted.append(f"workgroup {config.workgroup}")
    if ours(find_job(config, clients, account)):
        clients.glue.delete_job(JobName=config.job_name)
        deleted.append(f"job {config.job_name}")
    if ours(find_crawler(config, clients, account)):
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
        f"athena-workgroup {config.workgroup} (with its saved queries)",
        f"glue-job {config.job_name}",
        f"glue-crawler {config.crawler_name}",
        f"glue-database {config.database} with its tables (only if its {PREFIX_KEY} parameter is {config.prefix})",
        f"iam-role {config.role_name} with its policies",
        *(f"s3-bucket {b} with every object version and delete marker" for b in config.buckets),
        f"(each only if tagged {MANAGED_BY_KEY}={MANAGED_BY_VALUE}, {PREFIX_KEY}={config.prefix})",
    ]
