"""Unit tests for glue_etl_job.py: transforms on tiny hand-written frames, reading awkward
files, argument parsing, runtime detection, and the Glue wiring against a fake awsglue."""

from __future__ import annotations

import json
import logging
import shutil
import sys
import types
from contextlib import contextmanager
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

import glue_etl_job as job
from sales_etl import (
    arguments,
    context,
    contracts,
    duplicates,
    local_session,
    readers,
    rules,
    sales_pass,
    session,
    tables,
    tuning,
    writing,
)
from sales_etl import counts as job_counts
from sales_etl import files as job_files
from sales_etl import inputs as job_inputs
from sales_etl import run as job_run

TODAY = date(2025, 6, 30)
HEADER = ",".join(contracts.SALES_COLUMNS)

RAW_SALES_SCHEMA = T.StructType(
    [T.StructField(c, T.StringType()) for c in contracts.SALES_COLUMNS]
    + [
        T.StructField("_corrupt", T.StringType()),
        T.StructField("_source_file", T.StringType()),
        T.StructField("_raw_record", T.StringType()),
        T.StructField("_raw_bytes", T.BinaryType()),
        T.StructField("_utf8_ok", T.BooleanType()),
    ]
)
RAW_CUSTOMERS_SCHEMA = T.StructType(
    [
        T.StructField("_source_file", T.StringType()),
        # The file's modification time in ms (read_customers adds it): which file is newer.
        T.StructField("_file_order", T.LongType()),
        T.StructField("_raw_record", T.StringType()),
        T.StructField("_raw_bytes", T.BinaryType()),
        T.StructField("_utf8_ok", T.BooleanType()),
    ]
)

GOOD = ("T1", "2025-06-01", "C1", "Laptop", "2", "10.50", "North", "21.00")


def raw_sales(spark, rows, corrupt=None, utf8_ok=None):
    """A raw sales frame as read_sales returns it, from tuples of 8 strings."""
    corrupt = corrupt or {}
    utf8_ok = utf8_ok or {}
    data = [
        (*r, corrupt.get(i), "f.csv", ",".join(x or "" for x in r), b"", utf8_ok.get(i, True))
        for i, r in enumerate(rows)
    ]
    return spark.createDataFrame(data, RAW_SALES_SCHEMA)


def raw_customers(spark, lines, utf8_ok=None):
    utf8_ok = utf8_ok or {}
    data = [("c.ndjson", 0, s, s.encode(), utf8_ok.get(i, True)) for i, s in enumerate(lines)]
    return spark.createDataFrame(data, RAW_CUSTOMERS_SCHEMA)


def with_field(**changes):
    row = dict(zip(contracts.SALES_COLUMNS, GOOD, strict=True))
    row.update(changes)
    return tuple(row[c] for c in contracts.SALES_COLUMNS)


# --- sales rules ------------------------------------------------------------------------


SALES_CASES = [
    (with_field(customer_id=""), "missing_field"),
    (with_field(region=None), "missing_field"),
    (with_field(quantity="two"), "invalid_type"),
    (with_field(quantity="2.5"), "invalid_type"),
    (with_field(unit_price="10.505"), "invalid_type"),
    (with_field(total_amount="21,00"), "invalid_type"),
    (with_field(total_amount="123456789012.00"), "invalid_type"),
    # The four typed fields are matched as one "|"-joined text first: a "|" in a field
    # must not let a wrong format through.
    (with_field(quantity="2|2"), "invalid_type"),
    (with_field(unit_price="10.50|10.50"), "invalid_type"),
    (with_field(date="2025-06-01|2"), "invalid_date"),
    (with_field(date="2025-06-01|2", quantity=None), "missing_field"),
    (with_field(date="2025-06-01 13:45", total_amount="+21.00"), None),
    (with_field(date="2025-02-30"), "invalid_date"),
    (with_field(date="06/01/2025"), "invalid_date"),
    (with_field(date="yesterday"), "invalid_date"),
    (with_field(date="2025-07-01"), "future_date"),
    (with_field(quantity="0", total_amount="0.00"), "non_positive_quantity"),
    (with_field(quantity="-2", total_amount="-21.00"), "non_positive_quantity"),
    (with_field(unit_price="0.00", total_amount="0.00"), "non_positive_price"),
    (with_field(unit_price="-10.50", total_amount="-21.00"), "non_positive_price"),
    # unit_price is rounded: |total - qty x price| <= 0.005 x qty + 0.005 is no mismatch
    (with_field(total_amount="21.02"), "amount_mismatch"),  # qty 2: bound 0.015
    (with_field(total_amount="210.00"), "amount_mismatch"),
    (with_field(total_amount="21.01"), None),
    (with_field(total_amount="20.99"), None),
    (with_field(quantity="14", unit_price="2.14", total_amount="30.03"), None),  # 0.07 <= 0.075
    (with_field(quantity="14", unit_price="2.14", total_amount="29.89"), None),  # -0.07
    (with_field(quantity="14", unit_price="2.14", total_amount="30.04"), "amount_mismatch"),
    (with_field(quantity="14", unit_price="2.14", total_amount="30.96"), "amount_mismatch"),  # $1
    # At and past the bound with large quantities and prices (exact DECIMAL arithmetic).
    (with_field(quantity="1000000", unit_price="0.01", total_amount="15000.00"), None),
    (with_field(quantity="1000000", unit_price="0.01", total_amount="15000.01"), "amount_mismatch"),
    (with_field(quantity="1000001", unit_price="0.01", total_amount="15000.02"), None),
    (with_field(quantity="1000001", unit_price="0.01", total_amount="15000.03"), "amount_mismatch"),
    (with_field(quantity="1", unit_price="999999999.99", total_amount="1000000000.00"), None),
    (
        with_field(quantity="1", unit_price="999999999.99", total_amount="1000000000.01"),
        "amount_mismatch",
    ),
    (with_field(quantity="3", unit_price="1000000000.00", total_amount="3000000000.02"), None),
    (
        with_field(quantity="3", unit_price="1000000000.00", total_amount="3000000000.03"),
        "amount_mismatch",
    ),
    (
        with_field(quantity="999999999", unit_price="9999999999.99", total_amount="9999999999.99"),
        "amount_mismatch",
    ),
    (GOOD, None),
]


