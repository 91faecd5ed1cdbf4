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


def test_each_reason_shows_its_count_and_one_raw_record_and_where_the_rows_are():
    metrics = {
        "quarantined_total": 4,
        "rows_quarantined_by_source": {
            "sales": {"missing_field": 3},
            "customers": {"invalid_json": 1},
        },
        "quarantine_samples": {
            "sales": {"missing_field": "T1,2025-01-01,C1,,1,10.00,North,10.00"},
            "customers": {"invalid_json": "customer_id,age\r\n" + "x" * 100},
        },
        "outputs": {"quarantine": "/lake/p-processed/quarantine/run_date=2026-12-07/r.parquet"},
    }
    lines = summary_lines(RunReport(run_id="r", target="local", metrics=metrics))
    start = lines.index("  quarantined                                  4")
    assert lines[start + 1 : start + 5] == [
        "    customers: invalid_json                    1  e.g. customer_id,age\\r\\n"
        + "x" * 48
        + "...",
        "    sales: missing_field                       3  e.g. T1,2025-01-01,C1,,1,10.00,North,10.00",
        "  rejected rows of this run         /lake/p-processed/quarantine/run_date=2026-12-07/r.parquet",
        "  every run, as a table             query.py --name quarantine_rows, quarantine_by_reason",
    ]


def test_an_empty_file_given_is_listed_as_skipped_never_as_read():
    report = RunReport(
        run_id="r",
        target="local",
        inputs={"sales": "exports/"},
        raw_files={"sales": ["a.csv"]},
        skipped={"sales": ["b.csv"]},
        metrics={"inputs": {"sales": {"files": ["/lake/raw/a.csv"]}}},
    )
    lines = summary_lines(report)
    start = lines.index("Inputs")
    assert lines[start + 1 : start + 5] == [
        "  sales                             exports/",
        "    raw files                                  1  a.csv",
        "    read this run                              1  a.csv",
        "    skipped, empty                             1  b.csv",
    ]
