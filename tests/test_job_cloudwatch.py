"""The job's run figures in CloudWatch (namespace SalesPipeline), for the quarantine alarm.

The pure shape is checked against hand-written data; publishing goes to moto (in-process,
then a real job run, ``glue_etl_job.main`` on the shared Spark session, sending to moto's
server over HTTP); a run that cannot publish ends failed (exit code 1) with one line,
after writing its outputs and its metrics file.
"""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from daily_runs import run_here
from moto import mock_aws

from pipeline.config import PipelineConfig
from pipeline.infra import plan
from pipeline.infra.job import default_arguments
from sales_etl import arguments, contracts
from sales_etl import metrics as job_metrics

NAMESPACE = "SalesPipeline"
PREFIX = "test-sales"
WHEN = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)

# A run's metrics as the job writes them (only the keys the publisher reads).
METRICS = {
    "rows_read": {"sales": 970, "customers": 30},
    "rows_written": {"enriched": 930, "sales_summary": 12},
    "quarantined_total": 40,
    "rows_quarantined_by_source": {
        "sales": {"invalid_date": 25, "amount_mismatch": 10},
        "customers": {"invalid_json": 5},
    },
    "duplicates_dropped": 5,
    "unknown_customers": 7,
}


def _by_key(data: list[dict]) -> dict[tuple, tuple]:
    return {
        (d["MetricName"], tuple((x["Name"], x["Value"]) for x in d["Dimensions"])): (
            d["Value"],
            d["Unit"],
        )
        for d in data
    }


def test_metric_data_carries_every_figure_with_the_pipeline_dimension():
    data = job_metrics.cloudwatch_metric_data(METRICS, PREFIX, WHEN)
    p = ("Pipeline", PREFIX)
    assert _by_key(data) == {
        ("SalesRowsRead", (p,)): (970.0, "Count"),
        ("CustomerRowsRead", (p,)): (30.0, "Count"),
        ("RowsWritten", (p,)): (930.0, "Count"),
        ("RowsQuarantined", (p,)): (40.0, "Count"),
        ("ExactDuplicatesDropped", (p,)): (5.0, "Count"),
        ("UnknownCustomers", (p,)): (7.0, "Count"),
        ("QuarantineRate", (p,)): (0.04, "None"),  # 40 of 970 + 30
        ("RowsQuarantined", (p, ("Source", "customers"), ("Reason", "invalid_json"))): (
            5.0,
            "Count",
        ),
        ("RowsQuarantined", (p, ("Source", "sales"), ("Reason", "amount_mismatch"))): (
            10.0,
            "Count",
        ),
        ("RowsQuarantined", (p, ("Source", "sales"), ("Reason", "invalid_date"))): (
            25.0,
            "Count",
        ),
    }
    assert {d["Timestamp"] for d in data} == {WHEN}


def test_rate_is_zero_when_nothing_was_read():
    empty = {**METRICS, "rows_read": {"sales": 0, "customers": 0}, "quarantined_total": 0}
    assert job_metrics.quarantine_rate(empty) == 0.0


JOB_ARGV = ["job", "--sales_path", "s", "--customers_path", "c", "--output_path", "o"]


def test_namespace_without_prefix_is_a_bad_argument():
    argv = JOB_ARGV
    with pytest.raises(contracts.FatalInputError, match="go together"):
        arguments.parse_args([*argv, "--metrics_namespace", NAMESPACE])
    given = ["--metrics_namespace", NAMESPACE, "--pipeline_prefix", PREFIX]
    args = arguments.parse_args([*argv, *given, "--aws_region", "us-east-1"])
    assert (args.metrics_namespace, args.pipeline_prefix) == (NAMESPACE, PREFIX)


