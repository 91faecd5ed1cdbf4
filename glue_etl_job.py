"""The sales ETL job's entry script: raw sales CSV + customers NDJSON -> Parquet tables.

AWS Glue 5.x (Spark 3.5, Python 3.11), ``spark-submit`` and a plain ``python`` run this
same file::

    python glue_etl_job.py --sales_path data/sales.csv --customers_path data/customers.ndjson \\
        --output_path lake/sales-pipeline-processed [--run_id ID] [--quarantine_path P]

It writes, under ``--output_path``: ``enriched/year=/month=/`` and
``sales_summary/year=/month=/`` (Snappy Parquet), ``quarantine/run_id=<run_id>/`` (every
rejected row with its reason) and ``_runs/<run_id>.json`` (metrics). See docs/etl_job.md.

The job's code is the ``sales_etl`` package beside this file: Glue gets it as a zip in
``--extra-py-files``, ``spark-submit`` with ``--py-files``. This file holds only what is
Glue's (``GlueContext``, ``Job``, Glue's logger) and the exit codes: 0 done, 2 an input
or argument that cannot be used (nothing written), 1 the job failed. The last line it
prints is always one readable sentence. On success the script returns normally rather
than raising ``SystemExit(0)``, which some Glue versions record as a failed run.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

from sales_etl.arguments import JobArgs, check_run_id, default_run_id, is_glue_runtime, parse_args
from sales_etl.context import utc_now
from sales_etl.contracts import FatalInputError, JobFailedError
from sales_etl.inputs import plan_inputs
from sales_etl.metrics import summary_line
from sales_etl.run import quiet_libraries, run_job, run_local
from sales_etl.session import apply_job_conf

log = logging.getLogger("sales_etl")

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


class _GlueLogHandler(logging.Handler):
    """Forward the job's log records to the Glue logger (CloudWatch)."""

    def __init__(self, glue_logger: Any) -> None:
        super().__init__()
        self._glue = glue_logger

    def emit(self, record: logging.LogRecord) -> None:
        msg = self.format(record)
        if record.levelno >= logging.ERROR:
            self._glue.error(msg)
        elif record.levelno >= logging.WARNING:
            self._glue.warn(msg)
        else:
            self._glue.info(msg)


def run_glue(args: JobArgs) -> dict[str, Any]:
    """One run inside an AWS Glue job run: Glue's context, session, logger and commit."""
    from awsglue.context import GlueContext
    from awsglue.job import Job
    from pyspark.context import SparkContext

    started = utc_now()
    glue_context = GlueContext(SparkContext.getOrCreate())
    spark = glue_context.spark_session
    handler = _GlueLogHandler(glue_context.get_logger())
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        job = Job(glue_context)
        job.init(args.job_name, args.raw)
        apply_job_conf(spark)
        run_id = check_run_id(default_run_id(args, started))
        plan = plan_inputs(args, spark)
        metrics = run_job(spark, args, plan, run_id=run_id, started=started)
        log.info(summary_line(metrics))
        job.commit()
        return metrics
    finally:
        log.removeHandler(handler)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job; return the process exit code (0 ok, 2 fatal input, 1 job failure)."""
    argv = list(sys.argv if argv is None else argv)
    if not log.handlers and not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
    quiet_libraries()
    try:
        args = parse_args(argv)
        metrics = run_glue(args) if is_glue_runtime(argv) else run_local(args)
    except FatalInputError as exc:
        message, code = f"ERROR: {_one_line(exc)}", EXIT_BAD_INPUT
    except JobFailedError as exc:
        message, code = f"ERROR: job failed: {_one_line(exc)}", EXIT_FAILED
    except Exception as exc:  # anything else: keep the trace in the log, end with one line
        log.exception("job failed")
        message, code = f"ERROR: job failed: {type(exc).__name__}: {_one_line(exc)}", EXIT_FAILED
    else:
        print(summary_line(metrics), flush=True)
        return 0
    sys.stdout.flush()
    print(message, file=sys.stderr, flush=True)
    return code


def entry(argv: Sequence[str] | None = None) -> None:
    """The script's entry: return normally on success, exit with the code on failure.

    Glue runs the script in its own Python process and has marked a run whose script
    raised ``SystemExit(0)`` as FAILED, so only a failure exits.
    """
    code = main(argv)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    entry()
