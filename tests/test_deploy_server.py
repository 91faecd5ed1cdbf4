"""deploy.py end to end as a subprocess, against moto's server through --endpoint-url.

This is how a person points the tool at LocalStack: nothing in-process, only the CLI.
moto runs no Spark and no SQL, so the test stands in for the two engines exactly where
AWS would do work: it puts the metrics file the Glue job writes, and queues the result
sets Athena would return (moto's ``/moto-api/static/athena/query-results`` API).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import requests
from moto_fixtures import REGION
from sql_blocks import ddl_names

from pipeline.sql import analytic_names

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "cli-sales"
# deploy.py names the buckets for the caller's account and region (moto's account).
BUCKET = "cli-sales-123456789012-us-east-1"
RUN_ID = "run-cli-test"

pytestmark = pytest.mark.slow


def _deploy(endpoint: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(cwd),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "PIPELINE_LAKE": str(cwd / "lake"),
        "MPLBACKEND": "Agg",
    }
    cmd = [sys.executable, str(ROOT / "deploy.py"), *args, "--prefix", PREFIX]
    cmd += ["--endpoint-url", endpoint]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _result(columns: list[tuple[str, str]], rows: list[tuple]) -> dict:
    """One Athena result set in moto's format: header row first, then the data rows."""
    info = [
        {"Name": n, "Label": n, "Type": t, "Precision": 0, "Scale": 0, "Nullable": "NULLABLE"}
        for n, t in columns
    ]
    cells = [[n for n, _ in columns], *[[str(v) for v in row] for row in rows]]
    return {
        "rows": [{"Data": [{"VarCharValue": v} for v in r]} for r in cells],
        "column_info": info,
    }


CHART_RESULTS = {
    "revenue_by_region": _result(
        [
            ("region", "varchar"),
            ("total_revenue", "double"),
            ("transaction_count", "bigint"),
            ("avg_transaction_value", "double"),
        ],
        [("North", 1200.5, 10, 120.05), ("South", 800.0, 8, 100.0)],
    ),
    "top_products": _result(
        [
            ("product", "varchar"),
            ("total_revenue", "double"),
            ("units_sold", "bigint"),
            ("transaction_count", "bigint"),
        ],
        [("Laptop", 1500.0, 3, 3), ("Mouse", 300.0, 30, 12)],
    ),
    "monthly_trend": _result(
        [
            ("year", "integer"),
            ("month", "integer"),
            ("total_revenue", "double"),
            ("transaction_count", "bigint"),
        ],
        [(2024, 1, 900.0, 9), (2024, 2, 1100.5, 9)],
    ),
    "customer_tiers": _result(
        [
            ("membership_tier", "varchar"),
            ("total_revenue", "double"),
            ("transaction_count", "bigint"),
            ("revenue_share_pct", "double"),
        ],
        [("Gold", 1500.0, 8, 75.0), ("unknown", 500.5, 10, 25.0)],
    ),
    "age_group_analysis": _result(
        [
            ("age_group", "varchar"),
            ("total_revenue", "double"),
            ("transaction_count", "bigint"),
            ("avg_transaction_value", "double"),
        ],
        [("18-25", 700.0, 7, 100.0), ("26-35", 1300.5, 11, 118.2)],
    ),
    "transaction_distribution": _result(
        [
            ("bin_lower", "double"),
            ("bin_upper", "double"),
            ("transaction_count", "bigint"),
            ("mean_amount", "double"),
            ("median_amount", "double"),
        ],
        [(10, 100, 12, 111.1, 95.0), (100, 1000, 6, 111.1, 95.0)],
    ),
}
OTHER_RESULT = _result([("value", "bigint")], [(1,)])
EMPTY_RESULT = _result([("result", "varchar")], [])


def _queue_athena_results(endpoint: str) -> int:
    """Queue, in the runner's order, what Athena returns: DDL, then every query once
    (the charts reuse the query stage's results)."""
    results = [EMPTY_RESULT for _ in ddl_names()]
    results += [CHART_RESULTS.get(name, OTHER_RESULT) for name in analytic_names()]
    response = requests.post(
        f"{endpoint}/moto-api/static/athena/query-results",
        json={"region": REGION, "results": results},
        timeout=10,
    )
    assert response.status_code == 201
    return len(results)


