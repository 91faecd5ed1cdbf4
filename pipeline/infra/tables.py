"""The Athena tables: made by the DDL blocks of athena_queries.sql, run through the
workgroup after everything else; each must read this prefix's processed bucket. They are
deleted with the database."""

from __future__ import annotations

import logging
from typing import Any

from pipeline.config import (
    ENRICHED_PREFIX,
    ENRICHED_TABLE,
    QUARANTINE_PREFIX,
    QUARANTINE_TABLE,
    SUMMARY_PREFIX,
    SUMMARY_TABLE,
    PipelineConfig,
)
from pipeline.engines import AthenaEngine
from pipeline.errors import DeployError
from pipeline.infra.cfn import CfnResource, Sentinels
from pipeline.infra.shared import Context, Found, Resource, read_or_none

log = logging.getLogger(__name__)

KIND = "athena-tables"
NOT_FOUND = ("EntityNotFoundException",)
REF_STYLES: dict = {}

# The tables the Athena DDL creates, each at a folder of the processed bucket.
CURATED_TABLES = {
    ENRICHED_TABLE: ENRICHED_PREFIX,
    SUMMARY_TABLE: SUMMARY_PREFIX,
    QUARANTINE_TABLE: QUARANTINE_PREFIX,
}


def table_location_problems(config: PipelineConfig, glue: Any) -> tuple[list[str], list[str]]:
    """Check that each Athena table reads this prefix's processed bucket.

    Returns ``(problems, missing)``: one line per table whose LOCATION (or partition
    projection ``storage.location.template``) is not the expected folder of
    ``<prefix>-processed``, and the tables that do not exist.
    """
    problems, missing = [], []
    for table, folder in CURATED_TABLES.items():
        want = f"s3://{config.processed_bucket}/{folder}"
        found = read_or_none(
            lambda t=table: glue.get_table(DatabaseName=config.database, Name=t), NOT_FOUND
        )
        if found is None:
            missing.append(table)
            continue
        location = found["Table"].get("StorageDescriptor", {}).get("Location") or ""
        if location.rstrip("/") + "/" != want:
            problems.append(f"{table} LOCATION is {location or '(none)'}, expected {want}")
        template = (found["Table"].get("Parameters") or {}).get("storage.location.template")
        if template is not None and not template.startswith(want):
            problems.append(
                f"{table} storage.location.template is {template}, expected one under {want}"
            )
    return problems, missing


def check_table_locations(config: PipelineConfig, glue: Any, *, warn_missing: bool) -> None:
    """Raise :class:`DeployError` when a table reads another bucket's data (one line)."""
    problems, missing = table_location_problems(config, glue)
    if problems:
        wrong = sorted({p.split(" ", 1)[0] for p in problems})
        drops = "; ".join(f"DROP TABLE {config.database}.{t}" for t in wrong)
        raise DeployError(
            f"tables in {config.database} would read data that is not this prefix's: "
            f"{'; '.join(problems)}. The DDL is `create external table if not exists`, so it "
            f"keeps an existing table as it is. Drop it in Athena ({drops}: an external "
            "table, so only the definition goes, no data) and run `deploy.py up` again"
        )
    if missing and warn_missing:
        log.warning(
            "after the DDL, %s not in the Glue catalog (an endpoint that runs no SQL, "
            "such as moto, creates none)",
            ", ".join(f"{config.database}.{t}" for t in missing)
            + (" is" if len(missing) == 1 else " are"),
        )


def create_tables(config: PipelineConfig, engine: Any = None) -> None:
    """Run the DDL blocks of athena_queries.sql through Athena."""
    (engine or AthenaEngine(config)).setup_tables()


def plan(ctx: Context) -> list[Resource]:
    source = "athena_queries.sql (DDL blocks, run through the workgroup)"
    return [Resource(KIND, ctx.config.database, {"Source": source})]


def find(ctx: Context) -> list[Found]:
    return []  # the database's: its marks are what count


def ensure(ctx: Context) -> list[str]:
    """The DDL is CREATE ... IF NOT EXISTS: safe to repeat, so not counted as a change,
    but it keeps a table that already exists, wherever it points: check the locations."""
    if ctx.tables:
        create_tables(ctx.config)
        log.info("ran the DDL blocks of athena_queries.sql in workgroup %s", ctx.config.workgroup)
    check_table_locations(ctx.config, ctx.clients.glue, warn_missing=ctx.tables)
    return []


def delete(ctx: Context) -> list[str]:
    return []  # deleted with the database


def down_plan(config: PipelineConfig) -> list[str]:
    return []


def status(ctx: Context) -> list[dict[str, Any]]:
    return []  # listed on the database's row


def template(r: Resource, s: Sentinels) -> list[CfnResource]:
    return []  # CloudFormation cannot run Athena DDL (README: `deploy.py run` does)


def deployer_statements(ctx: Context) -> list[dict[str, Any]]:
    return []  # the database's statement covers the tables
