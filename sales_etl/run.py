"""One run, start to end: ``run_job`` and its four steps, and the local entry
(``run_local``) that starts Spark for it.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sales_etl.arguments import JobArgs, check_run_id, default_run_id
from sales_etl.context import Checked, RunContext, timed_phase, utc_now
from sales_etl.contracts import FatalInputError
from sales_etl.counts import SourceCounts, all_reconciled, count_rows, counts_by_reason, reconcile
from sales_etl.duplicates import resolve_sales_duplicates
from sales_etl.files import is_local
from sales_etl.inputs import InputPlan, plan_inputs
from sales_etl.local_session import build_local_spark
from sales_etl.metrics import finish_run, planned_metrics
from sales_etl.readers import read_customers
from sales_etl.rules import classify_customers, kept
from sales_etl.sales_pass import read_and_check_sales
from sales_etl.session import expression_evaluation, launched_by_spark_submit
from sales_etl.tables import enrich, summary_groups
from sales_etl.writing import verify_outputs, write_outputs


def run_job(
    spark: SparkSession,
    args: JobArgs,
    plan: InputPlan,
    *,
    run_id: str,
    started: datetime,
) -> dict[str, Any]:
    """Read, check, transform and write; return the metrics (also written to _runs/).

    Four steps; the phases in them are logged as they start and end:

    1. ``read_and_classify`` (phase read_and_check): one parallel pass over the sales
       input, persisted; the customers; the counts; the reconciliation planned before
       anything is written.
    2. ``planned_metrics``: the metrics document, filled in with those counts. If the
       planned reconciliation does not hold, the run stops here: it writes the metrics
       file (status failed) and nothing else.
    3. ``write_outputs`` (write_enriched, write_summary, write_quarantine): from the
       persisted rows, not re-read.
    4. ``verify_outputs`` (verify): counts what is now on storage and reconciles again.

    Then ``finish_run`` writes the metrics file; a run whose written rows do not reconcile
    ends failed.
    """
    run = RunContext.start(spark, args, plan, run_id=run_id, started=started)
    with expression_evaluation(spark, plan) as evaluation:
        checked = read_and_classify(run)
        metrics = planned_metrics(run, checked)
        metrics["read_plan"]["evaluation"] = evaluation
        if not all_reconciled(checked.planned):
            # Nothing written yet: fail before touching the outputs.
            return finish_run(run, metrics, failed="rows do not reconcile before writing")
        reread = write_outputs(run, checked, metrics)
        verify_outputs(run, checked, metrics)
    for df in (*checked.persisted, reread):
        if df is not None:
            df.unpersist()
    ok = all_reconciled(metrics["reconciliation"])
    return finish_run(run, metrics, failed=None if ok else "rows do not reconcile after writing")


def read_and_classify(run: RunContext) -> Checked:
    """Step 1: read every record once, classify it, count the outcomes and reconcile them.

    The sales are read in parallel, checked and persisted (``read_and_check_sales``);
    while that pass runs, a thread reads, checks, persists and counts the customers
    (``check_customers``). The sales' repeated transaction ids are resolved
    (``resolve_sales_duplicates``); valid sales are joined to valid customers
    (``enrich``) and one Spark job counts the enriched rows (``count_rows``). An input
    with no records is fatal.
    """
    with (
        timed_phase("read_and_check", run.durations) as phase,
        ThreadPoolExecutor(1, thread_name_prefix="customers") as pool,
    ):
        checking: list[Future[tuple[DataFrame, SourceCounts]]] = []
        # Started once the sales pass is planned: planned side by side, both plans take
        # about twice as long.
        read = read_and_check_sales(
            run.spark,
            run.plan,
            run.today,
            meanwhile=lambda: checking.append(pool.submit(check_customers, run)),
        )
        sales, outcome, sales_counts = resolve_sales_duplicates(read)
        customers, customer_counts = checking[0].result() if checking else check_customers(run)
        enriched = enrich(kept(sales), kept(customers))
        groups = summary_groups(enriched).persist(StorageLevel.MEMORY_AND_DISK)
        counts = count_rows(sales_counts, customer_counts, groups)
        if counts.sales.read == 0:
            raise FatalInputError(f"sales input is empty: no data rows under {run.args.sales_path}")
        if counts.customers.read == 0:
            raise FatalInputError(
                f"customers input is empty: no records under {run.args.customers_path}"
            )
        phase["rows"] = counts.sales.read

    s, c = counts.sales, counts.customers
    planned = {
        "sales": reconcile(s.read, counts.enriched_rows, sum(s.by_reason.values()), s.duplicates),
        "customers": reconcile(c.read, c.valid, sum(c.by_reason.values()), c.duplicates),
    }
    return Checked(read, sales, outcome, customers, enriched, groups, counts, planned)


def check_customers(run: RunContext) -> tuple[DataFrame, SourceCounts]:
    """Read and check every customer record (persisted) and count them by outcome.

    ``read_and_classify`` runs this in a thread beside the sales' first pass. It leaves
    the session's settings alone: they are the session's, not the thread's.
    """
    customers = classify_customers(
        read_customers(
            run.spark,
            [f.path for f in run.plan.ndjson_files],
            [f.path for f in run.plan.array_files],
        )
    ).persist()
    rows = (
        customers.groupBy("reason", F.col("_extra_duplicate").alias("extra"))
        .agg(F.count(F.lit(1)).alias("rows"))
        .collect()
    )
    return customers, counts_by_reason(rows)


def run_local(args: JobArgs) -> dict[str, Any]:
    started = utc_now()
    run_id = check_run_id(default_run_id(args, started))
    local_inputs = is_local(args.sales_path) and is_local(args.customers_path)
    plan = plan_inputs(args, None) if local_inputs else None  # fail fast, before the JVM
    try:
        from pipeline.java import ensure_java
    except ImportError:  # the file was copied somewhere on its own: trust JAVA_HOME/PATH
        ensure_java = None
    if ensure_java is not None and not launched_by_spark_submit():
        ensure_java()
    created = SparkSession.getActiveSession() is None
    spark = build_local_spark(input_bytes=plan.input_bytes if plan is not None else None)
    try:
        if plan is None:
            plan = plan_inputs(args, spark)
        return run_job(spark, args, plan, run_id=run_id, started=started)
    finally:
        if created:
            spark.stop()


def quiet_libraries() -> None:
    for name in ("py4j", "py4j.clientserver", "py4j.java_gateway", "pyspark"):
        logging.getLogger(name).setLevel(logging.ERROR)
