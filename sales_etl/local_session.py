"""The job's SparkSession outside Glue, and the local driver JVM's tuning: its compilers
and its class-data-sharing archive. Nothing here runs on Glue.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pyspark.sql import SparkSession

from sales_etl.contracts import DEFAULT_JOB_NAME
from sales_etl.session import JOB_SQL_CONF, apply_job_conf, launched_by_spark_submit
from sales_etl.tuning import (
    C1_INPUT_BYTES,
    C1_ONLY,
    CDS_SETTLED_SECONDS,
    CDS_STALE_SECONDS,
    LOCAL_JVM_OPTIONS,
)

log = logging.getLogger(__name__)


def build_local_spark(
    app_name: str = DEFAULT_JOB_NAME,
    master: str | None = None,
    *,
    input_bytes: int | None = None,
) -> SparkSession:
    """The job's SparkSession outside Glue.

    Started with ``python``: local[*] (or ``$SPARK_MASTER``), few shuffle partitions,
    driver memory, no UI, quiet; ``input_bytes``, the run's input size when it is known
    before the JVM starts, picks the JVM's compilers (``local_jvm_options``). Started by
    ``spark-submit``: the master and resources spark-submit chose are kept; only the
    job's own SQL settings are applied.
    """
    if launched_by_spark_submit() and master is None:
        builder = SparkSession.builder.appName(app_name)
        for key, value in JOB_SQL_CONF.items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
        apply_job_conf(spark)
        return spark
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    cores = os.cpu_count() or 2
    cds = class_data_sharing_options()
    jvm_options = local_jvm_options(input_bytes)
    if C1_ONLY in jvm_options:
        log.info("input of %d bytes: the driver JVM compiles with C1 only", input_bytes)
    builder = (
        SparkSession.builder.master(master or os.environ.get("SPARK_MASTER", "local[*]"))
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.log.level", "ERROR")
        .config("spark.sql.shuffle.partitions", str(max(4, 2 * cores)))
        .config("spark.default.parallelism", str(max(4, 2 * cores)))
        .config("spark.driver.memory", os.environ.get("SPARK_DRIVER_MEMORY", "2g"))
        .config("spark.driver.extraJavaOptions", " ".join([*jvm_options, *cds]))
        .config("spark.executor.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.sql.adaptive.enabled", "true")
    )
    for key, value in JOB_SQL_CONF.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    if any(o.startswith("-XX:ArchiveClassesAtExit=") for o in cds):
        _cds_note_class_path(spark)
    apply_job_conf(spark)
    return spark


def local_jvm_options(input_bytes: int | None) -> list[str]:
    """JVM options for a local driver whose run reads ``input_bytes`` (None: unknown)."""
    short = input_bytes is not None and input_bytes <= C1_INPUT_BYTES
    return [*LOCAL_JVM_OPTIONS, *([C1_ONLY] if short else [])]


# A local JVM starts faster from an archive of the classes Spark loaded the last time
# (Java's class-data sharing). The archive
# is made by one run (the JVM writes it as it exits), checked by a throwaway JVM before
# any run relies on it (a truncated archive crashes the JVM that maps it), and kept per
# Java runtime and Spark version. SALES_PIPELINE_CDS=0 turns it off.
_CDS_QUIET = ("-Xlog:cds=off", "-Xlog:cds+dynamic=off")


def class_data_sharing_options() -> list[str]:
    """JVM options for the local driver: use the class archive, or make it; [] if neither."""
    if os.environ.get("SALES_PIPELINE_CDS", "1") == "0":
        return []
    archive = _cds_archive_path()
    if archive is None:
        return []
    if archive.is_file():
        return [f"-XX:SharedArchiveFile={archive}", *_CDS_QUIET]
    pending = archive.with_name(archive.name + ".new")
    try:
        archive.parent.mkdir(parents=True, exist_ok=True)
        lock = archive.with_name(archive.name + ".lock")
        if pending.is_file():
            age = time.time() - pending.stat().st_mtime
            if age < CDS_SETTLED_SECONDS:
                return []  # still being written
            if _cds_archive_works(pending, lock):
                pending.replace(archive)
                return [f"-XX:SharedArchiveFile={archive}", *_CDS_QUIET]
            if age < CDS_STALE_SECONDS:
                return []  # not usable yet; removed once stale
            pending.unlink()
        if lock.exists() and time.time() - lock.stat().st_mtime < CDS_STALE_SECONDS:
            return []  # another run is making it
        lock.write_text("")  # the class path, once the JVM runs (_cds_note_class_path)
    except OSError:  # no writable cache folder: start without sharing
        return []
    return [f"-XX:ArchiveClassesAtExit={pending}", *_CDS_QUIET]


def _cds_archive_path() -> Path | None:
    """Where the archive for this Java runtime and this pyspark lives (None: no Java 17+)."""
    home = os.environ.get("JAVA_HOME")
    if not home:
        return None
    try:
        release = (Path(home) / "release").read_text()
    except OSError:
        return None
    match = re.search(r'^JAVA_VERSION="(\d+)', release, re.MULTILINE)
    if not match or int(match.group(1)) < 17:
        return None
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    # The JVM refuses an archive (and then starts without one, silently) when a jar of its
    # class path is not the very file it was made with: a reinstalled venv has the same
    # names at the same path, so each jar's size and modification time are in the key.
    names = (
        sorted(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in jars.glob("*.jar"))
        if jars.is_dir()
        else []
    )
    # The archive holds only with the class path it was made with: the jars' folder too.
    key = "\n".join([os.path.realpath(home), release, str(jars.resolve()), *names])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sales-pipeline"
    return cache / f"spark-{pyspark.__version__}-java{match.group(1)}-{digest}.jsa"


def _cds_note_class_path(spark: SparkSession) -> None:
    """Write the driver JVM's class path into the lock: the archive is only valid with it."""
    archive = _cds_archive_path()
    if archive is None:
        return
    class_path = spark.sparkContext._jvm.System.getProperty("java.class.path")  # type: ignore[union-attr]
    try:
        archive.with_name(archive.name + ".lock").write_text(class_path)
    except OSError:
        pass


def _cds_archive_works(candidate: Path, lock: Path) -> bool:
    """True when a throwaway JVM with the driver's class path starts with ``candidate``.

    A partial archive (its JVM killed while writing it) would crash every JVM that maps it.
    """
    java = Path(os.environ["JAVA_HOME"]) / "bin" / "java"
    try:
        class_path = lock.read_text()
    except OSError:
        return False
    if not class_path:
        return False
    try:
        # In a folder of its own: a crashing JVM leaves its hs_err_pid<N>.log where it runs.
        with tempfile.TemporaryDirectory() as scratch:
            done = subprocess.run(
                [
                    str(java),
                    *LOCAL_JVM_OPTIONS,
                    "-Xshare:on",
                    f"-XX:SharedArchiveFile={candidate}",
                    "-cp",
                    class_path,
                    "-version",
                ],
                cwd=scratch,
                capture_output=True,
                timeout=60,
                check=False,
            )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0
