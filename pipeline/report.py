"""One HTML page per run: what it read and wrote, its charts, its data quality, and the
runs before it.

The page is one self-contained file: the charts are base64 PNG data URIs, the styles
are inline, and a Content Security Policy forbids every network request and every
script, so it opens offline and can be mailed or kept in a bucket. Jinja2 renders it
from ``pipeline/templates/report.html.j2`` with autoescaping on, so every value that
comes from the data (product and region names, raw quarantined records, file names)
is text, never markup.

``write_run_page`` writes ``<report_dir>/<run_id>.html`` and ``<report_dir>/index.html``
(the latest run) and hands the page to the target to publish (on aws: the results
bucket, with a presigned link).
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import jinja2
import pandas as pd

from pipeline.charts import CHARTS
from pipeline.config import PipelineConfig
from pipeline.storage import Storage, read_quarantine
from pipeline.targets import Target

log = logging.getLogger(__name__)

TEMPLATE = "report.html.j2"
INDEX = "index.html"
# Raw records shown per quarantine reason: enough to see the pattern, short enough to read.
SAMPLES_PER_REASON = 5
# Runs in the trend table, newest last.
TREND_RUNS = 14
# Rows of a chart's data table shown under the chart.
DATA_ROWS = 20

# Chart file -> (title, what the picture shows, for its alt text).
CHART_TEXT = {
    "01_revenue_by_region.png": ("Revenue by region", "Bar chart of total revenue per region"),
    "02_top_products.png": (
        "Top products",
        "Horizontal bar chart of the ten products with the most revenue, with units sold",
    ),
    "03_monthly_trend.png": ("Monthly trend", "Line chart of revenue per calendar month"),
    "04_customer_tiers.png": (
        "Customer tiers",
        "Chart of each membership tier's share of revenue",
    ),
    "05_age_group_analysis.png": (
        "Age groups",
        "Bar charts of revenue and average transaction value per age group",
    ),
    "06_transaction_distribution.png": (
        "Transaction amounts",
        "Histogram of transaction amounts in 20 log-scale bins, mean and median marked",
    ),
}


@dataclass(frozen=True)
class RunPage:
    """Where a run's page went: the latest-run file, this run's copy, and (aws) a link."""

    index: Path
    copy: Path
    uri: str | None = None
    link: str | None = None
    link_seconds: int | None = None


def page_lines(page: RunPage | None) -> list[str]:
    """What a script prints about the run's page, its local path last."""
    if page is None:
        return []
    lines = [f"Report copy for this run: {page.copy}"]
    if page.uri and page.link:
        minutes = (page.link_seconds or 0) // 60
        lines += [
            f"Report in S3: {page.uri}",
            f"Report link (valid {minutes} minutes): {page.link}",
        ]
    return [*lines, f"Report: {page.index}"]


def write_run_page(
    report: Any, engine: Any, target: Target, config: PipelineConfig, report_dir: Path
) -> RunPage:
    """Render the run's page, write it (this run's copy, then index.html) and publish it.

    ``report`` is the runner's RunReport; ``engine`` answers the named queries from the
    results the run already fetched, so nothing is queried (or billed) twice.
    """
    html = render_page(page_context(report, engine, target.storage, config))
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    copy = report_dir / f"{safe_name(report.run_id)}.html"
    index = report_dir / INDEX
    for path in (copy, index):
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(html, encoding="utf-8")
        partial.replace(path)
    log.info("wrote %s and %s", copy, index)
    published = target.publish_report(html.encode("utf-8"), copy.name)
    if published is None:
        return RunPage(index=index, copy=copy)
    uri, link, seconds = published
    return RunPage(index=index, copy=copy, uri=uri, link=link, link_seconds=seconds)


def safe_name(run_id: str) -> str:
    """A run id as a file name: anything but letters, digits, ``.``, ``_``, ``-`` becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", run_id).lstrip(".") or "run"


def render_page(context: dict[str, Any]) -> str:
    """The page's HTML from its context (see ``page_context``)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline", "templates"),
        autoescape=True,  # every {{ value }} is escaped, whatever the template's name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["n"] = _number
    env.filters["pct"] = _percent
    env.filters["secs"] = _seconds
    env.filters["size"] = _size
    env.filters["usd"] = _dollars
    return env.get_template(TEMPLATE).render(**context)


