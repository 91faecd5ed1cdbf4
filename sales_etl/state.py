"""What the job has processed, kept under ``<output_path>/_state/``, the same on every
file system (local paths and URIs alike, through ``files``).

- ``manifest.json``: every raw file the lake holds the rows of, per source, with the
  size and modification time it had when it was read, and the run that read it. A
  file is new when the manifest lacks it, changed when its size or modification time
  differs (an upload of the same bytes keeps both: see ``pipeline.storage``).
- ``journal.json``: a run's commit, written once its output is staged and verified: the
  file moves and deletions that publish it and the manifest that records it. Applying
  it is idempotent, so a run killed while applying it is finished by the next run
  (``recover``) before that run looks at anything.
- ``staging/<run_id>/``: a run's output before its commit. A run killed before it
  wrote its journal leaves only this, which the next run removes.
- ``lock`` (local output only): one run at a time; on AWS the Glue job's
  MaxConcurrentRuns of 1 does this.

docs/etl_job.md describes the format.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from sales_etl.contracts import FatalInputError
from sales_etl.files import HadoopFiles, InputFile, LocalFiles, is_local, join_path

log = logging.getLogger(__name__)

STATE_DIR = "_state"
MANIFEST_FILE = "manifest.json"
JOURNAL_FILE = "journal.json"
LOCK_FILE = "lock"
STAGING_DIR = "staging"
# The customer records now known (newest file wins), as Parquet: what a daily run
# enriches its sales with when no customer file is new.
CUSTOMERS_DIR = "customers"
FORMAT_VERSION = 1
SOURCES = ("sales", "customers")

Files = LocalFiles | HadoopFiles


def state_path(root: str, *parts: str) -> str:
    return join_path(root, STATE_DIR, *parts)


def file_order(f: InputFile) -> tuple[int, str]:
    """The order in which files count as newer: modification time, then path.

    S3 sets an object's LastModified when it is uploaded, and the local upload gives a
    copied file the time of the copy, so a file that lands later is newer; an upload of
    unchanged bytes is skipped and keeps its time. A full rebuild orders the files the
    same way.
    """
    return (f.mtime_ms, f.path)


@dataclass(frozen=True)
class Delta:
    """One source's files against the manifest."""

    new: list[InputFile]
    changed: list[InputFile]
    deleted: list[str]
    unchanged: list[InputFile]


@dataclass
class Manifest:
    """The raw files whose rows the lake holds (source -> path -> entry)."""

    files: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {s: {} for s in SOURCES}
    )
    run_id: str | None = None

    @classmethod
    def load(cls, fs: Files, root: str) -> Manifest:
        data = fs.read_bytes(state_path(root, MANIFEST_FILE))
        if data is None:
            return cls()
        doc = json.loads(data)
        if doc.get("version") != FORMAT_VERSION:
            raise FatalInputError(
                f"{state_path(root, MANIFEST_FILE)} has format version {doc.get('version')}; "
                f"this job writes {FORMAT_VERSION}: run with --full_rebuild true"
            )
        return cls({s: dict(doc["files"].get(s, {})) for s in SOURCES}, doc.get("run_id"))

    @property
    def empty(self) -> bool:
        return not any(self.files.values())

    def delta(self, source: str, listed: list[InputFile]) -> Delta:
        known = self.files[source]
        new, changed, unchanged = [], [], []
        for f in listed:
            entry = known.get(f.path)
            if entry is None:
                new.append(f)
            elif (entry["size"], entry["mtime_ms"]) != (f.size, f.mtime_ms):
                changed.append(f)
            else:
                unchanged.append(f)
        listed_paths = {f.path for f in listed}
        deleted = sorted(p for p in known if p not in listed_paths)
        return Delta(new, changed, deleted, unchanged)

    def newest(self, source: str) -> tuple[int, str] | None:
        """The order of the newest file recorded for ``source`` (None: none)."""
        known = self.files[source]
        return max(((e["mtime_ms"], p) for p, e in known.items()), default=None)

    def recorded(
        self,
        run_id: str,
        read: dict[str, list[InputFile]],
        *,
        rebuild: bool,
        arrays: frozenset[InputFile] = frozenset(),
    ) -> Manifest:
        """This manifest plus the files a run read (a rebuild: only those); ``arrays``:
        the customer files that are one JSON array (a rebuild reads them again as such)."""
        files = {s: ({} if rebuild else dict(self.files[s])) for s in SOURCES}
        for source, listed in read.items():
            for f in listed:
                entry = {"size": f.size, "mtime_ms": f.mtime_ms, "run_id": run_id}
                if f in arrays:
                    entry["layout"] = "json_array"
                files[source][f.path] = entry
        return Manifest(files, run_id)

    def known_files(self) -> tuple[frozenset[InputFile], frozenset[InputFile]]:
        """Every recorded file as it was read, and those of them that are JSON arrays."""
        entries = [(p, e) for source in SOURCES for p, e in self.files[source].items()]
        known = frozenset(InputFile(p, e["size"], e["mtime_ms"]) for p, e in entries)
        arrays = frozenset(
            InputFile(p, e["size"], e["mtime_ms"])
            for p, e in entries
            if e.get("layout") == "json_array"
        )
        return known, arrays

    def to_json(self) -> dict[str, Any]:
        return {"version": FORMAT_VERSION, "run_id": self.run_id, "files": self.files}


