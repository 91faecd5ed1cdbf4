"""moto fixtures for the ``aws`` target, loaded once as a plugin by ``conftest.py``.

Every fixture pins the region and fake credentials, so nothing can reach a real account.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import moto
import pytest
import requests
from botocore.exceptions import ClientError
from moto import mock_aws, settings
from moto.athena.responses import AthenaResponse
from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.responses import ActionResult, EmptyResult
from moto.core.utils import utcnow
from moto.events.models import EventPattern, EventPatternParser
from moto.events.responses import EventsHandler
from moto.glue.models import FakeWorkflowRun, GlueBackend
from moto.glue.responses import GlueResponse
from moto.glue.utils import Action, Predicate
from moto.iam.access_control import IAMPolicyStatement, PermissionResult
from moto.kms import models as kms_models
from moto.moto_api import state_manager
from moto.s3.responses import S3Response

from pipeline import infra
from pipeline.aws import new_session
from pipeline.config import PipelineConfig
from pipeline.infra.operations import Operations
from pipeline.runner import RunOptions, run
from pipeline.targets.aws import AwsTarget

REGION = "us-east-1"
PREFIX = "test-sales"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and a pinned region; no profile or endpoint leaks in."""
    _pin_aws_env(monkeypatch)


def _pin_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    # No ~/.aws files: a developer's real profile can never leak into a test.
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")


def _statement_denies_only_insecure_transport(statement: dict[str, Any]) -> bool:
    condition = statement.get("Condition") or {}
    flag = condition.get("Bool", {}).get("aws:SecureTransport")
    return statement.get("Effect") == "Deny" and str(flag).lower() == "false"


@pytest.fixture
def tls_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto treat every request as one sent over TLS, as real SDK requests are.

    moto does not evaluate the ``Bool`` operator, so the standard TLS-only deny
    (``aws:SecureTransport`` = ``false``) matches every request and S3 answers 403 to
    all object calls. This patch touches exactly that case: a ``Deny`` statement
    conditioned on insecure transport does not apply (as on AWS for HTTPS requests).
    Every other statement is evaluated by moto unchanged. The deployed policy is not
    modified; tests read it back as AWS stores it.
    """
    _treat_requests_as_tls(monkeypatch)


def _treat_requests_as_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    _check_patched_moto()
    monkeypatch.setattr(
        IAMPolicyStatement,
        "is_action_permitted",
        _tls_aware(IAMPolicyStatement.is_action_permitted),
    )


# What the patch relies on, as in moto 5.1-5.2: the method's parameters, and the
# statement kept as the dict it was built from.
_PATCHED_PARAMETERS = ["self", "action", "resource", "principal", "incoming_condition_values"]


def _check_patched_moto() -> None:
    """Fail loudly, naming moto's version, when the function the patch wraps has changed."""
    found = list(inspect.signature(IAMPolicyStatement.is_action_permitted).parameters)
    statement = {"Effect": "Deny", "Action": "s3:*"}
    kept = getattr(IAMPolicyStatement(statement), "_statement", None)
    if found != _PATCHED_PARAMETERS or kept != statement:
        pytest.fail(
            f"moto {moto.__version__} changed IAMPolicyStatement.is_action_permitted "
            f"(parameters {found}, statement kept as {kept!r}); tls_requests in "
            "tests/moto_fixtures.py patches it for the TLS-only bucket policy: update the patch",
            pytrace=False,
        )


def _tls_aware(original: Any) -> Any:
    def is_action_permitted(
        self: IAMPolicyStatement, *args: Any, **kwargs: Any
    ) -> PermissionResult:
        if _statement_denies_only_insecure_transport(self._statement):
            return PermissionResult.NEUTRAL
        return original(self, *args, **kwargs)

    return is_action_permitted


_SYMMETRIC_KEY_PAIR: list[Any] = []


