"""What both targets share: the results of a crawl and of a job run, and the metrics read."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.config import PipelineConfig
from pipeline.storage import Storage, read_metrics

REMOVE_HINT = (
    "take it out of raw with: python run_pipeline.py --remove-raw {name} {flags}"
    "(--dry-run lists what goes)"
)


def remove_hint(reason: str, raw_roots: Sequence[str], flags: str) -> str:
    """``reason`` and how to remove the raw file it names, when it names one.

    ``raw_roots``: the raw prefixes as the job names them (lake folders or ``s3://``
    URIs, each ending in ``/``); the name after one is the raw file's. ``flags``: the
    target flags that reach this raw bucket (``--lake own-lake``, ``--target aws ...``).
    """
    for root in raw_roots:
        found = re.search(re.escape(root) + r"([^\s:;,]+)", reason)
        if found:
            hint = REMOVE_HINT.format(name=found.group(1), flags=f"{flags} " if flags else "")
            return f"{reason}; {hint}"
    return reason


@dataclass
class CrawlResult:
    """What a crawl did: the tables it wrote (by name) and, on aws, its billing."""

    tables: list[str] = field(default_factory=list)
    status: str = "SUCCEEDED"
    dpu_hours: float | None = None  # reported by Glue for the crawl; None locally


@dataclass
class JobRun:
    """One finished run of the ETL job."""

    run_id: str
    seconds: float  # billed execution time on Glue, wall time locally
    details: dict[str, Any] = field(default_factory=dict)  # aws: job run id, workers, DPU


class TargetBase:
    """The operations that are the same on both targets, through ``storage``."""

    config: PipelineConfig
    storage: Storage

    def read_metrics(self, run_id: str) -> dict[str, Any]:
        """The job's metrics file, ``_runs/<run_id>.json``."""
        return read_metrics(self.storage, self.config, run_id)
