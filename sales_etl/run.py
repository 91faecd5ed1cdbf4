"""One run, start to end: ``run_job`` and its steps, and the local entry (``run_local``)
that starts Spark for it.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
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
from sales_etl.files import InputFile, absolute_path, filesystem_for, is_local
from sales_etl.inputs import InputPlan, plan_inputs
from sales_etl.lake import LakeChanges, against_lake
from sales_etl.local_session import build_local_spark
from sales_etl.metrics import finish_run, no_input_metrics, planned_metrics
from sales_etl.readers import read_customers
from sales_etl.rules import classify_customers, kept
from sales_etl.sales_pass import read_and_check_sales
from sales_etl.session import expression_evaluation, launched_by_spark_submit
from sales_etl.state import CUSTOMERS_DIR, Manifest, RunLock, file_order, recover, state_path
from sales_etl.tables import enrich, summary_groups
from sales_etl.writing import publish, stage_outputs, verify_staged

log = logging.getLogger(__name__)

INCREMENTAL, FULL_REBUILD, NO_NEW_INPUT = "incremental", "full_rebuild", "no_new_input"


@dataclass(frozen=True)
class Load:
    """Which raw files a run reads, and how (one of the modes above)."""

    mode: str
    reason: str | None  # why a full rebuild
    sales: list[InputFile]
    customers: list[InputFile]
    skipped: dict[str, int]  # files skipped as processed, per source
    manifest: Manifest

    @property
    def full(self) -> bool:
        return self.mode == FULL_REBUILD


def plan_load(plan: InputPlan, manifest: Manifest, full_rebuild: bool) -> Load:
    """Only what is new, unless the lake must be rebuilt to stay equal to one run over
    every raw file: when asked, on the first run, or when a processed file changed or
    went away, or a new file is older than a processed one (the order a full rebuild
    would apply differently)."""
    listed = {"sales": plan.sales_files, "customers": plan.customer_files}
    everything = Load(FULL_REBUILD, None, plan.sales_files, plan.customer_files, {}, manifest)
    if full_rebuild:
        return _rebuild(everything, "asked for (--full_rebuild)")
    if manifest.empty:
        return _rebuild(everything, "no earlier run's state (first run)")
    deltas = {s: manifest.delta(s, files) for s, files in listed.items()}
    for source, delta in deltas.items():
        if delta.changed:
            return _rebuild(
                everything, f"{source} file changed since it was read: {delta.changed[0].path}"
            )
        if delta.deleted:
            return _rebuild(everything, f"{source} file no longer there: {delta.deleted[0]}")
        newest = manifest.newest(source)
        older = [f for f in delta.new if newest is not None and file_order(f) < newest]
        if older:
            return _rebuild(
                everything, f"new {source} file older than a processed one: {older[0].path}"
            )
    skipped = {s: len(d.unchanged) for s, d in deltas.items()}
    sales, customers = deltas["sales"].new, deltas["customers"].new
    mode = INCREMENTAL if sales or customers else NO_NEW_INPUT
    return Load(mode, None, sales, customers, skipped, manifest)


def _rebuild(load: Load, reason: str) -> Load:
    log.info("full rebuild: %s", reason)
    return Load(
        FULL_REBUILD,
        reason,
        load.sales,
        load.customers,
        {"sales": 0, "customers": 0},
        load.manifest,
    )


def run_job(
    spark: SparkSession,
    args: JobArgs,
    plan: InputPlan,
    *,
    run_id: str,
    started: datetime,
) -> dict[str, Any]:
    """Read what is new, check, transform, stage, verify and publish; return the metrics
    (also written to _runs/). One run at a time (``state.RunLock``).

    1. ``read_and_classify`` (phase read_and_check): one parallel pass over the new
       sales files, persisted; the new customers; the new rows against the lake; the
       counts; the reconciliation planned before anything is written.
    2. ``planned_metrics``: the metrics document. If the planned reconciliation does not
       hold, the run stops here: it writes the metrics file (status failed) and nothing
       else.
    3. ``stage_outputs`` (write_enriched, write_summary, write_quarantine): from the
       persisted rows, into the run's staging folder.
    4. ``verify_staged`` (verify): counts what was staged and reconciles again.
    5. ``publish`` (commit): one journaled commit moves it into place and records the
       files read.

    Then ``finish_run`` writes the metrics file; a run whose staged rows do not
    reconcile ends failed, and publishes nothing.
    """
    run = RunContext.start(spark, args, plan, run_id=run_id, started=started)
    with RunLock(run.out.root):
        load = _settled_load(run)
        if load.mode == NO_NEW_INPUT:
            return _nothing_new(run, load)
        run = run.reading(plan.only(load.sales, load.customers))
        with expression_evaluation(spark, run.plan) as evaluation:
            checked = read_and_classify(run, load)
            metrics = planned_metrics(run, checked, load)
            metrics["read_plan"]["evaluation"] = evaluation
            if not all_reconciled(checked.planned):
                # Nothing written yet: fail before touching the outputs.
                return finish_run(run, metrics, failed="rows do not reconcile before writing")
            staged = stage_outputs(run, checked)
            verify_staged(run, checked, staged, metrics)
            ok = all_reconciled(metrics["reconciliation"])
            if ok:
                read = {"sales": load.sales, "customers": load.customers}
                arrays = frozenset(run.plan.array_files)
                manifest = load.manifest.recorded(run_id, read, rebuild=load.full, arrays=arrays)
                publish(run, checked, staged, manifest.to_json())
        for df in (*checked.persisted, staged.reread):
            if df is not None:
                df.unpersist()
        return finish_run(
            run, metrics, failed=None if ok else "rows do not reconcile after staging"
        )


def nothing_new_without_spark(
    args: JobArgs, plan: InputPlan, *, run_id: str, started: datetime
) -> dict[str, Any] | None:
    """The run of a local lake that has read every raw file, without starting Spark: its
    metrics, or None when there is something to read after all (then ``run_job``)."""
    run = RunContext.start(None, args, plan, run_id=run_id, started=started)
    with RunLock(run.out.root):
        load = _settled_load(run)
        return _nothing_new(run, load) if load.mode == NO_NEW_INPUT else None


def _settled_load(run: RunContext) -> Load:
    """Under the lock: finish or undo an interrupted run's commit, then plan this load."""
    recover(run.out_fs, run.out.root)
    manifest = Manifest.load(run.out_fs, run.out.root)
    return plan_load(run.plan, manifest, run.args.full_rebuild)


