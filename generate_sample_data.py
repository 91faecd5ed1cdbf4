#!/usr/bin/env python
"""Generate the raw sales CSV (the contract's header), reproducibly from a seed.

python generate_sample_data.py                       # 10,000 rows -> data/sales_data.csv
python generate_sample_data.py --rows 1000000 --seed 7 --dirty-rate 0.02
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time
from pathlib import Path

from pipeline.datagen import DIRTY_KINDS, SalesSpec, write_sales_csv

log = logging.getLogger("generate_sample_data")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = SalesSpec()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rows",
        type=int,
        default=defaults.rows,
        help="transactions to write (default %(default)s)",
    )
    parser.add_argument(
        "--customers",
        type=int,
        default=defaults.customers,
        help="size of the customer id space, shared with generate_customer_data.py (default %(default)s)",
    )
    parser.add_argument(
        "--days",
        type=int,
        default=defaults.days,
        help="length of the sales window in days (default %(default)s)",
    )
    parser.add_argument(
        "--start-date",
        type=dt.date.fromisoformat,
        default=defaults.start_date,
        help="first day of the sales window, YYYY-MM-DD (default %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=defaults.seed,
        help="random seed; the same seed gives the same bytes (default %(default)s)",
    )
    parser.add_argument(
        "--dirty-rate",
        type=float,
        default=0.0,
        help="fraction of rows (0-0.5) turned into bad rows, spread evenly over: "
        + ", ".join(DIRTY_KINDS)
        + " (default 0)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("data/sales_data.csv"),
        help="CSV file to write (default %(default)s)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: on for 1M+ rows)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = parse_args(argv)
    try:
        spec = SalesSpec(
            rows=args.rows,
            customers=args.customers,
            days=args.days,
            start_date=args.start_date,
            seed=args.seed,
            dirty_rate=args.dirty_rate,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    progress = args.progress if args.progress is not None else args.rows >= 1_000_000
    started = time.perf_counter()
    dirty = write_sales_csv(spec, args.output, progress=progress)
    seconds = time.perf_counter() - started
    log.info("wrote %s rows to %s in %.1fs", f"{spec.rows:,}", args.output, seconds)
    if spec.dirty_rate:
        log.info("dirty rows by kind: %s", ", ".join(f"{k}={dirty.get(k, 0)}" for k in DIRTY_KINDS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