def page_context(report: Any, engine: Any, storage: Storage, config: PipelineConfig) -> dict:
    """Everything the page shows, as plain values (the template only lays them out)."""
    m = report.metrics
    max_rate = report.quality.max_rate if report.quality else None
    return {
        "run": {
            "id": report.run_id,
            "target": report.target,
            "date": m.get("run_date") or "",
            "started_at": m.get("started_at") or "",
            "finished_at": m.get("finished_at") or "",
            "status": m.get("status") or "",
            "load": load_text(m),
        },
        "inputs": inputs(report, storage, config),
        "headline": headline(engine),
        "charts": charts(report.charts, engine),
        "quality": report.quality,
        "quarantine": quarantine(m, read_quarantine(storage, config, report.run_id)),
        "reconciliation": reconciliation(m),
        "partitions": m.get("partitions_written", []),
        "months_rewritten": m.get("lake", {}).get("months_rewritten", []),
        "rows": rows_table(m),
        "stages": list(report.stages.items()),
        "job_phases": [
            (name, seconds)
            for name, seconds in m.get("durations_seconds", {}).items()
            if isinstance(seconds, int | float)
        ],
        "queries": report.queries,
        "costs": report.costs,
        "trend": trend(run_history(storage, config), report.run_id, max_rate),
        "max_rate": max_rate,
    }


def load_text(m: dict) -> str:
    """What the job read this run, in words (empty when the metrics do not say)."""
    mode = m.get("mode")
    skipped = sum(
        m.get("inputs", {}).get(s, {}).get("files_skipped", 0) for s in ("sales", "customers")
    )
    return {
        None: "",
        "incremental": f"new files only ({skipped} already read, skipped)",
        "full_rebuild": f"full rebuild: {m.get('full_rebuild_reason')}",
        "no_new_input": f"no new input: all {skipped} raw files were read by earlier runs",
    }.get(mode, str(mode))


def inputs(report: Any, storage: Storage, config: PipelineConfig) -> list[dict[str, Any]]:
    """Each source: what was given, every raw file with its bytes, and which this run read."""
    m = report.metrics
    found = []
    for source, uri in (("sales", config.raw_sales_uri), ("customers", config.raw_customers_uri)):
        read = m.get("inputs", {}).get(source, {}).get("files", [])
        files = [
            {
                "name": obj.uri[len(uri) :],
                "bytes": obj.size,
                "read": any(f == obj.uri or f.endswith("/" + obj.uri[len(uri) :]) for f in read),
            }
            for obj in storage.list(uri)
        ]
        found.append(
            {
                "source": source,
                "given": report.inputs.get(source, ""),
                "files": files,
                "bytes_read": m.get("bytes_read", {}).get(source),
            }
        )
    return found


def headline(engine: Any) -> dict[str, float | int | None]:
    """Revenue, orders, customers and months, from the named queries the run ran.

    ``monthly_trend`` gives revenue, orders and months; ``repeat_customers`` (one-time
    plus repeat) the customers with at least one sale. A figure a result lacks is None.
    """
    months = engine.run_named("monthly_trend").df
    customers = engine.run_named("repeat_customers").df
    return {
        "revenue": _column_sum(months, "total_revenue", float),
        "orders": _column_sum(months, "transaction_count", int),
        "customers": _column_sum(customers, "customers", int),
        "months": len(months) if "total_revenue" in months.columns else None,
    }


def _column_sum(df: pd.DataFrame, column: str, kind: type) -> float | int | None:
    if column not in df.columns:
        return None
    return kind(pd.to_numeric(df[column]).sum())


def charts(paths: Sequence[Path], engine: Any) -> list[dict[str, Any]]:
    """Each chart the run drew: title, alt text, the PNG as a data URI, and its data."""
    found = []
    for path in paths:
        path = Path(path)
        query = CHARTS[path.name][0] if path.name in CHARTS else ""
        title, picture = CHART_TEXT.get(path.name, (path.stem, "Chart"))
        df = engine.run_named(query).df if query else pd.DataFrame()
        found.append(
            {
                "title": title,
                "query": query,
                "alt": f"{picture}, drawn from the {len(df)} rows of the named query {query}.",
                "src": "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode(),
                "columns": list(df.columns),
                "rows": [[_cell(v) for v in row] for row in df.head(DATA_ROWS).itertuples(False)],
                "more": max(0, len(df) - DATA_ROWS),
            }
        )
    return found


