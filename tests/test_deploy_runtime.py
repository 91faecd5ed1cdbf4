"""The aws target against a real account's behaviour, on moto and on stand-ins for Glue.

Lake Formation governing the catalog; GetCrawler answering the role's name; IAM
propagation after a role is made; a crawl wait that must not take the previous crawl for
this one; `down` with a crawl or job run still going; Glue 5 log streams.
Expected values are written out literally (prefix ``test-sales``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.glue.models import glue_backends
from moto.moto_api import state_manager
from moto_fixtures import REGION

import deploy
from pipeline import infra
from pipeline.catalog import run_aws_crawler
from pipeline.config import PipelineConfig
from pipeline.errors import CrawlerError, DeployError, JobRunFailed
from pipeline.infra.shared import role_name
from pipeline.targets.aws import AwsTarget

ACCOUNT = "123456789012"  # moto's default account
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/test-sales-glue-role"


def _with(clients, **replaced):
    """The same clients with some replaced (e.g. a Glue client that fails first)."""
    return SimpleNamespace(**{**vars(clients), **replaced})


# ------------------------------------------------------------------ Lake Formation

IAM_ONLY = [
    {"Principal": {"DataLakePrincipalIdentifier": "IAM_ALLOWED_PRINCIPALS"}, "Permissions": ["ALL"]}
]
ADMINS = [{"DataLakePrincipalIdentifier": f"arn:aws:iam::{ACCOUNT}:role/lake-admin"}]
ANALYST_ALL = [
    {
        "Principal": {"DataLakePrincipalIdentifier": f"arn:aws:iam::{ACCOUNT}:role/analyst"},
        "Permissions": ["ALL"],
    }
]


def _lake_settings(admins, database_defaults, table_defaults):
    return {
        "DataLakeAdmins": admins,
        "CreateDatabaseDefaultPermissions": database_defaults,
        "CreateTableDefaultPermissions": table_defaults,
    }


GOVERNED = [
    (
        _lake_settings(ADMINS, [], []),
        "CreateDatabaseDefaultPermissions is empty and data lake administrators are set",
    ),
    (
        _lake_settings(ADMINS, IAM_ONLY, []),
        "CreateTableDefaultPermissions is empty and data lake administrators are set",
    ),
    (
        _lake_settings([], ANALYST_ALL, IAM_ONLY),
        "CreateDatabaseDefaultPermissions is not IAM_ALLOWED_PRINCIPALS ALL",
    ),
]
GOVERNED_IDS = ["admins-and-no-defaults", "admins-and-no-table-default", "other-principal"]


@pytest.mark.parametrize(("settings", "why"), GOVERNED, ids=GOVERNED_IDS)
def test_up_stops_with_one_line_where_lake_formation_governs_the_catalog(
    aws, config, capsys, settings, why
):
    boto3.client("lakeformation", region_name=REGION).put_data_lake_settings(
        DataLakeSettings=settings
    )

    with pytest.raises(DeployError) as stopped:
        infra.up(config, aws, tables=False)

    message = str(stopped.value)
    assert "\n" not in message
    assert message.startswith(f"Lake Formation governs the Glue Data Catalog in us-east-1 ({why})")
    assert "fail with 'Insufficient Lake Formation permission(s)'" in message
    assert "tick 'Use only IAM access control' for new databases and for new tables" in message
    # Stopped before making anything.
    assert aws.s3.list_buckets()["Buckets"] == []
    assert aws.iam.list_roles()["Roles"] == []
    # The command line: exit 1 and the same line.
    assert deploy.main(["up", "--prefix", "test-sales"]) == 1
    assert why in capsys.readouterr().err


@pytest.mark.parametrize(("settings", "why"), GOVERNED, ids=GOVERNED_IDS)
def test_the_run_readiness_check_stops_where_lake_formation_governs_the_catalog(
    deployed, config, settings, why
):
    target = AwsTarget(config, clients=deployed, poll_seconds=0, sleep=lambda _: None)
    target.check_ready()  # deployed under IAM access control: ready
    boto3.client("lakeformation", region_name=REGION).put_data_lake_settings(
        DataLakeSettings=settings
    )

    with pytest.raises(DeployError, match=r"^Lake Formation governs") as stopped:
        target.check_ready()
    assert f"({why})" in str(stopped.value)


def test_moto_starts_with_iam_access_control_only(aws):
    # What the "default" case below runs against: an account as Lake Formation leaves it.
    settings = boto3.client("lakeformation", region_name=REGION).get_data_lake_settings()
    assert settings["DataLakeSettings"]["CreateDatabaseDefaultPermissions"] == IAM_ONLY
    assert settings["DataLakeSettings"]["CreateTableDefaultPermissions"] == IAM_ONLY
    assert settings["DataLakeSettings"]["DataLakeAdmins"] == []


@pytest.mark.parametrize(
    "settings",
    [
        None,
        _lake_settings(ADMINS, IAM_ONLY, IAM_ONLY),
        # Empty defaults without an administrator: not governed by the rule up follows.
        _lake_settings([], [], []),
    ],
    ids=["default", "admins-but-iam-defaults", "no-admins-no-defaults"],
)
def test_up_and_run_go_ahead_where_the_catalog_uses_iam_access_control(aws, config, settings):
    if settings is not None:
        boto3.client("lakeformation", region_name=REGION).put_data_lake_settings(
            DataLakeSettings=settings
        )

    changes = infra.up(config, aws, tables=False)

    assert "created crawler test-sales-raw-crawler" in changes
    AwsTarget(config, clients=aws, poll_seconds=0, sleep=lambda _: None).check_ready()


class _DeniedLakeFormation:
    def get_data_lake_settings(self, **kwargs):
        raise ClientError(
            {"Error": {"Code": "AccessDeniedException", "Message": "no lakeformation rights"}},
            "GetDataLakeSettings",
        )


def test_up_warns_and_goes_ahead_when_it_cannot_read_the_lake_formation_settings(
    aws, config, caplog
):
    caplog.set_level("WARNING", logger="pipeline.infra")

    changes = infra.up(config, _with(aws, lakeformation=_DeniedLakeFormation()), tables=False)

    assert "created crawler test-sales-raw-crawler" in changes
    assert "could not read the Lake Formation settings (AccessDeniedException)" in "\n".join(
        caplog.messages
    )


# ------------------------------------------------------------- the crawler's role

OUR_TAGS = {"managed-by": "deploy.py", "pipeline-prefix": "test-sales"}
# moto 5.2.5 implements neither UpdateCrawler nor UpdateJob: the double below records them.
MOTO_LACKS = ("update_crawler", "update_job")


class _GlueDouble:
    """moto's Glue client, except that ``method`` is recorded and fails its first
    ``failures`` calls with ``error``; a method moto lacks then answers ``{}``."""

    def __init__(self, glue, method, failures=0, error=None):
        self._glue, self.method, self.failures, self.error = glue, method, failures, error
        self.sent = []

    def __getattr__(self, name):
        real = getattr(self._glue, name)
        if name != self.method:
            return real

        def recorded(**kwargs):
            self.sent.append(kwargs)
            if len(self.sent) <= self.failures:
                raise ClientError(self.error, name)
            return {} if name in MOTO_LACKS else real(**kwargs)

        return recorded


def _crawler_as_up_makes_it(glue, role):
    glue.create_crawler(
        Name="test-sales-raw-crawler",
        Role=role,
        DatabaseName="sales_analytics_db",
        Description="Catalogs the raw sales CSV and customers NDJSON",
        Targets={
            "S3Targets": [
                {"Path": "s3://test-sales-raw/input/sales_data_csv/"},
                {"Path": "s3://test-sales-raw/input/customer_demographics_json/"},
            ]
        },
        SchemaChangePolicy={
            "UpdateBehavior": "UPDATE_IN_DATABASE",
            "DeleteBehavior": "DEPRECATE_IN_DATABASE",
        },
        RecrawlPolicy={"RecrawlBehavior": "CRAWL_EVERYTHING"},
        Tags=OUR_TAGS,
    )


def test_a_crawler_whose_role_reads_as_its_name_is_not_updated(aws, config):
    # Real GetCrawler answers the role's name where up passed its ARN.
    _crawler_as_up_makes_it(aws.glue, "test-sales-glue-role")
    glue = _GlueDouble(aws.glue, "update_crawler")

    changes = infra.up(config, _with(aws, glue=glue), tables=False)

    assert [c for c in changes if "crawler" in c] == []
    assert glue.sent == []
    assert infra.up(config, _with(aws, glue=glue), tables=False) == []


@pytest.mark.parametrize("other", ["someone-elses-role", f"arn:aws:iam::{ACCOUNT}:role/other"])
def test_a_crawler_with_another_role_is_put_back(aws, config, other):
    _crawler_as_up_makes_it(aws.glue, other)
    glue = _GlueDouble(aws.glue, "update_crawler")

    changes = infra.up(config, _with(aws, glue=glue), tables=False)

    assert "updated crawler test-sales-raw-crawler" in changes
    assert [sent["Role"] for sent in glue.sent] == [ROLE_ARN]


def test_role_name_accepts_an_arn_a_path_or_a_name():
    assert role_name(ROLE_ARN) == "test-sales-glue-role"
    assert role_name(f"arn:aws:iam::{ACCOUNT}:role/service-role/x-role") == "x-role"
    assert role_name("service-role/x-role") == "x-role"
    assert role_name("test-sales-glue-role") == "test-sales-glue-role"


# ------------------------------------------------------------- IAM propagation

# What Glue answers while a role made seconds ago is not usable yet.
NOT_PROPAGATED = {
    "Error": {
        "Code": "InvalidInputException",
        "Message": f"Role {ROLE_ARN} should be given assume role permissions for Glue Service.",
    }
}
# The caller's own missing right: its ARN says "assumed-role", but waiting cannot help.
NOT_AUTHORIZED = {
    "Error": {
        "Code": "AccessDeniedException",
        "Message": f"User: arn:aws:sts::{ACCOUNT}:assumed-role/dev/me is not authorized to "
        f"perform: glue:CreateJob on resource: arn:aws:glue:us-east-1:{ACCOUNT}:job/test-sales-etl-job",
    }
}


def _up(config, clients, sleep):
    infra.up(config, clients, tables=False, sleep=sleep)


def _crawl(config, clients, sleep):
    AwsTarget(config, clients=clients, poll_seconds=0, sleep=sleep).crawl()


def _run_job(config, clients, sleep):
    AwsTarget(config, clients=clients, poll_seconds=0, sleep=sleep).run_job("r1")


def _nothing(aws, config):
    pass


def _deploy(aws, config):
    infra.up(config, aws, tables=False)


def _drifted_crawler(aws, config):
    # Ours (tagged), but with another description and one target: up updates it.
    aws.glue.create_crawler(
        Name="test-sales-raw-crawler",
        Role=ROLE_ARN,
        DatabaseName="sales_analytics_db",
        Description="edited by hand",
        Targets={"S3Targets": [{"Path": "s3://test-sales-raw/input/sales_data_csv/"}]},
        Tags=OUR_TAGS,
    )


def _drifted_job(aws, config):
    aws.glue.create_job(
        Name="test-sales-etl-job",
        Role=ROLE_ARN,
        Command={"Name": "glueetl", "ScriptLocation": "s3://elsewhere/job.py"},
        Tags=OUR_TAGS,
    )


def _crawlers(glue, sent):
    return glue.list_crawlers()["CrawlerNames"]


def _jobs(glue, sent):
    return glue.list_jobs()["JobNames"]


def _sent_crawler(glue, sent):
    return sent[-1]["Description"], sent[-1]["Role"], len(sent[-1]["Targets"]["S3Targets"])


def _sent_job(glue, sent):
    return sent[-1]["JobName"], sent[-1]["JobUpdate"]["Command"]["ScriptLocation"]


def _crawls(glue, sent):
    return [c["State"] for c in glue.list_crawls(CrawlerName="test-sales-raw-crawler")["Crawls"]]


def _job_runs(glue, sent):
    return [r["JobRunState"] for r in glue.get_job_runs(JobName="test-sales-etl-job")["JobRuns"]]


@pytest.mark.parametrize(
    ("method", "before", "drive", "read_back", "expected"),
    [
        ("create_crawler", _nothing, _up, _crawlers, ["test-sales-raw-crawler"]),
        ("create_job", _nothing, _up, _jobs, ["test-sales-etl-job"]),
        (
            "update_crawler",
            _drifted_crawler,
            _up,
            _sent_crawler,
            ("Catalogs the raw sales CSV and customers NDJSON", ROLE_ARN, 2),
        ),
        (
            "update_job",
            _drifted_job,
            _up,
            _sent_job,
            ("test-sales-etl-job", "s3://test-sales-scripts/scripts/glue_etl_job.py"),
        ),
        ("start_crawler", _deploy, _crawl, _crawls, ["COMPLETED"]),
        ("start_job_run", _deploy, _run_job, _job_runs, ["SUCCEEDED"]),
    ],
)
def test_a_call_that_meets_an_unpropagated_role_is_retried_with_back_off(
    aws, config, method, before, drive, read_back, expected
):
    before(aws, config)
    glue = _GlueDouble(aws.glue, method, failures=2, error=NOT_PROPAGATED)
    sleeps = []

    drive(config, _with(aws, glue=glue), sleeps.append)

    assert len(glue.sent) == 3
    assert sleeps == [2.0, 4.0]
    assert read_back(aws.glue, glue.sent) == expected


@pytest.mark.parametrize(
    ("method", "before", "drive"),
    [
        ("create_job", _nothing, _up),
        ("update_crawler", _drifted_crawler, _up),
        ("start_crawler", _deploy, _crawl),
        ("start_job_run", _deploy, _run_job),
    ],
)
def test_a_role_that_never_propagates_fails_after_six_attempts(aws, config, method, before, drive):
    before(aws, config)
    glue = _GlueDouble(aws.glue, method, failures=100, error=NOT_PROPAGATED)
    sleeps = []

    with pytest.raises(ClientError) as failed:
        drive(config, _with(aws, glue=glue), sleeps.append)

    assert failed.value.response["Error"]["Code"] == "InvalidInputException"
    assert len(glue.sent) == 6
    assert sleeps == [2.0, 4.0, 8.0, 16.0, 32.0]


def test_a_missing_right_of_the_caller_is_not_waited_for(aws, config):
    glue = _GlueDouble(aws.glue, "create_job", failures=1, error=NOT_AUTHORIZED)
    sleeps = []

    with pytest.raises(ClientError) as failed:
        infra.up(config, _with(aws, glue=glue), tables=False, sleep=sleeps.append)

    assert failed.value.response["Error"]["Code"] == "AccessDeniedException"
    assert (len(glue.sent), sleeps) == (1, [])


# ------------------------------------------------------------------ the crawl wait

PREVIOUS = {"Status": "SUCCEEDED", "StartTime": datetime(2026, 11, 26, 9, 0, 0, tzinfo=UTC)}
THIS_ONE = {"Status": "SUCCEEDED", "StartTime": datetime(2026, 11, 27, 12, 0, 3, tzinfo=UTC)}
# StartCrawler's answer, by AWS's clock: one second before the crawl's own StartTime.
AWS_DATE = "Fri, 27 Nov 2026 12:00:02 GMT"


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


# ------------------------------------------------------- down with runs still going


class _GlueWithBatchStop:
    """moto's Glue client plus BatchStopJobRun, which moto 5.2.5 does not implement.

    It does to moto's job runs what Glue does: each named run still going becomes
    STOPPING (Glue then ends it as STOPPED; the test's sleep plays that part).
    """

    def __init__(self, glue):
        self._glue = glue
        self.stop_requests = []

    def __getattr__(self, name):
        return getattr(self._glue, name)

    def batch_stop_job_run(self, JobName, JobRunIds):  # noqa: N803
        self.stop_requests.append(list(JobRunIds))
        done = []
        for run in _moto_job_runs(JobName):
            if run.job_run_id in JobRunIds and run.status in ("STARTING", "RUNNING"):
                run.status = "STOPPING"
                done.append({"JobName": JobName, "JobRunId": run.job_run_id})
        return {"SuccessfulSubmissions": done, "Errors": []}


def _moto_job_runs(job_name):
    return glue_backends[ACCOUNT][REGION].jobs[job_name].job_runs


def test_moto_has_no_batch_stop_job_run(deployed):
    # Why the tests below add it: drop _GlueWithBatchStop once moto implements it.
    with pytest.raises(NotImplementedError):
        deployed.glue.batch_stop_job_run(JobName="test-sales-etl-job", JobRunIds=["jr_x"])


@pytest.fixture
def runs_going(deployed):
    """A crawl and a job run that stay RUNNING/STARTING until the test moves them on."""
    state_manager.set_transition(
        model_name="glue::crawl", transition={"progression": "manual", "times": 10_000}
    )
    state_manager.set_transition(
        model_name="glue::job_run", transition={"progression": "manual", "times": 10_000}
    )
    glue = deployed.glue
    glue.start_crawler(Name="test-sales-raw-crawler")
    run_id = glue.start_job_run(JobName="test-sales-etl-job")["JobRunId"]
    assert glue.get_crawler(Name="test-sales-raw-crawler")["Crawler"]["State"] == "RUNNING"
    [run] = glue.get_job_runs(JobName="test-sales-etl-job")["JobRuns"]
    assert run["JobRunState"] == "STARTING"
    return run_id


def _alerting(clients):
    """The failures rule and the quarantine-rate alarm that exist now."""
    rules = [r["Name"] for r in clients.events.list_rules()["Rules"]]
    alarms = [a["AlarmName"] for a in clients.cloudwatch.describe_alarms()["MetricAlarms"]]
    return rules, alarms


def test_down_deletes_the_alerting_then_stops_the_runs_then_deletes(deployed, config, runs_going):
    glue = _GlueWithBatchStop(deployed.glue)
    seen = []
    # What can still alert when the run is stopped: its STOPPED event matches the
    # failures rule, which would mail the on-call address during a planned teardown.
    alerting_at_stop = []
    batch_stop = glue.batch_stop_job_run

    def stop_and_look(**kwargs):
        alerting_at_stop.append(_alerting(deployed))
        return batch_stop(**kwargs)

    glue.batch_stop_job_run = stop_and_look
    assert _alerting(deployed) == (["test-sales-failures"], ["test-sales-quarantine-rate"])

    def glue_finishes_stopping(seconds):
        crawler = deployed.glue.get_crawler(Name="test-sales-raw-crawler")["Crawler"]
        seen.append(
            (seconds, crawler["State"], [r.status for r in _moto_job_runs(config.job_name)])
        )
        state_manager.set_transition(
            model_name="glue::crawl", transition={"progression": "immediate"}
        )
        for run in _moto_job_runs(config.job_name):
            run.status = "STOPPED"

    deleted = infra.down(
        config,
        _with(deployed, glue=glue),
        sleep=glue_finishes_stopping,
        stop_poll_seconds=10,
        stop_timeout_seconds=60,
    )

    assert glue.stop_requests == [[runs_going]]
    assert alerting_at_stop == [([], [])]
    assert seen == [(10, "STOPPING", ["STOPPING"])]
    assert deleted[:2] == [
        "alarm test-sales-quarantine-rate",
        "rule test-sales-failures (and its 1 target(s))",
    ]
    assert "crawler test-sales-raw-crawler" in deleted
    assert "job test-sales-etl-job" in deleted
    assert deployed.glue.list_crawlers()["CrawlerNames"] == []
    assert deployed.glue.list_jobs()["JobNames"] == []
    assert deployed.s3.list_buckets()["Buckets"] == []


def test_down_deletes_only_the_alerting_when_a_run_does_not_stop_in_time(
    deployed, config, runs_going
):
    glue = _GlueWithBatchStop(deployed.glue)
    sleeps = []

    with pytest.raises(DeployError) as stuck:
        infra.down(
            config,
            _with(deployed, glue=glue),
            sleep=sleeps.append,
            stop_poll_seconds=10,
            stop_timeout_seconds=60,
        )

    assert str(stuck.value) == (
        "down deleted nothing but alarm test-sales-quarantine-rate, rule test-sales-failures "
        "(and its 1 target(s)): crawler test-sales-raw-crawler is STOPPING; "
        f"job run {runs_going} is STOPPING after 60s of waiting for it to stop; check it in "
        "the Glue console and run `deploy.py down --yes` again"
    )
    assert sleeps == [10, 10, 10, 10, 10, 10]
    # Only what alerts is gone (so that the stopped runs mail nothing); the rest is kept.
    assert _alerting(deployed) == ([], [])
    topics = deployed.sns.list_topics()["Topics"]
    assert topics == [{"TopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:test-sales-alerts"}]
    assert deployed.glue.get_workflow(Name="test-sales-workflow")["Workflow"]
    assert deployed.glue.list_crawlers()["CrawlerNames"] == ["test-sales-raw-crawler"]
    assert deployed.glue.list_jobs()["JobNames"] == ["test-sales-etl-job"]
    assert len(deployed.s3.list_buckets()["Buckets"]) == 4
    assert deployed.athena.get_work_group(WorkGroup="test-sales-workgroup")["WorkGroup"]


# -------------------------------------------------------------- Glue 5 log streams


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


def test_status_names_the_last_run_log_groups_and_driver_stream(deployed, config):
    run_id = deployed.glue.start_job_run(JobName="test-sales-etl-job")["JobRunId"]

    rows = {r["kind"]: r for r in infra.status(config, deployed)}

    # moto reports LogGroupName "test/log" for every run; AWS reports /aws-glue/jobs.
    assert rows["glue-job"]["detail"].endswith(
        f"execution=123s logs=test/log/error,test/log/output stream={run_id}-driver"
    )


# --------------------------------------------------------- status: denied is not missing


class _Denied:
    """A client whose ``method`` answers AccessDenied; everything else goes to moto."""

    def __init__(self, client, method):
        self._client, self.method = client, method

    def __getattr__(self, name):
        if name != self.method:
            return getattr(self._client, name)

        def denied(**kwargs):
            raise ClientError(
                {"Error": {"Code": "AccessDenied", "Message": f"not authorized: {name}"}}, name
            )

        return denied


@pytest.mark.parametrize(
    ("service", "method"),
    [
        ("s3", "head_bucket"),
        ("iam", "get_role"),
        ("glue", "get_tables"),
        ("glue", "get_crawler"),
        ("glue", "get_job"),
    ],
)
def test_status_stops_on_a_read_it_is_denied_instead_of_saying_missing(
    deployed, config, service, method
):
    clients = _with(deployed, **{service: _Denied(getattr(deployed, service), method)})

    with pytest.raises(ClientError) as denied:
        infra.status(config, clients)

    assert str(denied.value).endswith(f"not authorized: {method}")
