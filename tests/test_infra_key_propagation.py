"""The alerts key in its first minutes: deploy.py policy grants calls on it by its tags,
and KMS documents that tags can take up to five minutes to authorize. moto authorizes
at once, so AWS's AccessDenied is injected on the first calls (tests/aws_faults.py) and
the waits are recorded, not slept."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
from aws_faults import error, inject
from moto.kms.models import kms_backends
from moto_fixtures import ACCOUNT, REGION

from pipeline import infra
from pipeline.errors import DeployError
from pipeline.infra import key

ALIAS = "alias/test-sales-alerts"
DENIED = error("AccessDeniedException", "User is not authorized to perform: kms:X", 400)


def _rotation(kms) -> bool:
    key_id = kms.describe_key(KeyId=ALIAS)["KeyMetadata"]["KeyId"]
    return kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"]


def test_up_waits_out_a_new_key_denying_its_rotation(aws, config, caplog):
    rotation = inject(aws.kms, "EnableKeyRotation", DENIED, DENIED, DENIED)
    waits: list[float] = []
    with caplog.at_level(logging.INFO, logger="pipeline.infra.shared"):
        infra.up(config, aws, tables=False, sleep=waits.append)
    assert waits == [2.0, 4.0, 8.0]
    assert len(rotation.calls) == 4
    assert _rotation(aws.kms)
    waited = [r.getMessage() for r in caplog.records if "waiting" in r.getMessage()]
    assert len(waited) == 3
    assert "EnableKeyRotation on KMS key" in waited[0]
    assert "AccessDeniedException, waiting 2s" in waited[0]


def test_an_up_right_after_does_not_refuse_our_own_young_key(deployed, config):
    # Its tags do not authorize ListResourceTags yet: the ownership check waits for them.
    tags = inject(deployed.kms, "ListResourceTags", DENIED, DENIED)
    waits: list[float] = []
    assert infra.up(config, deployed, tables=False, sleep=waits.append) == []
    assert waits == [2.0, 4.0]
    assert len(tags.calls) >= 3


def test_an_old_key_whose_tags_cannot_be_read_is_refused_at_once(deployed, config):
    [moto_key] = kms_backends[ACCOUNT][REGION].keys.values()
    moto_key.creation_date = time.time() - 3600  # an hour old: tags long propagated
    inject(deployed.kms, "ListResourceTags", DENIED)
    waits: list[float] = []
    with pytest.raises(DeployError, match=f"kms-key {ALIAS} \\(its tags cannot be read"):
        infra.up(config, deployed, tables=False, sleep=waits.append)
    assert waits == []


def test_the_wait_is_bounded_by_five_minutes(aws, config):
    inject(aws.kms, "EnableKeyRotation", *[DENIED] * 50)
    waits: list[float] = []
    with pytest.raises(Exception, match="AccessDeniedException"):
        infra.up(config, aws, tables=False, sleep=waits.append)
    assert waits == key.TAG_PROPAGATION.delays()
    assert waits[:5] == [2.0, 4.0, 8.0, 16.0, 30.0]
    assert 240 < sum(waits) <= 300


def test_a_key_is_young_for_five_minutes_and_a_minute_of_skew():
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert key.is_young({"CreationDate": now - timedelta(seconds=359)}, now)
    assert not key.is_young({"CreationDate": now - timedelta(seconds=361)}, now)
    assert not key.is_young({}, now)


def test_status_right_after_up_waits_for_the_key_rotation_to_be_readable(deployed, config):
    inject(deployed.kms, "GetKeyRotationStatus", DENIED)
    waits: list[float] = []
    rows = infra.status(config, deployed, sleep=waits.append)
    [row] = [r for r in rows if r["kind"] == "kms-key"]
    assert (row["state"], waits) == ("Enabled", [2.0])
    assert "rotation=on" in row["detail"]
