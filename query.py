#!/usr/bin/env python
"""Run SQL or a named query from athena_queries.sql, locally (DuckDB) or on Athena.

python query.py "select region, count(*) as n from enriched_sales group by region"
python query.py --name revenue_by_region
python query.py --all
python query.py --list
python query.py --target aws --name monthly_trend
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import pandas as pd

from pipeline.cli import add_target_flags, config_from, run_cli, setup_logging
from pipeline.engines import QueryResult
from pipeline.sql import analytic_names, descriptions
from pipeline.targets import make_target

log = logging.getLogger("query")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("sql", nargs="?", help="one SQL statement (Athena dialect)")
    what.add_argument("--name", help="run the named block from athena_queries.sql")
    what.add_argument("--all", action="store_true", help="run every analytic query")
    what.add_argument("--list", action="store_true", help="list the named queries")
    add_target_flags(parser)
    parser.add_argument(
        "--queries", type=Path, default=None, help="SQL file (default athena_queries.sql)"
    )
    parser.add_argument("--max-rows", type=int, default=50, help="rows to print per result")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser.parse_args(argv)


def printable(result: QueryResult, max_rows: int = 50) -> pd.DataFrame:
    """The first ``max_rows`` rows, with each DECIMAL column as its exact text.

    ``result.df`` holds decimals as floats, which pandas prints as ``1.023026e+09``; money
    is printed from the exact values instead, to the last digit of its scale.
    """
    shown = result.df.head(max_rows).copy()
    for i, values in result.decimals.items():
        exact = values.slice(0, len(shown)).to_pylist()
        # A missing value prints as pandas prints it in the other columns.
        shown.isetitem(i, ["NaN" if v is None else format(v, "f") for v in exact])
    return shown


def format_result(result: QueryResult, max_rows: int = 50) -> str:
    """Return the result as a text table followed by one line of stats."""
    df = result.df
    if df.empty:
        table = "(no rows)" if len(df.columns) == 0 else df.to_string(index=False) + "\n(no rows)"
    else:
        with pd.option_context("display.width", 200, "display.max_columns", 50):
            table = printable(result, max_rows).to_string(index=False)
        if len(df) > max_rows:
            table += f"\n... {len(df) - max_rows} more rows"
    files = "n/a" if result.files_read is None else f"{result.files_read}"
    scanned = "n/a" if result.bytes_read is None else f"{result.bytes_read:,}"
    stats = f"-- {result.rows} rows in {result.seconds:.3f}s; files read: {files}; bytes read: {scanned}"
    header = f"== {result.name}\n" if result.name else ""
    return f"{header}{table}\n{stats}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose, level=logging.WARNING)

    def body() -> int:
        if args.list:
            for name, text in descriptions(args.queries).items():
                if name in analytic_names(args.queries):
                    print(f"{name:28} {text}")
            return 0
        engine = make_target(config_from(args)).engine(args.queries)
        if args.all:
            for name in analytic_names(args.queries):
                print(format_result(engine.run_named(name), args.max_rows) + "\n")
        elif args.name:
            print(format_result(engine.run_named(args.name), args.max_rows))
        else:
            print(format_result(engine.run(args.sql), args.max_rows))
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
