"""Every stage of the pipeline, in order, for either target.

generate -> upload -> crawl -> etl -> tables -> queries -> charts -> report. Each stage is
timed and logged; the first failure stops the run with the stage's name and one
reason (:class:`StageFailed`). The summary's figures are the job's own metrics file
plus what is read back from storage and the query engine.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.charts import render_all
from pipeline.config import (
    CUSTOMERS_FILENAME,
    DEFAULT_MAX_QUARANTINE_RATE,
    GENERATED_DIR,
    OWN_DATA_CHARTS,
    REPO_ROOT,
    SALES_FILENAME,
    PipelineConfig,
)
from pipeline.datagen import SalesSpec, generate_customers, write_customers_ndjson, write_sales_csv
from pipeline.errors import EXIT_FAILED, EXIT_USAGE, StageFailed, UsageError, one_line
from pipeline.report import RunPage, write_run_page
from pipeline.sql import analytic_names
from pipeline.targets import CrawlResult, JobRun, Target, make_target

log = logging.getLogger(__name__)


@dataclass
class RunOptions:
    rows: int = 10_000
    customers: int = 500
    seed: int = 42
    dirty_rate: float = 0.0
    # None: screenshots/ for the generated sample, <lake>/_charts/ for your own files.
    charts_dir: Path | None = None
    # Where the run's HTML page goes (index.html and <run_id>.html); None: a `report`
    # folder beside the charts folder.
    report_dir: Path | None = None
    # The data-quality check: the largest share of rows read that may be quarantined.
    max_quarantine_rate: float = DEFAULT_MAX_QUARANTINE_RATE
    # Your own raw inputs (each a file, a folder, or an s3:// URI on the aws target);
    # when given, nothing is generated.
    sales_path: str | Path | None = None
    customers_path: str | Path | None = None
    # aws: one "workflow" stage (the deployed Glue workflow crawls, then runs the job)
    # in place of the "crawl" and "etl" stages; the run id is then the job run's id.
    workflow: bool = False
    # Rebuild every output from all raw files (the job's --full_rebuild), not only what is new.
    full_rebuild: bool = False
    run_id: str = field(
        default_factory=lambda: "run-" + dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    )

    def spec(self) -> SalesSpec:
        """What the generate stage makes; raises ValueError for a value out of range."""
        return SalesSpec(
            rows=self.rows, customers=self.customers, seed=self.seed, dirty_rate=self.dirty_rate
        )

    def check(self) -> None:
        """Raise ValueError, before any stage runs, for options that cannot work."""
        if (self.sales_path is None) != (self.customers_path is None):
            raise ValueError("sales_path and customers_path go together: give both or neither")
        if self.workflow and self.full_rebuild:
            raise ValueError(
                "a full rebuild runs the job directly: leave out --workflow (the workflow's "
                "job runs with its deployed arguments)"
            )
        if not 0.0 <= self.max_quarantine_rate <= 1.0:
            raise ValueError("max quarantine rate must be between 0 and 1")
        if self.sales_path is None:
            self.spec()


@dataclass(frozen=True)
class QualityVerdict:
    """The run's quarantined share of the rows read (both sources), against a threshold."""

    quarantined: int
    read: int
    max_rate: float

    @property
    def rate(self) -> float:
        return self.quarantined / self.read if self.read else 0.0

    @property
    def ok(self) -> bool:
        # Compared in whole rows, so a share exactly at the threshold passes.
        return self.quarantined <= self.max_rate * self.read

    @classmethod
    def of(cls, metrics: dict[str, Any], max_rate: float) -> QualityVerdict:
        read = metrics.get("rows_read", {})
        return cls(
            quarantined=int(metrics.get("quarantined_total", 0)),
            read=int(read.get("sales", 0)) + int(read.get("customers", 0)),
            max_rate=max_rate,
        )

    def line(self) -> str:
        verdict = "OK" if self.ok else "OVER THE THRESHOLD"
        return (
            f"  quarantined {self.quarantined:,} of {self.read:,} rows read = "
            f"{self.rate:.2%} (threshold {self.max_rate:.2%}): {verdict}"
        )


@dataclass
class RunReport:
    """What a run did: stage timings, the job's metrics and the query statistics."""

    run_id: str
    target: str
    stages: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    queries: list[dict[str, Any]] = field(default_factory=list)
    charts: list[Path] = field(default_factory=list)
    raw_bytes: int = 0
    parquet_bytes: int = 0
    partitions: list[str] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)  # source -> empty files given
    crawl: CrawlResult | None = None
    job: JobRun | None = None
    quality: QualityVerdict | None = None
    inputs: dict[str, str] = field(default_factory=dict)  # source -> what was given
    raw_files: dict[str, list[str]] = field(default_factory=dict)  # source -> files read
    costs: list[str] = field(default_factory=list)  # the target's cost lines (none locally)
    page: RunPage | None = None  # the run's HTML report


