"""Issue 13 on the aws target: the Glue workflow and its triggers, the failure alerts
(EventBridge rule -> SNS topic), the quarantine-rate alarm, and `run --workflow`.

Against moto in-process. Expected values are written out literally (prefix ``test-sales``,
moto's account ``123456789012``), not recomputed by the code under test. moto 5.2.5 runs
no workflow, has no UpdateTrigger and no TestEventPattern: ``tests/moto_fixtures.py``
fills these in (see its ``WorkflowRuns``), on moto's own crawler, job run and
event-pattern models.
"""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError
from moto.athena.models import QueryResults, athena_backends
from moto_fixtures import REGION
from test_deploy_server import CHART_RESULTS, EMPTY_RESULT, OTHER_RESULT

import deploy
from pipeline import infra
from pipeline.errors import DeployError, UsageError, WorkflowRunFailed
from pipeline.infra import trigger
from pipeline.infra.operations import Operations
from pipeline.infra.shared import Account, Context
from pipeline.runner import RunOptions, run
from pipeline.sql import analytic_names, ddl_names
from pipeline.targets.aws import AwsTarget

ACCOUNT = "123456789012"
GLUE = f"arn:aws:glue:{REGION}:{ACCOUNT}"
WORKFLOW = "test-sales-workflow"
START = "test-sales-workflow-start"
AFTER_CRAWL = "test-sales-workflow-after-crawl"
CRAWLER = "test-sales-raw-crawler"
JOB = "test-sales-etl-job"
RULE = "test-sales-failures"
RULE_ARN = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/test-sales-failures"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:test-sales-alerts"
KEY_ALIAS_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/test-sales-alerts"
ALARM = "test-sales-quarantine-rate"
ALARM_ARN = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:test-sales-quarantine-rate"
MARKS = {"managed-by": "deploy.py", "pipeline-prefix": "test-sales"}
MARK_LIST = [
    {"Key": "managed-by", "Value": "deploy.py"},
    {"Key": "pipeline-prefix", "Value": "test-sales"},
]
DAILY = "cron(0 6 * * ? *)"

PATTERN = {
    "source": ["aws.glue"],
    "detail-type": ["Glue Job State Change", "Glue Crawler State Change"],
    "detail": {
        "$or": [
            {"jobName": ["test-sales-etl-job"], "state": ["FAILED", "TIMEOUT", "STOPPED"]},
            {"crawlerName": ["test-sales-raw-crawler"], "state": ["Failed"]},
        ]
    },
}
TOPIC_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "FailuresRulePublishes",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sns:Publish",
            "Resource": TOPIC_ARN,
            "Condition": {"ArnEquals": {"aws:SourceArn": RULE_ARN}},
        },
        {
            "Sid": "QuarantineAlarmPublishes",
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": "sns:Publish",
            "Resource": TOPIC_ARN,
            "Condition": {"ArnEquals": {"aws:SourceArn": ALARM_ARN}},
        },
    ],
}


def _sorted_tags(tag_list):
    return sorted(tag_list, key=lambda t: t["Key"])


def _repaired(config, clients, expected: list[str], ops: Operations | None = None) -> None:
    """One `up` makes exactly ``expected``; the next finds nothing to do."""
    assert infra.up(config, clients, tables=False, ops=ops) == expected
    assert infra.up(config, clients, tables=False, ops=ops) == []


# ------------------------------------------------------------------ what up creates


def test_up_creates_the_workflow_with_an_on_demand_start_and_a_conditional_job_trigger(
    deployed,
):
    glue = deployed.glue
    workflow = glue.get_workflow(Name=WORKFLOW)["Workflow"]
    assert workflow["Description"] == "Sales pipeline: crawl the raw inputs, then run the ETL job"
    assert workflow["MaxConcurrentRuns"] == 1
    start = glue.get_trigger(Name=START)["Trigger"]
    assert start == {
        "Name": START,
        "WorkflowName": WORKFLOW,
        "Type": "ON_DEMAND",
        "Description": "Starts the crawler: on demand",
        "Actions": [{"CrawlerName": CRAWLER}],
        "State": "CREATED",
    }
    after = glue.get_trigger(Name=AFTER_CRAWL)["Trigger"]
    assert after == {
        "Name": AFTER_CRAWL,
        "WorkflowName": WORKFLOW,
        "Type": "CONDITIONAL",
        "Description": "Starts the ETL job when the crawl succeeded",
        "Predicate": {
            "Logical": "ANY",
            "Conditions": [
                {
                    "LogicalOperator": "EQUALS",
                    "CrawlerName": CRAWLER,
                    "CrawlState": "SUCCEEDED",
                }
            ],
        },
        "Actions": [{"JobName": JOB}],
        "State": "ACTIVATED",
    }
    for kind, name in (("workflow", WORKFLOW), ("trigger", START), ("trigger", AFTER_CRAWL)):
        assert glue.get_tags(ResourceArn=f"{GLUE}:{kind}/{name}")["Tags"] == MARKS


