"""List-price cost estimates for the ``aws`` target (us-east-1, stated as estimates).

Prices: AWS Glue $0.44 per DPU-hour, billed per second with a 1-minute minimum on
Glue 5.x jobs and a 10-minute minimum per crawler run; a G.1X worker is 1 DPU. Athena
$5.00 per TB scanned, with a 10 MB minimum per query. S3 Standard $0.023 per GB-month.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

GLUE_USD_PER_DPU_HOUR = 0.44
GLUE_MIN_SECONDS = 60
CRAWLER_MIN_DPU_HOURS = 10 / 60  # one DPU for the 10-minute minimum
DPU_PER_G1X_WORKER = 1
ATHENA_USD_PER_TB = 5.00
ATHENA_MIN_BYTES = 10 * 1024**2
S3_USD_PER_GB_MONTH = 0.023
TB = 1024**4
GB = 1024**3


def glue_dpu_hours(
    seconds: float, workers: int = 2, dpu_per_worker: int = DPU_PER_G1X_WORKER
) -> float:
    """DPU-hours billed for one job run of ``seconds`` on ``workers`` workers."""
    return workers * dpu_per_worker * max(seconds, GLUE_MIN_SECONDS) / 3600


def glue_usd(seconds: float, workers: int = 2) -> float:
    """Estimated Glue cost of one job run."""
    return glue_dpu_hours(seconds, workers) * GLUE_USD_PER_DPU_HOUR


def crawler_usd(dpu_hours: float | None) -> float:
    """Estimated cost of one crawl; Glue reports its DPU-hours, else assume the minimum."""
    return max(dpu_hours or 0.0, CRAWLER_MIN_DPU_HOURS) * GLUE_USD_PER_DPU_HOUR


def athena_billed_bytes(scanned: Iterable[int]) -> int:
    """Bytes Athena bills for queries that scanned ``scanned`` bytes each."""
    return sum(max(int(b), ATHENA_MIN_BYTES) for b in scanned)


def athena_usd(scanned: Iterable[int]) -> float:
    """Estimated Athena cost of queries that scanned ``scanned`` bytes each."""
    return athena_billed_bytes(scanned) / TB * ATHENA_USD_PER_TB


def s3_usd_per_month(stored_bytes: int) -> float:
    """Estimated monthly S3 Standard storage cost."""
    return stored_bytes / GB * S3_USD_PER_GB_MONTH


def run_cost_lines(
    job_seconds: float,
    workers: int,
    crawl_dpu_hours: float | None,
    scanned: Sequence[int],
    stored_bytes: int,
) -> list[str]:
    """One aws run's estimated cost at list prices, as summary lines (an estimate, not a bill).

    ``scanned`` is the bytes each query read (0 when not reported); ``stored_bytes`` the
    raw and Parquet bytes the run leaves in S3.
    """
    glue = glue_usd(job_seconds, workers)
    crawler = crawler_usd(crawl_dpu_hours)
    athena = athena_usd(scanned)
    crawl_basis = (
        f"{crawl_dpu_hours:.4f} DPU-hours (reported)"
        if crawl_dpu_hours
        else f"{CRAWLER_MIN_DPU_HOURS:.4f} DPU-hours (assumed: 1 DPU, 10-minute minimum)"
    )
    return [
        "Estimated cost at list prices (us-east-1; an estimate, not a bill)",
        f"  Glue job: {workers} x G.1X for {job_seconds:.0f}s = "
        f"{glue_dpu_hours(job_seconds, workers):.4f} DPU-hours x ${GLUE_USD_PER_DPU_HOUR}"
        f" = ${glue:.4f}",
        f"  Glue crawler: {crawl_basis} x ${GLUE_USD_PER_DPU_HOUR} = ${crawler:.4f}",
        f"  Athena: {len(scanned)} queries, {athena_billed_bytes(scanned):,} bytes billed"
        f" x ${ATHENA_USD_PER_TB}/TB = ${athena:.6f}",
        f"  Total per run: ${glue + crawler + athena:.4f}",
        f"  S3 storage: {stored_bytes:,} bytes x ${S3_USD_PER_GB_MONTH}/GB-month"
        f" = ${s3_usd_per_month(stored_bytes):.6f} per month",
    ]