@contextmanager
def stage(report: RunReport, name: str) -> Iterator[None]:
    """Time one stage, log its start and end, and turn any error into StageFailed."""
    log.info("[%s] starting", name)
    started = time.perf_counter()
    try:
        yield
    except StageFailed:
        raise
    except Exception as exc:  # every stage failure ends the run with one readable line
        log.debug("stage %s failed", name, exc_info=True)
        # A missing or unusable input is the caller's to fix, as a bad flag is (exit 2).
        usage = isinstance(exc, (UsageError, FileNotFoundError))
        raise StageFailed(name, one_line(exc), EXIT_USAGE if usage else EXIT_FAILED) from exc
    report.stages[name] = time.perf_counter() - started
    log.info("[%s] done in %.1fs", name, report.stages[name])


def generate(options: RunOptions, out_dir: Path) -> tuple[Path, Path]:
    """Write the raw sales CSV and customers NDJSON; returns their paths."""
    spec = options.spec()
    sales, customers = out_dir / SALES_FILENAME, out_dir / CUSTOMERS_FILENAME
    dirty = write_sales_csv(spec, sales, progress=options.rows >= 1_000_000)
    if dirty:
        log.info("dirty rows mixed in: %s", dict(sorted(dirty.items())))
    write_customers_ndjson(
        generate_customers(options.customers, options.seed, spec.start_date), customers
    )
    log.info(
        "generated %s sales rows and %s customers", f"{options.rows:,}", f"{options.customers:,}"
    )
    return sales, customers


def lake_figures(storage: Any, config: PipelineConfig) -> tuple[int, int, list[str]]:
    """Raw bytes, Parquet bytes (enriched + summary) and enriched partitions, read back from storage."""
    raw = sum(o.size for o in storage.list(config.raw_uri))
    parquet = 0
    partitions = set()
    for uri in (config.enriched_uri, config.summary_uri):
        for obj in storage.list(uri):
            if obj.uri.endswith(".parquet"):
                parquet += obj.size
                if uri == config.enriched_uri:
                    rel = obj.uri[len(uri) :]
                    partitions.add("/".join(p for p in rel.split("/")[:-1] if "=" in p))
    return raw, parquet, sorted(partitions, key=_partition_key)


def _partition_key(partition: str) -> tuple[int, ...]:
    return tuple(int(part.split("=")[1]) for part in partition.split("/") if "=" in part)


class ResultCache:
    """An engine stand-in that answers named queries from results already fetched.

    The charts stage reads the queries stage's results through it, so no query runs
    (or, on Athena, is billed) twice.
    """

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.results: dict[str, Any] = {}

    def setup_tables(self) -> None:
        self.engine.setup_tables()

    def run_named(self, name: str) -> Any:
        if name not in self.results:
            self.results[name] = self.engine.run_named(name)
        return self.results[name]


def run_queries(engine: Any) -> list[dict[str, Any]]:
    """Run every analytic query; returns name, rows, seconds and bytes read for each."""
    stats = []
    for name in analytic_names():
        result = engine.run_named(name)
        stats.append(
            {
                "name": name,
                "rows": result.rows,
                "seconds": result.seconds,
                "files_read": result.files_read,
                "bytes_read": result.bytes_read,
            }
        )
        log.info("  query %-32s %6d rows  %6.3fs", name, result.rows, result.seconds)
    return stats


def publish_charts(engine: Any, charts_dir: Path) -> list[Path]:
    """Render the six charts into a scratch folder, then move them into place together."""
    charts_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=charts_dir, prefix=".rendering-") as scratch:
        rendered = render_all(engine, Path(scratch), setup_tables=False)
        published = []
        for path in rendered:
            target = charts_dir / path.name
            shutil.move(str(path), target)
            published.append(target)
    return published


