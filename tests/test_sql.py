"""athena_queries.sql: named blocks, placeholders, and every block parses as Athena SQL."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlglot
from sql_blocks import ddl_names
from sqlglot import exp

from pipeline.config import PipelineConfig
from pipeline.sql import (
    analytic_names,
    descriptions,
    find_token,
    load_queries,
    misspelled_keyword,
    one_line,
    parse_blocks,
    render,
    syntax_error,
    where,
)

PARAMS = PipelineConfig(prefix="demo", target="local").sql_parameters()
QUERIES = load_queries()

CHART_COLUMNS = {
    "revenue_by_region": ["region", "total_revenue", "transaction_count", "avg_transaction_value"],
    "top_products": ["product", "total_revenue", "units_sold", "transaction_count"],
    "monthly_trend": [
        "year",
        "month",
        "total_revenue",
        "transaction_count",
        "first_day",
        "last_day",
    ],
    "customer_tiers": [
        "membership_tier",
        "total_revenue",
        "transaction_count",
        "revenue_share_pct",
    ],
    "age_group_analysis": [
        "age_group",
        "total_revenue",
        "transaction_count",
        "avg_transaction_value",
    ],
    "transaction_distribution": [
        "bin_lower",
        "bin_upper",
        "transaction_count",
        "mean_amount",
        "median_amount",
    ],
}


@pytest.mark.parametrize("name", list(QUERIES))
def test_every_block_parses_as_athena_sql(name: str) -> None:
    statements = sqlglot.parse(render(QUERIES[name], PARAMS), read="athena")
    assert len(statements) == 1 and statements[0] is not None


@pytest.mark.parametrize("name", list(QUERIES))
def test_every_block_transpiles_to_duckdb(name: str) -> None:
    duck = sqlglot.transpile(render(QUERIES[name], PARAMS), read="athena", write="duckdb")
    assert len(duck) == 1


def test_file_has_ddl_and_at_least_twelve_analytic_queries() -> None:
    assert ddl_names() == [
        "create_database",
        "create_enriched_sales",
        "create_sales_summary",
        "create_quarantine",
    ]
    assert len(analytic_names()) >= 12
    assert set(CHART_COLUMNS) <= set(analytic_names())
    for name in [
        "high_value_transactions",
        "repeat_customers",
        "avg_basket_by_tier",
        "month_over_month_growth",
        "product_mix_by_region",
        "unknown_customer_share",
        "quarantine_by_reason",
        "quarantine_rows",
    ]:
        assert name in analytic_names()


@pytest.mark.parametrize("name", list(CHART_COLUMNS))
def test_chart_queries_select_the_interface_columns(name: str) -> None:
    select = sqlglot.parse_one(QUERIES[name], read="athena")
    assert select.named_selects == CHART_COLUMNS[name]


def test_every_analytic_query_says_what_it_answers() -> None:
    for name in analytic_names():
        assert descriptions()[name], f"{name} has no leading comment"


def test_analytic_sql_is_lowercase_and_reads_only_known_tables() -> None:
    known = {
        "enriched_sales",
        "sales_summary",
        "quarantine",
        "sales_data_csv",
        "customer_demographics_json",
    }
    for name in analytic_names():
        sql = QUERIES[name]
        tree = sqlglot.parse_one(sql, read="athena")
        ctes = {cte.alias for cte in tree.find_all(exp.CTE)}
        tables = {t.name for t in tree.find_all(exp.Table) if t.name} - ctes
        assert tables <= known, f"{name} reads {tables - known}"
        for keyword in ("SELECT", "FROM", "GROUP BY", "ORDER BY", "WITH"):
            assert keyword not in sql, f"{name}: keywords are lowercase"


def test_ddl_declares_partition_projection_and_snappy_parquet() -> None:
    for name in ("create_enriched_sales", "create_sales_summary"):
        sql = render(QUERIES[name], PARAMS)
        create = sqlglot.parse_one(sql, read="athena")
        props = {
            p.name: p.args["value"].name
            for p in create.args["properties"].expressions
            if type(p) is exp.Property
        }
        folder = "enriched" if name == "create_enriched_sales" else "sales_summary"
        assert props["projection.enabled"] == "true"
        assert props["parquet.compression"] == "SNAPPY"
        assert props["projection.month.range"] == "1,12"
        # Only the runner's placeholders are filled; Athena's own ${year}/${month} stay.
        assert props["storage.location.template"] == (
            f"s3://demo-processed/{folder}/year=${{year}}/month=${{month}}/"
        )
        partitions = create.find(exp.PartitionedByProperty).this.expressions
        assert [(c.name, c.args["kind"].sql()) for c in partitions] == [
            ("year", "INT"),
            ("month", "INT"),
        ]


def test_enriched_ddl_columns_follow_the_data_contract() -> None:
    create = sqlglot.parse_one(render(QUERIES["create_enriched_sales"], PARAMS), read="athena")
    columns = {c.name: c.args["kind"].sql("hive") for c in create.this.expressions}
    assert columns == {
        "transaction_id": "STRING",
        "transaction_date": "DATE",
        "customer_id": "STRING",
        "product": "STRING",
        "quantity": "INT",
        "unit_price": "DECIMAL(12, 2)",
        "region": "STRING",
        "total_amount": "DECIMAL(12, 2)",
        "age_group": "STRING",
        "membership_tier": "STRING",
        "signup_date": "DATE",
        "day": "INT",
    }


def test_render_fills_only_the_given_placeholders() -> None:
    sql = "select '${processed_bucket}/${year}' from ${database}.t where x = '${unknown}'"
    assert render(sql, PARAMS) == (
        "select 'demo-processed/${year}' from sales_analytics_db_demo.t where x = '${unknown}'"
    )


def test_parse_blocks_reads_descriptions_and_rejects_bad_files(tmp_path: Path) -> None:
    blocks = parse_blocks(
        "-- name: a_query\n-- What it answers.\nselect 1;\n\n-- name: b\nselect 2"
    )
    assert blocks == {"a_query": ("What it answers.", "select 1"), "b": ("", "select 2")}
    with pytest.raises(ValueError, match="appears twice"):
        parse_blocks("-- name: a\nselect 1\n-- name: a\nselect 2")
    with pytest.raises(ValueError, match="more than one statement"):
        parse_blocks("-- name: a\nselect 1; select 2")
    with pytest.raises(ValueError, match="not snake_case"):
        parse_blocks("-- name: BadName\nselect 1")
    with pytest.raises(ValueError, match="no statement"):
        parse_blocks("-- name: a\n-- only a comment\n")
    # A semicolon inside a string literal is not a second statement.
    assert parse_blocks("-- name: a\nselect ';' as s")["a"][1] == "select ';' as s"
    path = tmp_path / "q.sql"
    path.write_text("-- name: only\nselect 1\n")
    assert load_queries(path) == {"only": "select 1"}


# --- errors in the user's terms -------------------------------------------------------


def _syntax_error(sql: str) -> str:
    """What syntax_error says for a statement sqlglot cannot transpile."""
    with pytest.raises(sqlglot.errors.SqlglotError) as caught:
        sqlglot.transpile(sql, read="athena", write="duckdb")
    return syntax_error(sql, caught.value)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "selec * from enriched_sales",
            'line 1, column 1: "selec" is not a keyword; did you mean SELECT?',
        ),
        (
            "select * form enriched_sales",
            'line 1, column 10: "form" is not a keyword; did you mean FROM?',
        ),
        (
            "select region, count(*) as n\nfrom enriched_sales\ngruop by region",
            'line 3, column 1: "gruop" is not a keyword; did you mean GROUP?',
        ),
        (
            "select region from enriched_sales\n  order region",
            "line 2, column 3: ORDER must be followed by BY",
        ),
        ("select * from enriched_sales where", "line 1, column 30: WHERE needs a condition"),
        ("select * from enriched_sales limit", "line 1, column 30: LIMIT needs a number"),
        ("select (quantity from enriched_sales", 'line 1, column 18: expected ")", found "from"'),
        ("select 'North from enriched_sales", "line 1, column 8: this string ' is never closed"),
        ("select 1 /* note", "line 1, column 10: this comment /* is never closed"),
        (
            "totals * from enriched_sales",
            "line 1, column 1: a statement starts with SELECT, WITH, VALUES, SHOW, DESCRIBE "
            'or EXPLAIN, not "totals"',
        ),
        (
            "select quantity *\nfrom enriched_sales",
            'line 2, column 1: an operator is missing a value before "from"',
        ),
        # "cost" is one typo from CAST, but CAST there does not help the statement parse.
        (
            "select cost, region fro enriched_sales",
            'line 1, column 21: "fro" is not a keyword; did you mean FROM?',
        ),
        # sqlglot stops before the misspelled word; the word is found all the same.
        (
            "select case when quantity > 1 then 'many' els 'one' end from enriched_sales",
            'line 1, column 43: "els" is not a keyword; did you mean ELSE?',
        ),
        (
            "select (quantity",
            'line 1, column 9: expected ")" after "quantity", at the end of the statement',
        ),
    ],
)
def test_syntax_errors_say_where_and_what_in_plain_words(sql: str, expected: str) -> None:
    assert _syntax_error(sql) == expected


def test_where_counts_lines_and_columns_from_one() -> None:
    sql = "select a,\n  b\nfrom t"
    assert where(sql, 0) == "line 1, column 1"
    assert where(sql, 12) == "line 2, column 3"  # b
    assert where(sql, 14) == "line 3, column 1"  # from


def test_misspelled_keyword_is_one_typo_away_and_never_a_real_word() -> None:
    assert misspelled_keyword("form") == "FROM"  # two letters swapped
    assert misspelled_keyword("wher") == "WHERE"  # one missing
    assert misspelled_keyword("Limitt") == "LIMIT"  # one extra
    assert misspelled_keyword("selsct") == "SELECT"  # one changed
    for word in ("from", "region", "product", "date", "month", "grp"):
        assert misspelled_keyword(word) is None


def test_find_token_finds_the_nth_occurrence_in_any_case() -> None:
    sql = "select a.x, A.y\nfrom t a"
    assert find_token(sql, "a", 1) == 7
    assert find_token(sql, "a", 2) == 12
    assert find_token(sql, "a", 3) == 23
    assert find_token(sql, "a", 4) is None
    assert find_token("select 'open", "select") is None  # cannot be tokenized


def test_one_line_drops_colours_and_line_breaks() -> None:
    assert one_line("Invalid \x1b[4mselec\x1b[0m\n  at line 1") == "Invalid selec at line 1"
