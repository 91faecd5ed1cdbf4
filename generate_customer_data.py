#!/usr/bin/env python
"""Generate customer demographics as NDJSON (one JSON object per line).

    python generate_customer_data.py                  # 500 customers -> data/customer_demographics.json

Customer ids (CUST0001, ...) share the id space of generate_sample_data.py: use the
same --customers for both.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from pathlib import Path

from pipeline.datagen import SalesSpec, generate_customers, write_customers_ndjson

log = logging.getLogger("generate_customer_data")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = SalesSpec()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--customers",
        type=int,
        default=defaults.customers,
        help="customers to write (default %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=defaults.seed,
        help="random seed; the same seed gives the same bytes (default %(default)s)",
    )
    parser.add_argument(
        "--start-date",
        type=dt.date.fromisoformat,
        default=defaults.start_date,
        help="first day of the sales window; sign-ups fall in the three years before it (default %(default)s)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("data/customer_demographics.json"),
        help="NDJSON file to write (default %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = parse_args(argv)
    if args.customers < 1:
        print("error: --customers must be at least 1", file=sys.stderr)
        return 2
    records = generate_customers(args.customers, args.seed, args.start_date)
    write_customers_ndjson(records, args.output)
    log.info("wrote %s customers to %s", f"{len(records):,}", args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
