"""The Athena workgroup: its settings and drift (against moto)."""

from __future__ import annotations

from typing import Any

import pytest
from moto_fixtures import ACCOUNT, MARKS, assert_repaired

WORKGROUP = "test-sales-workgroup"
WORKGROUP_RESULTS = {
    "OutputLocation": "s3://test-sales-athena-results/results/",
    "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"},
}


class TestOneDeployment:
    """One `up` for these tests: the first reads the workgroup, the others change it by
    hand and check that the next `up` puts it back."""

    def test_athena_workgroup_enforces_encrypted_results_and_a_scan_cutoff(self, deployed_once):
        wg = deployed_once.athena.get_work_group(WorkGroup="test-sales-workgroup")["WorkGroup"]
        conf = wg["Configuration"]
        assert wg["State"] == "ENABLED"
        assert conf["EnforceWorkGroupConfiguration"] is True
        assert conf["ResultConfiguration"] == {
            "OutputLocation": "s3://test-sales-athena-results/results/",
            "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"},
        }
        assert conf["BytesScannedCutoffPerQuery"] == 1024**3

    @pytest.mark.parametrize(
        ("updates", "state"),
        [
            (
                {"ResultConfigurationUpdates": {"OutputLocation": "s3://someone-elses-bucket/q/"}},
                None,
            ),
            ({"ResultConfigurationUpdates": {"RemoveEncryptionConfiguration": True}}, None),
            (
                {
                    "ResultConfigurationUpdates": {
                        "EncryptionConfiguration": {
                            "EncryptionOption": "SSE_KMS",
                            "KmsKey": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/abc",
                        }
                    }
                },
                None,
            ),
            ({"EnforceWorkGroupConfiguration": False}, None),
            ({"RemoveBytesScannedCutoffPerQuery": True}, None),
            ({"BytesScannedCutoffPerQuery": 1024**4}, None),
            ({}, "DISABLED"),
        ],
        ids=[
            "result-location",
            "encryption-removed",
            "encryption-kms",
            "enforce-off",
            "cutoff-removed",
            "cutoff-raised",
            "disabled",
        ],
    )
    def test_up_puts_back_a_workgroup_changed_by_hand(
        self, deployed_once, moto_updates, config, updates, state
    ):
        athena = deployed_once.athena
        kwargs: dict[str, Any] = {"ConfigurationUpdates": updates}
        if state:
            kwargs["State"] = state

        def as_set():
            wg = athena.get_work_group(WorkGroup=WORKGROUP)["WorkGroup"]
            return wg["State"], wg["Configuration"]

        before = as_set()
        athena.update_work_group(WorkGroup=WORKGROUP, **kwargs)
        assert as_set() != before

        assert_repaired(config, deployed_once, ["updated workgroup test-sales-workgroup"])

        wg = athena.get_work_group(WorkGroup=WORKGROUP)["WorkGroup"]
        conf = wg["Configuration"]
        assert wg["State"] == "ENABLED"
        assert conf["ResultConfiguration"] == WORKGROUP_RESULTS
        assert conf["EnforceWorkGroupConfiguration"] is True
        assert conf["BytesScannedCutoffPerQuery"] == 1024**3
        assert conf["PublishCloudWatchMetricsEnabled"] is True
        tags = athena.list_tags_for_resource(
            ResourceARN=f"arn:aws:athena:us-east-1:{ACCOUNT}:workgroup/{WORKGROUP}"
        )["Tags"]
        assert {t["Key"]: t["Value"] for t in tags} == MARKS
