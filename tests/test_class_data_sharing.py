"""The local driver JVM's class archive (Java class-data sharing): made once at install by
``pipeline.class_archive``, checked, used by every run after; stale ones removed.

Real JVMs throughout: the archive is made by a real job run, checked by a real ``java``
(a truncated archive crashes it, and must fail the check), and used by a later run with
the same output as a run without sharing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyspark
import pytest

from pipeline import class_archive
from pipeline.java import ensure_java
from sales_etl import local_session

REPO = Path(__file__).resolve().parent.parent
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


HEADER = "transaction_id,date,customer_id,product,quantity,unit_price,region,total_amount"


def _run(tmp_path: Path, run_id: str, **env: str) -> dict:
    done = subprocess.run(
        [
            sys.executable, str(REPO / "glue_etl_job.py"),
            "--sales_path", str(tmp_path / "sales.csv"),
            "--customers_path", str(tmp_path / "customers.json"),
            "--output_path", str(tmp_path / f"out-{run_id}"),
            "--run_id", run_id,
        ],
        cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads((tmp_path / f"out-{run_id}" / "_runs" / f"{run_id}.json").read_text())


def test_the_maker_makes_a_checked_archive_once_and_a_run_uses_it(cache, tmp_path):
    assert class_archive.main([]) == 0
    archive = local_session.cds_archive_path()
    assert archive.is_file() and archive.stat().st_size > 10_000_000
    assert sorted(p.name for p in cache.iterdir()) == [archive.name, f"{archive.name}.json"]
    made = archive.stat().st_mtime_ns
    assert class_archive.main(["--if-missing"]) == 0
    assert archive.stat().st_mtime_ns == made  # there: not made again

    (tmp_path / "sales.csv").write_text(
        f"{HEADER}\nT1,2025-07-01,C1,Mouse,2,25.50,North,51.00\n"
        "T2,2025-07-02,C2,Lamp,1,45.25,South,45.25\n"
    )
    (tmp_path / "customers.json").write_text('{"customer_id": "C1", "age_group": "26-35"}\n')
    shared = _run(tmp_path, "shared")
    plain = _run(tmp_path, "plain", SALES_PIPELINE_CDS="0")
    for key in ("rows_read", "rows_written", "quarantined_total", "unknown_customers"):
        assert shared[key] == plain[key]
    assert shared["rows_written"]["enriched"] == 2
    assert archive.stat().st_mtime_ns == made  # a run never writes it

    # The check is what keeps a partial archive out: the first megabyte of a good one
    # crashes a JVM (checked by hand: "A fatal error has been detected"); it fails here.
    class_path = tmp_path / "class-path"
    class_path.write_text(str(Path(pyspark.__file__).parent / "jars" / "*"))
    truncated = tmp_path / "truncated.jsa"
    truncated.write_bytes(archive.read_bytes()[:1_000_000])
    assert local_session.cds_archive_works(archive, class_path)
    assert not local_session.cds_archive_works(truncated, class_path)
    assert not list(Path.cwd().glob("hs_err_pid*.log"))  # the crash log stays out of here