def test_up_with_a_schedule_makes_an_activated_scheduled_start_trigger(aws, config):
    infra.up(config, aws, tables=False, ops=Operations(schedule=DAILY))
    start = aws.glue.get_trigger(Name=START)["Trigger"]
    assert (start["Type"], start["Schedule"], start["State"]) == ("SCHEDULED", DAILY, "ACTIVATED")
    assert start["Actions"] == [{"CrawlerName": CRAWLER}]
    assert start["Description"] == "Starts the crawler: cron(0 6 * * ? *)"


def test_up_creates_the_failures_rule_targeting_the_topic(deployed):
    rule = deployed.events.describe_rule(Name=RULE)
    assert json.loads(rule["EventPattern"]) == PATTERN
    assert rule["State"] == "ENABLED"
    assert rule["Arn"] == RULE_ARN
    assert deployed.events.list_targets_by_rule(Rule=RULE)["Targets"] == [
        {"Id": "alerts-topic", "Arn": TOPIC_ARN}
    ]
    tags = deployed.events.list_tags_for_resource(ResourceARN=RULE_ARN)["Tags"]
    assert _sorted_tags(tags) == MARK_LIST


def test_up_creates_an_encrypted_topic_that_only_the_rule_and_the_alarm_may_publish_to(
    deployed,
):
    attributes = deployed.sns.get_topic_attributes(TopicArn=TOPIC_ARN)["Attributes"]
    assert attributes["KmsMasterKeyId"] == KEY_ALIAS_ARN
    assert json.loads(attributes["Policy"]) == TOPIC_POLICY
    tags = deployed.sns.list_tags_for_resource(ResourceArn=TOPIC_ARN)["Tags"]
    assert _sorted_tags(tags) == MARK_LIST
    # No --alert-email: no subscription.
    assert deployed.sns.list_subscriptions_by_topic(TopicArn=TOPIC_ARN)["Subscriptions"] == []


def test_up_creates_the_quarantine_rate_alarm_on_the_jobs_metric(deployed):
    [alarm] = deployed.cloudwatch.describe_alarms(AlarmNames=[ALARM])["MetricAlarms"]
    assert {
        k: alarm[k]
        for k in (
            "AlarmName",
            "Namespace",
            "MetricName",
            "Dimensions",
            "Statistic",
            "Period",
            "EvaluationPeriods",
            "ComparisonOperator",
            "Threshold",
            "TreatMissingData",
            "ActionsEnabled",
            "AlarmActions",
        )
    } == {
        "AlarmName": ALARM,
        "Namespace": "SalesPipeline",
        "MetricName": "QuarantineRate",
        "Dimensions": [{"Name": "Pipeline", "Value": "test-sales"}],
        "Statistic": "Maximum",
        "Period": 300,
        "EvaluationPeriods": 1,
        "ComparisonOperator": "GreaterThanThreshold",
        "Threshold": 0.05,
        "TreatMissingData": "notBreaching",
        "ActionsEnabled": True,
        "AlarmActions": [TOPIC_ARN],
    }
    tags = deployed.cloudwatch.list_tags_for_resource(ResourceARN=ALARM_ARN)["Tags"]
    assert _sorted_tags(tags) == MARK_LIST


def test_the_glue_job_is_told_where_to_publish_its_metrics(deployed):
    arguments = deployed.glue.get_job(JobName=JOB)["Job"]["DefaultArguments"]
    assert arguments["--metrics_namespace"] == "SalesPipeline"
    assert arguments["--pipeline_prefix"] == "test-sales"


