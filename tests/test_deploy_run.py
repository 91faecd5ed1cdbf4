"""`run` on the aws target: the job, the crawl wait, the workflow, failed runs (against moto)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from moto.athena.models import QueryResults, athena_backends
from moto_fixtures import ACCOUNT, CRAWLER, JOB, REGION, STEM, WORKFLOW
from sql_blocks import ddl_names
from test_deploy_server import CHART_RESULTS, EMPTY_RESULT, OTHER_RESULT

import deploy
from pipeline import infra
from pipeline.config import PipelineConfig
from pipeline.errors import (
    CrawlerError,
    JobRunFailed,
    UsageError,
    WorkflowRunFailed,
)
from pipeline.runner import RunOptions, run
from pipeline.sql import analytic_names
from pipeline.targets.aws import AwsTarget, run_aws_crawler

PREVIOUS = {"Status": "SUCCEEDED", "StartTime": datetime(2026, 11, 26, 9, 0, 0, tzinfo=UTC)}
THIS_ONE = {"Status": "SUCCEEDED", "StartTime": datetime(2026, 11, 27, 12, 0, 3, tzinfo=UTC)}
# StartCrawler's answer, by AWS's clock: one second before the crawl's own StartTime.
AWS_DATE = "Fri, 27 Nov 2026 12:00:02 GMT"


def test_aws_target_uploads_inputs_and_script_crawls_and_runs_the_job(deployed, config, tmp_path):
    sales = tmp_path / "sales_data.csv"
    sales.write_text(
        "transaction_id,date,customer_id,product,quantity,unit_price,region,total_amount\nT1,2024-01-01,C1,Desk,1,9.50,North,9.50\n"
    )
    customers = tmp_path / "customer_demographics.json"
    customers.write_text('{"customer_id": "C1"}\n')
    target = AwsTarget(config, clients=deployed, poll_seconds=0, sleep=lambda _: None)

    target.check_ready()
    uploaded = target.upload(sales, customers).uris
    crawl = target.crawl()
    job = target.run_job("run-42")

    s3 = deployed.s3
    assert uploaded == [
        "s3://test-sales-raw/input/sales_data_csv/sales_data.csv",
        "s3://test-sales-raw/input/customer_demographics_json/customer_demographics.json",
    ]
    got = s3.get_object(Bucket="test-sales-raw", Key="input/sales_data_csv/sales_data.csv")
    assert got["Body"].read() == sales.read_bytes()
    got = s3.get_object(
        Bucket="test-sales-raw", Key="input/customer_demographics_json/customer_demographics.json"
    )
    assert got["Body"].read() == b'{"customer_id": "C1"}\n'
    script = s3.get_object(Bucket="test-sales-scripts", Key="scripts/glue_etl_job.py")
    assert script["Body"].read() == infra.JOB_SCRIPT.read_bytes()
    crawler = deployed.glue.get_crawler(Name="test-sales-raw-crawler")["Crawler"]
    assert crawler["LastCrawl"]["Status"] == "COMPLETED"
    assert crawl.status == "COMPLETED"
    assert crawl.dpu_hours == 100  # moto's fixed figure for every crawl
    job_run = deployed.glue.get_job_run(
        JobName="test-sales-etl-job", RunId=job.details["job_run_id"]
    )
    assert job_run["JobRun"]["Arguments"]["--run_id"] == "run-42"

    assert job.details["state"] == "SUCCEEDED"
    assert (job.details["workers"], job.details["worker_type"]) == (2, "G.1X")
    # moto reports ExecutionTime=123 s: 2 workers x 1 DPU x 123 s / 3600.
    assert job.seconds == 123
    assert job.details["dpu_hours"] == pytest.approx(2 * 123 / 3600)
    assert job.details["glue_usd"] == pytest.approx(2 * 123 / 3600 * 0.44)
    # moto's job runs no code: put the metrics file the job would write, read it back.
    s3.put_object(
        Bucket="test-sales-processed", Key="_runs/run-42.json", Body=b'{"run_id": "run-42"}'
    )
    assert target.read_metrics("run-42") == {"run_id": "run-42"}


class _GlueRuns:
    """A stand-in for Glue's GetJobRun that walks through the given states."""

    def __init__(self, *states, error=None):
        self.states = list(states)
        self.error = error

    def get_job_run(self, JobName, RunId):
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        run = {"Id": RunId, "JobRunState": state, "LogGroupName": "/aws-glue/jobs"}
        if self.error and state == "FAILED":
            run["ErrorMessage"] = self.error
        return {"JobRun": run}