@pytest.fixture
def one_rsa_pair_for_symmetric_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let moto give every symmetric KMS key the same RSA key pair.

    moto makes a 2048-bit RSA pair for every key it creates, a SYMMETRIC_DEFAULT one too
    (it signs with it only if asked to, which nothing here does; encryption uses the key's
    own random key material), and that takes a quarter of a second of CPU per ``up``.
    Keys of any other spec get their own pair, as before.
    """
    _share_one_rsa_pair(monkeypatch)


def _share_one_rsa_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    original = kms_models.generate_private_key
    if list(inspect.signature(original).parameters) != ["key_spec"]:
        pytest.fail(
            f"moto {moto.__version__} changed kms generate_private_key: update "
            "one_rsa_pair_for_symmetric_keys in tests/moto_fixtures.py",
            pytrace=False,
        )

    def generate_private_key(key_spec: str) -> Any:
        if key_spec != "SYMMETRIC_DEFAULT":
            return original(key_spec)
        if not _SYMMETRIC_KEY_PAIR:
            _SYMMETRIC_KEY_PAIR.append(original(key_spec))
        return _SYMMETRIC_KEY_PAIR[0]

    monkeypatch.setattr(kms_models, "generate_private_key", generate_private_key)


@pytest.fixture
def immediate_glue() -> Iterator[None]:
    """Let moto's crawler finish on the next poll (its state only moves via the state manager)."""
    with _immediate_glue():
        yield


@contextmanager
def _immediate_glue() -> Iterator[None]:
    state_manager.set_transition(model_name="glue::crawl", transition={"progression": "immediate"})
    state_manager.set_transition(
        model_name="glue::job_run", transition={"progression": "immediate"}
    )
    yield
    state_manager.unset_transition(model_name="glue::crawl")
    state_manager.unset_transition(model_name="glue::job_run")


# ------------------------------------------------ Glue workflows and EventBridge patterns
#
# moto 5.2.5 stores workflows and triggers but runs nothing: StartWorkflowRun records a
# run that stays RUNNING, GetWorkflowRun has no Graph (IncludeGraph is ignored), and
# UpdateTrigger and EventBridge's TestEventPattern raise NotImplementedError. The stand-ins
# below fill in exactly these, as AWS documents them, on moto's own models:
#
# - StartWorkflowRun starts what the workflow's ON_DEMAND/SCHEDULED trigger names (the
#   crawler) through moto's StartCrawler; each GetWorkflowRun then moves the run one step:
#   the crawl RUNNING, the crawl's end (SUCCEEDED, or the state a test asks for) and, if a
#   CONDITIONAL trigger of the workflow waits for that crawl state, the job started
#   through moto's StartJobRun; then the job run's end, and the run COMPLETED (as on AWS,
#   also when a node failed). The graph's nodes carry CrawlerDetails.Crawls and
#   JobDetails.JobRuns as GetWorkflowRun answers them.
# - UpdateTrigger applies TriggerUpdate's Description, Schedule, Actions, Predicate and
#   EventBatchingCondition.
# - TestEventPattern answers with moto's own event-pattern matcher, the one moto's
#   PutEvents uses to pick a rule's targets.
# - GetBucketNotificationConfiguration answers the EventBridgeConfiguration moto stores
#   (PutBucketNotificationConfiguration keeps it; moto's answer leaves it out).


class WorkflowRuns:
    """What the workflow-run stand-in does; tests set these and read what it did.

    ``crawl_state``/``job_state``: how the crawl and the job run end (SUCCEEDED by default;
    FAILED, say, to test a failure). ``on_job_start``: called with each job run id the
    workflow starts (a test puts the metrics file the job would write). ``steps_per_poll``:
    how many steps each GetWorkflowRun moves a run on (1; 3 ends a run at its first poll,
    for a test of a deploy.py process, whose polls sleep for real).
    """

    def __init__(self) -> None:
        self.crawl_state = "SUCCEEDED"
        self.job_state = "SUCCEEDED"
        self.steps_per_poll = 1
        self.on_job_start: list[Any] = []
        self.steps: dict[str, dict[str, Any]] = {}  # run id -> its progress


_MOTO_CRAWL_STATE = {"SUCCEEDED": "COMPLETED", "FAILED": "FAILED", "CANCELLED": "STOPPED"}


def _check_workflow_moto() -> None:
    """Fail loudly, naming moto's version, when what the stand-ins rely on has changed."""
    start = list(inspect.signature(GlueBackend.start_workflow_run).parameters)
    run = FakeWorkflowRun("w")
    kept = all(hasattr(run, a) for a in ("status", "completed_on", "run_id"))
    if start != ["self", "workflow_name", "properties"] or not kept:
        pytest.fail(
            f"moto {moto.__version__} changed its Glue workflow runs (StartWorkflowRun "
            f"parameters {start}): the workflow stand-ins in tests/moto_fixtures.py wrap "
            "them; update them",
            pytrace=False,
        )
    if hasattr(GlueResponse, "update_trigger"):
        pytest.fail(
            f"moto {moto.__version__} implements UpdateTrigger: drop the stand-in in "
            "tests/moto_fixtures.py",
            pytrace=False,
        )


