"""The row rules: type every raw record and give each rejected one its single reason;
resolve duplicate keys. DataFrame in, DataFrame out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from functools import reduce
from typing import Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from sales_etl.contracts import (
    CORRUPT,
    CUSTOMER_COLUMNS,
    CUSTOMER_JSON_SCHEMA,
    LINE_FLAGS,
    MONEY,
    SALES_COLUMNS,
)

# Value formats the row rules accept, on the trimmed text.
_QTY_RE = r"^[+-]?[0-9]{1,9}$"

_MONEY_RE = r"^[+-]?[0-9]{1,10}(\.[0-9]{1,2})?$"

# A date, optionally followed by a time of day that the job ignores.
_DATE_RE = r"^([0-9]{4}-[0-9]{2}-[0-9]{2})([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?Z?)?$"

# date|quantity|unit_price|total_amount, each in its format above. No format admits a
# "|" and concat_ws skips a null, so this matches exactly when each field matches its own.
_TYPED_FIELDS_RE = (
    "^" + "\\|".join(r[1:-1] for r in (_DATE_RE, _QTY_RE, _MONEY_RE, _MONEY_RE)) + "$"
)


def _blank(col: Any) -> Any:
    return col.isNull() | (col == "")


def _with_reason(df: DataFrame, checks: Sequence[tuple[Any, str, Any]]) -> DataFrame:
    """Add ``reason`` and ``detail`` from ordered (condition, reason, detail) checks.

    ``reason`` names the first check that holds (null: the row is valid). ``detail`` is
    picked by that name: null at once for a valid row, so no condition is evaluated a
    second time for it (as testing each condition again under SQL's three-valued AND
    would); a rejected row's condition is checked
    again only where two checks share a reason.
    """
    names = [name for _, name, _ in checks]
    reason = None
    detail = F.when(F.col("reason").isNull(), F.lit(None).cast(T.StringType()))
    for cond, name, text in checks:
        reason = F.when(cond, F.lit(name)) if reason is None else reason.when(cond, F.lit(name))
        hit = F.col("reason") == F.lit(name)
        detail = detail.when(hit & cond if names.count(name) > 1 else hit, text)
    return df.withColumn("reason", reason).withColumn("detail", detail)


def _show(name: str, col: Any) -> Any:
    return F.concat(F.lit(f"{name}="), F.coalesce(col, F.lit("<null>")))


def mark_duplicates(
    df: DataFrame, key: str, content_cols: Sequence[str], conflict_reason: str
) -> DataFrame:
    """Resolve duplicate keys among valid rows (``reason`` null), file by file.

    Within one file (``_source_file``): copies with the same content are one record (all
    but one flagged ``_extra_duplicate``); copies with different content all get
    ``conflict_reason``. Across files, the newest file with a clean copy wins (files in
    ``_file_order`` order: modification time, then name; see ``state.file_order``): a copy
    in an older file with the winner's content is an ``_extra_duplicate``, one with other
    content is ``_superseded`` (a correction replaced it: neither kept nor quarantined).
    So one run over many files gives what runs over them one by one give.
    """
    valid = F.col("reason").isNull()
    content = F.struct(*[F.col(c) for c in content_cols])
    file_order = F.struct(F.col("_file_order"), F.col("_source_file"))
    in_file = Window.partitionBy(key, "_source_file").rowsBetween(
        Window.unboundedPreceding, Window.unboundedFollowing
    )
    in_key = Window.partitionBy(key).rowsBetween(
        Window.unboundedPreceding, Window.unboundedFollowing
    )
    df = df.withColumn("_versions", F.size(F.collect_set(F.when(valid, content)).over(in_file)))
    clean = valid & (F.col("_versions") == 1)
    df = df.withColumn("_newest", F.max(F.when(clean, file_order)).over(in_key))
    in_newest = clean & (file_order == F.col("_newest"))
    df = df.withColumn("_winner", F.max(F.when(in_newest, content)).over(in_key))
    first = Window.partitionBy(key).orderBy(in_newest.desc(), *_tiebreak(df))
    df = df.withColumn("_first", F.row_number().over(first) == 1)
    conflict = valid & (F.col("_versions") > 1)
    return df.select(
        *[c for c in df.columns if c not in ("reason", "detail", *_WORK_COLUMNS)],
        F.when(conflict, F.lit(conflict_reason)).otherwise(F.col("reason")).alias("reason"),
        F.when(
            conflict,
            F.concat(
                F.lit(f"{key} has "),
                F.col("_versions").cast("string"),
                F.lit(" versions in one file"),
            ),
        )
        .otherwise(F.col("detail"))
        .alias("detail"),
        F.coalesce(
            clean & ~(in_newest & F.col("_first")) & (content == F.col("_winner")),
            F.lit(False),
        ).alias("_extra_duplicate"),
        F.coalesce(clean & (content != F.col("_winner")), F.lit(False)).alias("_superseded"),
        # The newest file's name, on a superseded row: the file that replaced it.
        F.when(clean & (content != F.col("_winner")), F.col("_newest._source_file")).alias(
            "_superseded_by"
        ),
    )


_WORK_COLUMNS = ("_versions", "_newest", "_winner", "_first")


def _tiebreak(df: DataFrame) -> list[Any]:
    """A fixed order among the winning file's copies (all the same record)."""
    return [F.col("_row_id")] if "_row_id" in df.columns else [F.col("_raw_record")]