@pytest.fixture
def no_region(monkeypatch):
    """Neither region variable set, and no AWS config file botocore could read one from."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")


def test_the_region_is_the_argument_else_aws_region_else_aws_default_region(no_region, monkeypatch):
    publish = [*JOB_ARGV, "--metrics_namespace", NAMESPACE, "--pipeline_prefix", PREFIX]
    # Nowhere to publish: refused before anything is written, in one line.
    with pytest.raises(contracts.FatalInputError, match="needs a region: pass --aws_region"):
        arguments.parse_args(publish)
    assert arguments.parse_args(JOB_ARGV).aws_region is None  # not publishing: not needed
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert arguments.parse_args(publish).aws_region == "eu-west-1"
    monkeypatch.setenv("AWS_REGION", "eu-central-1")  # what Glue's container may set alone
    assert arguments.parse_args(publish).aws_region == "eu-central-1"
    given = arguments.parse_args([*publish, "--aws_region", "ap-southeast-2"])
    assert given.aws_region == "ap-southeast-2"


def test_publishing_uses_the_job_region_when_the_environment_names_none(aws_env, no_region):
    with mock_aws():
        assert job_metrics.publish_metrics(METRICS, NAMESPACE, PREFIX, "eu-west-1") == 10
        there = boto3.client("cloudwatch", region_name="eu-west-1")
        elsewhere = boto3.client("cloudwatch", region_name="us-east-1")
        pipeline = [{"Name": "Pipeline", "Value": PREFIX}]
        assert _stat(there, "QuarantineRate", pipeline) == pytest.approx(0.04)
        assert elsewhere.list_metrics(Namespace=NAMESPACE)["Metrics"] == []


def test_the_alarm_watches_a_metric_the_job_publishes():
    """The job's arguments as the job definition passes them, parsed by the job; its
    metric data; and the alarm of the same deployment's plan: namespace, metric name and
    dimensions must be among what the job sends."""
    config = PipelineConfig(prefix=PREFIX, target="aws", region="eu-west-1", account_id="1" * 12)
    default_args = default_arguments(config)
    argv = ["job"] + [x for pair in default_args.items() for x in pair]
    args = arguments.parse_args(argv)
    assert args.aws_region == "eu-west-1"
    data = job_metrics.cloudwatch_metric_data(METRICS, args.pipeline_prefix, WHEN)
    [alarm] = [r for r in plan(config) if r.kind == "cloudwatch-alarm"]
    assert alarm.settings["Namespace"] == args.metrics_namespace
    sent = {(d["MetricName"], json.dumps(d["Dimensions"])) for d in data}
    assert (alarm.settings["MetricName"], json.dumps(alarm.settings["Dimensions"])) in sent


def _stat(cw, name: str, dims: list[dict], stat: str = "Maximum") -> float | None:
    now = datetime.now(UTC)
    points = cw.get_metric_statistics(
        Namespace=NAMESPACE,
        MetricName=name,
        Dimensions=dims,
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(hours=1),
        Period=300,
        Statistics=[stat],
    )["Datapoints"]
    return points[0][stat] if points else None


def test_published_figures_read_back_from_cloudwatch(aws_env):
    with mock_aws():
        cw = boto3.client("cloudwatch", region_name="us-east-1")
        assert job_metrics.publish_metrics(METRICS, NAMESPACE, PREFIX, client=cw) == 10
        pipeline = [{"Name": "Pipeline", "Value": PREFIX}]
        assert _stat(cw, "QuarantineRate", pipeline) == pytest.approx(0.04)
        assert _stat(cw, "RowsWritten", pipeline) == 930
        by_reason = [*pipeline, {"Name": "Source", "Value": "sales"}]
        by_reason.append({"Name": "Reason", "Value": "invalid_date"})
        assert _stat(cw, "RowsQuarantined", by_reason) == 25
        names = {m["MetricName"] for m in cw.list_metrics(Namespace=NAMESPACE)["Metrics"]}
        assert names == {
            "SalesRowsRead",
            "CustomerRowsRead",
            "RowsWritten",
            "RowsQuarantined",
            "ExactDuplicatesDropped",
            "UnknownCustomers",
            "QuarantineRate",
        }


# --- the real job, in this process ----------------------------------------------------------

HEADER = "transaction_id,date,customer_id,product,quantity,unit_price,region,total_amount"
SALES = [
    "T1,2025-07-01,C1,Mouse,2,25.50,North,51.00",
    "T2,2025-07-02,C2,Lamp,1,45.25,South,45.25",
    "T3,2025-08-03,C1,Desk,1,349.00,East,349.00",
    "T4,2025-13-01,C1,Mouse,1,25.50,North,25.50",  # invalid_date
]
CUSTOMERS = [
    {"customer_id": "C1", "age_group": "26-35", "membership_tier": "Gold"},
    {"customer_id": "C2", "age_group": "36-45", "membership_tier": "Silver"},
]


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    (tmp_path / "sales.csv").write_text("\n".join([HEADER, *SALES]) + "\n")
    (tmp_path / "customers.json").write_text("\n".join(json.dumps(c) for c in CUSTOMERS) + "\n")
    return tmp_path


def _run(spark, inputs: Path, monkeypatch, endpoint: str, *region: str) -> int:
    """``glue_etl_job.main`` with AWS_ENDPOINT_URL naming ``endpoint``; its exit code."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    publish = ["--metrics_namespace", NAMESPACE, "--pipeline_prefix", PREFIX, *region]
    sales, customers = inputs / "sales.csv", inputs / "customers.json"
    return run_here(spark, sales, customers, inputs / "out", "r1", *publish)


def test_a_job_run_publishes_its_figures(spark, inputs, moto_server, no_region, monkeypatch):
    # The region only as the job definition passes it: none in the environment.
    assert _run(spark, inputs, monkeypatch, moto_server, "--aws_region", "us-east-1") == 0
    cw = boto3.client("cloudwatch", region_name="us-east-1", endpoint_url=moto_server)
    pipeline = [{"Name": "Pipeline", "Value": PREFIX}]
    assert _stat(cw, "SalesRowsRead", pipeline) == 4
    assert _stat(cw, "CustomerRowsRead", pipeline) == 2
    assert _stat(cw, "RowsWritten", pipeline) == 3
    assert _stat(cw, "QuarantineRate", pipeline) == pytest.approx(1 / 6)
    metrics = json.loads((inputs / "out" / "_runs" / "r1.json").read_text())
    assert metrics["cloudwatch"] == {"namespace": NAMESPACE, "pipeline": PREFIX, "data": 8}


def test_a_run_that_cannot_publish_fails_after_writing_everything(
    spark, inputs, aws_env, monkeypatch, capsys
):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    assert _run(spark, inputs, monkeypatch, closed) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("ERROR: job failed: could not publish the run's metrics to CloudWatch")
    metrics = json.loads((inputs / "out" / "_runs" / "r1.json").read_text())
    assert metrics["status"] == "failed"
    assert metrics["rows_written"]["enriched"] == 3  # the data is written all the same
    assert sorted(p.name for p in (inputs / "out" / "enriched").glob("year=*/month=*")) == [
        "month=7",
        "month=8",
    ]