def valid(checked):
    """The rows the row rules accept (the input of these tests has no repeated id)."""
    return checked.where(F.col("reason").isNull())


@contextmanager
def evaluated(spark, mode):
    """The block runs as the job runs an input of a size that gets ``mode``."""
    size = 0 if mode == "interpreted" else tuning.SMALL_INPUT_BYTES + 1
    plan = job_inputs.InputPlan([job_files.InputFile("sales.csv", size)], [], [])
    with session.expression_evaluation(spark, plan) as got:
        assert got == mode
        yield


EVALUATIONS = ["generated code", "interpreted"]


@pytest.fixture(scope="module", params=EVALUATIONS)
def classified_cases(spark, request):
    """Every case classified in one frame (one Spark job), keyed by case number; once with
    generated code and once interpreted (the job interprets small inputs)."""
    rows = [(f"R{i}", *row[1:]) for i, (row, _) in enumerate(SALES_CASES)]
    with evaluated(spark, request.param):
        out = rules.check_sales_rows(raw_sales(spark, rows), TODAY).collect()
    return {r["transaction_id"]: r for r in out}


def test_evaluation_settings_last_only_for_the_block(spark):
    keys = ("spark.sql.codegen.wholeStage", "spark.sql.codegen.factoryMode")
    before = [spark.conf.get(k, None) for k in keys]
    with evaluated(spark, "interpreted"):
        assert [spark.conf.get(k) for k in keys] == ["false", "NO_CODEGEN"]
    assert [spark.conf.get(k, None) for k in keys] == before
    with evaluated(spark, "generated code"):
        assert [spark.conf.get(k, None) for k in keys] == before


@pytest.mark.parametrize(("case", "reason"), [(i, r) for i, (_, r) in enumerate(SALES_CASES)])
def test_each_sales_rule_names_its_reason(classified_cases, case, reason):
    row = classified_cases[f"R{case}"]
    assert row["reason"] == reason, SALES_CASES[case][0]
    assert (row["detail"] is not None) == (reason is not None)


def test_malformed_and_non_utf8_rows_are_named_before_field_checks(spark):
    rows = [with_field(transaction_id="M"), with_field(transaction_id="E", quantity="x")]
    df = raw_sales(spark, rows, corrupt={0: "M,2025-06-01"}, utf8_ok={1: False})
    got = {r["transaction_id"]: r["reason"] for r in rules.check_sales_rows(df, TODAY).collect()}
    assert got == {"M": "malformed_row", "E": "invalid_encoding"}


def test_valid_row_is_typed_and_trimmed(spark):
    row = (" T9 ", "2025-06-01 13:45:00", "C1 ", " Laptop", " 3 ", "10.5", "North", "31.50")
    out = rules.check_sales_rows(raw_sales(spark, [row]), TODAY).collect()[0]
    assert out["reason"] is None
    assert out["transaction_id"] == "T9"
    assert out["customer_id"] == "C1"
    assert out["product"] == "Laptop"
    assert out["transaction_date"] == date(2025, 6, 1)
    assert out["quantity"] == 3
    assert out["unit_price"] == Decimal("10.50")
    assert out["total_amount"] == Decimal("31.50")


def test_duplicates_exact_are_dropped_once_and_conflicting_are_all_quarantined(spark, tmp_path):
    """Through what the run calls: the sales pass over a file, then the duplicate check."""
    rows = [
        with_field(transaction_id="A"),
        with_field(transaction_id="A", unit_price="10.5"),  # same values once parsed
        with_field(transaction_id="A"),
        with_field(transaction_id="B"),
        with_field(transaction_id="B", region="South"),
        with_field(transaction_id="C"),
        with_field(transaction_id="C", quantity="0", total_amount="0.00"),  # invalid copy
    ]
    path = tmp_path / "sales.csv"
    path.write_text("\n".join([HEADER, *(",".join(r) for r in rows)]) + "\n")
    plan = job_inputs.InputPlan(
        [job_files.InputFile(str(path), path.stat().st_size)], [], [], sales_headers=(HEADER,)
    )
    read = sales_pass.read_and_check_sales(spark, plan, TODAY)
    resolved, outcome, counts = duplicates.resolve_sales_duplicates(read)
    try:
        by_id = {}
        for r in resolved.collect():
            by_id.setdefault(r["transaction_id"], []).append((r["reason"], r["_extra_duplicate"]))
        kept_ids = sorted(r["transaction_id"] for r in rules.kept(resolved).collect())
    finally:
        for df in [*read.persisted, outcome]:
            df.unpersist()
    assert sorted(by_id["A"], key=str) == [(None, False), (None, True), (None, True)]
    assert by_id["B"] == [("conflicting_duplicate", False)] * 2
    assert sorted(by_id["C"], key=str) == [("non_positive_quantity", False), (None, False)]
    assert kept_ids == ["A", "C"]
    assert counts == job_counts.SourceCounts(
        read=7,
        valid=2,
        by_reason={"non_positive_quantity": 1, "conflicting_duplicate": 2},
        duplicates=2,
    )