def _crawl_node(crawler: Any, state: str) -> dict[str, Any]:
    crawl = crawler.crawls[-1]
    entry: dict[str, Any] = {
        "State": state,
        "StartedOn": crawl.start_time,
        "LogGroup": crawl.log_group,
        "LogStream": crawl.log_stream,
    }
    if state != "RUNNING":
        entry["CompletedOn"] = crawl.end_time or utcnow()
    if state == "FAILED":
        entry["ErrorMessage"] = "Internal Service Exception"
    return {
        "Type": "CRAWLER",
        "Name": crawler.name,
        "UniqueId": f"crawler-{crawler.name}",
        "CrawlerDetails": {"Crawls": [entry]},
    }


def _job_node(job_name: str, job_run: Any | None, state: str | None) -> dict[str, Any]:
    runs = []
    if job_run is not None:
        entry = job_run.as_dict()
        entry["JobRunState"] = state
        if state == "FAILED":
            entry["ErrorMessage"] = "An error occurred while calling o94.parquet"
        runs.append(entry)
    return {
        "Type": "JOB",
        "Name": job_name,
        "UniqueId": f"job-{job_name}",
        "JobDetails": {"JobRuns": runs},
    }


def _install_workflow_stand_ins(runs: WorkflowRuns, setattr_: Any) -> None:
    original_start = GlueBackend.start_workflow_run

    def start_workflow_run(self: GlueBackend, workflow_name: str, properties: Any) -> str:
        run_id = original_start(self, workflow_name, properties)
        started = [
            t
            for t in self.triggers.values()
            if t.workflow_name == workflow_name and t.trigger_type in ("ON_DEMAND", "SCHEDULED")
        ]
        crawlers = [a.crawler_name for t in started for a in t.actions if a.crawler_name]
        for name in crawlers:
            self.start_crawler(name)
        runs.steps[run_id] = {"step": 0, "crawlers": crawlers, "job": None}
        return run_id

    def advance(backend: GlueBackend, workflow_name: str, run: Any) -> list[dict[str, Any]]:
        progress = runs.steps.get(run.run_id)
        if progress is None:  # a run the stand-in did not start
            return []
        if run.status == "RUNNING":
            progress["step"] += runs.steps_per_poll
        step = progress["step"]
        nodes = []
        crawl_state = "RUNNING" if step < 2 else runs.crawl_state
        for name in progress["crawlers"]:
            crawler = backend.get_crawler(name)
            if step >= 2:
                crawler.crawls[-1].status = _MOTO_CRAWL_STATE.get(crawl_state, crawl_state)
            nodes.append(_crawl_node(crawler, crawl_state))
        waiting = [
            t
            for t in backend.triggers.values()
            if t.workflow_name == workflow_name and t.trigger_type == "CONDITIONAL"
        ]
        for trigger in waiting:
            fired = step >= 2 and any(
                c.crawler_name in progress["crawlers"] and c.crawl_state.value == crawl_state
                for c in trigger.predicate.conditions
            )
            for action in trigger.actions:
                if not action.job_name:
                    continue
                if fired and progress["job"] is None:
                    job_run_id = backend.get_job(action.job_name).start_job_run(
                        None, None, None, None, None, None, None, None, action.arguments
                    )
                    progress["job"] = job_run_id
                    for callback in runs.on_job_start:
                        callback(job_run_id)
                job_run = None
                if progress["job"]:
                    job_run = next(
                        r
                        for r in backend.get_job(action.job_name).job_runs
                        if r.job_run_id == progress["job"]
                    )
                job_state = "RUNNING" if step < 3 else runs.job_state
                if job_run is not None and step >= 3:
                    job_run.status = job_state
                nodes.append(_job_node(action.job_name, job_run, job_state if job_run else None))
        done = (step >= 2 and crawl_state != "SUCCEEDED") or step >= 3
        if done and run.status == "RUNNING":
            run.status = "COMPLETED"
            run.completed_on = utcnow()
        return nodes

    def get_workflow_run(self: GlueResponse) -> ActionResult:
        name, run_id = self._get_param("Name"), self._get_param("RunId")
        backend = self.glue_backend
        backend.get_workflow_run(name, run_id)  # moto's errors for a missing one
        run = backend.workflows[name].get_run(run_id)
        nodes = advance(backend, name, run)
        answer: dict[str, Any] = run.as_dict()
        if self._get_param("IncludeGraph"):
            answer["Graph"] = {"Nodes": nodes, "Edges": []}
        return ActionResult({"Run": answer})

    def update_trigger(self: GlueResponse) -> ActionResult:
        params = json.loads(self.body)
        trigger = self.glue_backend.get_trigger(params["Name"])
        update = params["TriggerUpdate"]
        if "Description" in update:
            trigger.description = update["Description"]
        if "Schedule" in update:
            trigger.schedule = update["Schedule"]
        if "Actions" in update:
            trigger.actions = [Action(a) for a in update["Actions"]]
        if "Predicate" in update:
            trigger.predicate = Predicate(update["Predicate"])
        if "EventBatchingCondition" in update:
            trigger.event_batching_condition = update["EventBatchingCondition"]
        return ActionResult({"Trigger": trigger.as_dict()})

    def test_event_pattern(self: EventsHandler) -> tuple[str, dict[str, Any]]:
        raw = self._get_param("EventPattern")
        pattern = EventPattern(raw, EventPatternParser(raw).parse())
        matched = pattern.matches_event(json.loads(self._get_param("Event")))
        return json.dumps({"Result": matched}), self.response_headers

    original_get_notification = S3Response.get_bucket_notification

    def get_bucket_notification(self: S3Response) -> Any:
        answer = original_get_notification(self)
        found = self.backend.get_bucket_notification_configuration(self.bucket_name)
        if found is None or found.event_bridge is None:
            return answer
        status, headers, body = answer
        text = body.decode() if isinstance(body, bytes) else body
        closing = "</NotificationConfiguration>"
        if closing not in text:  # moto answered an empty configuration element
            text = re.sub(
                r"<NotificationConfiguration([^>]*)/>",
                r"<NotificationConfiguration\1>" + closing,
                text,
            )
        text = text.replace(
            closing, "<EventBridgeConfiguration></EventBridgeConfiguration>" + closing
        )
        return status, headers, text

    setattr_(S3Response, "get_bucket_notification", get_bucket_notification)
    setattr_(GlueBackend, "start_workflow_run", start_workflow_run)
    setattr_(GlueResponse, "get_workflow_run", get_workflow_run)
    setattr_(GlueResponse, "update_trigger", update_trigger)
    setattr_(EventsHandler, "test_event_pattern", test_event_pattern)