# --- the commit ---------------------------------------------------------------------------


@dataclass
class Journal:
    """A run's commit: deletions, then moves, then the manifest."""

    run_id: str
    deletes: list[str]
    moves: list[tuple[str, str]]
    manifest: dict[str, Any]

    def write(self, fs: Files, root: str) -> None:
        doc = {
            "run_id": self.run_id,
            "deletes": [_inside(root, p) for p in self.deletes],
            "moves": [[_inside(root, src), _inside(root, dst)] for src, dst in self.moves],
            "manifest": self.manifest,
        }
        fs.write_bytes(state_path(root, JOURNAL_FILE), (json.dumps(doc, indent=1) + "\n").encode())

    def apply(self, fs: Files, root: str) -> None:
        """Publish the run. Deletions first: a reader between two steps may miss rows of
        a rewritten file, never see one twice. Each step is skipped when already done."""
        for path in self.deletes:
            fs.delete(path)
        if self.deletes:
            # Done: a run finishing this commit must not delete what the moves put back.
            Journal(self.run_id, [], self.moves, self.manifest).write(fs, root)
        for src, dst in self.moves:
            if fs.exists(src):
                fs.move(src, dst)
        fs.write_bytes(
            state_path(root, MANIFEST_FILE),
            (json.dumps(self.manifest, indent=1) + "\n").encode(),
        )
        fs.delete(state_path(root, JOURNAL_FILE))
        fs.delete(state_path(root, STAGING_DIR, self.run_id))


# The journal names the lake's files relative to the lake, so that a lake moved or copied
# with a commit pending is finished where it now is, not where it was.
def _inside(root: str, path: str) -> str:
    prefix = root.rstrip("/") + "/"
    return path[len(prefix) :] if path.startswith(prefix) else path


def _at(root: str, path: str) -> str:
    """A journal's path as a path or URI again (one outside the lake, an absolute path
    or a URI such as ``file:/...``, is kept whole)."""
    whole = path.startswith("/") or ":" in path.split("/", 1)[0]
    return path if whole else join_path(root, path)


def commit(fs: Files, root: str, journal: Journal) -> None:
    """Write the journal, then apply it: from here on the run counts as done."""
    journal.write(fs, root)
    journal.apply(fs, root)


def recover(fs: Files, root: str) -> str | None:
    """Finish a commit a killed run left half done, and drop staged output that no
    journal names. Returns the id of the run whose commit was finished, or None."""
    data = fs.read_bytes(state_path(root, JOURNAL_FILE))
    finished = None
    if data is not None:
        doc = json.loads(data)
        journal = Journal(
            doc["run_id"],
            [_at(root, p) for p in doc["deletes"]],
            [(_at(root, src), _at(root, dst)) for src, dst in doc["moves"]],
            doc["manifest"],
        )
        log.warning("run %s stopped while publishing its output: finishing it", journal.run_id)
        journal.apply(fs, root)
        finished = journal.run_id
    for leftover in fs.list_dirs(state_path(root, STAGING_DIR)):
        log.warning("removing the staged output of a run that did not finish: %s", leftover)
        fs.delete(leftover)
    return finished


# --- one run at a time --------------------------------------------------------------------


class RunLock:
    """A lock file in a local lake's ``_state/``: created exclusively, holding the pid,
    host and start time of its run; taken over when its run is gone (same host, no such
    process). Output on a URI is not locked here (on AWS: the job's MaxConcurrentRuns)."""

    def __init__(self, root: str) -> None:
        self.path = state_path(root, LOCK_FILE) if is_local(root) else None
        self.held = False

    def __enter__(self) -> RunLock:
        if self.path is None:
            return self
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is not None and _alive(holder):
                    raise _locked(holder) from None
                log.warning("taking over the lock of a run that is gone: %s", holder)
                _remove(self.path)
                continue
            with os.fdopen(fd, "w") as fh:
                json.dump(me, fh)
            self.held = True
            return self
        raise RunLockedError(f"could not take the lock {self.path}")

    def __exit__(self, *exc: object) -> None:
        if self.held and self.path is not None:
            _remove(self.path)
            self.held = False
            # A run that wrote nothing (bad input) leaves no folder behind either.
            for folder in (os.path.dirname(self.path), os.path.dirname(os.path.dirname(self.path))):
                try:
                    os.rmdir(folder)
                except OSError:
                    break  # not empty: earlier output or this run's

    def check(self) -> None:
        """Refuse, as taking the lock would, while a live run holds it; take nothing.

        A local run asks before its JVM starts, so a second run is refused at once;
        taking the lock (``with RunLock(...)``) still decides.
        """
        if self.path is not None and os.path.exists(self.path):
            holder = self._holder()
            if holder is not None and _alive(holder):
                raise _locked(holder)

    def _holder(self) -> dict[str, Any] | None:
        try:
            with open(self.path or "") as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return None  # unreadable: its writer died while writing it


class RunLockedError(FatalInputError):
    """Another run holds the lake's lock."""


def _locked(holder: dict[str, Any]) -> RunLockedError:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(holder["started"]))
    return RunLockedError(
        f"another run (pid {holder['pid']} on {holder['host']}, started {started} UTC) is "
        "writing to this lake; try again when it ends"
    )


def _alive(holder: dict[str, Any]) -> bool:
    if holder.get("host") != socket.gethostname():
        return True  # another machine's run: cannot be checked, so it is respected
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
