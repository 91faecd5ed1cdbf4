"""The alerts topic's customer managed KMS key: made, repaired, refused when not ours, deleted (against moto)."""

from __future__ import annotations

import json

import pytest
from moto_fixtures import ACCOUNT, MARKS, REGION, TOPIC_ARN, assert_repaired

from pipeline import infra
from pipeline.errors import DeployError

ALIAS = "alias/test-sales-alerts"
ALIAS_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/test-sales-alerts"
KEY_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "AccountAdministersKeyThroughIAM",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "kms:*",
            "Resource": "*",
        },
        {
            # No aws:SourceAccount/aws:SourceArn: not supported for EventBridge-to-
            # encrypted-topic in a key policy (SNS developer guide).
            "Sid": "FailuresRuleEncryptsAlerts",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
            "Resource": "*",
        },
        {
            "Sid": "QuarantineAlarmEncryptsAlerts",
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
        },
    ],
}


def _key(clients) -> dict:
    return clients.kms.describe_key(KeyId=ALIAS)["KeyMetadata"]


def _tags(kms, key_id: str) -> dict[str, str]:
    return {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key_id)["Tags"]}


def _topic_key(clients) -> str:
    return clients.sns.get_topic_attributes(TopicArn=TOPIC_ARN)["Attributes"]["KmsMasterKeyId"]


class TestOneDeployment:
    """One `up` for these tests: they read the key, or change it by hand and check that
    the next `up` puts it back (the same key)."""

    def test_up_makes_a_rotated_customer_managed_key_for_the_topic(self, deployed_once):
        kms = deployed_once.kms
        key = _key(deployed_once)
        assert key["Arn"] == f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key['KeyId']}"
        assert (key["KeyState"], key["KeyManager"], key["KeyUsage"], key["KeySpec"]) == (
            "Enabled",
            "CUSTOMER",
            "ENCRYPT_DECRYPT",
            "SYMMETRIC_DEFAULT",
        )
        assert (
            key["Description"]
            == "Encrypts the alerts topic of sales pipeline test-sales (deploy.py)"
        )
        assert (
            json.loads(kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"])
            == KEY_POLICY
        )
        assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is True
        assert _tags(kms, key["KeyId"]) == MARKS
        [alias] = kms.list_aliases(KeyId=key["KeyId"])["Aliases"]
        assert (alias["AliasName"], alias["AliasArn"]) == (ALIAS, ALIAS_ARN)
        # The topic is encrypted with it, named by the alias's ARN.
        assert _topic_key(deployed_once) == ALIAS_ARN

    def test_the_key_is_made_once(self, deployed_once, config):
        assert infra.up(config, deployed_once, tables=False) == []
        assert len(deployed_once.kms.list_keys()["Keys"]) == 1

    def test_status_shows_the_key_its_state_and_rotation(self, deployed_once, config):
        key_id = _key(deployed_once)["KeyId"]
        [row] = [r for r in infra.status(config, deployed_once) if r["kind"] == "kms-key"]
        assert row == {
            "kind": "kms-key",
            "name": ALIAS,
            "state": "Enabled",
            "detail": f"id={key_id} rotation=on",
        }

    def test_up_puts_back_a_changed_key_policy(self, deployed_once, config):
        kms = deployed_once.kms
        key_id = _key(deployed_once)["KeyId"]
        root_only = {"Version": "2012-10-17", "Statement": [KEY_POLICY["Statement"][0]]}
        kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps(root_only))
        assert_repaired(config, deployed_once, [f"set key policy of KMS key {key_id}"])
        assert (
            json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
            == KEY_POLICY
        )

    def test_up_turns_rotation_back_on(self, deployed_once, config):
        kms = deployed_once.kms
        key_id = _key(deployed_once)["KeyId"]
        kms.disable_key_rotation(KeyId=key_id)
        assert_repaired(config, deployed_once, [f"enabled rotation of KMS key {key_id}"])
        assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True

    def test_up_enables_a_disabled_key(self, deployed_once, config):
        kms = deployed_once.kms
        key_id = _key(deployed_once)["KeyId"]
        kms.disable_key(KeyId=key_id)
        assert_repaired(config, deployed_once, [f"enabled KMS key {key_id}"])
        assert _key(deployed_once)["KeyState"] == "Enabled"

    def test_up_restores_a_deleted_alias_for_the_same_key(self, deployed_once, config):
        kms = deployed_once.kms
        key_id = _key(deployed_once)["KeyId"]
        kms.delete_alias(AliasName=ALIAS)
        assert_repaired(config, deployed_once, [f"restored alias {ALIAS} for KMS key {key_id}"])
        # The same key, found by its tags: no second key left behind, billed and unmanaged.
        assert _key(deployed_once)["KeyId"] == key_id
        assert [k["KeyId"] for k in kms.list_keys()["Keys"]] == [key_id]


