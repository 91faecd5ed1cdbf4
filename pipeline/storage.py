"""Put, get and list objects by ``s3://bucket/key`` URI on either target.

``LocalStorage`` mirrors S3 in a lake folder (``s3://bucket/key`` <-> ``<lake>/bucket/key``);
``S3Storage`` talks to S3 (or moto / LocalStack) through a boto3 client. Callers only
ever see URIs, so the same code uploads raw files or lists partitions on both targets.
"""

from __future__ import annotations

import filecmp
import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq
from botocore.exceptions import ClientError

from pipeline.config import PipelineConfig, split_s3_uri
from pipeline.errors import UsageError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object: its URI and size in bytes."""

    uri: str
    size: int


class Storage(Protocol):
    def put_file(self, path: Path, uri: str) -> None: ...
    def holds(self, source: Path | str, uri: str) -> bool: ...
    def get_bytes(self, uri: str) -> bytes: ...
    def list(self, prefix_uri: str) -> list[ObjectInfo]: ...


class LocalStorage:
    """Objects as files under ``lake``: ``s3://bucket/key`` is ``<lake>/bucket/key``."""

    def __init__(self, lake: Path) -> None:
        self.lake = Path(lake)

    def path(self, uri: str) -> Path:
        """Return the lake file path for ``uri``."""
        bucket, key = split_s3_uri(uri)
        return self.lake / bucket / key

    def put_file(self, path: Path, uri: str) -> None:
        target = self.path(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)

    def holds(self, source: Path | str, uri: str) -> bool:
        """True when ``uri`` already holds exactly the bytes of the file ``source``."""
        target = self.path(uri)
        return target.is_file() and filecmp.cmp(source, target, shallow=False)

    def get_bytes(self, uri: str) -> bytes:
        try:
            return self.path(uri).read_bytes()
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise FileNotFoundError(f"no such object: {uri}") from exc

    def list(self, prefix_uri: str) -> list[ObjectInfo]:
        bucket, key = split_s3_uri(prefix_uri)
        root = self.lake / bucket
        if not root.is_dir():
            return []
        # S3 prefixes are string prefixes, not folders: walk the deepest existing
        # folder of the prefix and keep keys that start with it.
        start = root / key.rpartition("/")[0] if "/" in key else root
        if not start.is_dir():
            return []
        found = []
        for file in start.rglob("*"):
            if file.is_file():
                rel = file.relative_to(root).as_posix()
                if rel.startswith(key):
                    found.append(ObjectInfo(f"s3://{bucket}/{rel}", file.stat().st_size))
        return sorted(found, key=lambda o: o.uri)


class S3Storage:
    """Objects in S3 through a boto3 ``s3`` client."""

    def __init__(self, s3_client: Any) -> None:
        self.s3 = s3_client

    def put_file(self, path: Path, uri: str) -> None:
        """Upload a file, its SHA-256 in the object's metadata (see ``holds``)."""
        bucket, key = split_s3_uri(uri)
        extra = {"Metadata": {_DIGEST: _sha256(path)}}
        self.s3.upload_file(str(path), bucket, key, ExtraArgs=extra)

    def copy(self, source_uri: str, uri: str) -> None:
        """Copy an object inside S3 (multipart for large objects, as boto3 decides),
        the source's ETag in the copy's metadata (see ``holds``)."""
        src_bucket, src_key = split_s3_uri(source_uri)
        bucket, key = split_s3_uri(uri)
        etag = self.s3.head_object(Bucket=src_bucket, Key=src_key)["ETag"]
        extra = {"Metadata": {_SOURCE_ETAG: etag.strip('"')}, "MetadataDirective": "REPLACE"}
        self.s3.copy({"Bucket": src_bucket, "Key": src_key}, bucket, key, ExtraArgs=extra)

    def holds(self, source: Path | str, uri: str) -> bool:
        """True when ``uri`` already holds the bytes of ``source`` (a local file, by the
        SHA-256 recorded at upload; an ``s3://`` object, by the ETag recorded at copy).
        An object put some other way counts as different, so it is put again."""
        bucket, key = split_s3_uri(uri)
        try:
            meta = self.s3.head_object(Bucket=bucket, Key=key).get("Metadata", {})
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        if isinstance(source, str):
            src_bucket, src_key = split_s3_uri(source)
            etag = self.s3.head_object(Bucket=src_bucket, Key=src_key)["ETag"].strip('"')
            return meta.get(_SOURCE_ETAG) == etag
        return meta.get(_DIGEST) == _sha256(source)

    def get_bytes(self, uri: str) -> bytes:
        bucket, key = split_s3_uri(uri)
        try:
            return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except self.s3.exceptions.NoSuchKey as exc:
            raise FileNotFoundError(f"no such object: {uri}") from exc

    def list(self, prefix_uri: str) -> list[ObjectInfo]:
        bucket, key = split_s3_uri(prefix_uri)
        found = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
            for obj in page.get("Contents", []):
                found.append(ObjectInfo(f"s3://{bucket}/{obj['Key']}", obj["Size"]))
        return sorted(found, key=lambda o: o.uri)


