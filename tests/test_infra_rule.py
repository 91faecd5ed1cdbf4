"""The failures rule: its pattern, target and drift (against moto)."""

from __future__ import annotations

import json

import pytest
from moto_fixtures import (
    ACCOUNT,
    MARK_LIST,
    REGION,
    RULE,
    RULE_ARN,
    TOPIC_ARN,
    assert_repaired,
    sorted_tags,
)

QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:test-sales-alerts-dlq"
# EventBridge's longest retry (24 h, 185 attempts), then the dead-letter queue.
ALERTS_TARGET = {
    "Id": "alerts-topic",
    "Arn": TOPIC_ARN,
    "RetryPolicy": {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400},
    "DeadLetterConfig": {"Arn": QUEUE_ARN},
}

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


def test_up_creates_the_failures_rule_targeting_the_topic(deployed):
    rule = deployed.events.describe_rule(Name=RULE)
    assert json.loads(rule["EventPattern"]) == PATTERN
    assert rule["State"] == "ENABLED"
    assert rule["Arn"] == RULE_ARN
    assert deployed.events.list_targets_by_rule(Rule=RULE)["Targets"] == [ALERTS_TARGET]
    tags = deployed.events.list_tags_for_resource(ResourceARN=RULE_ARN)["Tags"]
    assert sorted_tags(tags) == MARK_LIST


def test_up_puts_back_the_rule_pattern_and_target_changed_by_hand(deployed, config):
    events = deployed.events
    events.put_rule(Name=RULE, EventPattern=json.dumps({"source": ["aws.glue"]}))
    events.remove_targets(Rule=RULE, Ids=["alerts-topic"])
    events.put_targets(
        Rule=RULE, Targets=[{"Id": "elsewhere", "Arn": "arn:aws:sns:us-east-1:123456789012:other"}]
    )
    assert_repaired(
        config,
        deployed,
        [
            f"updated rule {RULE}",
            f"set the target of rule {RULE} to topic test-sales-alerts",
        ],
    )
    assert json.loads(events.describe_rule(Name=RULE)["EventPattern"]) == PATTERN
    assert events.list_targets_by_rule(Rule=RULE)["Targets"] == [ALERTS_TARGET]


@pytest.mark.parametrize(
    "drifted",
    [
        {"Id": "alerts-topic", "Arn": TOPIC_ARN},  # the retry policy and queue removed
        {**ALERTS_TARGET, "RetryPolicy": {"MaximumRetryAttempts": 0}},
        {**ALERTS_TARGET, "DeadLetterConfig": {"Arn": f"{QUEUE_ARN}-other"}},
    ],
    ids=["bare", "no-retries", "other-queue"],
)
def test_up_puts_back_the_alerts_target_retry_policy_and_dead_letter_queue(
    deployed, config, drifted
):
    deployed.events.put_targets(Rule=RULE, Targets=[drifted])
    assert_repaired(config, deployed, [f"set the target of rule {RULE} to topic test-sales-alerts"])
    assert deployed.events.list_targets_by_rule(Rule=RULE)["Targets"] == [ALERTS_TARGET]


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
