"""The end-of-run summary: figures as printed, checked against hand-written lines."""

from __future__ import annotations

from pipeline.runner import RunReport, summary_lines


def _partitions_line(partitions: list[str]) -> str:
    report = RunReport(run_id="r", target="local", partitions=partitions)
    return next(line for line in summary_lines(report) if "partitions (year/month)" in line)


def test_a_long_partition_list_shows_its_first_and_last_and_how_many_between():
    partitions = [f"year={y}/month={m}" for y in range(2022, 2026) for m in range(1, 13)]
    assert _partitions_line(partitions) == (
        "  partitions (year/month)                     48"
        "  year=2022/month=1, ... (46 more), year=2025/month=12"
    )


def test_a_short_partition_list_is_shown_whole():
    partitions = [f"year=2025/month={m}" for m in (9, 10, 11, 12)]
    assert _partitions_line(partitions) == (
        "  partitions (year/month)                      4"
        "  year=2025/month=9, year=2025/month=10, year=2025/month=11, year=2025/month=12"
    )


def test_a_local_run_prints_no_cost_lines():
    lines = summary_lines(RunReport(run_id="r", target="local"))
    assert not any("cost" in line.lower() for line in lines)