def test_failed_job_run_names_the_error_and_the_log_streams(caplog):
    glue = _GlueRuns("STARTING", "RUNNING", "RUNNING", "FAILED", error="reconciliation failed")
    sleeps = []
    caplog.set_level("INFO", logger="pipeline.infra")

    with pytest.raises(JobRunFailed) as failed:
        infra.wait_for_job_run(glue, "job", "jr_1", first_poll=5, max_poll=15, sleep=sleeps.append)

    message = str(failed.value)
    assert "jr_1 FAILED: reconciliation failed" in message
    assert "/aws-glue/jobs/error" in message and "/aws-glue/jobs/output" in message
    assert "stream jr_1" in message
    assert sleeps == [5, 10, 15]  # back-off doubles up to the cap
    # One log line per state change, not per poll.
    changes = [r.getMessage() for r in caplog.records if r.getMessage().startswith("job run")]
    assert changes == ["job run jr_1: STARTING", "job run jr_1: RUNNING", "job run jr_1: FAILED"]


def test_the_workflow_is_an_aws_target_stage_only(tmp_path):
    from pipeline.config import PipelineConfig

    local = PipelineConfig(prefix="test-sales", target="local", lake=tmp_path)
    with pytest.raises(UsageError, match="the local target has no workflow"):
        run(local, RunOptions(workflow=True))


def _queue_athena_results() -> None:
    """What Athena returns to the run, in its order: the DDL, then each query once."""
    results = [EMPTY_RESULT for _ in ddl_names()]
    results += [CHART_RESULTS.get(name, OTHER_RESULT) for name in analytic_names()]
    queue = athena_backends[ACCOUNT][REGION].query_results_queue
    queue.extend(QueryResults(rows=r["rows"], column_info=r["column_info"]) for r in results)


def _metrics(run_id: str) -> dict:
    """The ``_runs/<run_id>.json`` the Glue job writes (moto's job runs no code)."""
    return {
        "run_id": run_id,
        "rows_read": {"sales": 200, "customers": 40},
        "rows_written": {"enriched": 190, "sales_summary": 30},
        "rows_quarantined": {"sales:bad_amount": 10},
        "quarantined_total": 10,
        "duplicates_dropped": 0,
        "unknown_customers": 0,
    }