def test_alert_email_subscribes_the_address_and_up_resubscribes_it_when_removed(aws, config):
    ops = Operations(alert_email="oncall@example.com")
    infra.up(config, aws, tables=False, ops=ops)
    [sub] = aws.sns.list_subscriptions_by_topic(TopicArn=TOPIC_ARN)["Subscriptions"]
    assert (sub["Protocol"], sub["Endpoint"]) == ("email", "oncall@example.com")
    assert infra.up(config, aws, tables=False, ops=ops) == []

    aws.sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])
    _repaired(
        config,
        aws,
        [
            "subscribed oncall@example.com to test-sales-alerts (AWS emails a confirmation "
            "link: alerts reach the address once it is clicked)"
        ],
        ops,
    )
    # up without --alert-email removes no subscription.
    assert infra.up(config, aws, tables=False) == []
    assert len(aws.sns.list_subscriptions_by_topic(TopicArn=TOPIC_ARN)["Subscriptions"]) == 1


# ----------------------------------------------------------------- drift repaired by up


def test_up_puts_back_a_schedule_changed_by_hand_and_follows_the_flag(aws, config):
    daily = Operations(schedule=DAILY)
    infra.up(config, aws, tables=False, ops=daily)
    aws.glue.update_trigger(
        Name=START, TriggerUpdate={"Name": START, "Schedule": "cron(0 1 * * ? *)"}
    )
    _repaired(config, aws, [f"updated trigger {START}"], daily)
    assert aws.glue.get_trigger(Name=START)["Trigger"]["Schedule"] == DAILY

    aws.glue.stop_trigger(Name=START)
    _repaired(config, aws, [f"activated trigger {START} (was DEACTIVATED)"], daily)

    # Without --schedule the workflow runs on demand: the type changes, so it is replaced.
    _repaired(config, aws, [f"replaced trigger {START}: SCHEDULED -> ON_DEMAND"])
    start = aws.glue.get_trigger(Name=START)["Trigger"]
    assert (start["Type"], "Schedule" in start) == ("ON_DEMAND", False)
    assert aws.glue.get_tags(ResourceArn=f"{GLUE}:trigger/{START}")["Tags"] == MARKS


class _GlueTriggerStates:
    """moto's Glue client, but with the states a Glue trigger passes through on AWS, where
    moto's change at once: GetTrigger of ``name`` first answers the queued ``states`` (one
    a call, on moto's trigger); after DeleteTrigger of ``name`` it answers DELETING
    ``deleting`` times before moto's EntityNotFoundException, and CreateTrigger of that
    name fails meanwhile with AlreadyExistsException, as on AWS. ``calls`` records the
    trigger calls on ``name`` and the state each GetTrigger answered."""

    def __init__(self, glue, name, states=(), deleting=0):
        self._glue, self.name = glue, name
        self.states, self.deleting, self.deleting_left = list(states), deleting, 0
        self.deleted = None
        self.calls = []

    def __getattr__(self, attr):
        return getattr(self._glue, attr)

    def get_trigger(self, Name):  # noqa: N803
        if Name != self.name:
            return self._glue.get_trigger(Name=Name)
        if self.deleting_left:
            self.deleting_left -= 1
            self.calls.append(("get_trigger", "DELETING"))
            return {"Trigger": {**self.deleted, "State": "DELETING"}}
        try:
            trigger = self._glue.get_trigger(Name=Name)["Trigger"]
        except ClientError as exc:
            self.calls.append(("get_trigger", exc.response["Error"]["Code"]))
            raise
        if self.states:
            trigger = {**trigger, "State": self.states.pop(0)}
        self.calls.append(("get_trigger", trigger["State"]))
        return {"Trigger": trigger}

    def delete_trigger(self, Name):  # noqa: N803
        if Name == self.name:
            self.calls.append(("delete_trigger",))
            self.deleted = self._glue.get_trigger(Name=Name)["Trigger"]
            self.deleting_left = self.deleting
        return self._glue.delete_trigger(Name=Name)

    def create_trigger(self, **request):
        if request["Name"] == self.name:
            self.calls.append(("create_trigger", request["Type"]))
            if self.deleting_left:
                raise ClientError(
                    {
                        "Error": {
                            "Code": "AlreadyExistsException",
                            "Message": f"Trigger with name {self.name} already submitted",
                        }
                    },
                    "CreateTrigger",
                )
        return self._glue.create_trigger(**request)

    def start_trigger(self, Name):  # noqa: N803
        if Name == self.name:
            self.calls.append(("start_trigger",))
        return self._glue.start_trigger(Name=Name)


