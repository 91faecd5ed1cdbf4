"""The job's arguments, parsed as Glue passes them (``--name value``), and the run id."""

from __future__ import annotations

import argparse
import logging
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sales_etl.contracts import DEFAULT_JOB_NAME, FatalInputError

log = logging.getLogger(__name__)


# A run id names the quarantine folder and the metrics file.
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

REQUIRED_ARGS = ("sales_path", "customers_path", "output_path")

OPTIONAL_ARGS = (
    "quarantine_path",
    "run_id",
    "JOB_NAME",
    "metrics_namespace",
    "pipeline_prefix",
    "aws_region",
    "full_rebuild",
)

# Where the region comes from when the job definition does not pass --aws_region, in
# this order. botocore itself reads only AWS_DEFAULT_REGION (and the config files), so
# the job never leaves it to botocore.
REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")


@dataclass(frozen=True)
class JobArgs:
    sales_path: str
    customers_path: str
    output_path: str
    quarantine_path: str | None = None
    run_id: str | None = None
    job_name: str = DEFAULT_JOB_NAME
    job_run_id: str | None = None
    # Publish the run's figures to CloudWatch in this namespace, dimension Pipeline=<prefix>.
    metrics_namespace: str | None = None
    pipeline_prefix: str | None = None
    # The region of every AWS client the job makes: --aws_region, else the environment's.
    aws_region: str | None = None
    # Rebuild every output from all raw files instead of reading only what is new.
    full_rebuild: bool = False
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


def _given(argv: Sequence[str], name: str) -> bool:
    flag = f"--{name}"
    return any(a == flag or a.startswith(flag + "=") for a in argv[1:])


def parse_args(argv: Sequence[str]) -> JobArgs:
    """Parse Glue-style ``--name value`` arguments; ``argv[0]`` is the script name.

    Uses ``awsglue.utils.getResolvedOptions`` when awsglue imports (it treats every
    listed option as required, so optional ones are listed only when given), an
    argparse equivalent otherwise.
    """
    wanted = list(REQUIRED_ARGS) + [o for o in OPTIONAL_ARGS if _given(argv, o)]
    try:
        from awsglue.utils import getResolvedOptions
    except ImportError:
        getResolvedOptions = None  # noqa: N806 - the awsglue name
    if getResolvedOptions is not None:
        try:
            resolved = getResolvedOptions(list(argv), wanted)
        except Exception as exc:  # GlueArgumentError or RuntimeError from awsglue
            raise FatalInputError(f"bad arguments: {exc}; {_usage()}") from None
    else:
        parser = _FallbackParser(add_help=False)
        for name in wanted:
            parser.add_argument(f"--{name}", required=True)
        parser.add_argument("--JOB_ID")
        parser.add_argument("--JOB_RUN_ID")
        parsed, _extra = parser.parse_known_args(list(argv[1:]))
        resolved = vars(parsed)
    for name in wanted:
        if not resolved.get(name):
            raise FatalInputError(f"bad arguments: --{name} is empty; {_usage()}")
    if bool(resolved.get("metrics_namespace")) != bool(resolved.get("pipeline_prefix")):
        raise FatalInputError(
            f"bad arguments: --metrics_namespace and --pipeline_prefix go together; {_usage()}"
        )
    region = job_region(resolved.get("aws_region"))
    if resolved.get("metrics_namespace") and region is None:
        raise FatalInputError(
            "bad arguments: publishing metrics needs a region: pass --aws_region "
            f"(or set {' or '.join(REGION_VARIABLES)}); {_usage()}"
        )
    return JobArgs(
        sales_path=resolved["sales_path"],
        customers_path=resolved["customers_path"],
        output_path=resolved["output_path"],
        quarantine_path=resolved.get("quarantine_path"),
        run_id=resolved.get("run_id"),
        job_name=resolved.get("JOB_NAME") or DEFAULT_JOB_NAME,
        job_run_id=resolved.get("JOB_RUN_ID"),
        metrics_namespace=resolved.get("metrics_namespace"),
        pipeline_prefix=resolved.get("pipeline_prefix"),
        aws_region=region,
        full_rebuild=_flag(resolved.get("full_rebuild"), "full_rebuild"),
        raw=dict(resolved),
    )


def job_region(given: str | None) -> str | None:
    """The job's AWS region: ``given`` (``--aws_region``), else the first of
    :data:`REGION_VARIABLES` set, else None."""
    if given:
        return given
    return next((os.environ[v] for v in REGION_VARIABLES if os.environ.get(v)), None)


def _flag(value: str | None, name: str) -> bool:
    """A Glue-style boolean argument: ``true`` or ``false`` (absent: false)."""
    if value is None or value.lower() == "false":
        return False
    if value.lower() == "true":
        return True
    raise FatalInputError(f"bad arguments: --{name} takes true or false, not {value!r}")


class _FallbackParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would print usage and exit(2)
        raise FatalInputError(f"bad arguments: {message}; {_usage()}")


def _usage() -> str:
    return (
        "usage: glue_etl_job.py --sales_path P --customers_path P --output_path P "
        "[--quarantine_path P] [--run_id ID] [--JOB_NAME NAME] "
        "[--metrics_namespace NS --pipeline_prefix PREFIX [--aws_region R]] [--full_rebuild true]"
    )


def is_glue_runtime(argv: Sequence[str]) -> bool:
    """True when running inside an AWS Glue job run.

    The Glue service always passes ``--JOB_ID`` and ``--JOB_RUN_ID`` to the script
    (awsglue's ``Job.id_params`` reserves them; user code may not define them), and a
    local invocation never does. ``import awsglue`` alone is not enough: the
    AWSGlueDataplanePython package installs locally, but ``GlueContext`` needs Glue's
    JVM jars, which exist only on Glue.
    """
    if not _given(argv, "JOB_RUN_ID"):
        return False
    try:
        import awsglue.context  # noqa: F401
    except ImportError:
        log.warning("--JOB_RUN_ID given but awsglue is not importable; running locally")
        return False
    return True


def default_run_id(args: JobArgs, now: datetime) -> str:
    if args.run_id:
        return args.run_id
    if args.job_run_id:
        return args.job_run_id
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"


def check_run_id(run_id: str) -> str:
    if not _RUN_ID_RE.match(run_id):
        raise FatalInputError(
            f"bad --run_id {run_id!r}: use letters, digits, '_', '.', '-' (it names files)"
        )
    return run_id
