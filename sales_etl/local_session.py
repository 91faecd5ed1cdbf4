"""The job's SparkSession outside Glue, and the local driver JVM's tuning: its compilers
and its class-data-sharing archive. Nothing here runs on Glue.
"""

from __future__ import annotations

import hashlib
import json
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
    _cds_note_class_path(spark)
    apply_job_conf(spark)
    return spark


def local_jvm_options(input_bytes: int | None) -> list[str]:
    """JVM options for a local driver whose run reads ``input_bytes`` (None: unknown)."""
    short = input_bytes is not None and input_bytes <= C1_INPUT_BYTES
    return [*LOCAL_JVM_OPTIONS, *([C1_ONLY] if short else [])]


# A local JVM starts faster from an archive of the classes a run loads (Java's class-data
# sharing). Writing one costs a run about 10 s as its JVM exits, so no run writes it: it
# is made once, at install (`make`, pipeline/class_archive.py), by a real job run in
# MAKE_ARCHIVE mode, checked by a throwaway JVM (a truncated archive crashes the JVM that
# maps it), then put in place. There is one per Java runtime, Spark and jar set (the
# file's name is their digest); one whose Java or jars are gone or changed is stale and
# removed. SALES_PIPELINE_CDS=0 turns sharing off.
_CDS_QUIET = ("-Xlog:cds=off", "-Xlog:cds+dynamic=off")
# Set by pipeline/class_archive.py: the path this run's JVM writes its archive to at exit.
MAKE_ARCHIVE = "SALES_PIPELINE_CDS_MAKE"
CLASS_PATH_SUFFIX = ".classpath"  # beside the archive being made: the JVM's class path
KEY_SUFFIX = ".json"  # beside a finished archive: the Java home and jars it was made with


def class_data_sharing_options() -> list[str]:
    """JVM options for the local driver: use the class archive, or make it; [] if neither."""
    if os.environ.get("SALES_PIPELINE_CDS", "1") == "0":
        return []
    making = os.environ.get(MAKE_ARCHIVE)
    if making:
        return [f"-XX:ArchiveClassesAtExit={making}", *_CDS_QUIET]
    archive = cds_archive_path()
    if archive is None:
        return []
    if archive.is_file():
        return [f"-XX:SharedArchiveFile={archive}", *_CDS_QUIET]
    log.info(
        "no class archive for this Java and Spark: the JVM starts without one (a few "
        "seconds slower); `make` or `python -m pipeline.class_archive` makes it"
    )
    return []


def cds_archive_path() -> Path | None:
    """Where the archive for this Java runtime and this pyspark lives (None: no Java 17+)."""
    home = os.environ.get("JAVA_HOME")
    if not home:
        return None
    import pyspark

    return archive_for(home, Path(pyspark.__file__).parent / "jars", pyspark.__version__)


def archive_for(home: str, jars: Path, spark_version: str) -> Path | None:
    """The archive's path for a Java home, a jars folder and a Spark version (None: that
    Java is not there or older than 17)."""
    try:
        release = (Path(home) / "release").read_text()
    except OSError:
        return None
    match = re.search(r'^JAVA_VERSION="(\d+)', release, re.MULTILINE)
    if not match or int(match.group(1)) < 17:
        return None
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
    return cache_folder() / f"spark-{spark_version}-java{match.group(1)}-{digest}.jsa"


def cache_folder() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sales-pipeline"


def _cds_note_class_path(spark: SparkSession) -> None:
    """Write the driver JVM's class path beside the archive being made: it holds only
    with that class path, and the check starts a JVM with it."""
    making = os.environ.get(MAKE_ARCHIVE)
    if not making:
        return
    class_path = spark.sparkContext._jvm.System.getProperty("java.class.path")  # type: ignore[union-attr]
    try:
        Path(making + CLASS_PATH_SUFFIX).write_text(class_path)
    except OSError:
        pass


def cds_archive_works(candidate: Path, class_path_file: Path) -> bool:
    """True when a throwaway JVM with the driver's class path starts with ``candidate``.

    A partial archive (its JVM killed while writing it) would crash every JVM that maps it.
    """
    java = Path(os.environ["JAVA_HOME"]) / "bin" / "java"
    try:
        class_path = class_path_file.read_text()
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


def remove_stale_archives(keep: Path | None) -> list[Path]:
    """Remove every archive in the cache but ``keep`` whose Java, Spark or jars are gone
    or changed (or that records none), and leftovers of archives never finished.

    An archive another venv still uses (its recorded Java home and jars give the same
    name) stays. Returns what was removed.
    """
    folder = cache_folder()
    if not folder.is_dir():
        return []
    removed = []
    for archive in sorted(folder.glob("*.jsa")):
        if archive == keep or _still_current(archive):
            continue
        for path in (archive, archive.with_name(archive.name + KEY_SUFFIX)):
            path.unlink(missing_ok=True)
            removed.append(path)
    # Anything else (an archive being made, its class path) is a leftover once old.
    cutoff = time.time() - CDS_STALE_SECONDS
    for leftover in sorted(folder.iterdir()):
        finished = leftover.name.endswith((".jsa", ".jsa" + KEY_SUFFIX))
        if not finished and leftover.is_file() and leftover.stat().st_mtime < cutoff:
            leftover.unlink(missing_ok=True)
            removed.append(leftover)
    return removed


def _still_current(archive: Path) -> bool:
    """True when the Java home and jars recorded beside ``archive`` still give its name."""
    try:
        key = json.loads(archive.with_name(archive.name + KEY_SUFFIX).read_text())
        again = archive_for(key["java_home"], Path(key["jars"]), key["spark_version"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return again == archive


def record_key(archive: Path, home: str, jars: Path, spark_version: str) -> None:
    """Write beside ``archive`` what it was made with, so a stale one can be told."""
    key = {"java_home": home, "jars": str(jars), "spark_version": spark_version}
    archive.with_name(archive.name + KEY_SUFFIX).write_text(json.dumps(key) + "\n")