def _nothing_new(run: RunContext, load: Load) -> dict[str, Any]:
    log.info("no new input: every raw file was read by an earlier run")
    return finish_run(run, no_input_metrics(run, load.skipped), failed=None)


def read_and_classify(run: RunContext, load: Load) -> Checked:
    """Step 1: read every new record once, classify it, hold the new rows against the
    lake, count the outcomes and reconcile them.

    The sales are read in parallel, checked and persisted (``read_and_check_sales``);
    while that pass runs, a thread reads, checks, persists and counts the customers
    (``check_customers``). The sales' repeated transaction ids are resolved
    (``resolve_sales_duplicates``); valid sales are joined to every customer record now
    known (``enrich``), held against the loaded rows (``lake.against_lake``) and one
    Spark job counts the rows to add (``count_rows``). A first run or a rebuild with no
    records is fatal.
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
        log.info(
            "read and checked %d sales records from %d file(s)",
            sales_counts.read,
            len(run.plan.sales_files),
        )
        customers, customer_counts = checking[0].result() if checking else check_customers(run)
        log.info("read and checked %d customer records", customer_counts.read)
        if load.full and sales_counts.read == 0:
            raise FatalInputError(f"sales input is empty: no data rows under {run.args.sales_path}")
        if load.full and customer_counts.read == 0:
            raise FatalInputError(
                f"customers input is empty: no records under {run.args.customers_path}"
            )
        known, state, new_ids = customer_records(run, load, customers)
        new_rows = enrich(kept(sales), known)
        lake = (
            LakeChanges(append=new_rows)
            if load.full
            else against_lake(
                run.spark,
                run.out_fs,
                run.out.enriched,
                new_rows,
                known,
                new_ids,
                read.id_range,
            )
        )
        if not load.full:
            log.info(
                "new rows held against the loaded ones: %d exact copies, %d corrections, "
                "%d loaded rows given their customer",
                lake.copies_of_loaded,
                lake.replaced,
                lake.reenriched,
            )
        groups = summary_groups(lake.append).persist(StorageLevel.MEMORY_AND_DISK)
        counts = count_rows(sales_counts, customer_counts, groups)
        phase["rows"] = counts.sales.read

    s, c = counts.sales, counts.customers
    dups = s.duplicates + lake.copies_of_loaded
    planned = {
        "sales": reconcile(
            s.read, counts.enriched_rows, sum(s.by_reason.values()), dups, s.superseded
        ),
        "customers": reconcile(
            c.read, c.valid, sum(c.by_reason.values()), c.duplicates, c.superseded
        ),
    }
    return Checked(
        read,
        sales,
        outcome,
        customers,
        lake.append,
        groups,
        counts,
        planned,
        lake,
        load.full,
        state,
    )


def customer_records(
    run: RunContext, load: Load, customers: DataFrame
) -> tuple[DataFrame, DataFrame | None, DataFrame | None]:
    """Every customer record now known (the newest file's), the state to keep (None: as
    it is) and the ids no earlier run had (None: none, or a rebuild)."""
    fields = [
        "customer_id",
        "age_group",
        "membership_tier",
        "signup_date",
        "_file_order",
        "_source_file",
    ]
    new = kept(customers).select(*fields)
    stored = state_path(run.out.root, CUSTOMERS_DIR)
    if load.full or not run.out_fs.exists(stored):
        return new, new, None
    # The state was written from records of this very shape: with the schema given, no
    # job reads a footer for it.
    before = run.spark.read.schema(new.schema).parquet(stored).select(*fields)
    if not load.customers:
        return before, None, None
    known = before.join(new.select("customer_id"), "customer_id", "left_anti").unionByName(new)
    known = known.persist()
    new_ids = new.select("customer_id").join(before, "customer_id", "left_anti")
    return known, known, new_ids


def check_customers(run: RunContext) -> tuple[DataFrame, SourceCounts]:
    """Read and check every new customer record (persisted) and count them by outcome.

    ``read_and_classify`` runs this in a thread beside the sales' first pass. It leaves
    the session's settings alone: they are the session's, not the thread's.
    """
    customers = classify_customers(
        read_customers(
            run.spark,
            [f.path for f in run.plan.ndjson_files],
            [f.path for f in run.plan.array_files],
        )
    )
    if not run.plan.customer_files:  # a day with no new customer file: nothing to count
        return customers, counts_by_reason([])
    customers = customers.persist()
    rows = (
        customers.groupBy(
            "reason",
            F.col("_extra_duplicate").alias("extra"),
            F.col("_superseded").alias("superseded"),
        )
        .agg(F.count(F.lit(1)).alias("rows"))
        .collect()
    )
    return customers, counts_by_reason(rows)


def run_local(args: JobArgs) -> dict[str, Any]:
    """One run outside Glue: inputs checked before the JVM starts (local paths), then a
    local Spark session sized for what the run will read."""
    started = utc_now()
    run_id = check_run_id(default_run_id(args, started))
    RunLock(absolute_path(args.output_path)).check()  # another run writing: no JVM for this one
    local_inputs = is_local(args.sales_path) and is_local(args.customers_path)
    plan, known = None, frozenset[InputFile]()
    if local_inputs:  # fail fast, before the JVM
        known, arrays = processed_files(args, None)
        plan = plan_inputs(args, None, known, arrays)
    new = plan.only_new(known) if plan is not None else None
    if new is not None and not (new.sales_files or new.customer_files):
        # Every listed file was read before: unless the state says otherwise under the
        # lock (a file changed or went away), there is nothing to start Spark for.
        done = nothing_new_without_spark(args, plan, run_id=run_id, started=started)
        if done is not None:
            return done
    try:
        from pipeline.java import ensure_java
    except ImportError:  # the file was copied somewhere on its own: trust JAVA_HOME/PATH
        ensure_java = None
    if ensure_java is not None and not launched_by_spark_submit():
        ensure_java()
    created = SparkSession.getActiveSession() is None
    # What the run will read, when known before the JVM starts: the files not read before.
    spark = build_local_spark(input_bytes=new.input_bytes if new is not None else None)
    try:
        if plan is None:
            plan = plan_inputs(args, spark, *processed_files(args, spark))
        return run_job(spark, args, plan, run_id=run_id, started=started)
    finally:
        if created:
            spark.stop()


def processed_files(
    args: JobArgs, spark: SparkSession | None
) -> tuple[frozenset[InputFile], frozenset[InputFile]]:
    """The raw files an earlier run read and recorded (none for a rebuild), and those of
    them that are JSON arrays."""
    if args.full_rebuild or (spark is None and not is_local(args.output_path)):
        return frozenset(), frozenset()
    return Manifest.load(filesystem_for(args.output_path, spark), args.output_path).known_files()


def quiet_libraries() -> None:
    for name in ("py4j", "py4j.clientserver", "py4j.java_gateway", "pyspark"):
        logging.getLogger(name).setLevel(logging.ERROR)