def _cell(value: Any) -> str:
    """A query value as the page prints it."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def quarantine(m: dict, rows: Any) -> list[dict[str, Any]]:
    """Each (source, reason) with its count from the metrics and up to five raw records."""
    samples: dict[tuple[str, str], list[dict[str, Any]]] = {}
    if rows.num_rows:
        for record in rows.to_pylist():
            key = (record.get("source") or "", record.get("reason") or "")
            kept = samples.setdefault(key, [])
            if len(kept) < SAMPLES_PER_REASON:
                kept.append(
                    {
                        "file": _file_name(record.get("source_file")),
                        "record_id": record.get("record_id") or "",
                        "detail": record.get("detail") or "",
                        "raw": _raw_text(record),
                    }
                )
    # Metrics that count by reason only (no split by source) still list each reason.
    by_source = m.get("rows_quarantined_by_source") or {"": m.get("rows_quarantined") or {}}
    return [
        {
            "source": source,
            "reason": reason,
            "count": count,
            "samples": samples.get((source, reason), []),
        }
        for source in sorted(by_source)
        for reason, count in sorted(by_source[source].items())
    ]


def _file_name(uri: Any) -> str:
    """A source file's name: Spark records the file as a URI (``%20`` for a space)."""
    return unquote(str(uri or "").rsplit("/", 1)[-1])


def _raw_text(record: dict[str, Any]) -> str:
    """The record as it was read; undecodable bytes shown as escapes."""
    if record.get("raw_record") is not None:
        return str(record["raw_record"])
    raw = record.get("raw_bytes")
    return raw.decode("utf-8", "backslashreplace") if isinstance(raw, bytes) else ""


def reconciliation(m: dict) -> list[dict[str, Any]]:
    """Per source: read = written + quarantined + duplicates dropped + superseded."""
    return [
        {"source": source, **figures} for source, figures in m.get("reconciliation", {}).items()
    ]


def rows_table(m: dict) -> list[tuple[str, int]]:
    """The run's row counts, as the summary prints them."""
    read, written = m.get("rows_read", {}), m.get("rows_written", {})
    return [
        ("sales read", read.get("sales", 0)),
        ("customers read", read.get("customers", 0)),
        ("enriched rows written", written.get("enriched", 0)),
        ("summary rows written", written.get("sales_summary", 0)),
        ("exact duplicates dropped", m.get("duplicates_dropped", 0)),
        ("unknown customers (kept)", m.get("unknown_customers", 0)),
        ("quarantined", m.get("quarantined_total", 0)),
    ]


def run_history(storage: Storage, config: PipelineConfig) -> list[dict[str, Any]]:
    """Every metrics file under ``_runs/``, oldest first (by start time, then run id).

    A file that is not a metrics document (unreadable JSON) is skipped with a warning:
    one bad file must not cost the page.
    """
    found = []
    for obj in storage.list(config.runs_uri):
        if not obj.uri.endswith(".json"):
            continue
        try:
            found.append(json.loads(storage.get_bytes(obj.uri)))
        except (ValueError, UnicodeDecodeError) as exc:
            log.warning("skipping %s in the trend: %s", obj.uri, exc)
    found = [m for m in found if isinstance(m, dict)]
    return sorted(found, key=lambda m: (str(m.get("started_at") or ""), str(m.get("run_id"))))


def trend(history: list[dict[str, Any]], run_id: str, max_rate: float | None) -> list[dict]:
    """The last ``TREND_RUNS`` runs, each with its figures and whether it stands out:
    a quarantined share over the threshold, or a run that failed."""
    rows = []
    for m in history[-TREND_RUNS:]:
        read = sum(int(v) for v in (m.get("rows_read") or {}).values())
        quarantined = int(m.get("quarantined_total") or 0)
        rate = quarantined / read if read else 0.0
        status = str(m.get("status") or "")
        rows.append(
            {
                "run_id": str(m.get("run_id") or ""),
                "date": str(m.get("run_date") or ""),
                "mode": str(m.get("mode") or ""),
                "status": status,
                "read": read,
                "written": int((m.get("rows_written") or {}).get("enriched", 0)),
                "quarantined": quarantined,
                "rate": rate,
                "seconds": (m.get("durations_seconds") or {}).get("total"),
                "over": (max_rate is not None and quarantined > max_rate * read)
                or status == "failed",
                "current": m.get("run_id") == run_id,
            }
        )
    top = max((r["rate"] for r in rows), default=0.0) or 1.0
    for row in rows:
        row["bar"] = round(100 * row["rate"] / top)  # the rate bar's width, % of the largest
    return rows


def _number(value: Any) -> str:
    return "–" if value is None else f"{value:,}"


def _dollars(value: Any) -> str:
    return "–" if value is None else f"${value:,.2f}"


def _percent(value: Any) -> str:
    return "–" if value is None else f"{value:.2%}"


def _seconds(value: Any) -> str:
    return "–" if value is None else f"{float(value):,.1f} s"


def _size(value: Any) -> str:
    """Bytes with a unit: ``684,250 B (668 KiB)``."""
    if value is None:
        return "–"
    value = int(value)
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= scale:
            return f"{value:,} B ({value / scale:.1f} {unit})"
    return f"{value:,} B"
