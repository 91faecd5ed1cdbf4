"""Spark settings the job relies on (on Glue and locally), and small helpers that set a
setting or tag jobs for the length of a block.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.sql import SparkSession

from sales_etl.inputs import InputPlan
from sales_etl.tuning import SMALL_INPUT_BYTES, SPARK_TUNING

log = logging.getLogger(__name__)


# Settings the job's results rely on, applied on Glue and locally; then the settings
# that only make it faster (tuning.SPARK_TUNING).
JOB_SQL_CONF = {
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.compression.codec": "snappy",
    "spark.sql.legacy.timeParserPolicy": "CORRECTED",
    "spark.sql.ansi.enabled": "false",
    **SPARK_TUNING,
}


def apply_job_conf(spark: SparkSession) -> None:
    for key, value in JOB_SQL_CONF.items():
        spark.conf.set(key, value)


def launched_by_spark_submit() -> bool:
    """True when ``spark-submit`` started this Python process.

    spark-submit starts the JVM first (with ``--master`` and the cluster's settings) and
    hands its gateway to Python through ``PYSPARK_GATEWAY_PORT``; a plain ``python``
    run has no JVM yet.
    """
    return "PYSPARK_GATEWAY_PORT" in os.environ


@contextmanager
def expression_evaluation(spark: SparkSession, plan: InputPlan) -> Iterator[str]:
    """For the block, how Spark evaluates this run's expressions: ``"interpreted"`` when
    the input (sales and customers) is at most ``tuning.SMALL_INPUT_BYTES``, else
    ``"generated code"`` (Spark's default). Either way every rule gives the same result
    (the tests run a dirty input both ways)."""
    size = plan.input_bytes
    if size > SMALL_INPUT_BYTES:
        yield "generated code"
        return
    log.info("input of %d bytes: expressions are interpreted, not compiled", size)
    with (
        sql_conf(spark, "spark.sql.codegen.wholeStage", "false"),
        # Whole-stage code off still compiles code per expression; this setting (internal
        # to Spark, which tests its interpreted path against the generated one) stops that.
        sql_conf(spark, "spark.sql.codegen.factoryMode", "NO_CODEGEN"),
    ):
        yield "interpreted"


def ran_once(spark: SparkSession, group: str) -> bool:
    """True when every stage of a job group ran once: its observed metrics counted each
    row once. Spark merges a map task's metrics for every successful attempt, so a stage
    run again (an executor lost) or a speculative copy of a task would count rows twice.
    """
    if spark.conf.get("spark.speculation", "false").lower() == "true":
        return False
    tracker = spark.sparkContext.statusTracker()
    for job_id in tracker.getJobIdsForGroup(group):
        job = tracker.getJobInfo(job_id)
        if job is None:
            return False
        for stage_id in job.stageIds:
            stage = tracker.getStageInfo(stage_id)
            if stage is not None and stage.currentAttemptId != 0:
                return False
    return True


@contextmanager
def sql_conf(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    """Set a SQL setting of the session for the block, then restore it."""
    before = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)


@contextmanager
def job_group(spark: SparkSession, name: str) -> Iterator[str]:
    """Tag the Spark jobs started inside the block with a group id (returned)."""
    group = f"{name}-{uuid.uuid4().hex[:8]}"
    sc = spark.sparkContext
    sc.setJobGroup(group, name)
    try:
        yield group
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
        sc.setLocalProperty("spark.job.description", None)


def first_stage_tasks(spark: SparkSession, group: str) -> int:
    """Tasks of the first stage Spark ran for a job group: the stage reading the input."""
    tracker = spark.sparkContext.statusTracker()
    stages = [
        stage
        for job_id in tracker.getJobIdsForGroup(group)
        if (job := tracker.getJobInfo(job_id)) is not None
        for stage in job.stageIds
    ]
    info = tracker.getStageInfo(min(stages)) if stages else None
    return info.numTasks if info is not None else 0
