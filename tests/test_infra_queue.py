"""The alerts' dead-letter queue: made, drift-repaired, tagged, in status, removed by down,
refused when not ours (against moto)."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from moto_fixtures import ACCOUNT, MARKS, REGION, RULE_ARN, assert_repaired, with_clients

from pipeline import infra
from pipeline.errors import DeployError

QUEUE = "test-sales-alerts-dlq"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{QUEUE}"
# Written from EventBridge's dead-letter queue documentation: EventBridge sends, for our
# rule only.
POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "FailuresRuleDeadLetters",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": QUEUE_ARN,
            "Condition": {"ArnEquals": {"aws:SourceArn": RULE_ARN}},
        }
    ],
}
WANTED = ("KmsMasterKeyId", "MessageRetentionPeriod", "Policy")
KEY_ALIAS_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/test-sales-alerts"


def _attributes(sqs) -> dict[str, str]:
    url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(WANTED))["Attributes"]


class TestOneDeployment:
    """One `up` for these tests: they read the queue and its count of alerts, or change it
    by hand and check that the next `up` puts it back."""

    def test_up_makes_an_encrypted_tagged_queue_only_the_failures_rule_may_send_to(
        self, deployed_once
    ):
        attributes = _attributes(deployed_once.sqs)
        assert attributes["KmsMasterKeyId"] == KEY_ALIAS_ARN
        assert attributes["MessageRetentionPeriod"] == str(14 * 24 * 3600)
        assert json.loads(attributes["Policy"]) == POLICY
        url = deployed_once.sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
        assert deployed_once.sqs.list_queue_tags(QueueUrl=url)["Tags"] == MARKS

    def test_status_counts_the_undelivered_alerts_waiting(self, deployed_once, config):
        rows = {(r["kind"], r["name"]): r for r in infra.status(config, deployed_once)}
        assert rows[("sqs-queue", QUEUE)]["detail"] == "undelivered alerts waiting: 0"
        url = deployed_once.sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
        for n in range(3):
            deployed_once.sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"alert": n}))
        rows = {(r["kind"], r["name"]): r for r in infra.status(config, deployed_once)}
        assert rows[("sqs-queue", QUEUE)] == {
            "kind": "sqs-queue",
            "name": QUEUE,
            "state": "present",
            "detail": "undelivered alerts waiting: 3",
        }

    def test_up_puts_back_the_queue_settings_changed_by_hand(self, deployed_once, config):
        sqs = deployed_once.sqs
        url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
        anyone = {**POLICY, "Statement": [{**POLICY["Statement"][0], "Principal": "*"}]}
        anyone["Statement"][0].pop("Condition")
        sqs.set_queue_attributes(
            QueueUrl=url,
            Attributes={
                "Policy": json.dumps(anyone),
                "MessageRetentionPeriod": "60",
                "KmsMasterKeyId": "alias/aws/sqs",
            },
        )
        assert_repaired(
            config,
            deployed_once,
            [f"set KmsMasterKeyId, MessageRetentionPeriod, Policy of queue {QUEUE}"],
        )
        attributes = _attributes(sqs)
        assert (attributes["KmsMasterKeyId"], attributes["MessageRetentionPeriod"]) == (
            KEY_ALIAS_ARN,
            "1209600",
        )
        assert json.loads(attributes["Policy"]) == POLICY

    def test_up_makes_the_queue_again_when_deleted_by_hand(self, deployed_once, config):
        deployed_once.sqs.delete_queue(
            QueueUrl=deployed_once.sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
        )
        assert_repaired(config, deployed_once, [f"created queue {QUEUE}"])


def test_down_deletes_the_queue_after_the_rule(deployed, config):
    deleted = infra.down(config, deployed, sleep=lambda _: None)
    assert deleted.index("rule test-sales-failures (and its 1 target(s))") < deleted.index(
        f"queue {QUEUE} (and the undelivered alerts in it)"
    )
    with pytest.raises(ClientError) as gone:
        deployed.sqs.get_queue_url(QueueName=QUEUE)
    assert gone.value.response["Error"]["Code"] in (
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
    )


def test_up_refuses_a_queue_with_our_name_it_did_not_make_and_down_keeps_it(aws, config):
    aws.sqs.create_queue(QueueName=QUEUE)
    with pytest.raises(DeployError, match=f"sqs-queue {QUEUE} \\(it has no tags\\)"):
        infra.up(config, aws, tables=False)
    infra.down(config, aws, sleep=lambda _: None)
    assert aws.sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"].endswith(QUEUE)


class _RecentlyDeleted:
    """moto's SQS client, but CreateQueue answers QueueDeletedRecently ``times`` times, as
    SQS does for 60 s after a queue of that name was deleted (moto does not)."""

    def __init__(self, sqs, times):
        self._sqs, self.times = sqs, times

    def __getattr__(self, name):
        return getattr(self._sqs, name)

    def create_queue(self, **request):
        if self.times:
            self.times -= 1
            error = {"Code": "AWS.SimpleQueueService.QueueDeletedRecently", "Message": "wait"}
            raise ClientError({"Error": error}, "CreateQueue")
        return self._sqs.create_queue(**request)


def test_up_right_after_down_waits_out_the_name_sqs_holds_back(aws, config):
    sleeps = []
    clients = with_clients(aws, sqs=_RecentlyDeleted(aws.sqs, times=2))
    assert f"created queue {QUEUE}" in infra.up(config, clients, tables=False, sleep=sleeps.append)
    assert sleeps == [10.0, 10.0]


def test_up_stops_with_one_line_when_sqs_keeps_refusing_the_name(aws, config):
    clients = with_clients(aws, sqs=_RecentlyDeleted(aws.sqs, times=99))
    with pytest.raises(DeployError) as stuck:
        infra.up(config, clients, tables=False, sleep=lambda _: None)
    assert str(stuck.value) == (
        f"SQS still refuses queue name {QUEUE} after 80s (a queue of that name was deleted "
        "less than 60 s ago); run `deploy.py up` again"
    )