def check_sales_rows(raw: DataFrame, today: date) -> DataFrame:
    """Type every raw sales row and apply the rules that look at one row alone.

    Returns the rows with typed columns (``transaction_date`` DATE, ``quantity`` INT,
    money DECIMAL(12,2)) and ``reason``/``detail`` (null for a valid row); the row count
    is unchanged. Duplicates are the duplicate check's (``duplicates``).
    Flag columns of ``read_sales_lines`` (``_header``, ``_odd_quotes``) pass through.
    """
    t = {c: F.trim(F.col(c)) for c in SALES_COLUMNS}
    # One regex match for the four typed fields of a well-formed row instead of four
    # (each match converts its text to a Java string first); a field whose format is
    # wrong fails it, and then each field is matched on its own.
    formats_ok = F.concat_ws(
        "|", t["date"], t["quantity"], t["unit_price"], t["total_amount"]
    ).rlike(_TYPED_FIELDS_RE)
    date_part = F.when(formats_ok, F.substring(t["date"], 1, 10)).otherwise(
        F.regexp_extract(t["date"], _DATE_RE, 1)
    )
    # The cast gives what to_date(yyyy-MM-dd) gives on these 10 characters (null for a
    # date that is not in the calendar) at a fraction of the cost.
    tdate = F.when(date_part != "", date_part.cast(T.DateType()))
    qty = F.when(formats_ok | t["quantity"].rlike(_QTY_RE), t["quantity"].cast(T.IntegerType()))
    price = F.when(formats_ok | t["unit_price"].rlike(_MONEY_RE), t["unit_price"].cast(MONEY))
    amount = F.when(formats_ok | t["total_amount"].rlike(_MONEY_RE), t["total_amount"].cast(MONEY))
    typed = raw.select(
        *[t[c].alias(c) for c in ("transaction_id", "customer_id", "product", "region")],
        t["date"].alias("_date_text"),
        t["quantity"].alias("_quantity_text"),
        t["unit_price"].alias("_unit_price_text"),
        t["total_amount"].alias("_total_amount_text"),
        tdate.alias("transaction_date"),
        qty.alias("quantity"),
        price.alias("unit_price"),
        amount.alias("total_amount"),
        "_corrupt",
        "_source_file",
        "_raw_record",
        "_raw_bytes",
        "_utf8_ok",
        *[f for f in LINE_FLAGS if f in raw.columns],
    )
    c = F.col
    missing = [
        _blank(c(n))
        for n in ("transaction_id", "_date_text", "customer_id", "product")
        + ("_quantity_text", "_unit_price_text", "region", "_total_amount_text")
    ]
    missing_names = F.concat_ws(
        ",",
        *[F.when(cond, F.lit(name)) for cond, name in zip(missing, SALES_COLUMNS, strict=True)],
    )
    bad_type = c("quantity").isNull() | c("unit_price").isNull() | c("total_amount").isNull()
    bad_type_detail = F.concat_ws(
        "; ",
        F.when(c("quantity").isNull(), _show("quantity", c("_quantity_text"))),
        F.when(c("unit_price").isNull(), _show("unit_price", c("_unit_price_text"))),
        F.when(c("total_amount").isNull(), _show("total_amount", c("_total_amount_text"))),
    )
    expected = c("quantity") * c("unit_price")
    return _with_reason(
        typed,
        [
            (~c("_utf8_ok"), "invalid_encoding", F.lit("bytes are not valid UTF-8")),
            (
                c("_corrupt").isNotNull(),
                "malformed_row",
                F.lit("not a record of 8 CSV fields"),
            ),
            (
                reduce(lambda a, b: a | b, missing),
                "missing_field",
                F.concat(F.lit("empty: "), missing_names),
            ),
            (bad_type, "invalid_type", bad_type_detail),
            (
                c("transaction_date").isNull(),
                "invalid_date",
                _show("date", c("_date_text")),
            ),
            (
                c("transaction_date") > F.lit(today),
                "future_date",
                F.concat(_show("date", c("_date_text")), F.lit(f" > run date {today}")),
            ),
            (
                c("quantity") <= 0,
                "non_positive_quantity",
                _show("quantity", c("_quantity_text")),
            ),
            (
                c("unit_price") <= 0,
                "non_positive_price",
                _show("unit_price", c("_unit_price_text")),
            ),
            (
                # In thousandths of a unit, so the comparison stays exact.
                F.abs(c("total_amount") - expected) * 1000 > c("quantity").cast("long") * 5 + 5,
                "amount_mismatch",
                F.concat(
                    _show("total_amount", c("_total_amount_text")),
                    F.lit(" but quantity x unit_price="),
                    expected.cast("string"),
                    F.lit(" (tolerance "),
                    ((c("quantity").cast("long") * 5 + 5) / 1000)
                    .cast("decimal(16,3)")
                    .cast("string"),
                    F.lit(")"),
                ),
            ),
        ],
    )


