"""Shared pytest fixtures: one local Spark session and one job-built lake (the job run on
that session) per test process, and moto's.

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
    from pipeline.java import ensure_java
    from sales_etl.local_session import build_local_spark

    ensure_java()
    # One session runs a worker's dozens of small jobs: both compilers (input size not
    # given), as for a long run; C2's code pays off over the session, not over one small
    # run (see local_jvm_options).
    session = build_local_spark(app_name="pytest", master="local[2]", input_bytes=None)
    session.conf.set("spark.sql.shuffle.partitions", "2")  # tiny test frames
    yield session
    session.stop()


@pytest.fixture(scope="session")
def lake(tmp_path_factory: pytest.TempPathFactory, spark):
    """The hand-written input uploaded, crawled and run through the real job (its ``main``
    on the shared session), once per test process (``lake_fixtures.build_lake``). Tests
    read it and must not modify it."""
    from lake_fixtures import build_lake

    return build_lake(tmp_path_factory.mktemp("job-lake") / "lake", spark=spark)


# Seconds each module took in one `make test` from a fresh clone (`--durations=0`,
# summed per module, 2 xdist workers on the 2-core machine; only the order matters).
# With pytest-xdist (`--dist loadfile`, see pyproject.toml) a module runs whole on one
# worker, and the workers take modules in this order: the heaviest first, so that
# neither is left with a long one at the end. Modules not listed (under 2.5 s) run after
# these, in file order.
MODULE_SECONDS = {
    "test_daily_loads_crash.py": 78,
    "test_own_exports.py": 69,
    "test_daily_loads_equivalence.py": 63,
    "test_glue_etl_parallel.py": 39,
    "test_run_pipeline.py": 32,
    "test_run_on_own_data.py": 32,
    "test_daily_loads.py": 28,
    "test_glue_etl_job.py": 27,
    "test_spark_cluster.py": 22,
    "test_deploy_server.py": 20,
    "test_deploy_policy.py": 18,
    "test_run_report.py": 15,
    "test_glue_etl_e2e.py": 13,
    "test_template.py": 9,
    "test_deploy_dry_run.py": 8,
    "test_java.py": 6,
    "test_deploy_up.py": 6,
    "test_infra_role.py": 5,
    "test_deploy_run.py": 5,
    "test_charts_readability.py": 5,
    "test_query.py": 4,
    "test_job_cloudwatch.py": 4,
    "test_infra_workflow.py": 4,
    "test_infra_key.py": 4,
    "test_deploy_cli.py": 4,
    "test_two_prefixes.py": 3,
    "test_terminal_states.py": 3,
    "test_infra_buckets.py": 3,
    "test_infra_arrivals.py": 3,
    "test_generate_data.py": 3,
    "test_engines.py": 3,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Heaviest modules first (MODULE_SECONDS); a stable sort keeps each module's order."""
    items.sort(key=lambda item: -MODULE_SECONDS.get(item.path.name, 0))