@pytest.fixture
def glue_workflows(monkeypatch: pytest.MonkeyPatch) -> WorkflowRuns:
    """moto with Glue workflow runs, UpdateTrigger and TestEventPattern filled in (above)."""
    return _workflow_stand_ins(monkeypatch)


def _workflow_stand_ins(monkeypatch: pytest.MonkeyPatch) -> WorkflowRuns:
    _check_workflow_moto()
    runs = WorkflowRuns()
    _install_workflow_stand_ins(
        runs, lambda cls, name, value: monkeypatch.setattr(cls, name, value, raising=False)
    )
    return runs


@pytest.fixture
def config() -> PipelineConfig:
    """The deployment under test; every name comes from the prefix."""
    return _config()


def _config() -> PipelineConfig:
    return PipelineConfig(
        prefix=PREFIX,
        target="aws",
        region=REGION,
        profile=None,
        endpoint_url=None,
        lake=Path("lake"),
    )


def _clients() -> SimpleNamespace:
    names = (
        "s3", "iam", "sts", "glue", "athena", "logs", "events", "sns", "cloudwatch", "kms", "sqs",
    )  # fmt: skip
    return SimpleNamespace(**{n: boto3.client(n, region_name=REGION) for n in names})


@pytest.fixture
def aws(
    aws_env: None,
    tls_requests: None,
    immediate_glue: None,
    glue_workflows: WorkflowRuns,
    one_rsa_pair_for_symmetric_keys: None,
) -> Iterator[SimpleNamespace]:
    """Open ``mock_aws`` and yield boto3 clients (s3, iam, sts, glue, athena, logs, events,
    sns, cloudwatch, kms, sqs)."""
    if _SHARED:
        pytest.fail(
            "a test asked for a fresh moto account while a class's shared one is open "
            "(moto_account, deployed_once): move it out of that class",
            pytrace=False,
        )
    with mock_aws():
        _share_botocore_models()
        yield _clients()