def classify_customers(raw: DataFrame) -> DataFrame:
    """Parse and check every raw customer record.

    Returns ``customer_id, age_group, membership_tier, signup_date`` (DATE) plus
    ``reason``/``detail``, ``_extra_duplicate`` and ``_superseded`` (``mark_duplicates``;
    ``raw`` has ``_file_order``). Row count is unchanged.
    """
    text = F.trim(F.col("_raw_record"))
    parsed = F.from_json(
        F.col("_raw_record"),
        CUSTOMER_JSON_SCHEMA,
        {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT},
    )
    df = raw.withColumn("_j", parsed)
    # Jackson stops after the first value, so "{...} junk" would parse: insist on one object.
    one_object = text.startswith("{") & text.endswith("}")
    bad_json = F.col("_j").isNull() | F.col(f"_j.{CORRUPT}").isNotNull() | ~one_object
    signup_text = F.trim(F.col("_j.signup_date"))
    signup_part = F.regexp_extract(signup_text, _DATE_RE, 1)
    signup = F.when(signup_part != "", signup_part.cast(T.DateType()))
    df = df.select(
        F.trim(F.col("_j.customer_id")).alias("customer_id"),
        F.trim(F.col("_j.age_group")).alias("age_group"),
        F.trim(F.col("_j.membership_tier")).alias("membership_tier"),
        signup.alias("signup_date"),
        signup_text.alias("_signup_text"),
        bad_json.alias("_bad_json"),
        "_source_file",
        "_file_order",
        "_raw_record",
        "_raw_bytes",
        "_utf8_ok",
    )
    c = F.col
    df = _with_reason(
        df,
        [
            (~c("_utf8_ok"), "invalid_encoding", F.lit("bytes are not valid UTF-8")),
            (c("_bad_json"), "invalid_json", F.lit("not one JSON object")),
            (_blank(c("customer_id")), "invalid_customer", F.lit("empty customer_id")),
            (
                ~_blank(c("_signup_text")) & c("signup_date").isNull(),
                "invalid_customer",
                _show("signup_date", c("_signup_text")),
            ),
        ],
    )
    return mark_duplicates(
        df, "customer_id", CUSTOMER_COLUMNS, conflict_reason="duplicate_customer"
    )


def kept(classified: DataFrame) -> DataFrame:
    """The valid rows, one per exact duplicate group, less the versions superseded."""
    return classified.where(
        F.col("reason").isNull() & ~F.col("_extra_duplicate") & ~F.col("_superseded")
    )
