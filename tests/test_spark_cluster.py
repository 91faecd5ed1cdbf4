"""glue_etl_job.py submitted with ``spark-submit`` to a real Spark standalone cluster.

A module fixture starts a standalone master and, once it answers, one worker (1 core,
1 GiB) on 127.0.0.1 with pyspark's own ``bin/spark-class``, and stops both (whole
process groups) at the end. The job is then submitted, once, with
``spark-submit --master spark://... --deploy-mode client``; the tests check that the
master saw the application (so the job did not quietly start its own ``local[*]``
session), that the event log shows spark-submit's settings kept and every task run by
the worker's executor, and that the Parquet it wrote holds the figures computed here
from the generated rows, never from the job's code.

The executors write to the local file system: with one worker on this machine and
absolute paths, driver and executors see the same files.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from pipeline.package import job_package_zip
from sales_etl.tuning import C1_ONLY

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
JOB = REPO / "glue_etl_job.py"
APP_NAME = "glue_etl_job"  # glue_etl_job.DEFAULT_JOB_NAME, the job's appName
RUN_ID = "cluster"
START_TIMEOUT = 60  # seconds for the master to list one ALIVE worker
SHUFFLE_PARTITIONS = 3  # a spark-submit setting the job must keep
SUBMIT_TIMEOUT = 300  # seconds for spark-submit; the run itself takes well under a minute
# Every JVM here (master, worker, driver, executor) lives for a minute at most: C1 alone
# (C1_ONLY) compiles it enough and leaves the two cores to the work, as in the job's own
# local runs of small inputs.

HEADER = "transaction_id,date,customer_id,product,quantity,unit_price,region,total_amount"
PRICES = {"Laptop": Decimal("1199.99"), "Mouse": Decimal("25.50"), "Lamp": Decimal("45.25")}
MONTHS = ((2025, 6), (2025, 7), (2025, 8))
CUSTOMERS = [f"C{i:03d}" for i in range(1, 21)]  # sales also use C021..C025 (unknown)
BAD_ROWS = [  # quarantined, one reason each
    "BAD1,2025-06-03,C001,Mouse,0,25.50,North,0.00",  # non_positive_quantity
    "BAD2,2025-02-30,C001,Mouse,1,25.50,North,25.50",  # invalid_date
]


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def free_port() -> int:
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    except OSError as exc:
        pytest.skip(f"no free TCP port on 127.0.0.1 for a Spark cluster: {exc}")


def fetch_json(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.load(resp)
    except (OSError, ValueError, urllib.error.URLError):
        return None


def tail(path: Path, n: int = 4000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else f"(no {path})"


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group started with ``start_new_session``, then SIGKILL."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@dataclass
class Cluster:
    url: str
    master_ui: str
    worker_ui: str
    env: dict[str, str]
    home: Path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from pipeline.java import ensure_java

    home = spark_home()
    for script in ("spark-class", "spark-submit"):
        if not os.access(home / "bin" / script, os.X_OK):
            pytest.skip(f"the installed pyspark has no executable {home / 'bin' / script}")
    java_home = ensure_java()
    base = tmp_path_factory.mktemp("spark-cluster")
    for name in ("work", "logs", "conf"):
        (base / name).mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET", "SPARK_MASTER")
        and not k.startswith("PYSPARK_SUBMIT")
    }
    env.update(
        JAVA_HOME=str(java_home),
        PATH=f"{java_home / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        SPARK_HOME=str(home),
        SPARK_CONF_DIR=str(base / "conf"),  # empty: no stray spark-defaults.conf
        SPARK_LOCAL_IP="127.0.0.1",
        SPARK_WORKER_DIR=str(base / "work"),
        SPARK_LOG_DIR=str(base / "logs"),
        SPARK_DAEMON_MEMORY="512m",
        SPARK_DAEMON_JAVA_OPTS=C1_ONLY,
        PYSPARK_PYTHON=sys.executable,  # the executors' Python: this venv's
        PYSPARK_DRIVER_PYTHON=sys.executable,
    )
    port, master_ui_port, worker_ui_port = free_port(), free_port(), free_port()
    spark_class = str(home / "bin" / "spark-class")
    commands = {
        "master": [
            spark_class, "org.apache.spark.deploy.master.Master",
            "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(master_ui_port),
        ],
        "worker": [
            spark_class, "org.apache.spark.deploy.worker.Worker",
            "--host", "127.0.0.1", "--cores", "1", "--memory", "1g",
            "--webui-port", str(worker_ui_port), f"spark://127.0.0.1:{port}",
        ],
    }  # fmt: skip
    procs: dict[str, subprocess.Popen] = {}
    master_ui = f"http://127.0.0.1:{master_ui_port}"

    def wait_for(workers: int, what: str) -> None:
        """Until the master's JSON lists ``workers`` ALIVE workers (0: until it answers)."""
        while True:
            state = fetch_json(f"{master_ui}/json/")
            alive = [w for w in (state or {}).get("workers", []) if w.get("state") == "ALIVE"]
            if state is not None and len(alive) == workers:
                return
            dead = [r for r, p in procs.items() if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                why = f"{dead} exited" if dead else f"{what} after {START_TIMEOUT} s"
                logs = "\n".join(f"--- {r}\n{tail(base / 'logs' / f'{r}.out')}" for r in procs)
                pytest.fail(f"Spark standalone cluster did not start: {why}\n{logs}")
            time.sleep(0.2)

    started = time.monotonic()
    deadline = started + START_TIMEOUT
    try:
        # The worker only once the master answers: a worker that finds no master waits
        # 5 to 15 s before it tries again.
        for role, cmd in commands.items():
            with open(base / "logs" / f"{role}.out", "wb") as out:
                procs[role] = subprocess.Popen(
                    cmd,
                    env=env,
                    cwd=base,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group, stopped as a whole
                )
            if role == "master":
                wait_for(0, "no answer from the master")
        wait_for(1, "no ALIVE worker")
        print(f"standalone master + worker up in {time.monotonic() - started:.1f} s")
        yield Cluster(
            url=f"spark://127.0.0.1:{port}",
            master_ui=master_ui,
            worker_ui=f"http://127.0.0.1:{worker_ui_port}",
            env=env,
            home=home,
        )
    finally:
        for proc in reversed(procs.values()):  # worker first, then master
            stop_group(proc)


# --- input, written here; the expected figures come from these rows alone ----------------


def clean_rows(seed: int, n: int) -> list[tuple[str, ...]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        year, month = MONTHS[i % len(MONTHS)]
        product = rng.choice(sorted(PRICES))
        quantity = rng.choice((1, 1, 2, 3))
        rows.append(
            (
                f"T{i:05d}",
                f"{year}-{month:02d}-{rng.randint(1, 28):02d}",
                f"C{rng.randint(1, 25):03d}",
                product,
                str(quantity),
                str(PRICES[product]),
                rng.choice(("North", "South", "East", "West")),
                str(PRICES[product] * quantity),
            )
        )
    return rows


def expected_by_month(rows: list[tuple[str, ...]]) -> list[tuple[int, int, int, Decimal]]:
    totals: dict[tuple[int, int], list] = defaultdict(lambda: [0, Decimal("0")])
    for row in rows:
        year, month = int(row[1][:4]), int(row[1][5:7])
        totals[(year, month)][0] += 1
        totals[(year, month)][1] += Decimal(row[7])
    return [(y, m, n, total) for (y, m), (n, total) in sorted(totals.items())]


@pytest.fixture(scope="module")
def submitted(cluster, tmp_path_factory):
    work = tmp_path_factory.mktemp("cluster-run")
    rows = clean_rows(seed=11, n=300)
    lines = [HEADER, *(",".join(r) for r in rows), ",".join(rows[0]), *BAD_ROWS]
    (work / "sales.csv").write_text("\n".join(lines) + "\n")
    (work / "customers.ndjson").write_text(
        "".join(
            json.dumps(
                {
                    "customer_id": cid,
                    "age_group": ("18-25", "26-35")[i % 2],
                    "membership_tier": ("Gold", "Silver")[i % 2],
                    "signup_date": "2024-03-15",
                }
            )
            + "\n"
            for i, cid in enumerate(CUSTOMERS)
        )
    )
    out = work / "processed"
    events = work / "events"
    events.mkdir()
    # The script alone in a folder and its package only as --py-files, as on a cluster
    # whose nodes have no checkout.
    script = work / "job" / JOB.name
    script.parent.mkdir()
    script.write_bytes(JOB.read_bytes())
    package = work / "job" / "sales_etl.zip"
    package.write_bytes(job_package_zip())
    cmd = [
        str(cluster.home / "bin" / "spark-submit"),
        "--master", cluster.url,
        "--py-files", str(package),
        "--deploy-mode", "client",
        "--driver-java-options", C1_ONLY,
        "--conf", f"spark.executor.extraJavaOptions={C1_ONLY}",
        "--conf", "spark.executor.memory=1g",
        "--conf", "spark.cores.max=1",
        "--conf", f"spark.sql.shuffle.partitions={SHUFFLE_PARTITIONS}",
        "--conf", "spark.eventLog.enabled=true",
        "--conf", f"spark.eventLog.dir={events.as_uri()}",
        str(script),
        "--sales_path", str(work / "sales.csv"),
        "--customers_path", str(work / "customers.ndjson"),
        "--output_path", str(out),
        "--run_id", RUN_ID,
    ]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        env=cluster.env,
        cwd=work,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=SUBMIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        stop_group(proc)
        stdout, stderr = proc.communicate()
        pytest.fail(f"spark-submit did not finish in {SUBMIT_TIMEOUT} s:\n{stderr[-4000:]}")
    seconds = time.monotonic() - started
    print(f"spark-submit took {seconds:.1f} s")
    return {
        "events": events,
        "work": work,
        "out": out,
        "rows": rows,
        "returncode": proc.returncode,
        "stdout": stdout,
        "stderr": stderr,
    }


def test_spark_submit_exits_0_with_the_summary_line(submitted):
    assert submitted["returncode"] == 0, submitted["stderr"][-4000:]
    last = submitted["stdout"].strip().splitlines()[-1]
    assert last.startswith(f"run {RUN_ID} succeeded"), submitted["stdout"][-2000:]


def test_the_application_ran_on_the_cluster_not_in_local_mode(cluster, submitted):
    assert submitted["returncode"] == 0, submitted["stderr"][-4000:]
    master = fetch_json(f"{cluster.master_ui}/json/")
    assert master is not None, "master UI unreachable after the run"
    apps = master["completedapps"] + master["activeapps"]
    ours = [a for a in apps if a["name"] == APP_NAME]
    assert len(ours) == 1, f"master lists {[a['name'] for a in apps]}, not {APP_NAME!r}"
    app = ours[0]
    assert app in master["completedapps"] and app["state"] == "FINISHED", app
    # An executor for that application ran on our worker.
    worker = fetch_json(f"{cluster.worker_ui}/json/")
    assert worker is not None, "worker UI unreachable after the run"
    executors = worker["executors"] + worker["finishedexecutors"]
    assert app["id"] in {e["appid"] for e in executors}, worker


def test_event_log_shows_spark_submits_settings_kept_and_tasks_on_the_executor(cluster, submitted):
    assert submitted["returncode"] == 0, submitted["stderr"][-4000:]
    [log] = list(submitted["events"].iterdir())  # one application, one event log
    events = [json.loads(line) for line in log.read_text().splitlines()]
    [env] = [e for e in events if e["Event"] == "SparkListenerEnvironmentUpdate"]
    props = env["Spark Properties"]
    assert props["spark.master"] == cluster.url
    assert props["spark.app.name"] == APP_NAME
    assert props["spark.executor.memory"] == "1g"
    assert props["spark.cores.max"] == "1"
    assert props["spark.sql.shuffle.partitions"] == str(SHUFFLE_PARTITIONS)
    assert "spark.ui.enabled" not in props  # the python-run settings were not applied
    for key, value in {
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.parquet.compression.codec": "snappy",
        "spark.sql.legacy.timeParserPolicy": "CORRECTED",
    }.items():
        assert props[key] == value, key
    added = [e for e in events if e["Event"] == "SparkListenerExecutorAdded"]
    assert [e["Executor Info"]["Host"] for e in added] == ["127.0.0.1"]
    task_executors = {
        e["Task Info"]["Executor ID"] for e in events if e["Event"] == "SparkListenerTaskEnd"
    }
    assert task_executors == {added[0]["Executor ID"]}  # every task ran on the worker


def test_enriched_rows_and_revenue_per_month_match_the_generated_input(submitted):
    assert submitted["returncode"] == 0, submitted["stderr"][-4000:]
    enriched = submitted["out"] / "enriched"
    got = duckdb.sql(
        "select year, month, count(*), sum(total_amount) from "
        f"read_parquet('{enriched}/**/*.parquet', hive_partitioning = true) "
        "group by all order by all"
    ).fetchall()
    assert got == expected_by_month(submitted["rows"])
    [(unknown,)] = duckdb.sql(
        f"select count(*) from read_parquet('{enriched}/**/*.parquet') where age_group is null"
    ).fetchall()
    assert unknown == sum(1 for r in submitted["rows"] if r[2] not in CUSTOMERS) > 0


def test_metrics_file_says_succeeded_and_accounts_for_every_row(submitted):
    assert submitted["returncode"] == 0, submitted["stderr"][-4000:]
    metrics = json.loads((submitted["out"] / "_runs" / f"{RUN_ID}.json").read_text())
    n = len(submitted["rows"])
    assert metrics["status"] == "succeeded"
    assert metrics["run_id"] == RUN_ID
    assert metrics["rows_read"] == {"sales": n + 1 + len(BAD_ROWS), "customers": len(CUSTOMERS)}
    assert metrics["rows_written"]["enriched"] == n
    assert metrics["duplicates_dropped"] == 1
    assert metrics["rows_quarantined"] == {"invalid_date": 1, "non_positive_quantity": 1}
    assert metrics["reconciliation"]["sales"]["ok"] is True
    assert metrics["partitions_written"] == [f"year={y}/month={m}" for y, m in MONTHS]
    qfile = next((submitted["out"] / "quarantine").glob(f"run_date=*/{RUN_ID}.parquet"))
    quarantined = duckdb.sql(
        f"select record_id, reason from read_parquet('{qfile}') order by all"
    ).fetchall()
    assert quarantined == [("BAD1", "non_positive_quantity"), ("BAD2", "invalid_date")]
