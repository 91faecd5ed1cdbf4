"""Cost estimates at list prices, checked against hand-computed figures."""

import pytest

from pipeline import costs
from pipeline.config import PipelineConfig
from pipeline.targets import CrawlResult, JobRun, make_target


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
    target = make_target(PipelineConfig(prefix="costs", target="aws"))
    job = JobRun(run_id="r", seconds=90.0, details={"workers": 2})
    crawl = CrawlResult(tables=["sales_data_csv"], dpu_hours=None)
    text = "\n".join(target.cost_lines(job, crawl, [1000, 0], 600_000 + 160_000))
    # job 2 x 90 s = 0.05 DPU-h -> $0.022; crawler $0.0733; Athena 2 x 10 MB -> $0.0000954
    assert "Glue job: 2 x G.1X for 90s = 0.0500 DPU-hours x $0.44 = $0.0220" in text
    assert "Glue crawler: 0.1667 DPU-hours (assumed" in text
    assert "= $0.000095" in text
    assert "Total per run: $0.0954" in text


def test_a_local_run_has_no_cost_lines():
    target = make_target(PipelineConfig(prefix="costs", target="local"))
    job = JobRun(run_id="r", seconds=90.0)
    assert target.cost_lines(job, CrawlResult(), [1000], 760_000) == []