def test_the_sales_pass_observes_the_valid_rows_id_range(spark, tmp_path):
    """The range a daily run looks up loaded ids in (lake.against_lake): every valid row's
    id is in it; rejected rows' ids are not counted; no valid row gives (None, None)."""

    def id_range(rows: list[tuple[str, ...]]) -> tuple[str | None, str | None] | None:
        path = tmp_path / "sales.csv"
        path.write_text("\n".join([HEADER, *(",".join(r) for r in rows)]) + "\n")
        plan = job_inputs.InputPlan(
            [job_files.InputFile(str(path), path.stat().st_size)], [], [], sales_headers=(HEADER,)
        )
        read = sales_pass.read_and_check_sales(spark, plan, TODAY)
        for df in read.persisted:
            df.unpersist()
        return read.id_range

    rejected = [
        with_field(transaction_id="0", quantity="0", total_amount="0.00"),
        with_field(transaction_id="Z", date="not a date"),
    ]
    valid = [with_field(transaction_id=t) for t in ("T5", "T2", "T9", "T2")]
    assert id_range([*rejected, *valid]) == ("T2", "T9")
    assert id_range(rejected) == (None, None)


# --- customer rules ---------------------------------------------------------------------


def cust(cid, tier="Gold", signup="2024-01-02"):
    return json.dumps(
        {"customer_id": cid, "age_group": "26-35", "membership_tier": tier, "signup_date": signup}
    )


CUSTOMER_LINES = [
    cust("C1"),
    "{bad json",
    "[1, 2]",
    '{"customer_id": "C7"} trailing',
    '"just a string"',
    cust(""),
    cust("C3", signup="yesterday"),
    cust("C4"),
    cust("C4"),  # exact copy: dropped
    cust("C5", tier="Gold"),
    cust("C5", tier="Silver"),  # conflicting: both quarantined
    cust("C6"),
]


def test_each_customer_rule_names_its_reason(spark):
    lines = CUSTOMER_LINES
    df = rules.classify_customers(raw_customers(spark, lines, utf8_ok={11: False}))
    got = sorted((r["_raw_record"], r["reason"], r["_extra_duplicate"]) for r in df.collect())
    expected = sorted(
        [
            (lines[0], None, False),
            (lines[1], "invalid_json", False),
            (lines[2], "invalid_json", False),
            (lines[3], "invalid_json", False),
            (lines[4], "invalid_json", False),
            (lines[5], "invalid_customer", False),
            (lines[6], "invalid_customer", False),
            (lines[7], None, False),
            (lines[8], None, True),
            (lines[9], "duplicate_customer", False),
            (lines[10], "duplicate_customer", False),
            (lines[11], "invalid_encoding", False),
        ]
    )
    assert got == expected
    kept = rules.kept(df).collect()
    assert sorted(r["customer_id"] for r in kept) == ["C1", "C4"]
    assert kept[0]["signup_date"] == date(2024, 1, 2)


def test_check_customers_counts_each_outcome_and_leaves_the_session_settings(spark, inputs):
    """The customers' own read, check and count (the run does it in a thread)."""
    sales, customers, out = inputs
    # The rule cases above, the last one (C6) with invalid UTF-8, and a blank line.
    customers.write_bytes(
        "\n".join([*CUSTOMER_LINES[:-1], ""]).encode() + b'\n{"customer_id": "C6\xff"}\n'
    )
    args = args_for(sales, customers, out)
    run = context.RunContext.start(
        spark, args, job_inputs.plan_inputs(args, None), run_id="r", started=context.utc_now()
    )
    settings = {
        k: spark.conf.get(k) for k in ("spark.sql.adaptive.enabled", "spark.sql.shuffle.partitions")
    }
    df, counts = job_run.check_customers(run)
    try:
        assert counts == job_counts.SourceCounts(
            read=12,
            valid=2,
            by_reason={
                "invalid_json": 4,
                "invalid_customer": 2,
                "duplicate_customer": 2,
                "invalid_encoding": 1,
            },
            duplicates=1,
        )
        assert df.count() == 12
        assert {k: spark.conf.get(k) for k in settings} == settings
    finally:
        df.unpersist()


# --- enrich and summarize -----------------------------------------------------------------


def test_enrich_left_joins_customers_and_adds_date_parts(spark):
    sales = valid(
        rules.check_sales_rows(
            raw_sales(
                spark,
                [
                    with_field(transaction_id="K", customer_id="C1"),
                    with_field(transaction_id="U", customer_id="C404", date="2024-12-31"),
                ],
            ),
            TODAY,
        )
    )
    customers = rules.kept(rules.classify_customers(raw_customers(spark, [cust("C1")])))
    enriched = tables.enrich(sales, customers)
    assert [f.name for f in enriched.schema.fields] == [
        *contracts.ENRICHED_COLUMNS,
        "_known_customer",
    ]
    types_ = {f.name: f.dataType for f in enriched.schema.fields}
    assert types_["transaction_date"] == T.DateType()
    assert types_["signup_date"] == T.DateType()
    assert types_["unit_price"] == T.DecimalType(12, 2)
    assert types_["total_amount"] == T.DecimalType(12, 2)
    assert types_["quantity"] == T.IntegerType()
    rows = {r["transaction_id"]: r.asDict() for r in enriched.collect()}
    assert rows["K"]["membership_tier"] == "Gold"
    assert rows["K"]["signup_date"] == date(2024, 1, 2)
    assert (rows["K"]["year"], rows["K"]["month"], rows["K"]["day"]) == (2025, 6, 1)
    assert rows["K"]["_known_customer"] is True
    assert rows["U"]["age_group"] is None and rows["U"]["membership_tier"] is None
    assert (rows["U"]["year"], rows["U"]["month"], rows["U"]["day"]) == (2024, 12, 31)
    assert rows["U"]["_known_customer"] is False


