"""The local driver JVM's class archive (Java class-data sharing): made once, checked, used.

Real JVMs throughout: the archive check starts a real ``java`` on a truncated archive (it
crashes, and that must not make the archive live), and two real job runs show the first
making the archive and a later one using it with the same output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.java import ensure_java
from sales_etl import local_session

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    ensure_java()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("SALES_PIPELINE_CDS", raising=False)
    return tmp_path / "cache" / "sales-pipeline"


def test_first_run_makes_the_archive_and_holds_the_lock(cache):
    options = local_session.class_data_sharing_options()
    archive = local_session._cds_archive_path()
    assert archive is not None and archive.parent == cache
    assert options == [
        f"-XX:ArchiveClassesAtExit={archive}.new",
        "-Xlog:cds=off",
        "-Xlog:cds+dynamic=off",
    ]
    assert Path(f"{archive}.lock").exists()
    # While that run goes on (fresh lock, no archive yet), others start without sharing.
    assert local_session.class_data_sharing_options() == []


def test_an_archive_in_place_is_used(cache):
    archive = local_session._cds_archive_path()
    cache.mkdir(parents=True)
    archive.write_bytes(b"stands for a checked archive")
    assert local_session.class_data_sharing_options()[0] == f"-XX:SharedArchiveFile={archive}"


def test_an_unchecked_archive_is_removed_once_stale(cache):
    archive = local_session._cds_archive_path()
    cache.mkdir(parents=True)
    pending = Path(f"{archive}.new")
    pending.write_bytes(b"\0" * 4096)  # what a JVM killed while writing leaves
    lock = Path(f"{archive}.lock")
    lock.write_text(os.pathsep.join(["/nonexistent/jars/*"]))
    assert local_session._cds_archive_works(pending, lock) is False
    assert local_session.class_data_sharing_options() == []  # young: may still be being written
    old = time.time() - 3600
    os.utime(pending, (old, old))
    os.utime(lock, (old, old))
    options = local_session.class_data_sharing_options()  # stale: removed, and made again
    assert not archive.exists()
    assert options[0] == f"-XX:ArchiveClassesAtExit={archive}.new"


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
    assert not cache.exists()


HEADER = "transaction_id,date,customer_id,product,quantity,unit_price,region,total_amount"


def _run(tmp_path: Path, run_id: str) -> dict:
    env = {**os.environ}
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "glue_etl_job.py"),
            "--sales_path",
            str(tmp_path / "sales.csv"),
            "--customers_path",
            str(tmp_path / "customers.json"),
            "--output_path",
            str(tmp_path / f"out-{run_id}"),
            "--run_id",
            run_id,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads((tmp_path / f"out-{run_id}" / "_runs" / f"{run_id}.json").read_text())


def test_a_job_run_makes_the_archive_and_a_later_run_uses_it(cache, tmp_path):
    (tmp_path / "sales.csv").write_text(
        f"{HEADER}\nT1,2025-07-01,C1,Mouse,2,25.50,North,51.00\n"
        "T2,2025-07-02,C2,Lamp,1,45.25,South,45.25\n"
    )
    (tmp_path / "customers.json").write_text('{"customer_id": "C1", "age_group": "26-35"}\n')
    first = _run(tmp_path, "first")
    archive = local_session._cds_archive_path()
    pending = Path(f"{archive}.new")
    deadline = time.monotonic() + 120  # the JVM writes it as it exits, after Python
    while time.monotonic() < deadline and not (
        pending.exists() and local_session._cds_archive_works(pending, Path(f"{archive}.lock"))
    ):
        time.sleep(2)
    assert local_session._cds_archive_works(pending, Path(f"{archive}.lock"))
    assert local_session.class_data_sharing_options() == []  # just written: not taken yet
    settled = time.time() - 60
    os.utime(pending, (settled, settled))
    second = _run(tmp_path, "second")
    assert archive.is_file() and not pending.exists()  # checked, then put in place
    for key in ("rows_read", "rows_written", "quarantined_total", "unknown_customers"):
        assert first[key] == second[key]
    assert second["rows_written"]["enriched"] == 2
    # The check is what keeps a partial archive out: the first megabyte of a good one
    # crashes a JVM (checked by hand: "A fatal error has been detected"); it fails here.
    truncated = tmp_path / "truncated.jsa"
    truncated.write_bytes(archive.read_bytes()[:1_000_000])
    assert local_session._cds_archive_works(archive, Path(f"{archive}.lock"))
    assert not local_session._cds_archive_works(truncated, Path(f"{archive}.lock"))
    assert not list(Path.cwd().glob("hs_err_pid*.log"))  # the crash log stays out of here


def test_a_replaced_jar_gives_another_archive(cache, tmp_path, monkeypatch):
    """A reinstalled pyspark (same jar names, same folder, new files) needs a new archive:
    the JVM would refuse the old one and start without sharing."""
    import pyspark

    jars = tmp_path / "pyspark" / "jars"
    jars.mkdir(parents=True)
    (jars / "a.jar").write_bytes(b"first")
    monkeypatch.setattr(pyspark, "__file__", str(tmp_path / "pyspark" / "__init__.py"))
    first = local_session._cds_archive_path()
    assert local_session._cds_archive_path() == first  # the same files: the same archive
    (jars / "a.jar").write_bytes(b"again")  # same name and size, written anew
    os.utime(jars / "a.jar", ns=(1, 1))
    assert local_session._cds_archive_path() != first
