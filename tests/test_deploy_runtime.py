"""The aws target against a real account's behaviour, on moto and on stand-ins for Glue.

Glue 5 log streams.
Expected values are written out literally (prefix ``test-sales``).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pipeline import infra

ACCOUNT = "123456789012"  # moto's default account
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/test-sales-glue-role"


def _with(clients, **replaced):
    """The same clients with some replaced (e.g. a Glue client that fails first)."""
    return SimpleNamespace(**{**vars(clients), **replaced})


# -------------------------------------------------------------- Glue 5 log streams


class _FailedRun:
    def __init__(self, **run):
        self.run = run

    def get_job_run(self, JobName, RunId):  # noqa: N803
        return {"JobRun": {"Id": RunId, "JobRunState": "FAILED", **self.run}}


def test_a_failed_run_names_the_glue_5_log_groups_and_the_driver_stream():
    glue = _FailedRun(ErrorMessage="reconciliation failed", LogGroupName="/aws-glue/jobs")

    with pytest.raises(infra.JobRunFailed) as failed:
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

    with pytest.raises(infra.JobRunFailed) as failed:
        infra.wait_for_job_run(glue, "job", "jr_2", sleep=lambda _: None)

    assert str(failed.value).endswith(
        "no error message; logs: CloudWatch log groups /team/etl/error (Spark, GlueLogger) "
        "and /team/etl/output (print, stderr), stream sales-driver"
    )


def test_status_names_the_last_run_log_groups_and_driver_stream(deployed, config):
    run_id = deployed.glue.start_job_run(JobName="test-sales-etl-job")["JobRunId"]

    rows = {r["kind"]: r for r in infra.status(config, deployed)}

    # moto reports LogGroupName "test/log" for every run; AWS reports /aws-glue/jobs.
    assert rows["glue-job"]["detail"].endswith(
        f"execution=123s logs=test/log/error,test/log/output stream={run_id}-driver"
    )