@pytest.fixture
def cli_deployed(aws, glue_workflows, tmp_path, monkeypatch, capsys):
    """`deploy.py up` run once; the job stood in for; polls that do not sleep.

    When the workflow starts a job run, its metrics file appears (moto's job runs no
    code). Returns the job run ids started and the sleeps asked for.
    """
    monkeypatch.setenv("PIPELINE_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    assert deploy.main(["up", "--prefix", "test-sales"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    sleeps: list[float] = []
    monkeypatch.setattr(AwsTarget.__init__, "__defaults__", (None, 5.0, sleeps.append))
    started: list[str] = []

    def write(job_run_id: str) -> None:
        started.append(job_run_id)
        aws.s3.put_object(
            Bucket=f"{STEM}-processed",
            Key=f"_runs/{job_run_id}.json",
            Body=json.dumps(_metrics(job_run_id)),
        )

    glue_workflows.on_job_start.append(write)
    return started, sleeps


def test_run_workflow_follows_each_node_then_queries_and_charts(
    aws, cli_deployed, tmp_path, capsys
):
    _queue_athena_results()
    charts = tmp_path / "charts"
    argv = ["run", "--workflow", "--prefix", "test-sales", "--rows", "200", "--customers", "40"]

    assert deploy.main([*argv, "--charts-dir", str(charts)]) == 0, capsys.readouterr().err

    out = capsys.readouterr().out
    [job_run_id], sleeps = cli_deployed
    [run] = aws.glue.get_workflow_runs(Name=WORKFLOW)["Runs"]
    run_id = run["WorkflowRunId"]
    assert run["Status"] == "COMPLETED"
    # Each node's state change, in order, then the run's end; polls back off 5 s, 10 s.
    # deploy.py logs to stdout.
    follow = [
        line[line.index("workflow run ") :]
        for line in out.splitlines()
        if f"workflow run {run_id}:" in line
    ]
    assert follow == [
        f"workflow run {run_id}: {CRAWLER} RUNNING",
        f"workflow run {run_id}: {JOB} NOT STARTED",
        f"workflow run {run_id}: RUNNING",
        f"workflow run {run_id}: {CRAWLER} SUCCEEDED",
        f"workflow run {run_id}: {JOB} RUNNING",
        f"workflow run {run_id}: {JOB} SUCCEEDED",
        f"workflow run {run_id}: COMPLETED",
    ]
    assert sleeps == [5.0, 10.0]
    # One workflow stage in place of crawl and etl; the run is named by the job run.
    stages = out.split("Stage durations\n")[1].split("\n\n")[0].splitlines()
    assert [line.split()[0] for line in stages] == [
        "generate", "upload", "workflow", "tables", "queries", "charts", "report",
    ]  # fmt: skip
    assert f"Run {job_run_id} on target 'aws'" in out
    assert "quarantined 10 of 240 rows read = 4.17% (threshold 5.00%): OK" in out
    assert len(list(charts.glob("*.png"))) == 6
    [job_run] = aws.glue.get_job_runs(JobName=JOB)["JobRuns"]
    assert job_run["Id"] == job_run_id and "--run_id" not in job_run.get("Arguments", {})

    assert deploy.main(["status", "--prefix", "test-sales"]) == 0
    [row] = [line for line in capsys.readouterr().out.splitlines() if WORKFLOW + " " in line]
    assert row.split()[:3] == ["glue-workflow", WORKFLOW, "present"]
    assert f"last run={run_id} COMPLETED started " in row
    assert " completed " in row
    assert row.endswith(f"nodes: {CRAWLER}=SUCCEEDED, {JOB}=SUCCEEDED")


@pytest.mark.parametrize(
    ("crawl", "job", "expected"),
    [
        (
            "FAILED",
            "SUCCEEDED",
            f"crawler {CRAWLER} FAILED: Internal Service Exception; logs: CloudWatch log group "
            f"/aws-glue/crawlers, stream {CRAWLER}",
        ),
        (
            "SUCCEEDED",
            "FAILED",
            f"job {JOB} run jr_",
        ),
    ],
    ids=["crawl-failed", "job-failed"],
)
def test_run_workflow_fails_in_one_line_naming_the_node(
    aws, cli_deployed, glue_workflows, capsys, crawl, job, expected
):
    glue_workflows.crawl_state, glue_workflows.job_state = crawl, job

    assert deploy.main(["run", "--workflow", "--prefix", "test-sales", "--rows", "50"]) == 1

    [line] = capsys.readouterr().err.strip().splitlines()
    [run] = aws.glue.get_workflow_runs(Name=WORKFLOW)["Runs"]
    assert line.startswith(
        f"error: stage 'workflow' failed: workflow run {run['WorkflowRunId']}: {expected}"
    )
    if job == "FAILED":
        assert "FAILED: An error occurred while calling o94.parquet" in line
        assert "logs: CloudWatch log groups test/log/error and test/log/output" in line
    else:
        assert aws.glue.get_job_runs(JobName=JOB)["JobRuns"] == []  # the job never ran


class _CannedGlue:
    """GetWorkflowRun answers, one per poll (how AWS answers: the run and its graph)."""

    def __init__(self, answers):
        self.answers = list(answers)

    def get_workflow_run(self, Name, RunId, IncludeGraph):  # noqa: N803 - boto3's names
        assert (Name, IncludeGraph) == (WORKFLOW, True)
        return {"Run": self.answers.pop(0)}


def _job_node(state: str, **extra) -> dict:
    run = {"Id": "jr_1", "JobRunState": state, "LogGroupName": "/aws-glue/jobs", **extra}
    return {"Type": "JOB", "Name": JOB, "JobDetails": {"JobRuns": [run]}}


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            {"Status": "RUNNING", "Graph": {"Nodes": [_job_node("TIMEOUT")]}},
            f"workflow run wr_1: job {JOB} run jr_1 TIMEOUT: no error message; logs: CloudWatch "
            "log groups /aws-glue/jobs/error and /aws-glue/jobs/output, stream jr_1-driver",
        ),
        (
            {"Status": "RUNNING", "Graph": {"Nodes": [_job_node("STOPPED")]}},
            f"workflow run wr_1: job {JOB} run jr_1 STOPPED: no error message; logs: CloudWatch "
            "log groups /aws-glue/jobs/error and /aws-glue/jobs/output, stream jr_1-driver",
        ),
        (
            {"Status": "STOPPED", "Graph": {"Nodes": []}},
            "workflow run wr_1 STOPPED: no error message (no node ran); logs: the run's "
            f"history in the Glue console, Workflows, {WORKFLOW}",
        ),
        (
            {"Status": "ERROR", "ErrorMessage": "Concurrent runs exceeded", "Graph": {}},
            "workflow run wr_1 ERROR: Concurrent runs exceeded (no node ran); logs: the run's "
            f"history in the Glue console, Workflows, {WORKFLOW}",
        ),
        (
            {
                "Status": "COMPLETED",
                "Graph": {
                    "Nodes": [
                        {
                            "Type": "CRAWLER",
                            "Name": CRAWLER,
                            "CrawlerDetails": {"Crawls": [{"State": "SUCCEEDED"}]},
                        },
                        {"Type": "JOB", "Name": JOB, "JobDetails": {}},
                    ]
                },
            },
            f"workflow run wr_1 COMPLETED without a successful run of job {JOB} "
            f"({CRAWLER}=SUCCEEDED, {JOB}=NOT STARTED); see the run in the Glue console, "
            "Workflows",
        ),
    ],
    ids=["job-timeout", "job-stopped", "run-stopped", "run-error", "job-never-ran"],
)
def test_a_workflow_run_that_ends_badly_is_one_line(config, answer, message):
    sleeps: list[float] = []
    with pytest.raises(WorkflowRunFailed) as failed:
        infra.wait_for_workflow_run(
            _CannedGlue([{"Status": "RUNNING", "Graph": {"Nodes": []}}, answer]),
            config,
            "wr_1",
            sleep=sleeps.append,
        )
    assert str(failed.value) == message
    assert sleeps == [5.0]