def _with_glue(clients, glue):
    return SimpleNamespace(**{**vars(clients), "glue": glue})


def test_up_replacing_the_start_trigger_creates_it_again_only_once_the_old_one_is_gone(aws, config):
    infra.up(config, aws, tables=False, ops=Operations(schedule=DAILY))
    glue = _GlueTriggerStates(aws.glue, START, deleting=2)
    sleeps = []

    changes = infra.up(config, _with_glue(aws, glue), tables=False, sleep=sleeps.append)

    assert changes == [f"replaced trigger {START}: SCHEDULED -> ON_DEMAND"]
    assert glue.calls == [
        ("get_trigger", "ACTIVATED"),  # up's ownership check
        ("get_trigger", "ACTIVATED"),
        ("delete_trigger",),
        ("get_trigger", "DELETING"),
        ("get_trigger", "DELETING"),
        ("get_trigger", "EntityNotFoundException"),
        ("create_trigger", "ON_DEMAND"),
    ]
    assert sleeps == [1.0, 1.0]
    start = aws.glue.get_trigger(Name=START)["Trigger"]
    assert (start["Type"], start["State"]) == ("ON_DEMAND", "CREATED")


def test_up_gives_up_on_a_trigger_that_stays_deleting_without_creating_it(aws, config):
    infra.up(config, aws, tables=False, ops=Operations(schedule=DAILY))
    glue = _GlueTriggerStates(aws.glue, START, deleting=31)
    sleeps = []

    with pytest.raises(DeployError) as stuck:
        infra.up(config, _with_glue(aws, glue), tables=False, sleep=sleeps.append)

    assert str(stuck.value) == (
        f"trigger {START} is still DELETING after 30s of waiting for it to be deleted; "
        "check it in the Glue console and run `deploy.py up` again"
    )
    assert sleeps == [1.0] * 30
    assert ("create_trigger", "ON_DEMAND") not in glue.calls


@pytest.mark.parametrize(
    ("deactivated", "states", "calls", "changes"),
    [
        # Being activated (say by someone in the console): waited for, not started again.
        (
            False,
            ["ACTIVATING", "ACTIVATING"],
            [("get_trigger", "ACTIVATING"), ("get_trigger", "ACTIVATING")]
            + [("get_trigger", "ACTIVATED")],
            [],
        ),
        # Being deactivated: waited for, then started.
        (
            True,
            ["DEACTIVATING"],
            [("get_trigger", "DEACTIVATING"), ("get_trigger", "DEACTIVATED")]
            + [("start_trigger",)],
            [f"activated trigger {START} (was DEACTIVATED)"],
        ),
    ],
    ids=["activating", "deactivating"],
)
def test_up_waits_out_a_trigger_in_a_passing_state_and_starts_only_a_stopped_one(
    aws, config, deactivated, states, calls, changes
):
    daily = Operations(schedule=DAILY)
    infra.up(config, aws, tables=False, ops=daily)
    if deactivated:
        aws.glue.stop_trigger(Name=START)
    glue = _GlueTriggerStates(aws.glue, START, states=states)
    sleeps = []

    made = trigger.ensure(
        Context(config, _with_glue(aws, glue), Account.of(aws), daily, sleeps.append)
    )

    assert made == changes
    assert glue.calls == calls
    assert sleeps == [1.0] * len(states)
    assert aws.glue.get_trigger(Name=START)["Trigger"]["State"] == "ACTIVATED"


def test_up_gives_up_on_a_trigger_that_stays_updating_and_leaves_it_alone(aws, config):
    daily = Operations(schedule=DAILY)
    infra.up(config, aws, tables=False, ops=daily)
    glue = _GlueTriggerStates(aws.glue, START, states=["UPDATING"] * 31)
    sleeps = []

    with pytest.raises(DeployError) as stuck:
        trigger.ensure(
            Context(config, _with_glue(aws, glue), Account.of(aws), daily, sleeps.append)
        )

    assert str(stuck.value) == (
        f"trigger {START} is still UPDATING after 30s of waiting for it to settle; "
        "check it in the Glue console and run `deploy.py up` again"
    )
    assert sleeps == [1.0] * 30
    assert glue.calls == [("get_trigger", "UPDATING")] * 31


