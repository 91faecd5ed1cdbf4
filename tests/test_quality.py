"""The data-quality verdict: quarantined rows over rows read, against a threshold."""

from __future__ import annotations

import pytest

from pipeline.runner import QualityVerdict, RunOptions


@pytest.mark.parametrize(
    ("quarantined", "read", "ok"),
    [(50, 1000, True), (51, 1000, False), (0, 0, True), (0, 10, True), (10, 10, False)],
)
def test_a_share_at_the_threshold_passes_and_one_row_more_fails(quarantined, read, ok):
    assert QualityVerdict(quarantined, read, 0.05).ok is ok


def test_the_share_counts_both_sources():
    metrics = {"rows_read": {"sales": 9_500, "customers": 500}, "quarantined_total": 426}
    verdict = QualityVerdict.of(metrics, 0.05)
    assert (verdict.quarantined, verdict.read, verdict.ok) == (426, 10_000, True)
    assert verdict.line() == ("  quarantined 426 of 10,000 rows read = 4.26% (threshold 5.00%): OK")
    assert QualityVerdict.of(metrics, 0.04).line().endswith("(threshold 4.00%): OVER THE THRESHOLD")


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_a_threshold_outside_0_to_1_is_refused(rate):
    with pytest.raises(ValueError, match="max quarantine rate"):
        RunOptions(max_quarantine_rate=rate).check()
