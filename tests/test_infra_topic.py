"""The alerts topic and its email subscription (against moto)."""

from __future__ import annotations

import json

from moto_fixtures import (
    ACCOUNT,
    ALARM_ARN,
    MARK_LIST,
    REGION,
    RULE_ARN,
    TOPIC_ARN,
    assert_repaired,
    sorted_tags,
)

from pipeline import infra
from pipeline.infra.operations import Operations

KEY_ALIAS_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/test-sales-alerts"
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


def test_up_creates_an_encrypted_topic_that_only_the_rule_and_the_alarm_may_publish_to(
    deployed,
):
    attributes = deployed.sns.get_topic_attributes(TopicArn=TOPIC_ARN)["Attributes"]
    assert attributes["KmsMasterKeyId"] == KEY_ALIAS_ARN
    assert json.loads(attributes["Policy"]) == TOPIC_POLICY
    tags = deployed.sns.list_tags_for_resource(ResourceArn=TOPIC_ARN)["Tags"]
    assert sorted_tags(tags) == MARK_LIST
    # No --alert-email: no subscription.
    assert deployed.sns.list_subscriptions_by_topic(TopicArn=TOPIC_ARN)["Subscriptions"] == []


def test_alert_email_subscribes_the_address_and_up_resubscribes_it_when_removed(aws, config):
    ops = Operations(alert_email="oncall@example.com")
    infra.up(config, aws, tables=False, ops=ops)
    [sub] = aws.sns.list_subscriptions_by_topic(TopicArn=TOPIC_ARN)["Subscriptions"]
    assert (sub["Protocol"], sub["Endpoint"]) == ("email", "oncall@example.com")
    assert infra.up(config, aws, tables=False, ops=ops) == []

    aws.sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])
    assert_repaired(
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
    assert_repaired(
        config,
        deployed,
        ["set encryption of topic test-sales-alerts", "set policy of topic test-sales-alerts"],
    )
    attributes = sns.get_topic_attributes(TopicArn=TOPIC_ARN)["Attributes"]
    assert json.loads(attributes["Policy"]) == TOPIC_POLICY
    assert attributes["KmsMasterKeyId"] == KEY_ALIAS_ARN