def _share_botocore_models() -> None:
    """boto3's default session, which ``mock_aws`` empties on start, made anew through
    ``pipeline.aws.new_session``: one that reads botocore's JSON models through the
    process's one loader, instead of parsing them again in every test (``mock_aws`` puts
    the session it found back when it stops)."""
    boto3.DEFAULT_SESSION = new_session()


@pytest.fixture
def deployed(aws: SimpleNamespace, config: PipelineConfig) -> SimpleNamespace:
    """Run ``up`` once (without Athena DDL) and yield the same clients."""
    infra.up(config, aws, tables=False)
    return aws


_SHARED: list[SimpleNamespace] = []  # the shared deployment while one is open


@pytest.fixture(scope="class")
def deployed_once() -> Iterator[SimpleNamespace]:
    """``deployed``, made once for all the tests of a class (moto set up as ``aws`` sets it
    up), and its clients.

    For tests that only read what ``up`` made, or that change only what the next ``up``
    puts back and check that it did (``assert_repaired``). A test that needs an account
    of its own asks for ``aws`` or ``deployed``, outside such a class.
    """
    with moto_account() as clients:
        infra.up(_config(), clients, tables=False)
        yield clients


@contextmanager
def moto_account() -> Iterator[SimpleNamespace]:
    """moto as ``aws`` sets it up, for a fixture of a wider scope (``deployed_once``):
    yields the clients; ``aws`` refuses to open another account until it closes."""
    with pytest.MonkeyPatch.context() as patch, _immediate_glue():
        _pin_aws_env(patch)
        _treat_requests_as_tls(patch)
        _share_one_rsa_pair(patch)
        _workflow_stand_ins(patch)
        with mock_aws():
            _share_botocore_models()
            clients = _clients()
            _SHARED.append(clients)
            try:
                yield clients
            finally:
                _SHARED.clear()


@pytest.fixture
def iam_enforced(monkeypatch: pytest.MonkeyPatch) -> None:
    """Turn on moto's IAM enforcement from the next request on (INITIAL_NO_AUTH_ACTION_COUNT=0)."""
    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    monkeypatch.setattr(ActionAuthenticatorMixin, "request_count", 0)


@pytest.fixture(scope="session")
def _moto_server_endpoint() -> Iterator[str]:
    """One moto server per test process (each xdist worker has its own), on a port the OS
    picks on 127.0.0.1; ``moto_server`` empties it before each test."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto_server(
    _moto_server_endpoint: str,
    aws_env: None,
    tls_requests: None,
    immediate_glue: None,
    glue_workflows: WorkflowRuns,
    one_rsa_pair_for_symmetric_keys: None,
) -> str:
    """moto's server on 127.0.0.1, emptied for this test (every account, region and
    service reset, as a new server would be); yields its endpoint URL.

    The server runs in a thread of this process, so the test patches above apply to it.
    """
    # moto's documented reset endpoint: every backend emptied (transitions are kept).
    requests.post(f"{_moto_server_endpoint}/moto-api/reset", timeout=30).raise_for_status()
    return _moto_server_endpoint


def serve(port: int = 5000) -> None:
    """Run a moto server for trying deploy.py by hand, with the same two test settings.

    ``python -m tests.moto_fixtures [PORT]``: requests count as TLS (see ``tls_requests``),
    crawls and job runs finish on the next poll, and workflow runs run (see
    ``WorkflowRuns``). Stop with Ctrl-C.
    """
    from moto.server import ThreadedMotoServer

    IAMPolicyStatement.is_action_permitted = _tls_aware(IAMPolicyStatement.is_action_permitted)
    _install_workflow_stand_ins(WorkflowRuns(), setattr)
    for model in ("glue::crawl", "glue::job_run"):
        state_manager.set_transition(model_name=model, transition={"progression": "immediate"})
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    print(f"moto server on http://127.0.0.1:{port} (Ctrl-C to stop)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


# ----------------------------------------------- shared by the deploy and infra tests
# Names of the test-sales deployment in moto's account, and helpers and fixtures that
# several tests/test_infra_*.py and tests/test_deploy_*.py files use.


BUCKETS = (
    "test-sales-raw",
    "test-sales-processed",
    "test-sales-scripts",
    "test-sales-athena-results",
)
ACCOUNT = "123456789012"  # moto's default account


def lifecycle_rules(s3, bucket):
    return {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}


def bucket_tags(s3, bucket):
    try:
        return {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchTagSet"
        return {}


def run_on_aws(config, clients, sales, customers, run_id="r1"):
    """The runner's stages on the aws target, on the given moto clients."""
    target = AwsTarget(config, clients=clients, poll_seconds=0, sleep=lambda _: None)
    options = RunOptions(sales_path=sales, customers_path=customers, run_id=run_id)
    return run(config, options, target=target)


