"""The Glue job: its arguments, its drift and its uploaded script (against moto)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from moto_fixtures import (
    ACCOUNT,
    CUSTOMERS_URI,
    JOB,
    MARKS,
    ROLE_ARN,
    SALES_URI,
    assert_repaired,
    glue_tags,
)

from pipeline import infra
from pipeline.targets.aws import AwsTarget

DEFAULT_ARGUMENTS = {
    "--sales_path": SALES_URI,
    "--customers_path": CUSTOMERS_URI,
    "--output_path": "s3://test-sales-processed/",
    "--extra-py-files": "s3://test-sales-scripts/scripts/sales_etl.zip",
    "--job-language": "python",
    "--enable-metrics": "true",
    "--enable-continuous-cloudwatch-log": "true",
    "--metrics_namespace": "SalesPipeline",
    "--pipeline_prefix": "test-sales",
    "--aws_region": "us-east-1",
}


def _job_update(job: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The job's current definition as a JobUpdate, with ``changes`` (UpdateJob replaces)."""
    keep = (
        "Description",
        "Role",
        "ExecutionProperty",
        "Command",
        "DefaultArguments",
        "MaxRetries",
        "Timeout",
        "WorkerType",
        "NumberOfWorkers",
        "GlueVersion",
    )
    return {**{k: job[k] for k in keep if k in job}, **changes}


def _without(arguments: dict[str, str], name: str) -> dict[str, str]:
    return {k: v for k, v in arguments.items() if k != name}


class TestOneDeployment:
    """One `up` for these tests: they read the job, run it, put its script back, or change
    it by hand and check that the next `up` puts it back."""

    def test_upload_job_script_puts_it_through_the_clients_it_is_given(self, deployed_once, config):
        # No session can load this profile: a client built from the config would fail.
        unreachable = dataclasses.replace(config, profile="no-such-profile")
        deployed_once.s3.delete_object(Bucket="test-sales-scripts", Key="scripts/glue_etl_job.py")

        assert infra.upload_job_script(unreachable, deployed_once) is True
        script = deployed_once.s3.get_object(
            Bucket="test-sales-scripts", Key="scripts/glue_etl_job.py"
        )
        assert script["Body"].read() == infra.JOB_SCRIPT.read_bytes()
        assert infra.upload_job_script(unreachable, deployed_once) is False  # same bytes: no upload

    @pytest.mark.parametrize(
        "drifted",
        [
            {
                "Command": {
                    "Name": "glueetl",
                    "ScriptLocation": "s3://someone-elses-bucket/job.py",
                    "PythonVersion": "3",
                }
            },
            {"GlueVersion": "4.0"},
            {"WorkerType": "G.2X"},
            {"NumberOfWorkers": 10},
            {"DefaultArguments": {**DEFAULT_ARGUMENTS, "--output_path": "s3://other-processed/"}},
            {"DefaultArguments": _without(DEFAULT_ARGUMENTS, "--customers_path")},
            # Code the job would load and run with the Glue role: drift like an extra policy.
            {"DefaultArguments": {**DEFAULT_ARGUMENTS, "--extra-py-files": "s3://elsewhere/x.py"}},
        ],
        ids=[
            "script-location",
            "glue-version",
            "worker-type",
            "number-of-workers",
            "argument-changed",
            "argument-removed",
            "argument-added",
        ],
    )
    def test_up_puts_back_a_job_changed_by_hand(self, deployed_once, moto_updates, config, drifted):
        glue = deployed_once.glue
        job = glue.get_job(JobName=JOB)["Job"]
        glue.update_job(JobName=JOB, JobUpdate=_job_update(job, **drifted))
        job = glue.get_job(JobName=JOB)["Job"]
        assert {k: job[k] for k in drifted} == drifted

        assert_repaired(config, deployed_once, ["updated job test-sales-etl-job"])

        job = glue.get_job(JobName=JOB)["Job"]
        assert job["Command"] == {
            "Name": "glueetl",
            "ScriptLocation": "s3://test-sales-scripts/scripts/glue_etl_job.py",
            "PythonVersion": "3",
        }
        assert (job["GlueVersion"], job["WorkerType"], job["NumberOfWorkers"]) == ("5.0", "G.1X", 2)
        assert job["DefaultArguments"] == DEFAULT_ARGUMENTS
        assert job["Role"] == ROLE_ARN
        assert (job["Timeout"], job["MaxRetries"]) == (30, 0)
        assert glue_tags(glue, "job", JOB) == MARKS

    def test_deployed_job_arguments_parse_through_awsglue_as_on_glue(self, deployed_once, config):
        pytest.importorskip("awsglue.utils")  # AWSGlueDataplanePython installs on Python 3.11 only
        pytest.importorskip("awsglue.context")
        from sales_etl import arguments

        glue = deployed_once.glue
        default_arguments = glue.get_job(JobName=JOB)["Job"]["DefaultArguments"]
        # What `run` starts the job with (AwsTarget.run_job), read back from the job run.
        target = AwsTarget(config, clients=deployed_once, poll_seconds=0, sleep=lambda _: None)
        job_run_id = target.run_job("run-42").details["job_run_id"]
        run_arguments = glue.get_job_run(JobName=JOB, RunId=job_run_id)["JobRun"]["Arguments"]
        assert run_arguments["--run_id"] == "run-42"
        # What the Glue service adds to every run, before the job's own arguments.
        added_by_glue = {
            "--JOB_ID": "j_0123456789abcdef",
            "--JOB_RUN_ID": job_run_id,
            "--JOB_NAME": JOB,
            "--TempDir": f"s3://aws-glue-assets-{ACCOUNT}-us-east-1/temporary/",
        }
        argv = ["glue_etl_job.py"]
        for name, value in {**added_by_glue, **default_arguments, **run_arguments}.items():
            argv += [name, value]

        args = arguments.parse_args(argv)

        assert arguments.is_glue_runtime(argv) is True
        assert args.sales_path == SALES_URI
        assert args.customers_path == CUSTOMERS_URI
        assert args.output_path == "s3://test-sales-processed/"
        assert args.run_id == "run-42"
        assert args.job_name == JOB
        assert args.job_run_id == job_run_id
        assert args.quarantine_path is None
