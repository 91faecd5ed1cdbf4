"""A tiny hand-written raw input and a lake built from it by the real pipeline steps.

The input is small enough to check by hand: ten sales over three months, four known
customers and one unknown id (CUST0009). ``build_lake`` uploads it to a lake folder,
crawls it and runs the real ``glue_etl_job.py`` over it (as a subprocess, or given a
Spark session its ``main`` in this process on it), so the queries run on what the job
actually writes.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from pipeline.catalog import crawl_local
from pipeline.config import PipelineConfig
from pipeline.storage import LocalStorage, upload_raw

REPO = Path(__file__).resolve().parent.parent
JOB = REPO / "glue_etl_job.py"

SALES_CSV = """\
transaction_id,date,customer_id,product,quantity,unit_price,region,total_amount
TXN00000001,2024-01-05,CUST0001,Laptop,1,1200.00,North,1200.00
TXN00000002,2024-01-12,CUST0002,Mouse,3,25.50,South,76.50
TXN00000003,2024-01-20,CUST0001,Keyboard,2,75.00,North,150.00
TXN00000004,2024-02-03,CUST0003,Monitor,2,300.00,East,600.00
TXN00000005,2024-02-14,CUST0009,Mouse,1,25.50,West,25.50
TXN00000006,2024-02-28,CUST0002,Laptop,1,1150.00,South,1150.00
TXN00000007,2024-03-01,CUST0004,Headphones,4,60.00,East,240.00
TXN00000008,2024-03-15,CUST0001,Monitor,1,320.00,North,320.00
TXN00000009,2024-03-22,CUST0003,Keyboard,5,70.00,East,350.00
TXN00000010,2024-03-30,CUST0009,Laptop,1,999.99,West,999.99
"""

CUSTOMERS_NDJSON = """\
{"customer_id":"CUST0001","age_group":"26-35","membership_tier":"Gold","signup_date":"2022-03-14"}
{"customer_id":"CUST0002","age_group":"36-45","membership_tier":"Silver","signup_date":"2023-07-01"}
{"customer_id":"CUST0003","age_group":"26-35","membership_tier":"Bronze","signup_date":"2023-11-20"}
{"customer_id":"CUST0004","age_group":"18-25","membership_tier":"Gold","signup_date":"2024-01-02"}
"""


def raw_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The raw input as pandas frames (the independent side of every comparison)."""
    sales = pd.read_csv(io.StringIO(SALES_CSV), parse_dates=["date"])
    customers = pd.read_json(io.StringIO(CUSTOMERS_NDJSON), lines=True)
    customers["signup_date"] = pd.to_datetime(customers["signup_date"])
    return sales, customers


def expected_enriched() -> pd.DataFrame:
    """The enriched rows computed in pandas: a left join, with year and month."""
    sales, customers = raw_frames()
    df = sales.merge(customers, on="customer_id", how="left")
    df["year"] = df["date"].dt.year
    df["month"] = df["date"].dt.month
    return df


def write_raw(folder: Path) -> tuple[Path, Path]:
    """Write the raw CSV and NDJSON files into ``folder``; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    sales = folder / "sales_data.csv"
    customers = folder / "customer_demographics.json"
    sales.write_text(SALES_CSV)
    customers.write_text(CUSTOMERS_NDJSON)
    return sales, customers


def run_glue_job(
    *args: str,
    cwd: Path = REPO,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """Run ``glue_etl_job.py`` as a subprocess (the real CLI, its own JVM); never raises.

    The one place the tests start the job's CLI: ``args`` are its flags; ``env`` adds
    variables to (or overrides those of) this process's environment. The caller checks
    ``returncode``, stdout and stderr (text).
    """
    return subprocess.run(
        [sys.executable, str(JOB), *args],
        cwd=cwd,
        env=None if env is None else {**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_job(
    config: PipelineConfig, run_id: str = "test-run", spark=None
) -> subprocess.CompletedProcess | None:
    """Run the real ETL job over the lake's raw prefixes into the processed bucket: as a
    subprocess (returned), or with ``spark`` (the shared session) ``glue_etl_job.main``
    in this process on it (None returned). Raises RuntimeError when it fails."""
    args = [
        "--sales_path",
        str(config.local_path(config.raw_sales_uri)),
        "--customers_path",
        str(config.local_path(config.raw_customers_uri)),
        "--output_path",
        str(config.local_path(config.processed_uri)),
        "--run_id",
        run_id,
    ]
    if spark is not None:
        import glue_etl_job

        try:
            code = glue_etl_job.main([str(JOB), *args])
        finally:
            spark.conf.set("spark.sql.shuffle.partitions", "2")  # main() applied the job's
        if code != 0:
            raise RuntimeError(f"glue_etl_job.main exited {code} (its log has why)")
        return None
    result = run_glue_job(*args)
    if result.returncode != 0:
        raise RuntimeError(
            f"glue_etl_job.py failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


def build_lake(lake: Path, prefix: str = "test", spark=None) -> PipelineConfig:
    """Upload the hand-written input, crawl it and run the real job (in this process when
    given ``spark``, see ``run_job``); return the config."""
    config = PipelineConfig(prefix=prefix, target="local", lake=lake)
    sales, customers = write_raw(lake.parent / f"{lake.name}-input")
    upload_raw(LocalStorage(lake), config, sales, customers)
    crawl_local(config)
    run_job(config, spark=spark)
    return config