STEM = "test-sales-123456789012-us-east-1"  # what `deploy.py --prefix test-sales` names
WORKFLOW = "test-sales-workflow"
START = "test-sales-workflow-start"
AFTER_CRAWL = "test-sales-workflow-after-crawl"
CRAWLER = "test-sales-raw-crawler"
JOB = "test-sales-etl-job"
RULE = "test-sales-failures"
RULE_ARN = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/test-sales-failures"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:test-sales-alerts"
ALARM = "test-sales-quarantine-rate"
ALARM_ARN = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:test-sales-quarantine-rate"
MARK_LIST = [
    {"Key": "managed-by", "Value": "deploy.py"},
    {"Key": "pipeline-prefix", "Value": "test-sales"},
]
DAILY = "cron(0 6 * * ? *)"


def sorted_tags(tag_list):
    return sorted(tag_list, key=lambda t: t["Key"])


def assert_repaired(config, clients, expected: list[str], ops: Operations | None = None) -> None:
    """One `up` makes exactly ``expected``; the next finds nothing to do."""
    assert infra.up(config, clients, tables=False, ops=ops) == expected
    assert infra.up(config, clients, tables=False, ops=ops) == []


def look_alikes(aws) -> None:
    """The new names, taken by resources made by hand (no marks)."""
    aws.glue.create_workflow(Name=WORKFLOW)
    aws.events.put_rule(Name=RULE, EventPattern=json.dumps({"source": ["aws.glue"]}))
    aws.sns.create_topic(Name="test-sales-alerts")
    aws.cloudwatch.put_metric_alarm(
        AlarmName=ALARM,
        Namespace="Other",
        MetricName="X",
        Statistic="Maximum",
        Period=60,
        EvaluationPeriods=1,
        ComparisonOperator="GreaterThanThreshold",
        Threshold=1.0,
    )


DATABASE = "sales_analytics_db_test_sales"  # the test prefix's
MARKS = {"managed-by": "deploy.py", "pipeline-prefix": "test-sales"}
SALES_URI = "s3://test-sales-raw/input/sales_data_csv/"
CUSTOMERS_URI = "s3://test-sales-raw/input/customer_demographics_json/"


# UpdateJob's JobUpdate members and the FakeJob attribute each one sets.
_JOB_UPDATE = {
    "Description": "description",
    "LogUri": "log_uri",
    "Role": "role",
    "ExecutionProperty": "execution_property",
    "Command": "command",
    "DefaultArguments": "default_arguments",
    "NonOverridableArguments": "non_overridable_arguments",
    "Connections": "connections",
    "MaxRetries": "max_retries",
    "AllocatedCapacity": "allocated_capacity",
    "Timeout": "timeout",
    "MaxCapacity": "max_capacity",
    "WorkerType": "worker_type",
    "NumberOfWorkers": "number_of_workers",
    "SecurityConfiguration": "security_configuration",
    "NotificationProperty": "notification_property",
    "GlueVersion": "glue_version",
    "CodeGenConfigurationNodes": "code_gen_configuration_nodes",
    "ExecutionClass": "execution_class",
    "SourceControlDetails": "source_control_details",
}
_CRAWLER_UPDATE = {
    "Role": "role",
    "DatabaseName": "database_name",
    "Description": "description",
    "Targets": "targets",
    "Classifiers": "classifiers",
    "TablePrefix": "table_prefix",
    "SchemaChangePolicy": "schema_change_policy",
    "RecrawlPolicy": "recrawl_policy",
    "LineageConfiguration": "lineage_configuration",
    "Configuration": "configuration",
    "CrawlerSecurityConfiguration": "crawler_security_configuration",
}


