"""Every error the pipeline raises on purpose, and the exit code each maps to.

Library modules raise from here; the CLI layer (``pipeline.cli.run_cli``) turns an error
into one stderr line and ``exit_code``. Exit codes, the same in every script:

- ``0``: done;
- ``1``: the work failed (a stage, the job, a query, an AWS call); the last line on
  stderr says why;
- ``2``: what was asked cannot be done as given: an unknown flag, a bad value (such as
  a prefix S3 would refuse), or an input that is missing, empty or has the wrong header
  (the ETL job's own code for those, too); argparse uses 2 for its usage errors;
- ``3``: the run finished and wrote its outputs, but more of the rows were quarantined
  than ``--max-quarantine-rate`` allows (``run_pipeline.py``): for a scheduler to act on;
- ``141``: whoever read the output stopped reading (``| head``), the code a shell gives
  a program that SIGPIPE ends.
"""

from __future__ import annotations

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_QUALITY = 3
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE


class PipelineError(RuntimeError):
    """A failure a script reports as one line and ``exit_code`` (1 unless a kind says)."""

    exit_code = EXIT_FAILED


class UsageError(PipelineError):
    """The command or its inputs are wrong (exit code 2)."""

    exit_code = EXIT_USAGE


class StageFailed(PipelineError):
    """A pipeline stage failed; ``str()`` is one line naming the stage and the reason."""

    def __init__(self, stage: str, reason: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(f"stage '{stage}' failed: {reason}")
        self.stage = stage
        self.reason = reason
        self.exit_code = exit_code


class QueryError(PipelineError):
    """The SQL engine rejected a statement; the message is one line."""


class CrawlerError(PipelineError):
    """The crawler failed, was cancelled or did not finish in time."""


class DeployError(PipelineError):
    """A deployment problem the user must resolve (e.g. a bucket name taken)."""


class JobRunFailed(PipelineError):
    """The Glue job run ended in a state other than SUCCEEDED."""


class WorkflowRunFailed(PipelineError):
    """A workflow run stopped, errored, or one of its crawls or job runs failed."""


class NoDataError(PipelineError):
    """A chart's query returned no rows: the lake holds no processed data."""


def one_line(exc: BaseException) -> str:
    """The last non-empty line of an error's text (or its type's name)."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(exc).__name__
