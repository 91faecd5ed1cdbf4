"""The local target: a lake folder that mirrors S3, the local crawler, PySpark, DuckDB."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pipeline.catalog import crawl_local
from pipeline.config import GENERATED_DIR, JOB_SCRIPT, REPO_ROOT, PipelineConfig
from pipeline.engines import LocalEngine
from pipeline.errors import EXIT_USAGE, NoDataError, PipelineError, UsageError
from pipeline.storage import LocalStorage, RawUpload, upload_raw
from pipeline.targets.base import CrawlResult, JobRun, TargetBase, remove_hint

log = logging.getLogger(__name__)

NO_WORKFLOW = "the local target has no workflow: it runs on the aws target"


class LocalTarget(TargetBase):
    name = "local"

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config
        self.storage = LocalStorage(config.lake)

    @staticmethod
    def resolve_config(config: PipelineConfig) -> PipelineConfig:
        """Nothing to add: the lake's names need no account."""
        return config

    def check_ready(self) -> None:
        """Nothing to check: the lake folder is made as it is written."""

    def check_kept_apart(self, own_data: bool) -> None:
        """Refuse (UsageError) a run that would put your own files and the generated
        sample into one lake, either way round."""
        lake = self.config.lake
        sample = (lake / GENERATED_DIR).exists()
        raw = self.config.local_path(self.config.raw_uri)
        if own_data and sample:
            raise UsageError(
                f"lake {lake} holds the generated sample: give your own files a "
                "lake of their own (--lake, default ./own-lake)"
            )
        if not own_data and not sample and raw.is_dir() and any(raw.rglob("*")):
            raise UsageError(
                f"lake {lake} holds your own files: the generated sample needs a "
                "lake of its own (--lake)"
            )

    def upload(self, sales: str | Path, customers: str | Path) -> RawUpload:
        return upload_raw(self.storage, self.config, sales, customers)

    def crawl(self) -> CrawlResult:
        return CrawlResult(tables=sorted(crawl_local(self.config)))

    def run_job(
        self, run_id: str, echo: Callable[[str], None] | None = None, *, full_rebuild: bool = False
    ) -> JobRun:
        """Run glue_etl_job.py on the lake with local Spark, streaming its log."""
        config, echo = self.config, echo or log.info
        # The job runs in the repository folder: a relative --lake is this process's,
        # so the job gets absolute paths (the names it reports are these).
        sales, customers, output = (
            config.local_path(u).absolute()
            for u in (config.raw_sales_uri, config.raw_customers_uri, config.processed_uri)
        )
        args = [
            sys.executable,
            str(JOB_SCRIPT),
            "--JOB_NAME", config.job_name,
            "--sales_path", str(sales),
            "--customers_path", str(customers),
            "--output_path", str(output),
            "--run_id", run_id,
            *(["--full_rebuild", "true"] if full_rebuild else []),
        ]  # fmt: skip
        started = time.perf_counter()
        proc = subprocess.Popen(
            args, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        last = ""
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            if line:
                last = line
                echo(f"  job | {line}")
        if proc.wait() != 0:
            reason = last or f"glue_etl_job.py exited with {proc.returncode}"
            raw = [f"{sales}/", f"{customers}/"]
            reason = remove_hint(reason, raw, f"--lake {config.lake} --prefix {config.prefix}")
            # The job exits 2 for bad arguments or an unusable input (see pipeline.cli).
            raise (UsageError if proc.returncode == EXIT_USAGE else PipelineError)(reason)
        return JobRun(run_id=run_id, seconds=time.perf_counter() - started)

    def check_workflow(self) -> None:
        """Refuse: the workflow is the deployed Glue workflow, on the aws target."""
        raise UsageError(NO_WORKFLOW)

    def run_workflow(self, echo: Callable[[str], None] | None = None) -> tuple[CrawlResult, JobRun]:
        raise UsageError(NO_WORKFLOW)

    def engine(self, queries_path: Path | None = None) -> LocalEngine:
        """DuckDB over the lake; a lake folder that does not exist is the caller's to fix."""
        if not self.config.lake.is_dir():
            raise UsageError(
                f"lake {self.config.lake} does not exist: give --lake the folder a run wrote "
                "(python run_pipeline.py makes ./lake; your own files go to ./own-lake)"
            )
        return LocalEngine(self.config, queries_path)

    def check_processed_data(self) -> None:
        """Raise NoDataError when the lake holds no enriched Parquet (nothing ran yet)."""
        enriched = self.config.local_path(self.config.enriched_uri)
        if not (enriched.is_dir() and any(enriched.rglob("*.parquet"))):
            raise NoDataError(
                f"no processed data under {enriched}; run `python run_pipeline.py` first"
            )

    def cost_lines(
        self,
        job: JobRun | None,
        crawl: CrawlResult | None,
        scanned: Sequence[int],
        stored_bytes: int,
    ) -> list[str]:
        """None: a local run is billed nothing."""
        return []

    def publish_report(self, html: bytes, name: str) -> None:
        """Nothing to publish: the page written on disk is the report."""
        return None
