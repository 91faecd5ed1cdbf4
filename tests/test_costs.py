"""Cost estimates at list prices, checked against hand-computed figures."""

import pytest

from pipeline import costs
from pipeline.runner import RunReport, cost_lines
from pipeline.targets import CrawlResult, JobRun


def test_glue_job_bills_a_one_minute_minimum():
    # 2 workers x 1 DPU x 60 s / 3600 = 0.0333 DPU-h; x $0.44 = $0.01467
    assert costs.glue_dpu_hours(20, workers=2) == pytest.approx(2 * 60 / 3600)
    assert costs.glue_usd(20, workers=2) == pytest.approx(0.014667, abs=1e-6)
    assert costs.glue_usd(180, workers=2) == pytest.approx(2 * 180 / 3600 * 0.44)


def test_athena_bills_ten_megabytes_minimum_per_query():
    ten_mb = 10 * 1024**2
    assert costs.athena_billed_bytes([1, 2 * ten_mb]) == 3 * ten_mb
    assert costs.athena_usd([1024**4]) == pytest.approx(5.0)


def test_crawler_without_a_reported_figure_assumes_the_ten_minute_minimum():
    assert costs.crawler_usd(None) == pytest.approx(0.44 / 6)
    assert costs.crawler_usd(0.5) == pytest.approx(0.22)


def test_cost_lines_total_job_crawler_and_athena():
    report = RunReport(run_id="r", target="aws", raw_bytes=600_000, parquet_bytes=160_000)
    report.job = JobRun(run_id="r", seconds=90.0, details={"workers": 2})
    report.crawl = CrawlResult(tables=["sales_data_csv"], dpu_hours=None)
    report.queries = [{"bytes_read": 1000}, {"bytes_read": None}]
    text = "\n".join(cost_lines(report))
    # job 2 x 90 s = 0.05 DPU-h -> $0.022; crawler $0.0733; Athena 2 x 10 MB -> $0.0000954
    assert "Glue job: 2 x G.1X for 90s = 0.0500 DPU-hours x $0.44 = $0.0220" in text
    assert "Glue crawler: 0.1667 DPU-hours (assumed" in text
    assert "= $0.000095" in text
    assert "Total per run: $0.0954" in text
