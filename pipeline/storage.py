"""Put, get and list objects by ``s3://bucket/key`` URI on either target.

``LocalStorage`` mirrors S3 in a lake folder (``s3://bucket/key`` <-> ``<lake>/bucket/key``);
``S3Storage`` talks to S3 (or moto / LocalStack) through a boto3 client. Callers only
ever see URIs, so the same code uploads raw files or lists partitions on both targets.
"""

from __future__ import annotations

import filecmp
import fnmatch
import hashlib
import json
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq
from botocore.exceptions import ClientError

from pipeline.config import PipelineConfig, split_s3_uri
from pipeline.errors import UsageError
from sales_etl.raw_files import (
    CUSTOMERS_HEAD_BYTES,
    SALES_HEAD_BYTES,
    FatalInputError,
    array_to_ndjson,
    check_customers_head,
    check_sales_header,
    is_blank,
    json_layout,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object: its URI and size in bytes."""

    uri: str
    size: int


class Storage(Protocol):
    def put_file(self, path: Path, uri: str) -> None: ...
    def holds(self, source: Path | str, uri: str) -> bool: ...
    def get_bytes(self, uri: str, first: int | None = None) -> bytes: ...
    def delete(self, uri: str) -> None: ...
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

    def get_bytes(self, uri: str, first: int | None = None) -> bytes:
        """The object's bytes (only its ``first`` bytes, when given)."""
        try:
            with open(self.path(uri), "rb") as fh:
                return fh.read(first if first is not None else -1)
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise FileNotFoundError(f"no such object: {uri}") from exc

    def delete(self, uri: str) -> None:
        """Remove the object (nothing there: fine)."""
        self.path(uri).unlink(missing_ok=True)

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

    def get_bytes(self, uri: str, first: int | None = None) -> bytes:
        """The object's bytes (only its ``first`` bytes, when given)."""
        bucket, key = split_s3_uri(uri)
        extra = {"Range": f"bytes=0-{first - 1}"} if first else {}
        try:
            return self.s3.get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
        except self.s3.exceptions.NoSuchKey as exc:
            raise FileNotFoundError(f"no such object: {uri}") from exc
        except ClientError as exc:  # a Range on an empty object
            if first and exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return b""
            raise

    def delete(self, uri: str) -> None:
        """Remove the object (nothing there: fine, as S3 answers)."""
        bucket, key = split_s3_uri(uri)
        self.s3.delete_object(Bucket=bucket, Key=key)

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

    The one place that reads the quarantine's layout for a run
    (``quarantine/run_date=<date>/<run_id>.parquet``, more files ``<run_id>-<n>.parquet``):
    each file is read on its own, so no partition column is inferred from the folder name.
    """
    wanted = re.compile(rf"/run_date=[^/]+/{re.escape(run_id)}(-\d+)?\.parquet$")
    tables = [
        pq.read_table(pa.BufferReader(storage.get_bytes(obj.uri)))
        for obj in storage.list(config.quarantine_uri)
        if wanted.search(obj.uri)
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


@dataclass(frozen=True)
class RawUpload:
    """What an upload put into the raw bucket, and what it left out and why."""

    uris: list[str]  # every raw file of the inputs given, sales first
    skipped: dict[str, list[str]] = field(default_factory=dict)  # source -> empty files
    as_ndjson: list[str] = field(default_factory=list)  # JSON-array customers, now NDJSON


_SOURCES = ("sales", "customers")
_REFUSED = "nothing was uploaded: fix this file or take it out of the input, then run again"


def _read(storage: Storage, src: Path | str, first: int | None = None) -> bytes:
    """A local file's or an ``s3://`` object's bytes (its ``first`` bytes, when given)."""
    if isinstance(src, str):
        return storage.get_bytes(src, first)
    with open(src, "rb") as fh:
        return fh.read(first if first is not None else -1)


def _check(storage: Storage, source: str, src: Path | str) -> str | None:
    """Run the job's whole-file checks on one given file, from its first bytes.

    Returns None for an empty file (skipped), else the file's layout (``csv``,
    ``ndjson`` or ``json_array``); raises UsageError naming the file and what to do.
    """
    head = _read(storage, src, SALES_HEAD_BYTES if source == "sales" else CUSTOMERS_HEAD_BYTES)
    if is_blank(head):
        return None
    try:
        if source == "sales":
            check_sales_header(head, str(src))
            return "csv"
        check_customers_head(head, str(src))
    except FatalInputError as exc:
        raise UsageError(f"{exc}; {_REFUSED}") from None
    return json_layout(head)


def upload_raw(
    storage: Storage,
    config: PipelineConfig,
    sales: str | Path,
    customers: str | Path,
) -> RawUpload:
    """Put raw inputs under the raw bucket, one prefix per source, keeping their names.

    ``sales`` and ``customers`` are each a file, a folder or (aws target) an ``s3://``
    object or prefix; see :func:`input_files`. Every given file is checked first, with
    the job's own whole-file checks (``sales_etl.raw_files``): one that would fail the
    job stops the upload before anything is put (UsageError), so raw, the catalog and
    the processed output stay as they were. An empty file is skipped and reported; a
    source whose every file is empty is refused. A customers file in one JSON array is
    stored as NDJSON, the same records one per line, which the crawler and Athena read.

    Files already under the prefixes stay: a new file lands beside the earlier ones, and
    a file of the same name with other bytes replaces the earlier copy. A file whose
    bytes the raw bucket already holds under its name is not put again: it keeps its
    modification time, so the job does not take it for new (a daily run reads only new
    files).
    """
    given = {"sales": sales, "customers": customers}
    prefixes = {"sales": config.raw_sales_uri, "customers": config.raw_customers_uri}
    plan: list[tuple[Path | str, str, str]] = []  # (what is given, its raw URI, layout)
    skipped: dict[str, list[str]] = {}
    for source in _SOURCES:
        files = input_files(given[source], storage)
        for src, name in files:
            layout = _check(storage, source, src)
            if layout is None:
                log.warning("%s file %s is empty: skipped, not uploaded", source, src)
                skipped.setdefault(source, []).append(name)
            else:
                plan.append((src, prefixes[source] + name, layout))
        if len(skipped.get(source, [])) == len(files):
            raise UsageError(
                f"{source} input is empty: every file given ({given[source]}) is empty; "
                "nothing was uploaded"
            )
    as_ndjson = []
    with tempfile.TemporaryDirectory(prefix="raw-upload-") as scratch:
        puts = []
        for i, (src, uri, layout) in enumerate(plan):
            if layout == "json_array":
                try:
                    ndjson = array_to_ndjson(_read(storage, src), str(src))
                except FatalInputError as exc:
                    raise UsageError(f"{exc}; {_REFUSED}") from None
                converted = Path(scratch) / f"{i}.ndjson"
                converted.write_bytes(ndjson)
                log.info(
                    "customers file %s is one JSON array: stored as NDJSON, the same %d "
                    "records one per line, so the crawler and Athena read it",
                    src,
                    ndjson.count(b"\n"),
                )
                as_ndjson.append(uri)
                puts.append((converted, uri, src))
            else:
                puts.append((src, uri, src))
        for put, uri, src in puts:
            _put(storage, put, uri, src)
    return RawUpload([uri for _, uri, _ in plan], skipped, as_ndjson)


def _put(storage: Storage, put: Path | str, uri: str, given: Path | str) -> None:
    """Put ``put`` (the given file, or what it was converted to) at ``uri``."""
    if storage.holds(put, uri):
        log.info("unchanged, not put again: %s", uri)
    elif isinstance(put, str):  # an s3:// object: copied inside S3
        storage.copy(put, uri)  # type: ignore[attr-defined]
        log.info("copied %s -> %s", put, uri)
    else:
        storage.put_file(put, uri)
        log.info("uploaded %s -> %s (%d bytes)", given, uri, put.stat().st_size)


def raw_files(storage: Storage, config: PipelineConfig) -> dict[str, list[str]]:
    """Each source's raw files, by the name they keep under its raw prefix."""
    prefixes = {"sales": config.raw_sales_uri, "customers": config.raw_customers_uri}
    return {
        source: [o.uri[len(prefix) :] for o in storage.list(prefix)]
        for source, prefix in prefixes.items()
    }


