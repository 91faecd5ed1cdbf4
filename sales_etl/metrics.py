"""The run's metrics document, the metrics file, and the figures published to
CloudWatch for the alarm on the quarantined share.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from typing import Any

from sales_etl import published
from sales_etl.context import Checked, RunContext, iso, utc_now
from sales_etl.contracts import CUSTOMER_REASONS, REASONS, SALES_REASONS, JobFailedError
from sales_etl.inputs import InputPlan
from sales_etl.sales_pass import SalesRead

log = logging.getLogger(__name__)


def planned_metrics(run: RunContext, checked: Checked, load: Any) -> dict[str, Any]:
    """Step 2: the metrics document, with the counts and reconciliation of step 1.

    ``rows_written`` and ``bytes_written`` stay 0 and the reconciliation stays the
    planned one until ``verify_outputs`` counts what was written.
    """
    counts = checked.counts
    sales_q, cust_q = counts.sales.by_reason, counts.customers.by_reason
    sales_dups, cust_dups = counts.sales.duplicates, counts.customers.duplicates
    metrics = _metrics(run, checked.read)
    lake = checked.lake
    metrics["mode"] = load.mode
    metrics["full_rebuild_reason"] = load.reason
    for source in ("sales", "customers"):
        metrics["inputs"][source]["files_skipped"] = load.skipped.get(source, 0)
    months = sorted({*counts.months, *lake.months_rewritten})
    metrics["lake"] = {
        "months_appended": []
        if checked.full
        else [f"year={y}/month={m}" for y, m in counts.months],
        "months_rewritten": [f"year={y}/month={m}" for y, m in lake.months_rewritten],
        "files_rewritten": lake.rewritten_files,
        "bytes_read_back": lake.bytes_read_back,
        "rows_replaced": lake.replaced,
        "rows_reenriched": lake.reenriched,
        "copies_of_loaded_rows": lake.copies_of_loaded,
    }
    metrics["rows_superseded"] = {
        "sales": counts.sales.superseded + lake.replaced,
        "customers": counts.customers.superseded,
    }
    metrics.update(
        {
            "rows_read": {"sales": counts.sales.read, "customers": counts.customers.read},
            "rows_quarantined": {
                r: sales_q.get(r, 0) + cust_q.get(r, 0)
                for r in REASONS
                if r in sales_q or r in cust_q
            },
            "rows_quarantined_by_source": {"sales": dict(sales_q), "customers": dict(cust_q)},
            "quarantined_total": counts.quarantined_total,
            "duplicates_dropped": sales_dups + lake.copies_of_loaded + cust_dups,
            "duplicates_dropped_by_source": {"sales": sales_dups, "customers": cust_dups},
            "customers_loaded": counts.customers.valid,
            "unknown_customers": counts.unknown_customers,
            "partitions_written": [f"year={y}/month={m}" for y, m in months],
            "reconciliation": checked.planned,
        }
    )
    return metrics


def _metrics(run: RunContext, read: SalesRead) -> dict[str, Any]:
    """The metrics document before any count is known (filled in by planned_metrics)."""
    args, plan, out, started = run.args, run.plan, run.out, run.started
    return {
        "run_id": run.run_id,
        "job_name": args.job_name,
        "status": "running",
        "started_at": iso(started),
        "finished_at": None,
        "run_date": started.date().isoformat(),
        "inputs": {
            "sales": {
                "path": args.sales_path,
                "format": "csv",
                "files": [f.path for f in plan.sales_files],
            },
            "customers": {
                "path": args.customers_path,
                "format": _customer_format(plan),
                "files": [f.path for f in plan.customer_files],
            },
        },
        "read_plan": {"sales": read.read_plan()},
        "outputs": {
            "enriched": out.enriched,
            "sales_summary": out.summary,
            "quarantine": out.quarantine,
        },
        "rows_written": {"enriched": 0, "sales_summary": 0},
        "bytes_read": {
            "sales": sum(f.size for f in plan.sales_files),
            "customers": sum(f.size for f in plan.customer_files),
        },
        "bytes_written": {"enriched": 0, "sales_summary": 0, "quarantine": 0},
        "durations_seconds": run.durations,
        "reason_vocabulary": {"sales": SALES_REASONS, "customers": CUSTOMER_REASONS},
    }


def no_input_metrics(run: RunContext, skipped: dict[str, int]) -> dict[str, Any]:
    """The metrics of a run that found every raw file already read: nothing read or written."""
    args = run.args
    nothing = {"sales": 0, "customers": 0}
    return {
        "run_id": run.run_id,
        "job_name": args.job_name,
        "status": "running",
        "mode": "no_new_input",
        "started_at": iso(run.started),
        "finished_at": None,
        "run_date": run.started.date().isoformat(),
        "inputs": {
            source: {"path": path, "files": [], "files_skipped": skipped.get(source, 0)}
            for source, path in (("sales", args.sales_path), ("customers", args.customers_path))
        },
        "rows_read": dict(nothing),
        "rows_written": {"enriched": 0, "sales_summary": 0},
        "rows_quarantined": {},
        "rows_quarantined_by_source": {"sales": {}, "customers": {}},
        "quarantined_total": 0,
        "duplicates_dropped": 0,
        "duplicates_dropped_by_source": dict(nothing),
        "rows_superseded": dict(nothing),
        "customers_loaded": 0,
        "unknown_customers": 0,
        "partitions_written": [],
        "bytes_read": dict(nothing),
        "bytes_written": {"enriched": 0, "sales_summary": 0, "quarantine": 0},
        "quarantine_samples": {},
        "full_rebuild_reason": None,
        "lake": {
            "months_appended": [],
            "months_rewritten": [],
            "files_rewritten": [],
            "bytes_read_back": 0,
            "rows_replaced": 0,
            "rows_reenriched": 0,
            "copies_of_loaded_rows": 0,
        },
        "reconciliation": {
            s: {
                "read": 0,
                "written": 0,
                "quarantined": 0,
                "duplicates_dropped": 0,
                "superseded": 0,
                "ok": True,
            }
            for s in ("sales", "customers")
        },
        "durations_seconds": run.durations,
    }


def _customer_format(plan: InputPlan) -> str:
    if plan.ndjson_files and plan.array_files:
        return "mixed"
    return "json_array" if plan.array_files else "ndjson"


_PUT_METRIC_BATCH = 20


def quarantine_rate(metrics: dict[str, Any]) -> float:
    """Quarantined rows of both sources over rows read of both (0 when nothing was read)."""
    read = metrics["rows_read"]["sales"] + metrics["rows_read"]["customers"]
    return metrics["quarantined_total"] / read if read else 0.0


def cloudwatch_metric_data(
    metrics: dict[str, Any], prefix: str, timestamp: datetime
) -> list[dict[str, Any]]:
    """Return the run's figures as CloudWatch ``MetricData`` (PutMetricData's shape)."""
    pipeline = {"Name": published.PIPELINE_DIMENSION, "Value": prefix}

    def datum(name: str, value: float, unit: str = "Count", **dims: str) -> dict[str, Any]:
        dimensions = [pipeline] + [{"Name": k, "Value": v} for k, v in dims.items()]
        return {
            "MetricName": name,
            "Dimensions": dimensions,
            "Timestamp": timestamp,
            "Value": float(value),
            "Unit": unit,
        }

    p = published
    data = [
        datum(p.SALES_ROWS_READ, metrics["rows_read"]["sales"]),
        datum(p.CUSTOMER_ROWS_READ, metrics["rows_read"]["customers"]),
        datum(p.ROWS_WRITTEN, metrics["rows_written"]["enriched"]),
        datum(p.ROWS_QUARANTINED, metrics["quarantined_total"]),
        datum(p.EXACT_DUPLICATES_DROPPED, metrics["duplicates_dropped"]),
        datum(p.UNKNOWN_CUSTOMERS, metrics["unknown_customers"]),
        datum(p.QUARANTINE_RATE, quarantine_rate(metrics), unit="None"),
    ]
    for source, reasons in sorted(metrics["rows_quarantined_by_source"].items()):
        for reason, count in sorted(reasons.items()):
            dims = {p.SOURCE_DIMENSION: source, p.REASON_DIMENSION: reason}
            data.append(datum(p.ROWS_QUARANTINED, count, **dims))
    return data


def publish_metrics(
    metrics: dict[str, Any],
    namespace: str,
    prefix: str,
    region: str | None = None,
    client: Any = None,
) -> int:
    """Put the run's figures to CloudWatch; return how many data points were sent.

    Without ``client``, one is made for ``region`` (the job's own, never botocore's guess).
    """
    if client is None:
        import boto3  # on Glue and in the project's environment; only needed here

        client = boto3.client("cloudwatch", region_name=region)
    data = cloudwatch_metric_data(metrics, prefix, utc_now())
    for i in range(0, len(data), _PUT_METRIC_BATCH):
        client.put_metric_data(Namespace=namespace, MetricData=data[i : i + _PUT_METRIC_BATCH])
    return len(data)


def finish_run(run: RunContext, metrics: dict[str, Any], failed: str | None) -> dict[str, Any]:
    """Publish (if asked) and write the metrics file, succeeded or failed.

    On failure raise JobFailedError. A run whose figures cannot be published fails too,
    after writing everything: an alarm that never hears of a run must not look like a
    quiet day.
    """
    metrics["finished_at"] = iso(utc_now())
    metrics["durations_seconds"]["total"] = round(time.monotonic() - run.t0, 3)
    namespace, prefix = run.args.metrics_namespace, run.args.pipeline_prefix
    if namespace and prefix:
        try:
            sent = publish_metrics(metrics, namespace, prefix, run.args.aws_region)
            metrics["cloudwatch"] = {"namespace": namespace, "pipeline": prefix, "data": sent}
            log.info("published %d metric data to CloudWatch namespace %s", sent, namespace)
        except Exception as exc:  # botocore's errors, missing credentials, no network
            problem = f"could not publish the run's metrics to CloudWatch ({namespace}): {exc}"
            log.error(problem)
            failed = failed or problem
    metrics["status"] = "failed" if failed else "succeeded"
    if failed:
        metrics["error"] = failed
    runs_file = run.out.runs_file
    metrics["metrics_path"] = runs_file
    run.out_fs.write_bytes(
        runs_file, (json.dumps(metrics, indent=2, sort_keys=False) + "\n").encode()
    )
    if failed:
        raise JobFailedError(f"{failed}: {json.dumps(metrics['reconciliation'])}; see {runs_file}")
    return metrics


def summary_line(m: dict[str, Any]) -> str:
    if m.get("mode") == "no_new_input":
        return (
            f"run {m['run_id']} {m['status']}: no new input ({m['inputs']['sales']['files_skipped']} "
            f"sales and {m['inputs']['customers']['files_skipped']} customer files already read); "
            f"nothing written; metrics {m['metrics_path']}"
        )
    return (
        f"run {m['run_id']} {m['status']}: read {m['rows_read']['sales']} sales rows and "
        f"{m['rows_read']['customers']} customers; wrote {m['rows_written']['enriched']} enriched "
        f"rows in {len(m['partitions_written'])} partitions; quarantined {m['quarantined_total']}; "
        f"dropped {m['duplicates_dropped']} exact duplicates; "
        f"{m['unknown_customers']} rows with unknown customers; metrics {m['metrics_path']}"
    )
