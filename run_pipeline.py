#!/usr/bin/env python
"""Run the whole pipeline in one command: generate -> upload -> crawl -> ETL -> tables -> queries -> charts -> report.

python run_pipeline.py                                  # local target, default data
python run_pipeline.py --rows 100000 --dirty-rate 0.02
python run_pipeline.py --sales-path my_sales.csv --customers-path my_customers.json
python run_pipeline.py --target aws --endpoint-url http://127.0.0.1:5000
python run_pipeline.py --remove-raw orders_2026-12-05.csv --dry-run   # what would go
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipeline.cli import add_target_flags, config_from, run_cli, setup_logging
from pipeline.config import OWN_DATA_LAKE
from pipeline.errors import EXIT_QUALITY
from pipeline.report import page_lines
from pipeline.runner import RunOptions, run, summary_lines
from pipeline.storage import remove_raw
from pipeline.targets import make_target


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = RunOptions()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_target_flags(parser)
    parser.add_argument(
        "--rows",
        type=int,
        default=defaults.rows,
        help="sales rows to generate (default %(default)s)",
    )
    parser.add_argument(
        "--customers", type=int, default=defaults.customers, help="customers (default %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=defaults.seed, help="random seed (default %(default)s)"
    )
    parser.add_argument(
        "--dirty-rate",
        type=float,
        default=0.0,
        help="fraction of bad sales rows, 0-0.5 (default 0)",
    )
    parser.add_argument(
        "--sales-path",
        default=None,
        help="your own sales CSV: a file or a folder (s3://... on the aws target); "
        "skips the generate stage; needs --customers-path",
    )
    parser.add_argument(
        "--customers-path",
        default=None,
        help="your own customers (NDJSON or a JSON array): a file or a folder "
        "(s3://... on the aws target); needs --sales-path",
    )
    parser.add_argument(
        "--charts-dir",
        type=Path,
        default=None,
        help="where the six PNGs go (default screenshots/; with your own files <lake>/_charts/)",
    )
    parser.add_argument(
        "--report-dir",
        type=Path,
        default=None,
        help="where the run's HTML page goes: index.html and <run_id>.html "
        "(default: a report folder beside --charts-dir)",
    )
    parser.add_argument(
        "--max-quarantine-rate",
        type=float,
        default=defaults.max_quarantine_rate,
        help="the largest share of rows read that may be quarantined; above it the run "
        "still writes everything but exits 3 (default %(default)s)",
    )
    parser.add_argument(
        "--full-rebuild",
        action="store_true",
        help="rebuild every output from all raw files (after a rule change), not only what is new",
    )
    parser.add_argument("--run-id", default=None, help="job run id (default: a UTC timestamp)")
    parser.add_argument(
        "--remove-raw",
        action="append",
        metavar="NAME",
        help="take a file out of the raw bucket by its name in the summary's 'raw files' "
        "(a glob works; repeat for more) and stop; the next run drops its rows",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="with --remove-raw: list what would go, remove nothing",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    if (args.sales_path is None) != (args.customers_path is None):
        parser.error("--sales-path and --customers-path go together: give both or neither")
    if args.dry_run and not args.remove_raw:
        parser.error("--dry-run goes with --remove-raw")
    return args


def own_lake(args: argparse.Namespace) -> dict[str, Path]:
    """Your own files go to a lake of their own unless --lake or $PIPELINE_LAKE says
    (--remove-raw too: the raw files to take out are your own)."""
    own = args.sales_path is not None or bool(args.remove_raw)
    if own and args.lake is None and not os.environ.get("PIPELINE_LAKE"):
        return {"lake": Path(OWN_DATA_LAKE)}
    return {}


def remove_raw_files(args: argparse.Namespace) -> int:
    """``--remove-raw``: remove the named raw files (or list them, with --dry-run)."""
    config = config_from(args, **own_lake(args))
    uris = remove_raw(make_target(config).storage, config, args.remove_raw, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    print("\n".join(f"{verb} {uri}" for uri in uris))
    if not args.dry_run:
        print("the next run rebuilds the output from the raw files left, without their rows")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)

    def body() -> int:
        if args.remove_raw:
            return remove_raw_files(args)
        config = config_from(args, **own_lake(args))
        options = RunOptions(
            rows=args.rows, customers=args.customers, seed=args.seed,
            dirty_rate=args.dirty_rate, charts_dir=args.charts_dir, report_dir=args.report_dir,
            sales_path=args.sales_path, customers_path=args.customers_path,
            max_quarantine_rate=args.max_quarantine_rate, full_rebuild=args.full_rebuild,
        )  # fmt: skip
        if args.run_id:
            options.run_id = args.run_id
        report = run(config, options)
        print("\n".join([*summary_lines(report), "", *page_lines(report.page)]))
        if report.quality and not report.quality.ok:
            sys.stderr.write(f"error: data quality:{report.quality.line()[1:]}\n")
            return EXIT_QUALITY
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
