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


class TestOneDeployment:
    """One `up` for these tests: the first reads it, the others change the rule or its
    target by hand and check that the next `up` puts it back. Whether the deployed
    pattern matches our failures and only ours: tests/test_event_patterns.py."""

    def test_up_creates_the_failures_rule_targeting_the_topic(self, deployed_once):
        events = deployed_once.events
        rule = events.describe_rule(Name=RULE)
        assert json.loads(rule["EventPattern"]) == PATTERN
        assert rule["State"] == "ENABLED"
        assert rule["Arn"] == RULE_ARN
        assert events.list_targets_by_rule(Rule=RULE)["Targets"] == [ALERTS_TARGET]
        tags = events.list_tags_for_resource(ResourceARN=RULE_ARN)["Tags"]
        assert sorted_tags(tags) == MARK_LIST

    def test_up_puts_back_the_rule_pattern_and_target_changed_by_hand(self, deployed_once, config):
        events = deployed_once.events
        events.put_rule(Name=RULE, EventPattern=json.dumps({"source": ["aws.glue"]}))
        events.remove_targets(Rule=RULE, Ids=["alerts-topic"])
        events.put_targets(
            Rule=RULE,
            Targets=[{"Id": "elsewhere", "Arn": "arn:aws:sns:us-east-1:123456789012:other"}],
        )
        assert_repaired(
            config,
            deployed_once,
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
        self, deployed_once, config, drifted
    ):
        events = deployed_once.events
        events.put_targets(Rule=RULE, Targets=[drifted])
        assert events.list_targets_by_rule(Rule=RULE)["Targets"] == [drifted]
        repaired = [f"set the target of rule {RULE} to topic test-sales-alerts"]
        assert_repaired(config, deployed_once, repaired)
        assert events.list_targets_by_rule(Rule=RULE)["Targets"] == [ALERTS_TARGET]