def test_up_puts_back_the_job_trigger_changed_or_deactivated_by_hand(deployed, config):
    glue = deployed.glue
    glue.update_trigger(
        Name=AFTER_CRAWL,
        TriggerUpdate={
            "Name": AFTER_CRAWL,
            "Predicate": {
                "Logical": "ANY",
                "Conditions": [
                    {"LogicalOperator": "EQUALS", "CrawlerName": CRAWLER, "CrawlState": "FAILED"}
                ],
            },
        },
    )
    glue.stop_trigger(Name=AFTER_CRAWL)
    _repaired(
        config,
        deployed,
        [f"updated trigger {AFTER_CRAWL}", f"activated trigger {AFTER_CRAWL} (was DEACTIVATED)"],
    )
    condition = glue.get_trigger(Name=AFTER_CRAWL)["Trigger"]["Predicate"]["Conditions"][0]
    assert condition["CrawlState"] == "SUCCEEDED"


def test_up_puts_back_the_rule_pattern_and_target_changed_by_hand(deployed, config):
    events = deployed.events
    events.put_rule(Name=RULE, EventPattern=json.dumps({"source": ["aws.glue"]}))
    events.remove_targets(Rule=RULE, Ids=["alerts-topic"])
    events.put_targets(
        Rule=RULE, Targets=[{"Id": "elsewhere", "Arn": "arn:aws:sns:us-east-1:123456789012:other"}]
    )
    _repaired(
        config,
        deployed,
        [
            f"updated rule {RULE}",
            f"set the target of rule {RULE} to topic test-sales-alerts",
        ],
    )
    assert json.loads(events.describe_rule(Name=RULE)["EventPattern"]) == PATTERN
    assert events.list_targets_by_rule(Rule=RULE)["Targets"] == [
        {"Id": "alerts-topic", "Arn": TOPIC_ARN}
    ]


def test_up_puts_back_the_topic_policy_and_encryption_changed_by_hand(deployed, config):
    sns = deployed.sns
    anyone = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "sns:Publish", "Resource": TOPIC_ARN}
        ],
    }
    sns.set_topic_attributes(
        TopicArn=TOPIC_ARN, AttributeName="Policy", AttributeValue=json.dumps(anyone)
    )
    sns.set_topic_attributes(TopicArn=TOPIC_ARN, AttributeName="KmsMasterKeyId", AttributeValue="")
    _repaired(
        config,
        deployed,
        ["set encryption of topic test-sales-alerts", "set policy of topic test-sales-alerts"],
    )
    attributes = sns.get_topic_attributes(TopicArn=TOPIC_ARN)["Attributes"]
    assert json.loads(attributes["Policy"]) == TOPIC_POLICY
    assert attributes["KmsMasterKeyId"] == KEY_ALIAS_ARN


def test_up_puts_back_the_alarm_threshold_and_follows_the_flag(deployed, config):
    cloudwatch = deployed.cloudwatch
    cloudwatch.put_metric_alarm(
        AlarmName=ALARM,
        Namespace="SalesPipeline",
        MetricName="QuarantineRate",
        Dimensions=[{"Name": "Pipeline", "Value": "test-sales"}],
        Statistic="Maximum",
        Period=300,
        EvaluationPeriods=1,
        ComparisonOperator="GreaterThanThreshold",
        Threshold=0.9,
        AlarmActions=[],
    )
    _repaired(config, deployed, [f"updated alarm {ALARM}"])
    [alarm] = cloudwatch.describe_alarms(AlarmNames=[ALARM])["MetricAlarms"]
    assert (alarm["Threshold"], alarm["AlarmActions"]) == (0.05, [TOPIC_ARN])

    _repaired(config, deployed, [f"updated alarm {ALARM}"], Operations(max_quarantine_rate=0.2))
    [alarm] = cloudwatch.describe_alarms(AlarmNames=[ALARM])["MetricAlarms"]
    assert alarm["Threshold"] == 0.2