def test_summarize_by_region_product_month_with_half_up_average(spark):
    rows = [
        with_field(transaction_id="1", quantity="1", unit_price="10.00", total_amount="10.00"),
        with_field(transaction_id="2", quantity="1", unit_price="20.01", total_amount="20.01"),
        with_field(
            transaction_id="3", region="South", quantity="3", unit_price="1.00", total_amount="3.00"
        ),
        with_field(
            transaction_id="4",
            date="2025-05-31",
            quantity="1",
            unit_price="5.00",
            total_amount="5.00",
        ),
    ]
    sales = valid(rules.check_sales_rows(raw_sales(spark, rows), TODAY))
    customers = rules.kept(rules.classify_customers(raw_customers(spark, [cust("C1")])))
    summary = tables.summary_groups(tables.enrich(sales, customers)).select(
        *contracts.SUMMARY_COLUMNS
    )
    types_ = {f.name: f.dataType for f in summary.schema.fields}
    assert types_["total_revenue"] == T.DecimalType(18, 2)
    assert types_["transaction_count"] == T.LongType()
    assert types_["avg_transaction_value"] == T.DecimalType(12, 2)
    got = sorted(tuple(r) for r in summary.collect())
    assert got == sorted(
        [
            ("North", "Laptop", Decimal("30.01"), 2, Decimal("15.01"), 2025, 6),  # 15.005 -> 15.01
            ("South", "Laptop", Decimal("3.00"), 1, Decimal("3.00"), 2025, 6),
            ("North", "Laptop", Decimal("5.00"), 1, Decimal("5.00"), 2025, 5),
        ]
    )


def test_summary_groups_sum_and_average_exactly_at_the_extremes(spark):
    """Integer-cent sums give what DECIMAL arithmetic gives: Python's Decimal and Spark's own
    sum/avg, for the largest DECIMAL(12,2), negatives and half-cent averages."""
    amounts = {
        "big": ["9999999999.99", "9999999999.99", "9999999999.98"],
        "mixed": ["-0.01", "0.02", "-9999999999.99", "1234567.89"],
        "half": ["0.01", "0.02", "0.02", "0.02"],  # 0.0175 -> 0.02
        "thirds": ["0.01", "0.01", "0.02"],  # 0.013333 -> 0.01
        "neg": ["-0.05", "-0.10"],  # -0.075 -> -0.08
    }
    rows = [
        (2025, 6, region, "P", Decimal(a), i % 2 == 0)
        for region, values in amounts.items()
        for i, a in enumerate(values)
    ]
    df = spark.createDataFrame(
        rows,
        "year int, month int, region string, product string, total_amount decimal(12,2), "
        "_known_customer boolean",
    )
    got = {
        r["region"]: (r["total_revenue"], r["transaction_count"], r["avg_transaction_value"])
        for r in tables.summary_groups(df).collect()
    }
    expected = {}
    for region, values in amounts.items():
        total = sum(Decimal(a) for a in values)
        mean = (total / len(values)).quantize(Decimal("0.000001"), ROUND_HALF_UP)
        expected[region] = (total, len(values), mean.quantize(Decimal("0.01"), ROUND_HALF_UP))
    assert got == expected
    spark_decimal = df.groupBy("region").agg(
        F.sum("total_amount").cast(contracts.REVENUE).alias("total_revenue"),
        F.count(F.lit(1)).alias("transaction_count"),
        F.avg("total_amount").cast(contracts.MONEY).alias("avg_transaction_value"),
    )
    assert {r["region"]: tuple(r)[1:] for r in spark_decimal.collect()} == expected
    unknown = {r["region"]: r["_unknown"] for r in tables.summary_groups(df).collect()}
    assert unknown == {"big": 1, "mixed": 2, "half": 2, "thirds": 1, "neg": 1}


def test_quarantine_records_keep_source_reason_raw_text_and_bytes(spark):
    sales = rules.check_sales_rows(
        raw_sales(spark, [GOOD, with_field(transaction_id="X", quantity="0", total_amount="0.00")]),
        TODAY,
    )
    customers = rules.classify_customers(raw_customers(spark, ["{oops"]))
    q = tables.quarantine_records(sales, customers, "run-1", "2026-01-01T00:00:00Z")
    assert q.schema == contracts.QUARANTINE_SCHEMA or [f.name for f in q.schema] == [
        f.name for f in contracts.QUARANTINE_SCHEMA
    ]
    got = sorted(
        (r["source"], r["reason"], r["record_id"], r["raw_record"], r["run_id"])
        for r in q.collect()
    )
    assert got == [
        ("customers", "invalid_json", None, "{oops", "run-1"),
        (
            "sales",
            "non_positive_quantity",
            "X",
            "X,2025-06-01,C1,Laptop,0,10.50,North,0.00",
            "run-1",
        ),
    ]


# --- reading awkward but legitimate files -------------------------------------------------


