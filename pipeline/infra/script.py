"""The files uploaded to the scripts bucket beside the job (``job.uploads``): uploaded by
``up`` and before each run when S3 does not already hold these bytes. The bucket's
deletion deletes them."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from pipeline.config import PipelineConfig, split_s3_uri
from pipeline.infra import job
from pipeline.infra.cfn import CfnResource, Sentinels
from pipeline.infra.shared import Context, Found, Resource, read_or_none

log = logging.getLogger(__name__)

KIND = "s3-object"
NOT_FOUND = ("404", "NoSuchKey", "NotFound")
REF_STYLES: dict = {}


def upload_job_script(config: PipelineConfig, clients: Any, script: Path | None = None) -> bool:
    """Upload the job's files (``job.uploads``; ``script`` in place of the job script)
    unless S3 already has these bytes. Returns True when it uploaded any.

    Raises FileNotFoundError when a file is missing.
    """
    files = job.uploads(config)
    if script is not None:
        files[config.script_uri] = (script.name, script.read_bytes())
    uploaded = [_upload(clients, uri, body) for uri, (_, body) in files.items()]
    return any(uploaded)


def _upload(clients: Any, uri: str, body: bytes) -> bool:
    bucket, key = split_s3_uri(uri)
    # Single-part SSE-S3 uploads have the MD5 of the body as their ETag.
    head = read_or_none(lambda: clients.s3.head_object(Bucket=bucket, Key=key), NOT_FOUND)
    etag = head["ETag"].strip('"') if head else None
    if etag == hashlib.md5(body, usedforsecurity=False).hexdigest():
        return False
    clients.s3.put_object(Bucket=bucket, Key=key, Body=body)
    return True


def plan(ctx: Context) -> list[Resource]:
    files = job.uploads(ctx.config)
    return [Resource(KIND, uri, {"Source": name}) for uri, (name, _) in files.items()]


def find(ctx: Context) -> list[Found]:
    return []  # inside a bucket of ours: the bucket's marks are what count


def ensure(ctx: Context) -> list[str]:
    changes = []
    for uri, (name, body) in job.uploads(ctx.config).items():
        if _upload(ctx.clients, uri, body):
            changes.append(f"uploaded {name} to {uri}")
    return changes


def delete(ctx: Context) -> list[str]:
    return []  # emptied with its bucket


def down_plan(config: PipelineConfig) -> list[str]:
    return []


def status(ctx: Context) -> list[dict[str, Any]]:
    return []


def template(r: Resource, s: Sentinels) -> list[CfnResource]:
    return []  # CloudFormation cannot upload a file (the template's ScriptLocation output)


def deployer_statements(ctx: Context) -> list[dict[str, Any]]:
    return []  # the buckets' object statement covers them