def test_up_recreates_operations_resources_deleted_by_hand(deployed, config):
    deployed.cloudwatch.delete_alarms(AlarmNames=[ALARM])
    deployed.events.remove_targets(Rule=RULE, Ids=["alerts-topic"])
    deployed.events.delete_rule(Name=RULE)
    deployed.glue.delete_trigger(Name=AFTER_CRAWL)
    _repaired(
        config,
        deployed,
        [
            f"created trigger {AFTER_CRAWL} (CONDITIONAL)",
            f"created rule {RULE}",
            f"set the target of rule {RULE} to topic test-sales-alerts",
            f"created alarm {ALARM}",
        ],
    )


# ------------------------------------------------------------- the failures pattern


def _glue_event(detail_type: str, detail: dict) -> str:
    """An event as EventBridge delivers Glue's state changes."""
    return json.dumps(
        {
            "version": "0",
            "id": "2a6d6b2f-0b8c-4a1b-9c8e-6c2f1f3e4d5a",
            "detail-type": detail_type,
            "source": "aws.glue",
            "account": ACCOUNT,
            "time": "2026-11-27T06:12:00Z",
            "region": REGION,
            "resources": [],
            "detail": detail,
        }
    )


def _job_event(job: str, state: str) -> str:
    return _glue_event(
        "Glue Job State Change",
        {
            "jobName": job,
            "severity": "ERROR" if state != "SUCCEEDED" else "INFO",
            "state": state,
            "jobRunId": "jr_0123",
            "message": "An error occurred",
        },
    )


def _crawler_event(crawler: str, state: str) -> str:
    return _glue_event(
        "Glue Crawler State Change",
        {"crawlerName": crawler, "state": state, "errorMessage": "Internal Service Exception"},
    )


@pytest.mark.parametrize(
    ("event", "matched"),
    [
        (_job_event("test-sales-etl-job", "FAILED"), True),
        (_job_event("test-sales-etl-job", "TIMEOUT"), True),
        (_job_event("test-sales-etl-job", "STOPPED"), True),
        (_job_event("test-sales-etl-job", "SUCCEEDED"), False),
        (_job_event("someone-elses-job", "FAILED"), False),
        (_crawler_event("test-sales-raw-crawler", "Failed"), True),
        (_crawler_event("test-sales-raw-crawler", "Succeeded"), False),
        (_crawler_event("someone-elses-crawler", "Failed"), False),
        # A job event naming our crawler's name as a job: not ours.
        (_job_event("test-sales-raw-crawler", "FAILED"), False),
    ],
    ids=[
        "job-failed",
        "job-timeout",
        "job-stopped",
        "job-succeeded",
        "other-job",
        "crawler-failed",
        "crawler-succeeded",
        "other-crawler",
        "crawler-name-as-job",
    ],
)
def test_the_deployed_rule_pattern_matches_only_our_failures(deployed, event, matched):
    pattern = deployed.events.describe_rule(Name=RULE)["EventPattern"]
    assert (
        deployed.events.test_event_pattern(EventPattern=pattern, Event=event)["Result"] is matched
    )


# ------------------------------------------------------------------------- ownership


def _look_alikes(aws) -> None:
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


def test_up_refuses_a_workflow_rule_topic_or_alarm_it_did_not_make(aws, config):
    _look_alikes(aws)
    with pytest.raises(DeployError) as error:
        infra.up(config, aws, tables=False)
    message = str(error.value)
    for taken in (
        "glue-workflow test-sales-workflow (it has no tags)",
        "sns-topic test-sales-alerts (it has no tags)",
        "events-rule test-sales-failures (it has no tags)",
        "cloudwatch-alarm test-sales-quarantine-rate (it has no tags)",
    ):
        assert taken in message
    assert aws.s3.list_buckets()["Buckets"] == []  # refused before any change


