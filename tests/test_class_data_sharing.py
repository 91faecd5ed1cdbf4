"""The local driver JVM's class archive (Java class-data sharing): made once at install by
``pipeline.class_archive``, checked, used by every run after; stale ones removed.

Real JVMs throughout: the archive the install made (`make` runs the maker, a real job
run) is checked here by a real ``java`` (a truncated archive crashes it, and must fail
the check) and found mapped by the driver JVM of the job's local session. A missing one
fails: the install did not make it. The suite's other local runs of the job start with
it too (but for those that turn sharing off), each checking its output against figures
of its own.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pyspark
import pytest

from pipeline import class_archive
from pipeline.java import ensure_java
from sales_etl import local_session

QUIET = ["-Xlog:cds=off", "-Xlog:cds+dynamic=off"]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    ensure_java()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("SALES_PIPELINE_CDS", raising=False)
    monkeypatch.delenv(local_session.MAKE_ARCHIVE, raising=False)
    return tmp_path / "cache" / "sales-pipeline"


def test_a_run_uses_the_archive_when_there_and_never_makes_one(cache, monkeypatch):
    archive = local_session.cds_archive_path()
    assert archive is not None and archive.parent == cache
    assert local_session.class_data_sharing_options() == []  # none yet: none made either
    assert not cache.exists()
    cache.mkdir(parents=True)
    archive.write_bytes(b"stands for a checked archive")
    assert local_session.class_data_sharing_options() == [
        f"-XX:SharedArchiveFile={archive}",
        *QUIET,
    ]
    # Only the maker's run writes one, where the maker says.
    monkeypatch.setenv(local_session.MAKE_ARCHIVE, str(cache / "x.new"))
    assert local_session.class_data_sharing_options() == [
        f"-XX:ArchiveClassesAtExit={cache / 'x.new'}",
        *QUIET,
    ]


def test_no_java_17_or_switched_off_means_no_options(cache, monkeypatch, tmp_path):
    real_home = os.environ["JAVA_HOME"]
    fake = tmp_path / "jdk11"
    fake.mkdir()
    (fake / "release").write_text('JAVA_VERSION="11.0.2"\n')
    monkeypatch.setenv("JAVA_HOME", str(fake))
    assert local_session.class_data_sharing_options() == []
    monkeypatch.setenv("JAVA_HOME", real_home)
    monkeypatch.setenv("SALES_PIPELINE_CDS", "0")
    assert local_session.class_data_sharing_options() == []
    assert class_archive.main([]) == 0
    assert not cache.exists()


def _fake_jars(root: Path, content: bytes = b"jar") -> Path:
    jars = root / "jars"
    jars.mkdir(parents=True, exist_ok=True)
    (jars / "a.jar").write_bytes(content)
    return jars


def test_stale_archives_and_old_leftovers_are_removed_the_current_ones_kept(cache, tmp_path):
    home = os.environ["JAVA_HOME"]
    cache.mkdir(parents=True)
    current = local_session.cds_archive_path()
    current.write_bytes(b"current")  # no record beside it: kept, as asked
    # Another venv's archive: its jars are still there, unchanged.
    other_jars = _fake_jars(tmp_path / "other-venv")
    other = local_session.archive_for(home, other_jars, "3.5.0")
    other.write_bytes(b"other")
    local_session.record_key(other, home, other_jars, "3.5.0")
    # A venv deleted since, and one whose jar was replaced.
    gone_jars = _fake_jars(tmp_path / "gone-venv")
    gone = local_session.archive_for(home, gone_jars, "3.5.0")
    gone.write_bytes(b"gone")
    local_session.record_key(gone, home, gone_jars, "3.5.0")
    (gone_jars / "a.jar").unlink()
    gone_jars.rmdir()
    changed_jars = _fake_jars(tmp_path / "changed-venv")
    changed = local_session.archive_for(home, changed_jars, "3.5.0")
    changed.write_bytes(b"changed")
    local_session.record_key(changed, home, changed_jars, "3.5.0")
    (changed_jars / "a.jar").write_bytes(b"new jar")
    # Made by a version of the pipeline that recorded nothing.
    unrecorded = cache / "spark-3.5.1-java17-0123456789abcdef.jsa"
    unrecorded.write_bytes(b"old")
    # Leftovers of archives being made: an old one (its maker gone) and a young one.
    old_pending, young_pending = cache / "a.jsa.1.new", cache / "b.jsa.2.new"
    for path in (old_pending, young_pending):
        path.write_bytes(b"partial")
    hour_ago = time.time() - 3600
    os.utime(old_pending, (hour_ago, hour_ago))

    removed = local_session.remove_stale_archives(keep=current)

    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [current.name, other.name, f"{other.name}.json", young_pending.name]
    )
    assert set(removed) == {
        gone, Path(f"{gone}.json"), changed, Path(f"{changed}.json"), unrecorded,
        Path(f"{unrecorded}.json"), old_pending,
    }  # fmt: skip


def test_a_replaced_jar_gives_another_archive(cache, tmp_path, monkeypatch):
    """A reinstalled pyspark (same jar names, same folder, new files) needs a new archive:
    the JVM would refuse the old one and start without sharing."""
    _fake_jars(tmp_path / "pyspark", b"first")
    monkeypatch.setattr(pyspark, "__file__", str(tmp_path / "pyspark" / "__init__.py"))
    first = local_session.cds_archive_path()
    assert local_session.cds_archive_path() == first  # the same files: the same archive
    jar = tmp_path / "pyspark" / "jars" / "a.jar"
    jar.write_bytes(b"again")  # same name and size, written anew
    os.utime(jar, ns=(1, 1))
    assert local_session.cds_archive_path() != first


MAPPED = re.compile(r"CDS archive\(s\) mapped at: \[(0x[0-9a-f]+)-(0x[0-9a-f]+)-(0x[0-9a-f]+)\)")


def test_the_archive_made_at_install_is_checked_recorded_and_used_by_a_session(spark, tmp_path):
    """The install (`make`: ``python -m pipeline.class_archive``) made this Java and
    Spark's archive with a real job run; a missing one fails here. It is recorded, left
    alone by ``--if-missing`` and by every run since, mapped by the job's local session
    (the shared ``spark`` fixture, built by ``build_local_spark``), and a truncated copy
    fails the check that keeps a partial archive out."""
    ensure_java()
    archive = local_session.cds_archive_path()
    assert archive is not None, "the Java runtime is older than 17"
    assert archive.is_file(), (
        f"no class archive at {archive}: the install (`make`, which runs "
        "`python -m pipeline.class_archive`) made none; see its warning"
    )
    assert archive.stat().st_size > 10_000_000
    record = Path(f"{archive}.json")
    # Nothing left of its making beside it (the archive being written, its class path).
    assert sorted(p.name for p in archive.parent.glob(f"{archive.name}*")) == sorted(
        [archive.name, record.name]
    )
    key = json.loads(record.read_text())
    jars = Path(pyspark.__file__).parent / "jars"
    assert key["spark_version"] == pyspark.__version__
    assert Path(key["jars"]).resolve() == jars.resolve()
    assert os.path.realpath(key["java_home"]) == os.path.realpath(os.environ["JAVA_HOME"])
    made = archive.stat().st_mtime_ns
    # Recorded after it was put in place: no run has written it since.
    assert made <= record.stat().st_mtime_ns
    assert class_archive.main(["--if-missing"]) == 0
    assert archive.stat().st_mtime_ns == made  # there: not made again

    # The session's driver JVM was started with it and mapped it: the JVM's own report
    # (jcmd VM.info) has a top (dynamic) archive above the JDK's base archive.
    jvm = spark.sparkContext._jvm
    arguments = list(
        jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()
    )
    assert f"-XX:SharedArchiveFile={archive}" in arguments
    pid = jvm.java.lang.ProcessHandle.current().pid()
    jcmd = Path(os.environ["JAVA_HOME"]) / "bin" / "jcmd"
    info = subprocess.run(
        [str(jcmd), str(pid), "VM.info"], capture_output=True, text=True, timeout=60, check=False
    ).stdout
    found = MAPPED.search(info)
    assert found, info[-3000:]
    base, static_top, top = (int(x, 16) for x in found.groups())
    assert base < static_top < top, found[0]

    # The check is what keeps a partial archive out: the first megabyte of a good one
    # crashes a JVM (checked by hand: "A fatal error has been detected"); it fails here.
    class_path = tmp_path / "class-path"
    class_path.write_text(str(jars / "*"))
    truncated = tmp_path / "truncated.jsa"
    with archive.open("rb") as whole:
        truncated.write_bytes(whole.read(1_000_000))
    assert local_session.cds_archive_works(archive, class_path)
    assert not local_session.cds_archive_works(truncated, class_path)
    assert not list(Path.cwd().glob("hs_err_pid*.log"))  # the crash log stays out of here