@pytest.mark.parametrize(
    ("key_tags", "why"),
    [
        ([], "kms-key alias/test-sales-alerts (it has no tags)"),
        (
            [
                {"TagKey": "managed-by", "TagValue": "deploy.py"},
                {"TagKey": "pipeline-prefix", "TagValue": "other"},
            ],
            "kms-key alias/test-sales-alerts (tagged for deploy.py prefix 'other', not "
            "'test-sales')",
        ),
    ],
    ids=["untagged", "another-prefix"],
)
def test_up_refuses_a_key_holding_our_alias_that_is_not_ours_and_down_keeps_it(
    aws, config, key_tags, why
):
    kms = aws.kms
    theirs = kms.create_key(Description="a team's key", Tags=key_tags)["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=ALIAS, TargetKeyId=theirs)

    with pytest.raises(DeployError, match="refusing to touch prefix 'test-sales'") as no:
        infra.up(config, aws, tables=False)
    assert why in str(no.value)
    # Refused before any change: nothing made, their key as it was.
    assert aws.s3.list_buckets()["Buckets"] == []
    assert [k["KeyId"] for k in kms.list_keys()["Keys"]] == [theirs]
    assert kms.get_key_rotation_status(KeyId=theirs)["KeyRotationEnabled"] is False

    infra.down(config, aws)
    assert kms.describe_key(KeyId=ALIAS)["KeyMetadata"]["KeyId"] == theirs
    assert kms.describe_key(KeyId=theirs)["KeyMetadata"]["KeyState"] == "Enabled"


def test_down_schedules_the_key_for_deletion_and_removes_the_alias(deployed, config):
    kms = deployed.kms
    key_id = _key(deployed)["KeyId"]
    deleted = infra.down(config, deployed)
    assert f"KMS key {key_id} (scheduled for deletion in 7 days)" in deleted
    assert f"alias {ALIAS}" in deleted
    # After the topic that it encrypts.
    assert deleted.index("topic test-sales-alerts (and its subscriptions)") < deleted.index(
        f"KMS key {key_id} (scheduled for deletion in 7 days)"
    )
    key = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert key["KeyState"] == "PendingDeletion"
    assert key["DeletionDate"]
    assert ALIAS not in [a["AliasName"] for a in kms.list_aliases()["Aliases"]]
    # A second down finds nothing of ours: the key pending deletion counts as gone.
    assert infra.down(config, deployed) == []
    [row] = [r for r in infra.status(config, deployed) if r["kind"] == "kms-key"]
    assert row["state"] == "missing"


def test_down_finds_the_key_by_its_tags_when_the_alias_was_deleted_by_hand(deployed, config):
    kms = deployed.kms
    key_id = _key(deployed)["KeyId"]
    kms.delete_alias(AliasName=ALIAS)
    # Keys that are not ours, found by the same search, are kept: another prefix's,
    # an untagged one, and one of ours already pending deletion (an earlier down's).
    other_prefix = kms.create_key(
        Description="another prefix's",
        Tags=[
            {"TagKey": "managed-by", "TagValue": "deploy.py"},
            {"TagKey": "pipeline-prefix", "TagValue": "other"},
        ],
    )["KeyMetadata"]["KeyId"]
    untagged = kms.create_key(Description="a team's key")["KeyMetadata"]["KeyId"]
    earlier = kms.create_key(
        Description="an earlier down's",
        Tags=[
            {"TagKey": "managed-by", "TagValue": "deploy.py"},
            {"TagKey": "pipeline-prefix", "TagValue": "test-sales"},
        ],
    )["KeyMetadata"]["KeyId"]
    kms.schedule_key_deletion(KeyId=earlier, PendingWindowInDays=30)
    deletion_date = kms.describe_key(KeyId=earlier)["KeyMetadata"]["DeletionDate"]

    deleted = infra.down(config, deployed)

    line = (
        f"KMS key {key_id} (scheduled for deletion in 7 days; found by its tags, "
        "alias/test-sales-alerts was missing)"
    )
    assert [d for d in deleted if d.startswith("KMS key") or d.startswith("alias")] == [line]
    assert deleted.index("topic test-sales-alerts (and its subscriptions)") < deleted.index(line)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    assert kms.describe_key(KeyId=other_prefix)["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms.describe_key(KeyId=untagged)["KeyMetadata"]["KeyState"] == "Enabled"
    # Not scheduled again: its deletion date is the one it had.
    assert kms.describe_key(KeyId=earlier)["KeyMetadata"]["DeletionDate"] == deletion_date
    assert infra.down(config, deployed) == []


def test_up_after_down_makes_a_new_key_and_leaves_the_old_one_to_its_deletion(deployed, config):
    kms = deployed.kms
    old = _key(deployed)["KeyId"]
    infra.down(config, deployed)

    changes = infra.up(config, deployed, tables=False)

    new = _key(deployed)["KeyId"]
    assert new != old
    assert f"created KMS key {new} (alias {ALIAS}, rotation on)" in changes
    assert kms.describe_key(KeyId=old)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    assert kms.get_key_rotation_status(KeyId=new)["KeyRotationEnabled"] is True
    assert json.loads(kms.get_key_policy(KeyId=new, PolicyName="default")["Policy"]) == KEY_POLICY
    assert _topic_key(deployed) == ALIAS_ARN
    assert infra.up(config, deployed, tables=False) == []


def test_an_alias_left_on_a_key_pending_deletion_moves_to_a_new_key(deployed, config):
    """A down interrupted between ScheduleKeyDeletion and DeleteAlias leaves the alias on
    a key that can no longer encrypt: up makes a new key rather than reviving that one."""
    kms = deployed.kms
    old = _key(deployed)["KeyId"]
    kms.schedule_key_deletion(KeyId=old, PendingWindowInDays=7)

    changes = infra.up(config, deployed, tables=False)

    new = _key(deployed)["KeyId"]
    assert new != old
    assert changes == [
        f"created KMS key {new} (rotation on) and moved alias {ALIAS} to it from key {old}, "
        "which is PendingDeletion"
    ]
    assert kms.describe_key(KeyId=old)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    assert infra.up(config, deployed, tables=False) == []