def test_down_removes_what_up_made_in_order(deployed, config):
    key_id = deployed.kms.describe_key(KeyId="alias/test-sales-alerts")["KeyMetadata"]["KeyId"]
    deleted = infra.down(config, deployed)
    assert deleted[:9] == [
        f"alarm {ALARM}",
        f"rule {RULE} (and its 1 target(s))",
        "topic test-sales-alerts (and its subscriptions)",
        f"KMS key {key_id} (scheduled for deletion in 7 days)",
        "alias alias/test-sales-alerts",
        f"trigger {AFTER_CRAWL}",
        f"trigger {START}",
        f"workflow {WORKFLOW}",
        "workgroup test-sales-workgroup",
    ]
    assert deployed.glue.list_workflows()["Workflows"] == []
    assert deployed.glue.get_triggers()["Triggers"] == []
    assert deployed.events.list_rules()["Rules"] == []
    assert deployed.sns.list_topics()["Topics"] == []
    assert deployed.cloudwatch.describe_alarms()["MetricAlarms"] == []


def test_down_keeps_unmarked_look_alikes(aws, config, caplog):
    # In a fresh account: moto keeps a deleted alarm's tags for a new alarm of that name.
    _look_alikes(aws)
    caplog.set_level(logging.WARNING)
    assert infra.down(config, aws) == []
    assert aws.glue.list_workflows()["Workflows"] == [WORKFLOW]
    assert [r["Name"] for r in aws.events.list_rules()["Rules"]] == [RULE]
    assert aws.sns.list_topics()["Topics"] == [{"TopicArn": TOPIC_ARN}]
    assert len(aws.cloudwatch.describe_alarms()["MetricAlarms"]) == 1
    for kind, name in (
        ("glue-workflow", WORKFLOW),
        ("events-rule", RULE),
        ("sns-topic", "test-sales-alerts"),
        ("cloudwatch-alarm", ALARM),
    ):
        assert f"{kind} {name} exists but deploy.py did not make it" in caplog.text


# ---------------------------------------------------------------- dry run, CLI flags


def test_dry_run_shows_every_new_resource_and_setting_and_calls_nothing(monkeypatch, capsys):
    def no_aws(*args, **kwargs):
        raise AssertionError("dry run called AWS")

    monkeypatch.setattr("botocore.client.BaseClient._make_api_call", no_aws)
    argv = ["--prefix", "plan-test", "--region", "us-east-1", "--account-id", "111122223333"]
    flags = ["--schedule", DAILY, "--alert-email", "oncall@example.com"]
    assert deploy.main(["up", "--dry-run", *argv, *flags, "--max-quarantine-rate", "0.1"]) == 0
    out = capsys.readouterr().out
    for header in (
        "== glue-workflow: plan-test-workflow",
        "== glue-trigger: plan-test-workflow-start",
        "== glue-trigger: plan-test-workflow-after-crawl",
        "== kms-key: alias/plan-test-alerts",
        "== sns-topic: plan-test-alerts",
        "== sns-subscription: oncall@example.com",
        "== events-rule: plan-test-failures",
        "== cloudwatch-alarm: plan-test-quarantine-rate",
    ):
        assert header in out
    for setting in (
        '"Schedule": "cron(0 6 * * ? *)"',
        '"Type": "SCHEDULED"',
        '"CrawlState": "SUCCEEDED"',
        '"KmsMasterKeyId": "arn:aws:kms:us-east-1:111122223333:alias/plan-test-alerts"',
        '"EnableKeyRotation": true',
        '"Threshold": 0.1',
        '"Arn": "arn:aws:sns:us-east-1:111122223333:plan-test-alerts"',
        '"--metrics_namespace": "SalesPipeline"',
        r"\"jobName\": [\"plan-test-etl-job\"]",
        r"arn:aws:events:us-east-1:111122223333:rule/plan-test-failures",
    ):
        assert setting in out

    assert deploy.main(["down", "--dry-run", *argv]) == 0
    out = capsys.readouterr().out
    lines = [line.strip() for line in out.splitlines()]
    order = [
        "cloudwatch-alarm plan-test-quarantine-rate",
        "events-rule plan-test-failures (its targets first)",
        "(then: stop a running run of workflow plan-test-workflow, a running crawl of "
        "plan-test-raw-crawler and active runs of plan-test-etl-job, and wait for them; after "
        "the alarm and the rule, so that a stopped run mails no failure alert)",
        "sns-topic plan-test-alerts with its subscriptions",
        "kms-key behind alias/plan-test-alerts: scheduled for deletion in 7 days (unless "
        "already pending), then the alias; without the alias, the keys tagged ours",
        "glue-trigger plan-test-workflow-after-crawl",
        "glue-trigger plan-test-workflow-start",
        "glue-workflow plan-test-workflow",
    ]
    assert [lines.index(item) for item in order] == sorted(lines.index(item) for item in order)

    assert deploy.main(["run", "--dry-run", "--workflow", *argv]) == 0
    assert "start workflow plan-test-workflow" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["up", "--schedule", "daily"], "is not a Glue cron expression"),
        (["up", "--schedule", "cron(0 6 * * ?)"], "is not a Glue cron expression"),
        (["up", "--alert-email", "oncall"], "does not look like an email address"),
        (["up", "--max-quarantine-rate", "5"], "must be between 0 and 1"),
        (["run", "--workflow", "--run-id", "r1"], "--run-id does not go with --workflow"),
    ],
    ids=["schedule-word", "schedule-five-fields", "email", "rate", "run-id"],
)
def test_bad_operations_flags_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        deploy.main([*argv, "--prefix", "plan-test", "--dry-run"])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_the_workflow_is_an_aws_target_stage_only(tmp_path):
    from pipeline.config import PipelineConfig

    local = PipelineConfig(prefix="test-sales", target="local", lake=tmp_path)
    with pytest.raises(UsageError, match="the local target has no workflow"):
        run(local, RunOptions(workflow=True))


