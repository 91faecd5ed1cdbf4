"""Make the local driver JVM's class archive once, where it costs a run nothing.

``make`` runs this after installing the requirements, and ``make run`` with
``--if-missing`` (a fraction of a second when the archive is there): a real job run on
a small generated input, in a scratch folder, writes the archive of the classes a run
loads as its JVM exits; a throwaway JVM checks it, and only then is it put in place,
with what it was made from beside it. Archives whose Java runtime, Spark or jars are
gone or changed are removed first. See ``sales_etl.local_session``.

python -m pipeline.class_archive [--if-missing]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyspark

from pipeline.config import JOB_SCRIPT, REPO_ROOT
from pipeline.datagen import SalesSpec, generate_customers, write_customers_ndjson, write_sales_csv
from pipeline.java import ensure_java
from sales_etl import local_session

log = logging.getLogger(__name__)

# The sample the archive is made from: enough rows for every reading and writing path a
# small run takes (a few dirty rows reach the quarantine writer too).
SAMPLE = SalesSpec(rows=2_000, customers=50, seed=7, dirty_rate=0.02)
# The JVM writes the archive after the job's Python has exited: how long to wait for it.
WRITE_SECONDS = 180


def make(archive: Path, scratch: Path) -> None:
    """Run the job once writing ``archive``; check it; put it in place. Raises
    RuntimeError when no archive that works came out."""
    sales, customers = scratch / "sales.csv", scratch / "customers.ndjson"
    write_sales_csv(SAMPLE, sales)
    start = dt.date(2025, 1, 1)
    write_customers_ndjson(generate_customers(SAMPLE.customers, SAMPLE.seed, start), customers)
    archive.parent.mkdir(parents=True, exist_ok=True)
    pending = archive.with_name(f"{archive.name}.{os.getpid()}.new")
    class_path = Path(str(pending) + local_session.CLASS_PATH_SUFFIX)
    env = {**os.environ, local_session.MAKE_ARCHIVE: str(pending)}
    args = ["--sales_path", str(sales), "--customers_path", str(customers)]
    args += ["--output_path", str(scratch / "out"), "--run_id", "class-archive"]
    try:
        done = subprocess.run(
            [sys.executable, str(JOB_SCRIPT), *args],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"the job run failed: {done.stderr.strip()[-500:]}")
        if not _written(pending) or not local_session.cds_archive_works(pending, class_path):
            raise RuntimeError("the JVM wrote no archive that a JVM can start with")
        os.replace(pending, archive)
        home = os.environ["JAVA_HOME"]
        jars = Path(pyspark.__file__).parent / "jars"
        local_session.record_key(archive, home, jars, pyspark.__version__)
    finally:
        pending.unlink(missing_ok=True)
        class_path.unlink(missing_ok=True)


def _written(pending: Path) -> bool:
    """Wait until the archive stops growing (its JVM has exited); False if it never came."""
    deadline = time.monotonic() + WRITE_SECONDS
    last = -1
    while time.monotonic() < deadline:
        size = pending.stat().st_size if pending.exists() else -1
        if size > 0 and size == last:
            return True
        last = size
        time.sleep(1)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--if-missing", action="store_true", help="do nothing when the archive is there"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if os.environ.get("SALES_PIPELINE_CDS", "1") == "0":
        return 0  # sharing is off: nothing to make
    ensure_java()
    archive = local_session.cds_archive_path()
    for path in local_session.remove_stale_archives(keep=archive):
        log.info("removed a stale class archive: %s", path)
    if archive is None:
        log.info("no Java 17+ for class-data sharing: the job starts without a class archive")
        return 0
    if archive.is_file() and args.if_missing:
        return 0
    log.info("making the job's class archive (once per Java and Spark install): %s", archive)
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="class-archive-") as scratch:
            make(archive, Path(scratch))
    except RuntimeError as exc:  # runs still work, only start slower: not a failure
        log.warning("no class archive made (%s); the job starts without one", exc)
        return 0
    size = archive.stat().st_size / 1e6
    log.info("class archive made in %.1f s (%.0f MB)", time.perf_counter() - started, size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
