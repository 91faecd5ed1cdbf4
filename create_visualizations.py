"""Render the six sales charts from the named queries in athena_queries.sql.

Usage:
    python create_visualizations.py [--target local|aws] [--output screenshots/]
                                    [--lake DIR] [--prefix P]

The charts themselves live in :mod:`pipeline.charts`; this script picks the target
from the flags and calls :func:`pipeline.charts.render_all` with its engine.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from pipeline.charts import render_all  # noqa: E402
from pipeline.cli import add_target_flags, config_from, run_cli, setup_logging  # noqa: E402
from pipeline.targets import make_target  # noqa: E402

logger = logging.getLogger(__name__)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_target_flags(parser)
    parser.add_argument(
        "--output", type=Path, default=Path("screenshots"), help="folder for the PNGs"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Render the six charts; exit codes as every script's (see pipeline.cli)."""
    args = _parse_args(argv)
    setup_logging(args.verbose)

    def body() -> int:
        target = make_target(config_from(args))
        target.check_processed_data()
        for path in render_all(target.engine(), args.output):
            print(path)
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
