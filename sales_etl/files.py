"""Listing, reading and writing files: local paths with the standard library, URIs
(``s3://``, ``file://``) through the JVM's Hadoop file system.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from pyspark.sql import SparkSession


@dataclass(frozen=True)
class InputFile:
    path: str
    size: int


def is_local(path: str) -> bool:
    return "://" not in path


def join_path(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *[p.strip("/") for p in parts]])


def _hidden(name: str) -> bool:
    # Spark ignores these too (_SUCCESS, .crc files, _temporary folders).
    return name.startswith((".", "_"))


class LocalFiles:
    """Plain local paths: checked before Spark starts, so bad input fails fast."""

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def list_files(self, path: str) -> list[InputFile]:
        if os.path.isfile(path):
            return [InputFile(os.path.abspath(path), os.path.getsize(path))]
        found = []
        for folder, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not _hidden(d))
            for name in sorted(files):
                if not _hidden(name):
                    full = os.path.abspath(os.path.join(folder, name))
                    found.append(InputFile(full, os.path.getsize(full)))
        return found

    def head(self, path: str, n: int) -> bytes:
        with open(path, "rb") as fh:
            return fh.read(n)

    def write_bytes(self, path: str, data: bytes) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)

    def size_under(self, path: str) -> int:
        if not os.path.exists(path):
            return 0
        return sum(f.size for f in self.list_files(path))

    def remove_children(self, path: str, prefix: str) -> list[str]:
        """Delete the entries directly under ``path`` whose name starts with ``prefix``."""
        if not os.path.isdir(path):
            return []
        removed = []
        for name in sorted(os.listdir(path)):
            if name.startswith(prefix):
                full = os.path.join(path, name)
                shutil.rmtree(full) if os.path.isdir(full) else os.remove(full)
                removed.append(full)
        return removed


class HadoopFiles:
    """``s3://``, ``file://`` and other URIs through the JVM's Hadoop FileSystem."""

    def __init__(self, spark: SparkSession) -> None:
        self._jvm = spark.sparkContext._jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()

    def _fs(self, path: str) -> tuple[Any, Any]:
        p = self._jvm.org.apache.hadoop.fs.Path(path)
        return p.getFileSystem(self._conf), p

    def exists(self, path: str) -> bool:
        fs, p = self._fs(path)
        return bool(fs.exists(p))

    def list_files(self, path: str) -> list[InputFile]:
        fs, p = self._fs(path)
        status = fs.getFileStatus(p)
        if status.isFile():
            return [InputFile(status.getPath().toString(), int(status.getLen()))]
        found = []
        it = fs.listFiles(p, True)
        while it.hasNext():
            st = it.next()
            rel = st.getPath().toString()[len(status.getPath().toString()) :]
            if not any(_hidden(part) for part in rel.split("/") if part):
                found.append(InputFile(st.getPath().toString(), int(st.getLen())))
        return sorted(found, key=lambda f: f.path)

    def head(self, path: str, n: int) -> bytes:
        fs, p = self._fs(path)
        stream = fs.open(p)
        try:
            return bytes(stream.readNBytes(n))
        finally:
            stream.close()

    def write_bytes(self, path: str, data: bytes) -> None:
        fs, p = self._fs(path)
        fs.setWriteChecksum(False)
        out = fs.create(p, True)
        try:
            out.write(bytearray(data))
        finally:
            out.close()

    def size_under(self, path: str) -> int:
        fs, p = self._fs(path)
        if not fs.exists(p):
            return 0
        return int(fs.getContentSummary(p).getLength())

    def remove_children(self, path: str, prefix: str) -> list[str]:
        """Delete the entries directly under ``path`` whose name starts with ``prefix``."""
        fs, p = self._fs(path)
        if not fs.exists(p):
            return []
        removed = []
        for st in fs.listStatus(p):
            if st.getPath().getName().startswith(prefix):
                fs.delete(st.getPath(), True)
                removed.append(st.getPath().toString())
        return sorted(removed)


def filesystem_for(path: str, spark: SparkSession | None) -> LocalFiles | HadoopFiles:
    if is_local(path):
        return LocalFiles()
    if spark is None:
        raise RuntimeError(f"{path} needs Spark's Hadoop file system")
    return HadoopFiles(spark)


def absolute_path(path: str) -> str:
    return os.path.abspath(path) if is_local(path) else path


def file_key(path: str) -> tuple[str, str]:
    """(host, decoded path) of a local path or URI, to match Spark's file names to ours."""
    if is_local(path):
        return "", os.path.abspath(path)
    parts = urlsplit(path)
    return parts.netloc, unquote(parts.path)
