"""What the command-line scripts share: target flags, the config, logging, one way to fail.

The exit codes are listed in ``pipeline.errors``; ``run_cli`` maps each error to its code.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from pipeline.config import DEFAULT_PREFIX, TARGETS, PipelineConfig
from pipeline.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_USAGE,
    PipelineError,
    UsageError,
    one_line,
)
from pipeline.targets import resolve_config

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_DATE_FORMAT = "%H:%M:%S"


def add_target_flags(parser: argparse.ArgumentParser, *, target: bool = True) -> None:
    """``--target --lake --prefix --region --profile --endpoint-url``, unset by default.

    An unset flag falls back to the environment and the defaults of ``PipelineConfig``.
    """
    if target:
        parser.add_argument("--target", choices=TARGETS, help="local (default) or aws")
        parser.add_argument(
            "--lake", type=Path, help="local lake folder (default ./lake or $PIPELINE_LAKE)"
        )
    parser.add_argument(
        "--prefix", help=f"name prefix for every resource (default {DEFAULT_PREFIX})"
    )
    parser.add_argument("--region", help="AWS region (default: the profile's, or AWS_REGION)")
    parser.add_argument("--profile", help="AWS profile from ~/.aws/config")
    parser.add_argument(
        "--endpoint-url", help="send every AWS call here (a moto server, LocalStack)"
    )


def config_from(args: argparse.Namespace, **fixed: Any) -> PipelineConfig:
    """The config from the target flags that were given, plus ``fixed`` values.

    The target completes it (``pipeline.targets.resolve_config``): on the aws target the
    account is asked of STS once, unless ``fixed`` names it, so every script names the
    buckets ``<prefix>-<account>-<region>-...`` alike. Raises UsageError for a value the config refuses
    (for example a bad prefix, or one too long for a bucket name with the account).
    """
    given = {
        name: getattr(args, name, None)
        for name in ("target", "lake", "prefix", "region", "profile", "endpoint_url")
    }
    values = {k: v for k, v in given.items() if v is not None} | fixed
    try:
        config = resolve_config(PipelineConfig(**values))
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    return config


def setup_logging(
    verbose: bool = False, *, level: int = logging.INFO, stream: IO[str] | None = None
) -> None:
    """One log format for every script; ``verbose`` shows debug lines."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else level,
        format=LOG_FORMAT,
        datefmt=LOG_DATE_FORMAT,
        stream=stream or sys.stderr,
        force=True,
    )
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "py4j", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")


def run_cli(body: Callable[[], int]) -> int:
    """Run a script's body and turn its failures into one stderr line and an exit code."""
    from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound

    try:
        code = body()
        sys.stdout.flush()  # a reader that has gone shows here, not in Python's exit
        return code
    except BrokenPipeError:
        # Output piped into `head` and the like: stop quietly. What is still buffered
        # goes to /dev/null, so that Python's flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except ProfileNotFound as exc:  # a --profile or AWS_PROFILE that is not configured
        _say(f"error: {one_line(exc)}")
        return EXIT_USAGE
    except PipelineError as exc:
        _say(f"error: {one_line(exc)}")
        return exc.exit_code
    except FileNotFoundError as exc:
        _say(f"error: {one_line(exc)}")
        return EXIT_USAGE
    except (ClientError, BotoCoreError) as exc:
        _say(f"error: AWS call failed: {one_line(exc)}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        _say("error: interrupted")
        return 130
