"""The run report's parts that need no run: the trend's verdicts, file names, printed lines."""

from pathlib import Path

import pyarrow as pa

from pipeline.report import RunPage, page_lines, quarantine, safe_name, trend


def _metrics(run_id: str, read: int, quarantined: int, status: str = "succeeded") -> dict:
    return {
        "run_id": run_id,
        "status": status,
        "rows_read": {"sales": read, "customers": 0},
        "rows_written": {"enriched": read - quarantined},
        "quarantined_total": quarantined,
        "durations_seconds": {"total": 3.0},
    }


def test_the_trend_marks_runs_over_the_threshold_and_failed_runs_and_keeps_the_last_14():
    history = [_metrics(f"r{i:02}", 100, 1) for i in range(20)]
    history[-3] = _metrics("r17", 100, 6)  # 6% against 5%
    history[-2] = _metrics("r18", 100, 5)  # exactly at the threshold: not over
    history[-1] = _metrics("r19", 0, 0, status="failed")

    rows = trend(history, "r18", 0.05)

    assert [r["run_id"] for r in rows] == [f"r{i:02}" for i in range(6, 20)]
    assert [r["run_id"] for r in rows if r["over"]] == ["r17", "r19"]
    assert [r["run_id"] for r in rows if r["current"]] == ["r18"]
    assert rows[-3]["rate"] == 0.06 and rows[-3]["bar"] == 100  # the largest rate: full bar
    assert rows[-2]["bar"] == round(100 * 5 / 6)
    assert rows[-1]["rate"] == 0.0  # nothing read: no division by zero


def test_quarantine_counts_by_reason_when_the_metrics_have_no_split_by_source():
    entries = quarantine({"rows_quarantined": {"invalid_date": 3}}, pa.table({}))
    assert entries == [{"source": "", "reason": "invalid_date", "count": 3, "samples": []}]


def test_a_run_id_becomes_a_safe_file_name():
    assert safe_name("run-20261207T171953622552Z") == "run-20261207T171953622552Z"
    assert safe_name("../../etc/passwd") == "_.._etc_passwd"
    assert safe_name("a b/<c>") == "a_b__c_"


def test_the_page_path_is_printed_last_and_the_link_before_it():
    local = RunPage(index=Path("r/index.html"), copy=Path("r/x.html"))
    assert page_lines(local) == ["Report copy for this run: r/x.html", "Report: r/index.html"]
    aws = RunPage(local.index, local.copy, "s3://b/reports/x.html", "https://link", 900)
    assert page_lines(aws) == [
        "Report copy for this run: r/x.html",
        "Report in S3: s3://b/reports/x.html",
        "Report link (valid 15 minutes): https://link",
        "Report: r/index.html",
    ]
    assert page_lines(None) == []