def test_run_dry_run_prints_what_run_would_do_and_touches_nothing(
    aws_env, no_aws, capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIPELINE_LAKE", str(tmp_path / "lake"))
    argv = ["run", "--dry-run", "--prefix", "dry-test"]

    assert deploy.main(argv) == 0

    out, err = capsys.readouterr()
    assert err == ""
    [line] = out.splitlines()
    assert line.startswith("run would: generate data (or take --sales-path/--customers-path)")
    assert "start crawler dry-test-raw-crawler" in line
    assert "start job dry-test-etl-job" in line
    assert "workgroup dry-test-workgroup" in line
    assert list(tmp_path.iterdir()) == []  # nothing generated, no lake


class _CrawlerAnswers:
    """Glue's GetCrawler answers in the given order; more reads than answers fail the test."""

    class exceptions:  # noqa: N801  (the boto3 client attribute name)
        CrawlerRunningException = type("CrawlerRunningException", (Exception,), {})
        EntityNotFoundException = type("EntityNotFoundException", (Exception,), {})

    def __init__(self, *answers, date=None, already_running=False):
        self.answers = list(answers)
        self.date = date
        self.already_running = already_running
        self.starts = 0

    def start_crawler(self, Name):  # noqa: N803
        self.starts += 1
        if self.already_running:
            raise self.exceptions.CrawlerRunningException(Name)
        headers = {"date": self.date} if self.date else {}
        return {"ResponseMetadata": {"HTTPHeaders": headers}}

    def get_crawler(self, Name):  # noqa: N803
        assert self.answers, "polled after the crawl should have been over"
        state, last = self.answers.pop(0)
        crawler = {"Name": Name, "State": state}
        if last is not None:
            crawler["LastCrawl"] = last
        return {"Crawler": crawler}


def _crawl_config():
    return PipelineConfig(prefix="crawl", target="aws")


def test_the_crawl_wait_does_not_take_the_previous_crawl_for_this_one():
    glue = _CrawlerAnswers(
        ("READY", PREVIOUS),  # read before the start
        ("READY", PREVIOUS),  # Glue has not begun the new crawl yet
        ("READY", PREVIOUS),
        ("RUNNING", PREVIOUS),
        ("READY", THIS_ONE),
        date=AWS_DATE,
    )
    sleeps = []

    last = run_aws_crawler(_crawl_config(), glue, poll_seconds=10, sleep=sleeps.append)

    assert last == THIS_ONE
    assert sleeps == [10, 10, 10]
    assert glue.answers == []


def test_the_crawl_wait_allows_for_a_skewed_clock_but_not_for_an_old_crawl():
    # No Date header: the start is timed by the local clock, 2 minutes ahead of AWS's.
    # A crawl someone else ran 10 minutes ago finished between the look and the start.
    now = datetime.now(UTC)
    someone_elses = {"Status": "SUCCEEDED", "StartTime": now - timedelta(minutes=10)}
    this_one = {"Status": "SUCCEEDED", "StartTime": now - timedelta(minutes=2)}
    glue = _CrawlerAnswers(
        ("READY", None),  # read before the start: never crawled
        ("READY", someone_elses),
        ("READY", this_one),
    )
    sleeps = []

    last = run_aws_crawler(_crawl_config(), glue, poll_seconds=5, sleep=sleeps.append)

    assert last == this_one
    assert sleeps == [5]


def test_a_previous_crawl_within_the_clock_skew_allowance_is_still_not_this_one():
    # Started 3 minutes before this run's start: inside the 5-minute allowance, but it
    # is the crawl GetCrawler showed before the start.
    recent = {"Status": "SUCCEEDED", "StartTime": datetime(2026, 11, 27, 11, 57, tzinfo=UTC)}
    glue = _CrawlerAnswers(
        ("READY", recent),  # read before the start
        ("READY", recent),
        ("READY", THIS_ONE),
        date=AWS_DATE,
    )
    sleeps = []

    last = run_aws_crawler(_crawl_config(), glue, poll_seconds=5, sleep=sleeps.append)

    assert last == THIS_ONE
    assert sleeps == [5]


def test_a_crawl_already_running_is_waited_for():
    running_one = {"Status": "SUCCEEDED", "StartTime": datetime(2026, 11, 26, 10, 0, tzinfo=UTC)}
    glue = _CrawlerAnswers(
        ("RUNNING", PREVIOUS),  # read before the start
        ("RUNNING", PREVIOUS),
        ("READY", running_one),
        already_running=True,
    )
    sleeps = []

    last = run_aws_crawler(_crawl_config(), glue, poll_seconds=5, sleep=sleeps.append)

    assert last == running_one
    assert (glue.starts, sleeps) == (1, [5])


def test_a_crawl_that_never_shows_up_times_out_saying_so():
    glue = _CrawlerAnswers(("READY", PREVIOUS), ("READY", PREVIOUS), date=AWS_DATE)

    with pytest.raises(CrawlerError) as timed_out:
        run_aws_crawler(_crawl_config(), glue, timeout_seconds=0, poll_seconds=5)

    assert str(timed_out.value) == (
        "crawler crawl-raw-crawler is READY but its last crawl is still the one started "
        "2026-11-26 09:00:00+00:00, not this run's, after 0s; check it in the Glue console"
    )


def test_a_second_run_on_moto_waits_for_its_own_crawl(deployed, config):
    first = run_aws_crawler(config, deployed.glue, poll_seconds=0, timeout_seconds=5)
    second = run_aws_crawler(config, deployed.glue, poll_seconds=0, timeout_seconds=5)

    assert second["StartTime"] > first["StartTime"]
    assert len(deployed.glue.list_crawls(CrawlerName="test-sales-raw-crawler")["Crawls"]) == 2


class _FailedRun:
    def __init__(self, **run):
        self.run = run

    def get_job_run(self, JobName, RunId):  # noqa: N803
        return {"JobRun": {"Id": RunId, "JobRunState": "FAILED", **self.run}}


def test_a_failed_run_names_the_glue_5_log_groups_and_the_driver_stream():
    glue = _FailedRun(ErrorMessage="reconciliation failed", LogGroupName="/aws-glue/jobs")

    with pytest.raises(JobRunFailed) as failed:
        infra.wait_for_job_run(glue, "job", "jr_1", sleep=lambda _: None)

    assert str(failed.value) == (
        "job run jr_1 FAILED: reconciliation failed; logs: CloudWatch log groups "
        "/aws-glue/jobs/error (Spark, GlueLogger) and /aws-glue/jobs/output (print, stderr), "
        "stream jr_1-driver"
    )


def test_a_failed_run_with_custom_log_prefixes_names_them():
    glue = _FailedRun(
        LogGroupName="/aws-glue/jobs/",
        Arguments={"--custom-logGroup-prefix": "/team/etl", "--custom-logStream-prefix": "sales"},
    )

    with pytest.raises(JobRunFailed) as failed:
        infra.wait_for_job_run(glue, "job", "jr_2", sleep=lambda _: None)

    assert str(failed.value).endswith(
        "no error message; logs: CloudWatch log groups /team/etl/error (Spark, GlueLogger) "
        "and /team/etl/output (print, stderr), stream sales-driver"
    )