def test_read_sales_handles_bom_crlf_quotes_newlines_and_quarantines_non_utf8(spark, tmp_path):
    path = tmp_path / "sales.csv"
    lines = [
        "\ufeff" + HEADER,
        'Q1,2025-06-01,C1,"Gadget, ""big""\r\nXL",1,5.00,North,5.00',
        "Q2,2025-06-02,C1,Caf\ufffd legit replacement char,1,5.00,North,5.00",
        "Q3,2025-06-03,C1,Cr\u00e8me,1,5.00,North,5.00",
        "",
        "Q5,2025-06-05,C1,Short row",
        "Q6,2025-06-06,C1,Laptop,1,5.00,North,5.00,extra",
    ]
    data = ("\r\n".join(lines) + "\r\n").encode("utf-8")
    data += b"Q4,2025-06-04,C1,Caf\xe9 latin-1,1,5.00,North,5.00\r\n"
    path.write_bytes(data)
    df = rules.check_sales_rows(readers.read_sales(spark, [str(path)]), TODAY)
    rows = {r["transaction_id"]: r for r in df.collect()}
    assert sorted(rows) == ["Q1", "Q2", "Q3", "Q4", "Q5", "Q6"]  # the blank line is no record
    assert rows["Q1"]["reason"] is None
    assert rows["Q1"]["product"] == 'Gadget, "big"\nXL'  # line break normalised
    assert rows["Q1"]["region"] == "North"
    assert rows["Q2"]["reason"] is None
    assert rows["Q2"]["product"] == "Caf\ufffd legit replacement char"
    assert rows["Q3"]["reason"] is None and rows["Q3"]["product"] == "Cr\u00e8me"
    assert rows["Q4"]["reason"] == "invalid_encoding"
    assert b"Caf\xe9 latin-1" in rows["Q4"]["_raw_bytes"]
    assert rows["Q5"]["reason"] == "malformed_row"
    assert rows["Q5"]["_raw_record"] == "Q5,2025-06-05,C1,Short row"
    assert rows["Q6"]["reason"] == "malformed_row"
    q = {
        r["record_id"]: r
        for r in tables.quarantine_records(df, None, "r", "2026-01-01T00:00:00Z").collect()
    }
    assert b"\xe9" in q["Q4"]["raw_bytes"]
    assert q["Q5"]["raw_bytes"] is None


def test_odd_quotes_flags_lines_with_an_odd_number_of_quote_characters(spark):
    """A line opens or closes a quoted line break exactly when it holds an odd number of "."""
    lines = {
        "a,b,c": False,
        'a,"b",c': False,
        'a,"b ""x"" c",d': False,  # four quotes: an escaped pair inside a quoted field
        'a,"b': True,  # opens a quoted field that goes on past the line
        'c",d': True,  # closes one
        '"""': True,
        '"x""y': True,
        "": False,
        'Caf\u00e9 "': True,  # a multi-byte character before the quote
    }
    df = spark.createDataFrame([(line,) for line in lines], "value string")
    got = dict(df.select("value", readers._odd_quotes(F.col("value")).alias("odd")).collect())
    assert got == lines


def test_the_local_driver_jvm_runs_the_parallel_collector(spark):
    """build_local_spark starts its JVM with -XX:+UseParallelGC (G1 is Java's default)."""
    jvm = spark.sparkContext._jvm
    beans = jvm.java.lang.management.ManagementFactory.getGarbageCollectorMXBeans()
    names = sorted(beans.get(i).getName() for i in range(beans.size()))
    assert names == ["PS MarkSweep", "PS Scavenge"]


def test_the_jvm_options_reach_the_driver_jvm(spark):
    """The session fixture gives no input size: its JVM was started with the local
    options and both compilers (the test below says which sizes get C1 only)."""
    jvm = spark.sparkContext._jvm
    args = list(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    assert local_session.local_jvm_options(None) == ["-Duser.timezone=UTC", "-XX:+UseParallelGC"]
    assert "-XX:+UseParallelGC" in args and "-Duser.timezone=UTC" in args
    assert "-XX:TieredStopAtLevel=1" not in args


@pytest.mark.parametrize(
    ("input_bytes", "c1_only"),
    [(None, False), (0, True), (64 * 1024 * 1024, True), (64 * 1024 * 1024 + 1, False)],
)
def test_the_jvm_compiles_with_c1_only_up_to_64_mib(input_bytes, c1_only):
    options = local_session.local_jvm_options(input_bytes)
    assert options[:2] == ["-Duser.timezone=UTC", "-XX:+UseParallelGC"]
    assert ("-XX:TieredStopAtLevel=1" in options) is c1_only


# Lines that are records on their own but awkward: both sales readers must agree on each.
ONE_LINE_CASES = [
    b'P1,2025-06-01,C1,"Gadget, ""big""",1,5.00,North,5.00',  # quoted comma, "" escape
    b"P2,2025-06-02,C1,Caf\xef\xbf\xbd legit replacement char,1,5.00,North,5.00",
    b"P3,2025-06-03,C1,Cr\xc3\xa8me,1,5.00,North,5.00",
    b"P4,2025-06-04,C1,Caf\xe9 latin-1,1,5.00,North,5.00",  # invalid UTF-8
    b"P5,2025-06-05,C1,Short row",
    b"P6,2025-06-06,C1,Laptop,1,5.00,North,5.00,extra",
    b"P7,2025-06-07,,Laptop,,5.00,North,5.00",  # empty fields
    b" P8 , 2025-06-08 ,C1, Desk ,1, 5.00 ,North, 5.00 ",  # padded fields
    b'P9,2025-06-09,C1,"",1,5.00,North,5.00',  # quoted empty field
    b"P10,2025-06-10,C1,Lamp,1,5.00,North,6.00",  # amount mismatch
]


def test_line_reader_and_multiline_reader_agree_on_one_line_records(spark, tmp_path):
    """The parallel path (line by line) and the multiLine path classify each row alike."""
    path = tmp_path / "sales.csv"
    path.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join([HEADER.encode(), *ONE_LINE_CASES]) + b"\r\n")
    cols = [*contracts.SALES_CONTENT, "reason", "detail"]
    lines = readers.read_sales_lines(spark, [str(path)], [HEADER])
    assert lines.where("_odd_quotes").count() == 0
    assert lines.where("_header").count() == 1
    by_line = rules.check_sales_rows(lines.where("not _header").drop(*contracts.LINE_FLAGS), TODAY)
    by_file = rules.check_sales_rows(readers.read_sales(spark, [str(path)]), TODAY)
    got = {r["transaction_id"]: r for r in by_line.select(*cols, "_raw_bytes").collect()}
    want = {r["transaction_id"]: r for r in by_file.select(*cols, "_raw_bytes").collect()}
    assert sorted(got) == sorted(want) == sorted(f"P{i}" for i in range(1, 11))
    for tid in got:
        assert [got[tid][c] for c in cols] == [want[tid][c] for c in cols], tid
    assert got["P4"]["reason"] == "invalid_encoding"
    assert got["P4"]["_raw_bytes"] == ONE_LINE_CASES[3]  # the exact line
    assert got["P1"]["product"] == 'Gadget, "big"'
    assert got["P5"]["reason"] == got["P6"]["reason"] == "malformed_row"


