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
    mtime_ms: int = 0  # modification time (S3: LastModified), in ms since the epoch


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
            return [_local_file(os.path.abspath(path))]
        found = []
        for folder, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not _hidden(d))
            for name in sorted(files):
                if not _hidden(name):
                    found.append(_local_file(os.path.abspath(os.path.join(folder, name))))
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

    def read_bytes(self, path: str) -> bytes | None:
        """The file's bytes, or None when there is no such file."""
        try:
            with open(path, "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            return None

    def delete(self, path: str) -> None:
        """Remove a file or a folder and everything under it (nothing there: fine)."""
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)

    def move(self, src: str, dst: str) -> None:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.replace(src, dst)

    def list_dirs(self, path: str) -> list[str]:
        """The folders directly under ``path``."""
        if not os.path.isdir(path):
            return []
        return sorted(e.path for e in os.scandir(path) if e.is_dir())

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
            return [_hadoop_file(status)]
        found = []
        it = fs.listFiles(p, True)
        while it.hasNext():
            st = it.next()
            rel = st.getPath().toString()[len(status.getPath().toString()) :]
            if not any(_hidden(part) for part in rel.split("/") if part):
                found.append(_hadoop_file(st))
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

    def read_bytes(self, path: str) -> bytes | None:
        fs, p = self._fs(path)
        if not fs.exists(p):
            return None
        stream = fs.open(p)
        try:
            return bytes(stream.readAllBytes())
        finally:
            stream.close()

    def delete(self, path: str) -> None:
        fs, p = self._fs(path)
        fs.delete(p, True)

    def move(self, src: str, dst: str) -> None:
        fs, p = self._fs(src)
        target = self._jvm.org.apache.hadoop.fs.Path(dst)
        fs.mkdirs(target.getParent())
        if not fs.rename(p, target):
            raise OSError(f"could not move {src} to {dst}")

    def list_dirs(self, path: str) -> list[str]:
        fs, p = self._fs(path)
        if not fs.exists(p):
            return []
        return sorted(st.getPath().toString() for st in fs.listStatus(p) if st.isDirectory())

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


def _local_file(path: str) -> InputFile:
    st = os.stat(path)
    return InputFile(path, st.st_size, st.st_mtime_ns // 1_000_000)


def _hadoop_file(status: Any) -> InputFile:
    return InputFile(
        status.getPath().toString(),
        int(status.getLen()),
        int(status.getModificationTime()),
    )


def filesystem_for(path: str, spark: SparkSession | None) -> LocalFiles | HadoopFiles:
    if is_local(path):
        return LocalFiles()
    if spark is None:
        raise RuntimeError(f"{path} needs Spark's Hadoop file system")
    return HadoopFiles(spark)


def plain_path(spark_name: str) -> str:
    """A local file's path from Spark's ``file:`` name for it; a URI as it is."""
    parts = urlsplit(spark_name)
    return unquote(parts.path) if parts.scheme == "file" else spark_name


def absolute_path(path: str) -> str:
    return os.path.abspath(path) if is_local(path) else path


def file_key(path: str) -> tuple[str, str]:
    """(host, decoded path) of a local path or URI, to match Spark's file names to ours."""
    if is_local(path):
        return "", os.path.abspath(path)
    parts = urlsplit(path)
    return parts.netloc, unquote(parts.path)
