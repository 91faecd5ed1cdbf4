"""What AWS may answer and moto never does: a bucket not yet visible to the call after
it, and batch calls that answer 200 with failed entries. Injected into the real clients
(tests/aws_faults.py); every other call goes to moto."""

from __future__ import annotations

import pytest
from aws_faults import body, error, inject
from moto_fixtures import BUCKETS, bucket_tags

from pipeline import infra
from pipeline.errors import DeployError

MARKS = {"managed-by": "deploy.py", "pipeline-prefix": "test-sales"}
RAW = "test-sales-raw"
RULE = "test-sales-failures"


def _bucket_names(s3) -> list[str]:
    return sorted(b["Name"] for b in s3.list_buckets()["Buckets"])


def test_a_new_bucket_s3_does_not_know_yet_is_tagged_once_it_does(aws, config):
    tagging = inject(aws.s3, "PutBucketTagging", error("NoSuchBucket", "", 404))
    waits: list[float] = []
    infra.up(config, aws, tables=False, sleep=waits.append)
    assert waits == [1.0]  # one wait, then the second tagging call went through
    assert len(tagging.calls) == len(BUCKETS) + 1
    assert {b: bucket_tags(aws.s3, b) for b in BUCKETS} == {b: MARKS for b in BUCKETS}
    assert infra.up(config, aws, tables=False) == []  # and the next up finds it all ours


def test_a_new_bucket_that_cannot_be_tagged_is_not_left_behind(aws, config):
    # S3 never learns of it within the minute up waits: 1+2+4+8+8+8+8+8+8 s, 10 calls.
    inject(aws.s3, "PutBucketTagging", *[error("NoSuchBucket", "gone", 404)] * 10)
    waits: list[float] = []
    with pytest.raises(DeployError) as failed:
        infra.up(config, aws, tables=False, sleep=waits.append)
    assert str(failed.value) == (
        f"bucket {RAW} was created but could not be tagged (NoSuchBucket: gone); it was "
        "deleted again, so the next `up` creates it afresh"
    )
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0]
    assert _bucket_names(aws.s3) == []  # no untagged bucket for the next up to refuse
    infra.up(config, aws, tables=False)
    assert {b: bucket_tags(aws.s3, b) for b in BUCKETS} == {b: MARKS for b in BUCKETS}


def test_up_stops_when_the_rule_target_fails(aws, config):
    failed_entry = {
        "FailedEntryCount": 1,
        "FailedEntries": [
            {"TargetId": "alerts-topic", "ErrorCode": "AccessDenied", "ErrorMessage": "no"}
        ],
    }
    inject(aws.events, "PutTargets", body(failed_entry))
    with pytest.raises(DeployError) as failed:
        infra.up(config, aws, tables=False)
    assert str(failed.value) == (
        f"PutTargets on rule {RULE} failed for 1 of 1 entries; first: target alerts-topic: "
        "AccessDenied no"
    )
    assert aws.events.list_targets_by_rule(Rule=RULE)["Targets"] == []
    # The next up puts the target (moto answers it in full).
    infra.up(config, aws, tables=False)
    [target] = aws.events.list_targets_by_rule(Rule=RULE)["Targets"]
    assert target["Id"] == "alerts-topic"


def test_a_failed_entry_count_without_entries_still_stops_up(aws, config):
    inject(aws.events, "PutTargets", body({"FailedEntryCount": 1}))
    with pytest.raises(DeployError, match=f"PutTargets on rule {RULE} failed for 1 of 1"):
        infra.up(config, aws, tables=False)


def test_down_stops_when_the_rule_target_is_not_removed(deployed, config):
    answer = {"FailedEntryCount": 1, "FailedEntries": [{"TargetId": "alerts-topic",
                                                        "ErrorCode": "InternalFailure"}]}  # fmt: skip
    inject(deployed.events, "RemoveTargets", body(answer))
    with pytest.raises(DeployError) as failed:
        infra.down(config, deployed)
    [line] = str(failed.value).splitlines()
    assert line.startswith("down deleted nothing but ")  # the alarm went first
    assert line.endswith(
        f"RemoveTargets on rule {RULE} failed for 1 of 1 entries; first: target alerts-topic: "
        "InternalFailure "
    )
    assert deployed.events.describe_rule(Name=RULE)["Name"] == RULE  # kept with its target


def test_down_stops_when_an_object_is_not_deleted(deployed, config):
    deployed.s3.put_object(Bucket=RAW, Key="input/sales_data_csv/a.csv", Body=b"x")
    deployed.s3.put_object(Bucket=RAW, Key="input/sales_data_csv/b.csv", Body=b"y")
    versions = deployed.s3.list_object_versions(Bucket=RAW)["Versions"]
    held = next(v for v in versions if v["Key"].endswith("b.csv"))
    errors = {"Errors": [{"Key": held["Key"], "VersionId": held["VersionId"],
                          "Code": "AccessDenied", "Message": "Access Denied"}]}  # fmt: skip
    inject(deployed.s3, "DeleteObjects", body(errors))
    with pytest.raises(DeployError) as failed:
        infra.down(config, deployed)
    [line] = str(failed.value).splitlines()
    assert line.endswith(
        f"DeleteObjects on bucket {RAW} failed for 1 of 2 entries; first: "
        f"s3://{RAW}/input/sales_data_csv/b.csv version {held['VersionId']}: "
        "AccessDenied Access Denied"
    )
    assert RAW in _bucket_names(deployed.s3)  # not deleted while it holds an object