def read_metrics(storage: Storage, config: PipelineConfig, run_id: str) -> dict[str, Any]:
    """The job's metrics file for ``run_id`` (``_runs/<run_id>.json``), parsed."""
    return json.loads(storage.get_bytes(f"{config.runs_uri}{run_id}.json"))


def read_quarantine(storage: Storage, config: PipelineConfig, run_id: str) -> pa.Table:
    """Every row the job quarantined in run ``run_id``, one table (none: no rows, no columns).

    The one place that knows the quarantine's layout (``quarantine/run_id=<run_id>/``,
    Parquet): each file is read on its own, so no partition column is inferred from the
    folder name.
    """
    prefix = f"{config.quarantine_uri}run_id={run_id}/"
    tables = [
        pq.read_table(pa.BufferReader(storage.get_bytes(obj.uri)))
        for obj in storage.list(prefix)
        if obj.uri.endswith(".parquet")
    ]
    return pa.concat_tables(tables, promote_options="default") if tables else pa.table({})


def _hidden(name: str) -> bool:
    # The job (and Spark) skip these too: _SUCCESS, .crc files, _temporary folders.
    return name.startswith((".", "_"))


def input_files(source: str | Path, storage: Storage | None = None) -> list[tuple[Any, str]]:
    """The files a raw input names, each with the name it keeps in the raw bucket.

    ``source`` is a file (kept under its own name), a folder (every file under it, by
    its path relative to the folder; names starting with ``.`` or ``_`` are skipped, as
    the job skips them), or an ``s3://`` URI of an object or a prefix (listed through
    ``storage``, which must then be S3). Returns ``(local Path or s3 URI, name)`` pairs,
    sorted by name. Raises FileNotFoundError with one readable line when nothing is there.
    """
    text = str(source)
    if text.startswith("s3://"):
        if not isinstance(storage, S3Storage):
            raise UsageError(f"{text}: s3:// inputs need the aws target (--target aws)")
        exact = [o for o in storage.list(text) if o.uri == text]
        if exact:
            return [(text, text.rsplit("/", 1)[-1])]
        prefix = text.rstrip("/") + "/"
        found = []
        for obj in storage.list(prefix):
            rel = obj.uri[len(prefix) :]
            if rel and not any(_hidden(part) for part in rel.split("/")):
                found.append((obj.uri, rel))
        if not found:
            raise FileNotFoundError(f"no objects under {text}")
        return found
    path = Path(source).expanduser()
    if path.is_file():
        return [(path, path.name)]
    if not path.is_dir():
        raise FileNotFoundError(f"input not found: {path}")
    files = [
        (file, file.relative_to(path).as_posix())
        for file in sorted(path.rglob("*"))
        if file.is_file() and not any(_hidden(p) for p in file.relative_to(path).parts)
    ]
    if not files:
        raise FileNotFoundError(f"no files in folder {path}")
    return files


# Object metadata keys: what an object was made from, so an unchanged upload is skipped.
_DIGEST = "sha256"
_SOURCE_ETAG = "source-etag"


def _sha256(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def upload_raw(
    storage: Storage,
    config: PipelineConfig,
    sales: str | Path,
    customers: str | Path,
) -> list[str]:
    """Put raw inputs under the raw bucket, one prefix per source, keeping their names.

    ``sales`` and ``customers`` are each a file, a folder or (aws target) an ``s3://``
    object or prefix; see :func:`input_files`. Files already under the prefixes stay:
    a new file lands beside the earlier ones, and a file of the same name with other
    bytes replaces the earlier copy. Everything is checked before anything is put.
    A file whose bytes the raw bucket already holds under its name is not put again:
    it keeps its modification time, so the job does not take it for new (a daily run
    reads only new files). Returns the URIs of the raw files, sales first.
    """
    plan = [
        (src, prefix + name)
        for source, prefix in ((sales, config.raw_sales_uri), (customers, config.raw_customers_uri))
        for src, name in input_files(source, storage)
    ]
    for src, uri in plan:
        if storage.holds(src, uri):
            log.info("unchanged, not put again: %s", uri)
        elif isinstance(src, str):  # an s3:// object: copied inside S3
            storage.copy(src, uri)  # type: ignore[attr-defined]
            log.info("copied %s -> %s", src, uri)
        else:
            storage.put_file(src, uri)
            log.info("uploaded %s -> %s (%d bytes)", src, uri, src.stat().st_size)
    return [uri for _, uri in plan]
