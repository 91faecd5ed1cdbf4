"""Render the six sales charts from the named queries in athena_queries.sql.

Usage:
    python create_visualizations.py [--target local|aws] [--output screenshots/]
                                    [--lake DIR] [--prefix P]

The charts themselves live in :mod:`pipeline.charts`; this script picks the engine
from the flags and calls :func:`pipeline.charts.render_all`. The names other code
imported from here (``render_all``, ``NoDataError``, ``CHARTS``, the chart functions)
are re-exported unchanged.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

from pipeline.charts import (  # noqa: E402
    CHARTS,
    DPI,
    ChartEngine,
    ChartFunction,
    age_group_analysis_chart,
    customer_tiers_chart,
    format_currency,
    format_dollars,
    monthly_trend_chart,
    render_all,
    revenue_by_region_chart,
    top_products_chart,
    transaction_distribution_chart,
)
from pipeline.cli import add_target_flags, config_from, run_cli, setup_logging  # noqa: E402
from pipeline.errors import NoDataError  # noqa: E402
from pipeline.targets import make_target  # noqa: E402

__all__ = [
    "CHARTS",
    "DPI",
    "ChartEngine",
    "ChartFunction",
    "NoDataError",
    "age_group_analysis_chart",
    "customer_tiers_chart",
    "format_currency",
    "format_dollars",
    "main",
    "monthly_trend_chart",
    "render_all",
    "revenue_by_region_chart",
    "top_products_chart",
    "transaction_distribution_chart",
]

logger = logging.getLogger(__name__)


def _has_processed_data(config: Any) -> bool:
    enriched = config.local_path(config.enriched_uri)
    return enriched.is_dir() and any(enriched.rglob("*.parquet"))


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
        config = config_from(args)
        if config.target == "local" and not _has_processed_data(config):
            raise NoDataError(
                f"no processed data under {config.local_path(config.enriched_uri)}; "
                "run `python run_pipeline.py` first"
            )
        for path in render_all(make_target(config).engine(), args.output):
            print(path)
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