def _metrics() -> dict:
    """The ``_runs/<run_id>.json`` the Glue job writes (moto's job runs no code)."""
    return {
        "run_id": RUN_ID,
        "job_name": f"{PREFIX}-etl-job",
        "status": "SUCCEEDED",
        "rows_read": {"sales": 200, "customers": 40},
        "rows_written": {"enriched": 200, "sales_summary": 30},
        "rows_quarantined": {},
        "quarantined_total": 0,
        "duplicates_dropped": 0,
        "unknown_customers": 0,
    }


def test_deploy_cli_up_run_status_down_through_moto_server(moto_server, glue_workflows, tmp_path):
    """deploy.py as a person runs it against LocalStack: up with every flag; a schedule
    changed by hand put back; a run (crawl, then job) with the report; a run of the
    workflow; status; down, which leaves a foreign bucket."""
    endpoint = moto_server
    account = "123456789012"
    clients = {
        name: boto3.client(name, region_name=REGION, endpoint_url=endpoint)
        for name in ("s3", "glue", "athena", "events", "sns", "cloudwatch", "kms")
    }
    s3, glue, kms = clients["s3"], clients["glue"], clients["kms"]
    topic = f"arn:aws:sns:{REGION}:{account}:{PREFIX}-alerts"
    flags = [
        "--schedule", "cron(0 6 * * ? *)", "--alert-email", "oncall@example.com",
        "--max-quarantine-rate", "0.1",
    ]  # fmt: skip
    s3.create_bucket(Bucket="someone-elses-data")

    up = _deploy(endpoint, tmp_path, "up", *flags)
    assert up.returncode == 0, up.stderr
    key = _check_up(up.stdout, clients, topic)

    # A schedule changed by hand is put back by the next up with the same flags, and
    # nothing else is changed.
    glue.update_trigger(
        Name=f"{PREFIX}-workflow-start",
        TriggerUpdate={"Name": f"{PREFIX}-workflow-start", "Schedule": "cron(0 1 * * ? *)"},
    )
    again = _deploy(endpoint, tmp_path, "up", *flags)
    assert again.returncode == 0, again.stderr
    assert f"updated trigger {PREFIX}-workflow-start" in again.stdout
    assert "up: 1 change(s)" in again.stdout

    job_run = _check_run(endpoint, tmp_path, clients)

    workflow_job_runs: list[str] = []

    def write_metrics(job_run_id: str) -> None:
        workflow_job_runs.append(job_run_id)
        body = json.dumps({**_metrics(), "run_id": job_run_id})
        s3.put_object(Bucket=f"{BUCKET}-processed", Key=f"_runs/{job_run_id}.json", Body=body)

    glue_workflows.on_job_start.append(write_metrics)
    glue_workflows.steps_per_poll = 3  # the run ends at the process's first poll
    _queue_athena_results(endpoint)
    run = _deploy(
        endpoint, tmp_path, "run", "--workflow", "--rows", "200", "--customers", "40",
        "--charts-dir", str(tmp_path / "workflow-charts"),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    [workflow_run] = glue.get_workflow_runs(Name=f"{PREFIX}-workflow")["Runs"]
    assert workflow_run["Status"] == "COMPLETED"
    assert f"{PREFIX}-etl-job SUCCEEDED" in run.stdout
    [workflow_job_run] = workflow_job_runs
    assert workflow_job_run != job_run["Id"]

    status = _deploy(endpoint, tmp_path, "status")
    assert status.returncode == 0, status.stderr
    rows = {tuple(line.split()[:2]): line for line in status.stdout.splitlines()}
    assert "last crawl=COMPLETED" in rows[("glue-crawler", f"{PREFIX}-raw-crawler")]
    # The run GetJobRuns answers first: the newest on AWS, the oldest on moto.
    [first] = glue.get_job_runs(JobName=f"{PREFIX}-etl-job", MaxResults=1)["JobRuns"]
    assert first["Id"] in (job_run["Id"], workflow_job_run)
    assert f"last run={first['Id']} SUCCEEDED" in rows[("glue-job", f"{PREFIX}-etl-job")]
    assert (
        f"last run={workflow_run['WorkflowRunId']} COMPLETED"
        in rows[("glue-workflow", f"{PREFIX}-workflow")]
    )
    assert rows[("glue-workflow", f"{PREFIX}-workflow")].endswith(
        f"nodes: {PREFIX}-raw-crawler=SUCCEEDED, {PREFIX}-etl-job=SUCCEEDED"
    )
    assert "schedule=cron(0 6 * * ? *)" in rows[("glue-trigger", f"{PREFIX}-workflow-start")]
    assert "oncall@example.com" in rows[("sns-topic", f"{PREFIX}-alerts")]
    assert f"targets: {topic}" in rows[("events-rule", f"{PREFIX}-failures")]
    assert "QuarantineRate > 0.1" in rows[("cloudwatch-alarm", f"{PREFIX}-quarantine-rate")]
    assert rows[("kms-key", f"alias/{PREFIX}-alerts")].split()[2:] == [
        "Enabled",
        f"id={key['KeyId']}",
        "rotation=on",
    ]

    down = _deploy(endpoint, tmp_path, "down", "--yes")
    assert down.returncode == 0, down.stderr
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["someone-elses-data"]
    assert glue.list_jobs()["JobNames"] == []
    assert glue.list_workflows()["Workflows"] == []
    assert glue.get_triggers()["Triggers"] == []
    assert clients["events"].list_rules()["Rules"] == []
    assert clients["sns"].list_topics()["Topics"] == []
    assert clients["cloudwatch"].describe_alarms()["MetricAlarms"] == []
    # The key waits out KMS's shortest deletion window; its alias is gone.
    assert f"deleted KMS key {key['KeyId']} (scheduled for deletion in 7 days)" in down.stdout
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "PendingDeletion"
    assert kms.list_aliases(KeyId=key["KeyId"])["Aliases"] == []


def _check_up(stdout: str, clients: dict, topic: str) -> dict:
    """What up with every flag made, as it said and as AWS answers; returns the key."""
    glue, kms, s3 = clients["glue"], clients["kms"], clients["s3"]
    account = "123456789012"
    for line in (
        f"created bucket {BUCKET}-raw",
        f"created job {PREFIX}-etl-job",
        f"created workflow {PREFIX}-workflow",
        f"created trigger {PREFIX}-workflow-start (SCHEDULED)",
        f"created trigger {PREFIX}-workflow-after-crawl (CONDITIONAL)",
        f"created topic {PREFIX}-alerts",
        f"subscribed oncall@example.com to {PREFIX}-alerts",
        f"created rule {PREFIX}-failures",
        f"created alarm {PREFIX}-quarantine-rate",
    ):
        assert line in stdout
    script = s3.get_object(Bucket=f"{BUCKET}-scripts", Key="scripts/glue_etl_job.py")
    assert script["Body"].read() == (ROOT / "glue_etl_job.py").read_bytes()
    start = glue.get_trigger(Name=f"{PREFIX}-workflow-start")["Trigger"]
    assert (start["Type"], start["Schedule"], start["State"]) == (
        "SCHEDULED",
        "cron(0 6 * * ? *)",
        "ACTIVATED",
    )
    assert clients["events"].list_targets_by_rule(Rule=f"{PREFIX}-failures")["Targets"] == [
        {
            "Id": "alerts-topic",
            "Arn": topic,
            "RetryPolicy": {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400},
            "DeadLetterConfig": {"Arn": f"arn:aws:sqs:{REGION}:{account}:{PREFIX}-alerts-dlq"},
        }
    ]
    attributes = clients["sns"].get_topic_attributes(TopicArn=topic)["Attributes"]
    assert attributes["KmsMasterKeyId"] == f"arn:aws:kms:{REGION}:{account}:alias/{PREFIX}-alerts"
    # The topic's customer managed key, through its alias: ours, rotated, EventBridge's
    # and CloudWatch's to use.
    key = kms.describe_key(KeyId=f"alias/{PREFIX}-alerts")["KeyMetadata"]
    assert (key["KeyState"], key["KeySpec"], key["KeyManager"]) == (
        "Enabled",
        "SYMMETRIC_DEFAULT",
        "CUSTOMER",
    )
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is True
    assert {
        t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key["KeyId"])["Tags"]
    } == {"managed-by": "deploy.py", "pipeline-prefix": PREFIX}
    key_policy = json.loads(kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"])
    assert [s["Principal"] for s in key_policy["Statement"]] == [
        {"AWS": f"arn:aws:iam::{account}:root"},
        {"Service": "events.amazonaws.com"},
        {"Service": "cloudwatch.amazonaws.com"},
    ]
    assert f"created KMS key {key['KeyId']} (alias alias/{PREFIX}-alerts, rotation on)" in stdout
    [sub] = clients["sns"].list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert sub["Endpoint"] == "oncall@example.com"
    [alarm] = clients["cloudwatch"].describe_alarms(AlarmNames=[f"{PREFIX}-quarantine-rate"])[
        "MetricAlarms"
    ]
    assert (alarm["Threshold"], alarm["AlarmActions"]) == (0.1, [topic])
    return key


def _check_run(endpoint: str, cwd: Path, clients: dict) -> dict:
    """`run` (the crawl, then the job): inputs uploaded, the queries, the charts, the
    stages, the cost and the report; returns the job run."""
    s3, glue, athena = clients["s3"], clients["glue"], clients["athena"]
    s3.put_object(
        Bucket=f"{BUCKET}-processed", Key=f"_runs/{RUN_ID}.json", Body=json.dumps(_metrics())
    )
    queued = _queue_athena_results(endpoint)
    executions_before = len(athena.list_query_executions()["QueryExecutionIds"])
    charts = cwd / "charts"

    run = _deploy(
        endpoint, cwd, "run", "--rows", "200", "--customers", "40", "--run-id", RUN_ID,
        "--charts-dir", str(charts),
    )  # fmt: skip

    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    raw = s3.list_objects_v2(Bucket=f"{BUCKET}-raw", Prefix="input/")["Contents"]
    assert sorted(o["Key"] for o in raw) == [
        "input/customer_demographics_json/customer_demographics.json",
        "input/sales_data_csv/sales_data.csv",
    ]
    sales_csv = s3.get_object(Bucket=f"{BUCKET}-raw", Key="input/sales_data_csv/sales_data.csv")
    assert len(sales_csv["Body"].read().decode().splitlines()) == 201  # header + 200 rows
    assert glue.get_crawler(Name=f"{PREFIX}-raw-crawler")["Crawler"]["LastCrawl"]["Status"] == (
        "COMPLETED"
    )
    [job_run] = glue.get_job_runs(JobName=f"{PREFIX}-etl-job")["JobRuns"]
    assert job_run["JobRunState"] == "SUCCEEDED"
    assert job_run["Arguments"]["--run_id"] == RUN_ID
    executions = athena.list_query_executions()["QueryExecutionIds"]
    assert len(executions) - executions_before == queued
    assert sorted(p.name for p in charts.glob("*.png")) == [
        "01_revenue_by_region.png",
        "02_top_products.png",
        "03_monthly_trend.png",
        "04_customer_tiers.png",
        "05_age_group_analysis.png",
        "06_transaction_distribution.png",
    ]
    assert "Estimated cost" in run.stdout
    # The same stages, by the same names, as a local run.
    stages = run.stdout.split("Stage durations\n")[1].split("\n\n")[0].splitlines()
    assert [line.split()[0] for line in stages] == [
        "generate", "upload", "crawl", "etl", "tables", "queries", "charts", "report",
    ]  # fmt: skip
    # moto reports ExecutionTime=123 s: 2 G.1X workers x 1 DPU x 123 s = 0.0683 DPU-hours.
    assert "Glue job: 2 x G.1X for 123s = 0.0683 DPU-hours" in run.stdout
    _check_report_in_the_results_bucket(run.stdout, cwd, s3)
    return job_run


def _check_report_in_the_results_bucket(stdout: str, cwd: Path, s3) -> None:
    """The run's page, written beside the charts, is in the results bucket, encrypted,
    with a presigned link that serves it, signed for 15 minutes; its local path is the
    last line printed."""
    page = cwd / "report" / "index.html"
    lines = stdout.strip().splitlines()
    assert lines[-1] == f"Report: {page}"
    key = f"reports/{RUN_ID}.html"
    assert f"Report in S3: s3://{BUCKET}-athena-results/{key}" in lines
    [link] = [line.split(": ", 1)[1] for line in lines if line.startswith("Report link")]
    assert "Report link (valid 15 minutes): " in stdout
    head = s3.head_object(Bucket=f"{BUCKET}-athena-results", Key=key)
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ContentType"] == "text/html; charset=utf-8"
    assert parse_qs(urlsplit(link).query)["X-Amz-Expires"] == ["900"]
    served = requests.get(link, timeout=10)
    assert served.status_code == 200
    assert served.content == page.read_bytes()
    assert "Estimated cost" in served.text  # the aws run's cost lines are on the page