def run(config: PipelineConfig, options: RunOptions, target: Target | None = None) -> RunReport:
    """Run every stage in order on the config's target; raises StageFailed on the first failure.

    The stages and their names are the same on both targets: generate (skipped for your
    own files), upload, crawl, etl, tables, queries, charts, report (the run's HTML page,
    ``pipeline.report``). With ``options.workflow``
    (aws only) one stage, workflow, crawls and runs the job in place of crawl and etl.
    """
    try:
        options.check()
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    target = target or make_target(config)
    target.check_kept_apart(own_data=options.sales_path is not None)
    options.charts_dir = _charts_dir(config, options)
    if options.workflow:
        target.check_workflow()  # before any stage: the local target has none
    report = RunReport(run_id=options.run_id, target=target.name)

    sales: str | Path
    customers: str | Path
    if options.sales_path is not None and options.customers_path is not None:
        sales, customers = options.sales_path, options.customers_path
        report.inputs = {"sales": str(sales), "customers": str(customers)}
    else:
        with stage(report, "generate"):
            sales, customers = generate(options, config.lake / GENERATED_DIR)
        report.inputs = {
            "sales": f"generated: {options.rows:,} rows, dirty rate {options.dirty_rate}",
            "customers": f"generated: {options.customers:,} customers",
        }

    with stage(report, "upload"):
        target.check_ready()
        upload = target.upload(sales, customers)
        report.uploaded, report.skipped = upload.uris, upload.skipped
    if options.workflow:
        with stage(report, "workflow"):
            report.crawl, report.job = target.run_workflow()
            report.run_id = report.job.run_id  # the job run's id, which names its metrics
            report.metrics = target.read_metrics(report.run_id)
            report.quality = QualityVerdict.of(report.metrics, options.max_quarantine_rate)
    else:
        with stage(report, "crawl"):
            report.crawl = target.crawl()
        with stage(report, "etl"):
            report.job = target.run_job(options.run_id, full_rebuild=options.full_rebuild)
            report.metrics = target.read_metrics(options.run_id)
            report.quality = QualityVerdict.of(report.metrics, options.max_quarantine_rate)
    storage = target.storage
    with stage(report, "tables"):
        engine = ResultCache(target.engine())
        engine.setup_tables()
        report.raw_bytes, report.parquet_bytes, report.partitions = lake_figures(storage, config)
        report.raw_files = {
            source: [o.uri[len(uri) :] for o in storage.list(uri)]
            for source, uri in (
                ("sales", config.raw_sales_uri),
                ("customers", config.raw_customers_uri),
            )
        }
    with stage(report, "queries"):
        report.queries = run_queries(engine)
    with stage(report, "charts"):
        report.charts = publish_charts(engine, options.charts_dir)
    report.costs = target.cost_lines(
        report.job,
        report.crawl,
        [q["bytes_read"] or 0 for q in report.queries],
        report.raw_bytes + report.parquet_bytes,
    )
    with stage(report, "report"):
        report_dir = options.report_dir or Path(options.charts_dir).parent / "report"
        report.page = write_run_page(report, engine, target, config, report_dir)
    return report


SAMPLE_CHARTS = REPO_ROOT / "screenshots"


def _charts_dir(config: PipelineConfig, options: RunOptions) -> Path:
    """Where the charts go; refuses (UsageError) your own data's charts in the sample's
    committed folder."""
    own = options.sales_path is not None
    if options.charts_dir is None:
        return config.lake / OWN_DATA_CHARTS if own else SAMPLE_CHARTS
    if own and options.charts_dir.resolve() == SAMPLE_CHARTS:
        raise UsageError(
            f"{SAMPLE_CHARTS} holds the generated sample's charts: leave out --charts-dir "
            f"(your charts go to <lake>/{OWN_DATA_CHARTS}/) or give another folder"
        )
    return options.charts_dir


