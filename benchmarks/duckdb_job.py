#!/usr/bin/env python
"""Reference for benchmarks/bench_etl.py: the ETL job's work in DuckDB, no quality rules.

    python benchmarks/duckdb_job.py SALES_CSV_OR_FOLDER CUSTOMERS_NDJSON OUTPUT_DIR

Reads the sales CSV (a file, or every ``*.csv`` in a folder) with explicit types (DATE,
DECIMAL(12,2), INTEGER), LEFT JOINs the customers NDJSON (explicit types, signup_date
DATE), derives year/month/day, keeps the enriched rows in a temporary table (the CSV is
parsed once) and writes two Snappy Parquet tables partitioned by year/month with
``COPY ... (FORMAT parquet, PARTITION_BY (year, month), COMPRESSION snappy)``:
OUTPUT_DIR/enriched and OUTPUT_DIR/sales_summary.

Dirty input: the CSV is read with ``ignore_errors=true``. Without it the first value
that does not cast to its column's type (a date such as ``31/12/2025`` or
``2025-02-30``) aborts the whole query; with it every such row is skipped silently
(not kept, not reported). Empty fields are read as NULL and kept; negative quantities,
amount mismatches, duplicates and unknown customers are kept too. So on dirty input
DuckDB writes more rows than the job (which quarantines and deduplicates) and fewer
than plain Spark (which keeps unparsable values as NULL).

``avg_transaction_value`` is DuckDB's ``avg`` (a DOUBLE) cast to DECIMAL(12,2); the job
rounds an exact decimal average half-up. Same type, possibly one cent apart on ties.
Prints one JSON line on stdout: ``{"threads": <DuckDB threads>}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import duckdb

SALES_COLUMNS = {
    "transaction_id": "VARCHAR",
    "date": "DATE",
    "customer_id": "VARCHAR",
    "product": "VARCHAR",
    "quantity": "INTEGER",
    "unit_price": "DECIMAL(12,2)",
    "region": "VARCHAR",
    "total_amount": "DECIMAL(12,2)",
}
CUSTOMER_COLUMNS = {
    "customer_id": "VARCHAR",
    "age_group": "VARCHAR",
    "membership_tier": "VARCHAR",
    "signup_date": "DATE",
}

ENRICH = """
CREATE TEMP TABLE enriched AS
SELECT
    s.transaction_id,
    s.date AS transaction_date,
    s.customer_id,
    s.product,
    s.quantity,
    s.unit_price,
    s.region,
    s.total_amount,
    c.age_group,
    c.membership_tier,
    c.signup_date,
    CAST(day(s.date) AS INTEGER) AS day,
    CAST(year(s.date) AS INTEGER) AS year,
    CAST(month(s.date) AS INTEGER) AS month
FROM read_csv($sales, header = true, delim = ',', quote = '"', dateformat = '%Y-%m-%d',
              columns = $sales_columns, ignore_errors = true) AS s
LEFT JOIN read_json($customers, format = 'newline_delimited',
                    columns = $customer_columns) AS c
    ON s.customer_id = c.customer_id
"""

SUMMARY = """
SELECT
    region,
    product,
    CAST(sum(total_amount) AS DECIMAL(18, 2)) AS total_revenue,
    CAST(count(*) AS BIGINT) AS transaction_count,
    CAST(avg(total_amount) AS DECIMAL(12, 2)) AS avg_transaction_value,
    year,
    month
FROM enriched
GROUP BY year, month, region, product
"""

COPY_OPTIONS = "(FORMAT parquet, PARTITION_BY (year, month), COMPRESSION snappy)"


def sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    sales, customers, output = argv
    if Path(sales).is_dir():
        sales = str(Path(sales) / "*.csv")
    Path(output).mkdir(parents=True, exist_ok=True)  # COPY makes only the last level
    con = duckdb.connect()
    con.execute(
        ENRICH,
        {
            "sales": sales,
            "customers": customers,
            "sales_columns": SALES_COLUMNS,
            "customer_columns": CUSTOMER_COLUMNS,
        },
    )
    enriched_dir = sql_string(str(Path(output) / "enriched"))
    summary_dir = sql_string(str(Path(output) / "sales_summary"))
    con.execute(f"COPY enriched TO {enriched_dir} {COPY_OPTIONS}")
    con.execute(f"COPY ({SUMMARY}) TO {summary_dir} {COPY_OPTIONS}")
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    con.close()
    print(json.dumps({"threads": int(threads)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