def test_deployer_policy_names_the_new_resources(capsys):
    argv = ["policy", "--prefix", "acme", "--region", "us-east-1", "--account-id", "111122223333"]
    assert deploy.main(argv) == 0
    statements = {s["Sid"]: s for s in json.loads(capsys.readouterr().out)["Statement"]}
    glue = "arn:aws:glue:us-east-1:111122223333"
    assert statements["GlueWorkflow"]["Resource"] == [f"{glue}:workflow/acme-workflow"]
    assert "glue:StartWorkflowRun" in statements["GlueWorkflow"]["Action"]
    assert statements["GlueWorkflowTriggers"]["Resource"] == [
        f"{glue}:trigger/acme-workflow-start",
        f"{glue}:trigger/acme-workflow-after-crawl",
    ]
    assert "glue:UpdateTrigger" in statements["GlueWorkflowTriggers"]["Action"]
    assert statements["FailuresRule"]["Resource"] == [
        "arn:aws:events:us-east-1:111122223333:rule/acme-failures"
    ]
    assert statements["AlertsTopic"]["Resource"] == [
        "arn:aws:sns:us-east-1:111122223333:acme-alerts"
    ]
    assert statements["QuarantineAlarm"] == {
        "Sid": "QuarantineAlarm",
        "Effect": "Allow",
        "Action": [
            "cloudwatch:PutMetricAlarm",
            "cloudwatch:DescribeAlarms",
            "cloudwatch:DeleteAlarms",
            "cloudwatch:ListTagsForResource",
            "cloudwatch:TagResource",
        ],
        "Resource": ["arn:aws:cloudwatch:us-east-1:111122223333:alarm:acme-quarantine-rate"],
    }


# ------------------------------------------------------------- run --workflow, status


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


STEM = "test-sales-123456789012-us-east-1"  # deploy.py names buckets for moto's account


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
        "generate", "upload", "workflow", "tables", "queries", "charts",
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


def test_status_before_any_workflow_run(deployed, config):
    rows = {(r["kind"], r["name"]): r for r in infra.status(config, deployed)}
    assert rows[("glue-workflow", WORKFLOW)]["detail"] == "last run=never"
    assert rows[("glue-trigger", START)]["detail"] == "type=ON_DEMAND"
    assert rows[("glue-trigger", AFTER_CRAWL)]["state"] == "ACTIVATED"
    assert rows[("sns-topic", "test-sales-alerts")]["detail"] == "subscriptions: none"
    assert rows[("events-rule", RULE)] == {
        "kind": "events-rule",
        "name": RULE,
        "state": "ENABLED",
        "detail": f"targets: {TOPIC_ARN}",
    }
    assert rows[("cloudwatch-alarm", ALARM)]["detail"] == "QuarantineRate > 0.05"


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
            "workflow run wr_1 STOPPED: no error message",
        ),
        (
            {"Status": "ERROR", "ErrorMessage": "Concurrent runs exceeded", "Graph": {}},
            "workflow run wr_1 ERROR: Concurrent runs exceeded",
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