def test_read_customers_ndjson_with_bom_crlf_blank_lines_and_bad_bytes(spark, tmp_path):
    path = tmp_path / "c.ndjson"
    path.write_bytes(
        b"\xef\xbb\xbf"
        + cust("C1").encode()
        + b"\r\n\r\n"
        + cust("C2").encode()
        + b"\r\n"
        + b'{"customer_id": "C3", "age_group": "caf\xe9"}\r\n'
    )
    df = rules.classify_customers(readers.read_customers(spark, [str(path)], []))
    got = sorted((r["customer_id"], r["reason"]) for r in df.collect())
    assert got == [("C1", None), ("C2", None), ("C3", "invalid_encoding")]


def test_read_customers_accepts_a_json_array(spark, tmp_path):
    path = tmp_path / "c.json"
    path.write_text("[\n  " + cust("C1") + ",\n  " + cust("C2") + ",\n  42\n]\n")
    df = rules.classify_customers(readers.read_customers(spark, [], [str(path)]))
    got = sorted((r["customer_id"] or "", r["reason"] or "") for r in df.collect())
    assert got == [("", "invalid_json"), ("C1", ""), ("C2", "")]


def test_unparseable_json_array_is_one_quarantined_record(spark, tmp_path):
    path = tmp_path / "c.json"
    path.write_text("[" + cust("C1") + ", {broken")
    df = rules.classify_customers(readers.read_customers(spark, [], [str(path)]))
    assert [r["reason"] for r in df.collect()] == ["invalid_json"]


# --- input checks (fatal input) -----------------------------------------------------------


def args_for(sales, customers, out):
    return arguments.JobArgs(
        sales_path=str(sales), customers_path=str(customers), output_path=str(out)
    )


@pytest.fixture
def inputs(tmp_path):
    sales = tmp_path / "sales.csv"
    sales.write_text(HEADER + "\n" + ",".join(GOOD) + "\n")
    customers = tmp_path / "customers.ndjson"
    customers.write_text(cust("C1") + "\n")
    return sales, customers, tmp_path / "out"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda s, c: s.unlink(), "sales input not found"),
        (lambda s, c: c.unlink(), "customers input not found"),
        (lambda s, c: s.write_bytes(b""), "sales input is empty"),
        (lambda s, c: c.write_bytes(b"\n  \n"), "customers input is empty"),
        (lambda s, c: s.write_text("id,when,who\n1,2,3\n"), "header mismatch"),
        (lambda s, c: s.write_bytes(b"transaction_id,d\xe9te\n"), "header of"),
        (lambda s, c: s.write_text(cust("C1") + "\n"), "is JSON, not a sales CSV"),
        (lambda s, c: c.write_text("customer_id,age\nC1,30\n"), "is not JSON: customers are"),
        (lambda s, c: c.write_text(HEADER + "\n"), "is the sales CSV, not customers"),
    ],
)
def test_plan_inputs_rejects_fatal_input(inputs, setup, message):
    sales, customers, out = inputs
    setup(sales, customers)
    with pytest.raises(contracts.FatalInputError, match=message):
        job_inputs.plan_inputs(args_for(sales, customers, out), None)


def test_plan_inputs_takes_folders_skips_hidden_files_and_warns_on_json_array(tmp_path, caplog):
    (tmp_path / "sales").mkdir()
    (tmp_path / "sales" / "a.csv").write_bytes(b"\xef\xbb\xbf" + HEADER.encode() + b"\r\n")
    (tmp_path / "sales" / "b.csv").write_text(HEADER + "\n")
    (tmp_path / "sales" / "_SUCCESS").write_text("")
    (tmp_path / "sales" / ".a.csv.crc").write_text("x")
    (tmp_path / "customers").mkdir()
    (tmp_path / "customers" / "c.json").write_text("  [" + cust("C1") + "]")
    with caplog.at_level(logging.WARNING, logger="sales_etl"):
        plan = job_inputs.plan_inputs(
            args_for(tmp_path / "sales", tmp_path / "customers", tmp_path), None
        )
    assert [p.path.rsplit("/", 1)[1] for p in plan.sales_files] == ["a.csv", "b.csv"]
    assert [p.path.rsplit("/", 1)[1] for p in plan.array_files] == ["c.json"]
    assert plan.ndjson_files == []
    assert "JSON array" in caplog.text