def remove_raw(
    storage: Storage, config: PipelineConfig, names: list[str], *, dry_run: bool = False
) -> list[str]:
    """Take raw files out of the raw bucket, by name (as the run summary lists them).

    Each name is a file's name under either raw prefix (``orders_2026-12-05.csv``,
    ``2024/b.csv``), or a glob of such names (``orders_2026-12-*.csv``). Every name must
    match: else UsageError naming the raw files there are, and nothing is removed. The
    next run finds the file gone and rebuilds from the raw files left, so its rows leave
    the output. Returns the URIs removed (with ``dry_run``, those that would be).
    """
    prefixes = {"sales": config.raw_sales_uri, "customers": config.raw_customers_uri}
    present = raw_files(storage, config)
    chosen: list[str] = []
    for name in names:
        found = [
            prefixes[source] + raw
            for source, raws in present.items()
            for raw in raws
            if fnmatch.fnmatchcase(raw, name)
        ]
        if not found:
            there = ", ".join(r for raws in present.values() for r in raws) or "none"
            raise UsageError(f"no raw file named {name!r}; the raw files are: {there}")
        chosen += [uri for uri in found if uri not in chosen]
    for uri in chosen:
        if dry_run:
            log.info("would remove %s", uri)
        else:
            storage.delete(uri)
            log.info("removed %s", uri)
    return chosen
