"""Shared pytest fixtures: one local Spark session and one job-built lake per test
process, and moto's.

The moto fixtures (``aws``, ``deployed``, ``moto_server``, ...) live in
``moto_fixtures.py`` and load once, as a plugin; test modules ask for them by name and
import only constants (``REGION``, ``PREFIX``) from it. ``lake_fixtures.py`` holds the
hand-written input, the lake built from it and ``run_glue_job``, the one helper that
runs ``glue_etl_job.py`` as a subprocess.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest_plugins = ["moto_fixtures"]

REPO = Path(__file__).resolve().parent.parent
# The top-level scripts (glue_etl_job.py, ...) import as modules from the repo root.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture(scope="session")
def spark():
    """The job's own local SparkSession builder, started once (Java via ensure_java)."""
    from glue_etl_job import build_local_spark
    from pipeline.java import ensure_java

    ensure_java()
    # The tests' inputs are small: the JVM a small run gets (C1 only, see local_jvm_options).
    session = build_local_spark(app_name="pytest", master="local[2]", input_bytes=0)
    session.conf.set("spark.sql.shuffle.partitions", "2")  # tiny test frames
    yield session
    session.stop()


@pytest.fixture(scope="session")
def lake(tmp_path_factory: pytest.TempPathFactory):
    """The hand-written input uploaded, crawled and run through the real job, once per test
    process (``lake_fixtures.build_lake``). Tests read it and must not modify it."""
    from lake_fixtures import build_lake

    return build_lake(tmp_path_factory.mktemp("job-lake") / "lake")