def summary_lines(report: RunReport) -> list[str]:
    """The end-of-run summary table, as printable lines."""
    m = report.metrics
    read = m.get("rows_read", {})
    written = m.get("rows_written", {})
    lines = [
        f"Run {report.run_id} on target '{report.target}'",
        "",
        "Stage durations",
        *[f"  {name:<14}{seconds:9.1f} s" for name, seconds in report.stages.items()],
        "",
        "Inputs",
        *[
            line
            for source in ("sales", "customers")
            if source in report.inputs
            for line in _input_lines(
                source,
                report.inputs[source],
                report.raw_files.get(source),
                _read_this_run(m, source),
                report.skipped.get(source, []),
            )
        ],
        "",
        *_load_lines(m),
        "Rows",
        f"  {'sales read':<34}{read.get('sales', 0):>12,}",
        f"  {'customers read':<34}{read.get('customers', 0):>12,}",
        f"  {'enriched rows written':<34}{written.get('enriched', 0):>12,}",
        f"  {'summary rows written':<34}{written.get('sales_summary', 0):>12,}",
        f"  {'exact duplicates dropped':<34}{m.get('duplicates_dropped', 0):>12,}",
        f"  {'unknown customers (kept)':<34}{m.get('unknown_customers', 0):>12,}",
        f"  {'quarantined':<34}{m.get('quarantined_total', 0):>12,}",
        *_quarantine_lines(m),
        *(["", "Data quality", report.quality.line()] if report.quality else []),
        "",
        "Storage",
        f"  {'partitions (year/month)':<34}{len(report.partitions):>12}  {_first_and_last(report.partitions)}",
        f"  {'raw CSV + NDJSON bytes':<34}{report.raw_bytes:>12,}",
        f"  {'Parquet bytes (enriched+summary)':<34}{report.parquet_bytes:>12,}",
    ]
    if report.parquet_bytes:
        lines.append(
            f"  {'raw / Parquet size ratio':<34}{report.raw_bytes / report.parquet_bytes:>12.1f}x"
        )
    if report.queries:
        lines += [
            "",
            f"Queries ({len(report.queries)})",
            f"  {'name':<34}{'rows':>6}{'seconds':>9}{'bytes read':>14}",
        ]
        for q in report.queries:
            scanned = f"{q['bytes_read']:,}" if q["bytes_read"] is not None else "-"
            lines.append(f"  {q['name']:<34}{q['rows']:>6}{q['seconds']:>9.3f}{scanned:>14}")
    if report.costs:
        lines += ["", *report.costs]
    if report.charts:
        lines += ["", "Charts", *[f"  {path}" for path in report.charts]]
    return lines


def _quarantine_lines(m: dict) -> list[str]:
    """Per source and reason: the count and one raw record; then where the rows are."""
    samples = m.get("quarantine_samples", {})
    lines = []
    for source, reasons in sorted(m.get("rows_quarantined_by_source", {}).items()):
        for reason, count in sorted(reasons.items()):
            sample = samples.get(source, {}).get(reason)
            shown = "" if sample is None else f"  e.g. {_cut(sample, 70)}"
            lines.append(f"    {f'{source}: {reason}':<32}{count:>12,}{shown}")
    if m.get("quarantined_total"):
        where = m.get("outputs", {}).get("quarantine", "")
        lines += [
            f"  {'rejected rows of this run':<34}{where}",
            f"  {'every run, as a table':<34}query.py --name quarantine_rows, quarantine_by_reason",
        ]
    return lines


def _cut(text: str, most: int) -> str:
    """``text`` on one line, at most ``most`` characters (an ellipsis marks a cut)."""
    flat = text.replace("\r", "\\r").replace("\n", "\\n")
    return flat if len(flat) <= most else flat[: most - 3] + "..."


def _read_this_run(m: dict, source: str) -> list[str] | None:
    """The names of the files the job read this run (None: no metrics)."""
    files = m.get("inputs", {}).get(source, {}).get("files")
    return None if files is None else [f.rsplit("/", 1)[-1] for f in files]


def _load_lines(m: dict) -> list[str]:
    """What the job read this run: only new files, all of them, or nothing new."""
    mode = m.get("mode")
    if mode is None:
        return []
    skipped = sum(
        m.get("inputs", {}).get(s, {}).get("files_skipped", 0) for s in ("sales", "customers")
    )
    line = {
        "incremental": f"  new files only ({skipped} already read, skipped)",
        "full_rebuild": f"  full rebuild: {m.get('full_rebuild_reason')}",
        "no_new_input": f"  no new input: all {skipped} raw files were read by earlier runs",
    }.get(mode, f"  {mode}")
    lake = m.get("lake", {})
    rewritten = lake.get("months_rewritten", [])
    extra = [f"  months rewritten: {', '.join(rewritten)}"] if rewritten else []
    return ["Load", line, *extra, ""]


def _first_and_last(items: list[str], most: int = 6) -> str:
    """All of ``items`` when there are at most ``most``, else the first, the last and how
    many lie between: ``a, ... (46 more), z``."""
    if len(items) <= most:
        return ", ".join(items)
    return f"{items[0]}, ... ({len(items) - 2} more), {items[-1]}"


def _input_lines(
    source: str,
    given: str,
    raw: list[str] | None,
    read: list[str] | None,
    skipped: list[str],
) -> list[str]:
    """What was given, the raw files now in the bucket, those the job read this run, and
    the given files left out as empty (only when there are any)."""
    lines = [f"  {source:<34}{given}"]
    shown = [("raw files", raw), ("read this run", read)]
    if skipped:
        shown.append(("skipped, empty", skipped))
    for label, files in shown:
        if files is not None:
            names = ", ".join(files[:5]) + (
                f", ... ({len(files) - 5} more)" if len(files) > 5 else ""
            )
            lines.append(f"    {label:<32}{len(files):>12,}  {names}")
    return lines