def _update_crawler(self: GlueResponse) -> ActionResult:
    params = json.loads(self.body)
    crawler = self.glue_backend.get_crawler(params["Name"])
    for member, attribute in _CRAWLER_UPDATE.items():
        if member in params:
            setattr(crawler, attribute, params[member])
    if "Schedule" in params:
        crawler.schedule = params["Schedule"]
    crawler.version += 1
    crawler.last_updated = utcnow()
    return EmptyResult()


def _update_job(self: GlueResponse) -> ActionResult:
    params = json.loads(self.body)
    job = self.glue_backend.get_job(params["JobName"])
    update = params["JobUpdate"]
    for member, attribute in _JOB_UPDATE.items():  # a replace: omitted members are reset
        setattr(job, attribute, update.get(member))
    job.execution_property = job.execution_property or {"MaxConcurrentRuns": 1}
    job.default_arguments = job.default_arguments or {}
    job.execution_class = job.execution_class or "STANDARD"
    job.last_modified_on = utcnow()
    return ActionResult({"JobName": job.name})


def _update_work_group(self: AthenaResponse) -> Any:
    params = json.loads(self.body)
    wg = self.athena_backend.work_groups.get(params["WorkGroup"])
    if wg is None:
        return self.error("WorkGroup does not exist", 400)
    if "Description" in params:
        wg.description = params["Description"]
    if "State" in params:
        wg.state = params["State"]
    updates = params.get("ConfigurationUpdates", {})
    conf = wg.configuration
    for key in (
        "EnforceWorkGroupConfiguration",
        "PublishCloudWatchMetricsEnabled",
        "BytesScannedCutoffPerQuery",
        "RequesterPaysEnabled",
        "EnableMinimumEncryptionConfiguration",
    ):
        if key in updates:
            conf[key] = updates[key]
    if updates.get("RemoveBytesScannedCutoffPerQuery"):
        conf.pop("BytesScannedCutoffPerQuery", None)
    if "EngineVersion" in updates:
        selected = updates["EngineVersion"]["SelectedEngineVersion"]
        effective = "Athena engine version 3" if selected == "AUTO" else selected
        conf["EngineVersion"] = {
            "SelectedEngineVersion": selected,
            "EffectiveEngineVersion": effective,
        }
    result_updates = updates.get("ResultConfigurationUpdates", {})
    result = conf.setdefault("ResultConfiguration", {})
    for key in (
        "OutputLocation",
        "EncryptionConfiguration",
        "ExpectedBucketOwner",
        "AclConfiguration",
    ):
        if key in result_updates:
            result[key] = result_updates[key]
        if result_updates.get(f"Remove{key}"):
            result.pop(key, None)
    return "{}"


@pytest.fixture
def moto_updates(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give moto UpdateCrawler, UpdateJob and UpdateWorkGroup where it has none."""
    for cls, action, implementation in (
        (GlueResponse, "update_crawler", _update_crawler),
        (GlueResponse, "update_job", _update_job),
        (AthenaResponse, "update_work_group", _update_work_group),
    ):
        if not hasattr(cls, action):
            monkeypatch.setattr(cls, action, implementation, raising=False)


@pytest.fixture
def drift(deployed, moto_updates):
    """The deployed clients, with the three update actions available to drift and repair."""
    return deployed


def glue_tags(glue, kind: str, name: str) -> dict[str, str]:
    return glue.get_tags(ResourceArn=f"arn:aws:glue:us-east-1:{ACCOUNT}:{kind}/{name}")["Tags"]


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test on any AWS client being built or any API call being made."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a dry run touched AWS")

    monkeypatch.setattr("botocore.client.BaseClient._make_api_call", refuse)
    monkeypatch.setattr("botocore.session.Session.create_client", refuse)


ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/test-sales-glue-role"


def with_clients(clients, **replaced):
    """The same clients with some replaced (e.g. a Glue client that fails first)."""
    return SimpleNamespace(**{**vars(clients), **replaced})


# moto 5.2.5 implements neither UpdateCrawler nor UpdateJob: the double below records them.
MOTO_LACKS = ("update_crawler", "update_job")


class GlueDouble:
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


if __name__ == "__main__":
    import sys

    serve(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
