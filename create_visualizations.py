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
    NoDataError,
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
    parser.add_argument(
        "--target", choices=("local", "aws"), help="default: local (or $PIPELINE_TARGET)"
    )
    parser.add_argument(
        "--output", type=Path, default=Path("screenshots"), help="folder for the PNGs"
    )
    parser.add_argument(
        "--lake", type=Path, help="local lake root (default: ./lake or $PIPELINE_LAKE)"
    )
    parser.add_argument("--prefix", help="name prefix for buckets etc. (default: sales-pipeline)")
    parser.add_argument(
        "--region", help="AWS region (aws target; default: AWS_REGION or us-east-1)"
    )
    parser.add_argument("--profile", help="AWS profile (aws target)")
    parser.add_argument("--endpoint-url", help="AWS endpoint, e.g. a moto server (aws target)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Render the six charts; return 0 on success, 1 with a one-line error otherwise."""
    args = _parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from pipeline.config import PipelineConfig

    options = {
        "target": args.target, "lake": args.lake, "prefix": args.prefix,
        "region": args.region, "profile": args.profile, "endpoint_url": args.endpoint_url,
    }  # fmt: skip
    try:
        config = PipelineConfig(**{k: v for k, v in options.items() if v is not None})
        if config.target == "local" and not _has_processed_data(config):
            raise NoDataError(f"no processed data under {config.local_path(config.enriched_uri)}")
        from pipeline.engines import make_engine

        paths = render_all(make_engine(config), args.output)
    except NoDataError as exc:
        print(f"error: {exc}; run `python run_pipeline.py` first", file=sys.stderr)
        return 1
    except Exception as exc:  # the CLI's boundary: one readable line, details at debug level
        logger.debug("chart rendering failed", exc_info=True)
        print(f"error: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
