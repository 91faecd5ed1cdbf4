"""`up --on-arrival`, and `up` keeping what is deployed unless told (against moto).

moto stores what these calls set but delivers nothing: no S3 event reaches EventBridge,
no rule notifies Glue (NotifyEvent is not implemented), no event trigger counts a batch.
What a file landing does on AWS is therefore not run here; the patterns are tested
against AWS's sample events in tests/test_event_patterns.py.
"""

from __future__ import annotations

import json

from moto_fixtures import ACCOUNT, REGION, START, TOPIC_ARN, WORKFLOW, assert_repaired

from pipeline import infra
from pipeline.infra.operations import Operations

RAW = "test-sales-raw"
ARRIVALS = "test-sales-arrivals"
EVENTS_ROLE = "test-sales-events-role"
WORKFLOW_ARN = f"arn:aws:glue:{REGION}:{ACCOUNT}:workflow/{WORKFLOW}"
ON_ARRIVAL = Operations(on_arrival=True)


def test_up_on_arrival_makes_the_notifications_rule_role_and_event_trigger(aws, config):
    infra.up(config, aws, tables=False, ops=ON_ARRIVAL)

    assert "EventBridgeConfiguration" in aws.s3.get_bucket_notification_configuration(Bucket=RAW)
    for other in ("test-sales-processed", "test-sales-scripts"):
        assert "EventBridgeConfiguration" not in aws.s3.get_bucket_notification_configuration(
            Bucket=other
        )
    rule = aws.events.describe_rule(Name=ARRIVALS)
    assert json.loads(rule["EventPattern"]) == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {
            "bucket": {"name": [RAW]},
            "object": {
                "key": [
                    {"prefix": "input/sales_data_csv/"},
                    {"prefix": "input/customer_demographics_json/"},
                ]
            },
        },
    }
    assert aws.events.list_targets_by_rule(Rule=ARRIVALS)["Targets"] == [
        {
            "Id": "workflow",
            "Arn": WORKFLOW_ARN,
            "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/{EVENTS_ROLE}",
            "RetryPolicy": {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400},
        }
    ]
    role = aws.iam.get_role(RoleName=EVENTS_ROLE)["Role"]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
        }
    ]
    policy = aws.iam.get_role_policy(RoleName=EVENTS_ROLE, PolicyName="notify-workflow")
    assert policy["PolicyDocument"]["Statement"] == [
        {
            "Sid": "NotifyWorkflow",
            "Effect": "Allow",
            "Action": ["glue:NotifyEvent"],
            "Resource": [WORKFLOW_ARN],
        }
    ]
    start = aws.glue.get_trigger(Name=START)["Trigger"]
    assert (start["Type"], start["State"], start["EventBatchingCondition"]) == (
        "EVENT",
        "ACTIVATED",
        {"BatchSize": 2, "BatchWindow": 900},
    )
    assert start["Actions"] == [{"CrawlerName": "test-sales-raw-crawler"}]

    rows = {(r["kind"], r["name"]): r for r in infra.status(config, aws)}
    assert rows[("s3-bucket", RAW)]["detail"] == "versioning=Enabled eventbridge=on"
    assert rows[("glue-trigger", START)]["detail"] == (
        "type=EVENT batch: 2 file(s) or 900s after the first"
    )
    assert rows[("events-rule", ARRIVALS)]["detail"] == f"targets: {WORKFLOW_ARN}"
    assert rows[("events-role", EVENTS_ROLE)]["state"] == "present"


def test_up_without_flags_keeps_arrivals_and_a_batch_flag_changes_only_the_batch(aws, config):
    infra.up(config, aws, tables=False, ops=Operations(on_arrival=True, batch_size=5))
    assert infra.up(config, aws, tables=False) == []
    assert aws.glue.get_trigger(Name=START)["Trigger"]["EventBatchingCondition"] == {
        "BatchSize": 5,
        "BatchWindow": 900,
    }
    assert_repaired(
        config, aws, [f"updated trigger {START}"], Operations(on_arrival=True, batch_window=60)
    )
    assert aws.glue.get_trigger(Name=START)["Trigger"]["EventBatchingCondition"] == {
        "BatchSize": 5,
        "BatchWindow": 60,
    }


def test_up_puts_back_the_arrivals_drifted_by_hand(aws, config):
    infra.up(config, aws, tables=False, ops=ON_ARRIVAL)
    aws.s3.put_bucket_notification_configuration(Bucket=RAW, NotificationConfiguration={})
    aws.events.remove_targets(Rule=ARRIVALS, Ids=["workflow"])
    aws.iam.delete_role_policy(RoleName=EVENTS_ROLE, PolicyName="notify-workflow")
    assert_repaired(
        config,
        aws,
        [
            f"enabled EventBridge notifications on {RAW}",
            f"put inline policy notify-workflow on {EVENTS_ROLE}",
            f"set the target of rule {ARRIVALS} to workflow {WORKFLOW}",
        ],
    )


def test_schedule_none_removes_the_arrivals_and_down_removes_them_too(aws, config):
    infra.up(config, aws, tables=False, ops=ON_ARRIVAL)
    changes = infra.up(config, aws, tables=False, ops=Operations(schedule="none"))
    assert changes == [
        f"disabled EventBridge notifications on {RAW}",
        f"replaced trigger {START}: EVENT -> ON_DEMAND",
        f"role {EVENTS_ROLE}",
        f"rule {ARRIVALS} (and its 1 target(s))",
    ]
    assert infra.up(config, aws, tables=False) == []
    assert aws.events.list_rules(NamePrefix=ARRIVALS)["Rules"] == []

    infra.up(config, aws, tables=False, ops=ON_ARRIVAL)
    deleted = infra.down(config, aws, sleep=lambda _: None)
    assert f"rule {ARRIVALS} (and its 1 target(s))" in deleted
    assert f"role {EVENTS_ROLE}" in deleted
    assert [r["RoleName"] for r in aws.iam.list_roles()["Roles"]] == []


def test_an_alert_address_stays_until_no_alert_email(aws, config):
    infra.up(config, aws, tables=False, ops=Operations(alert_email="oncall@example.com"))
    infra.up(config, aws, tables=False, ops=Operations(alert_email="second@example.com"))
    assert infra.up(config, aws, tables=False) == []
    subscribed = aws.sns.list_subscriptions_by_topic(TopicArn=TOPIC_ARN)["Subscriptions"]
    assert sorted(s["Endpoint"] for s in subscribed) == ["oncall@example.com", "second@example.com"]

    changes = infra.up(config, aws, tables=False, ops=Operations(no_alert_email=True))
    assert sorted(changes) == [
        "unsubscribed oncall@example.com from test-sales-alerts",
        "unsubscribed second@example.com from test-sales-alerts",
    ]
    assert aws.sns.list_subscriptions_by_topic(TopicArn=TOPIC_ARN)["Subscriptions"] == []