def test_header_only_sales_input_is_fatal_before_anything_is_written(spark, inputs):
    sales, customers, out = inputs
    sales.write_text(HEADER + "\r\n")
    args = args_for(sales, customers, out)
    plan = job_inputs.plan_inputs(args, None)
    with pytest.raises(contracts.FatalInputError, match="no data rows"):
        job_run.run_job(spark, args, plan, run_id="r", started=context.utc_now())
    assert not out.exists()


def test_hadoop_files_work_on_file_uris(spark, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_bytes(b"hello\nworld\n")
    (tmp_path / "in" / "_SUCCESS").write_bytes(b"")
    fs = job_files.HadoopFiles(spark)
    root = tmp_path.as_uri()
    assert fs.exists(root + "/in") and not fs.exists(root + "/nope")
    files = fs.list_files(root + "/in")
    assert [(f.path.rsplit("/", 1)[1], f.size) for f in files] == [("a.csv", 12)]
    assert fs.head(files[0].path, 5) == b"hello"
    fs.write_bytes(root + "/out/_runs/r.json", b'{"a": 1}')
    assert json.loads((tmp_path / "out" / "_runs" / "r.json").read_text()) == {"a": 1}
    assert not list((tmp_path / "out" / "_runs").glob(".*crc"))
    assert fs.size_under(root + "/in") == 12


def test_file_uris_work_end_to_end_through_hadoop(spark, inputs):
    sales, customers, out = inputs
    args = args_for(sales.as_uri(), customers.as_uri(), out.as_uri())
    plan = job_inputs.plan_inputs(args, spark)
    m = job_run.run_job(spark, args, plan, run_id="uri", started=context.utc_now())
    assert m["rows_written"]["enriched"] == 1 and m["reconciliation"]["sales"]["ok"]
    assert json.loads((out / "_runs" / "uri.json").read_text())["status"] == "succeeded"
    assert list((out / "enriched" / "year=2025" / "month=6").glob("*.parquet"))


def test_rows_that_do_not_reconcile_fail_the_run_before_writing(spark, inputs, monkeypatch, capsys):
    sales, customers, out = inputs
    real_enrich = tables.enrich
    monkeypatch.setattr(job_run, "enrich", lambda s, c: real_enrich(s, c).limit(0))  # loses a row
    argv = ["glue_etl_job.py", "--sales_path", str(sales), "--customers_path", str(customers)]
    assert job.main([*argv, "--output_path", str(out), "--run_id", "bad"]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("ERROR: job failed: rows do not reconcile before writing")
    metrics = json.loads((out / "_runs" / "bad.json").read_text())
    assert metrics["status"] == "failed"
    assert metrics["reconciliation"]["sales"] == {
        "read": 1, "written": 0, "quarantined": 0, "duplicates_dropped": 0, "superseded": 0,
        "ok": False,
    }  # fmt: skip
    assert not (out / "enriched").exists() and not (out / "quarantine").exists()
    # Nothing staged and nothing recorded as read: the next run reads the file again.
    assert not (out / "_state" / "staging" / "bad").exists()
    assert not (out / "_state" / "manifest.json").exists()
    spark.conf.set("spark.sql.shuffle.partitions", "2")  # main() applied the job's settings


def test_a_partition_lost_after_the_write_fails_the_run_and_is_named(
    spark, inputs, monkeypatch, capsys, caplog
):
    sales, customers, out = inputs
    july = ("T2", "2025-07-03", "C1", "Mouse", "1", "5.00", "North", "5.00")
    sales.write_text("\n".join([HEADER, ",".join(GOOD), ",".join(july)]) + "\n")
    real_write = writing._write_partitioned

    def write_then_lose_june(df, path):
        real_write(df, path)
        if path.endswith("enriched"):
            shutil.rmtree(Path(path) / "year=2025" / "month=6")

    monkeypatch.setattr(writing, "_write_partitioned", write_then_lose_june)
    argv = ["glue_etl_job.py", "--sales_path", str(sales), "--customers_path", str(customers)]
    with caplog.at_level(logging.ERROR, logger="sales_etl"):
        rc = job.main([*argv, "--output_path", str(out), "--run_id", "lost"])
    assert rc == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    # The tables are written to the run's staging folder, then published by one commit.
    assert last.startswith("ERROR: job failed: rows do not reconcile after staging")
    assert "enriched: partition(s) missing after the write: year=2025/month=6" in caplog.text
    metrics = json.loads((out / "_runs" / "lost.json").read_text())
    assert metrics["status"] == "failed"
    assert metrics["rows_written"] == {"enriched": 1, "sales_summary": 2}
    assert metrics["reconciliation"]["sales"] == {
        "read": 2, "written": 1, "quarantined": 0, "duplicates_dropped": 0, "superseded": 0,
        "ok": False,
    }  # fmt: skip
    # Published nothing: no table, no manifest (the files count as unread), no journal;
    # only the metrics file and the run's staged files, which the next run removes.
    assert sorted(p.name for p in out.iterdir()) == ["_runs", "_state"]
    assert sorted(p.name for p in (out / "_state").iterdir()) == ["staging"]
    monkeypatch.undo()
    assert job.main([*argv, "--output_path", str(out), "--run_id", "again"]) == 0
    assert not (out / "_state" / "staging" / "lost").exists()
    again = json.loads((out / "_runs" / "again.json").read_text())
    assert (again["mode"], again["rows_written"]["enriched"]) == ("full_rebuild", 2)
    spark.conf.set("spark.sql.shuffle.partitions", "2")  # main() applied the job's settings


# --- arguments and runtime detection ------------------------------------------------------

BASE_ARGV = ["glue_etl_job.py", "--sales_path", "s", "--customers_path", "c", "--output_path", "o"]


def test_parse_args_with_awsglue_get_resolved_options():
    pytest.importorskip("awsglue.utils")  # AWSGlueDataplanePython installs on Python 3.11 only
    args = arguments.parse_args([*BASE_ARGV, "--run_id", "r1", "--quarantine_path=q"])
    assert (args.sales_path, args.customers_path, args.output_path) == ("s", "c", "o")
    assert (args.run_id, args.quarantine_path, args.job_name) == ("r1", "q", "glue_etl_job")


def test_parse_args_fallback_without_awsglue(monkeypatch):
    monkeypatch.setitem(sys.modules, "awsglue.utils", None)  # makes the import fail
    args = arguments.parse_args(
        [*BASE_ARGV, "--JOB_NAME", "etl", "--JOB_RUN_ID", "jr_1", "--extra", "x"]
    )
    assert (args.job_name, args.job_run_id, args.run_id) == ("etl", "jr_1", None)
    with pytest.raises(contracts.FatalInputError, match="output_path"):
        arguments.parse_args(BASE_ARGV[:-2])


def test_parse_args_missing_required_is_fatal():
    with pytest.raises(contracts.FatalInputError, match="bad arguments"):
        arguments.parse_args(["glue_etl_job.py", "--sales_path", "s"])


def test_awsglue_importable_alone_does_not_select_the_glue_runtime():
    pytest.importorskip("awsglue.context")  # installed locally on 3.11 (AWSGlueDataplanePython)

    assert arguments.is_glue_runtime(BASE_ARGV) is False
    assert (
        arguments.is_glue_runtime([*BASE_ARGV, "--JOB_ID", "j_1", "--JOB_RUN_ID", "jr_1"]) is True
    )


def test_run_id_must_name_a_file():
    assert arguments.check_run_id("20250101T000000Z-ab12") == "20250101T000000Z-ab12"
    with pytest.raises(contracts.FatalInputError):
        arguments.check_run_id("../escape")


# --- the Glue branch, wired against a fake awsglue ----------------------------------------


@pytest.fixture
def fake_awsglue(monkeypatch):
    """Install fake awsglue modules that record every call in order."""
    from pyspark.sql import SparkSession

    calls: list[tuple] = []

    class FakeLogger:
        def info(self, msg):
            calls.append(("log.info", msg))

        def warn(self, msg):
            calls.append(("log.warn", msg))

        def error(self, msg):
            calls.append(("log.error", msg))

    class GlueContext:
        def __init__(self, sc):
            calls.append(("GlueContext", sc is not None))
            self.spark_session = SparkSession.builder.getOrCreate()

        def get_logger(self):
            calls.append(("get_logger",))
            return FakeLogger()

    class Job:
        def __init__(self, glue_context):
            calls.append(("Job", isinstance(glue_context, GlueContext)))

        def init(self, name, args):
            calls.append(("Job.init", name, args["JOB_RUN_ID"]))

        def commit(self):
            calls.append(("Job.commit",))

    def getResolvedOptions(argv, options):  # noqa: N802 - the awsglue name
        calls.append(("getResolvedOptions", tuple(options)))
        pairs = dict(zip(argv[1::2], argv[2::2], strict=False))
        return {k[2:]: v for k, v in pairs.items()}

    modules = {
        "awsglue": types.ModuleType("awsglue"),
        "awsglue.context": types.ModuleType("awsglue.context"),
        "awsglue.job": types.ModuleType("awsglue.job"),
        "awsglue.utils": types.ModuleType("awsglue.utils"),
    }
    modules["awsglue.context"].GlueContext = GlueContext
    modules["awsglue.job"].Job = Job
    modules["awsglue.utils"].getResolvedOptions = getResolvedOptions
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return calls


def test_glue_branch_wires_context_job_and_logger_in_order(spark, fake_awsglue, inputs):
    sales, customers, out = inputs
    argv = [
        "glue_etl_job.py",
        "--JOB_ID", "j_1",
        "--JOB_RUN_ID", "jr_abc",
        "--JOB_NAME", "sales-etl",
        "--sales_path", str(sales),
        "--customers_path", str(customers),
        "--output_path", str(out),
    ]  # fmt: skip
    assert job.entry(argv) is None  # success returns; it does not raise SystemExit(0)
    names = [c[0] for c in fake_awsglue]
    assert names[:5] == ["getResolvedOptions", "GlueContext", "get_logger", "Job", "Job.init"]
    assert fake_awsglue[4] == ("Job.init", "sales-etl", "jr_abc")
    assert names[-1] == "Job.commit"
    assert any(c[0] == "log.info" and "succeeded" in c[1] for c in fake_awsglue)
    assert set(fake_awsglue[0][1]) == {"sales_path", "customers_path", "output_path", "JOB_NAME"}
    metrics = json.loads((out / "_runs" / "jr_abc.json").read_text())  # run id from Glue
    assert metrics["job_name"] == "sales-etl"
    assert metrics["rows_written"]["enriched"] == 1
    assert spark.range(1).count() == 1  # the Glue branch leaves the session to Glue


def test_glue_branch_failure_does_not_commit(spark, fake_awsglue, inputs, capsys):
    sales, customers, out = inputs
    sales.unlink()
    argv = [
        "glue_etl_job.py", "--JOB_ID", "j_1", "--JOB_RUN_ID", "jr_x",
        "--sales_path", str(sales), "--customers_path", str(customers), "--output_path", str(out),
    ]  # fmt: skip
    with pytest.raises(SystemExit) as exited:
        job.entry(argv)
    assert exited.value.code == 2
    assert "Job.commit" not in [c[0] for c in fake_awsglue]
    assert (
        capsys.readouterr().err.strip().splitlines()[-1].startswith("ERROR: sales input not found")
    )
