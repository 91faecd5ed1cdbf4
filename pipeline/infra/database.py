"""The Glue database: the crawler's raw tables and Athena's curated ones. Its name derives
from the prefix (``pipeline.config.database_name``); Glue databases take no tags, so its
parameters say whose it is."""

from __future__ import annotations

from typing import Any

from pipeline.config import DATABASE, PipelineConfig
from pipeline.infra.cfn import CfnResource, RefStyle, Sentinels
from pipeline.infra.ownership import not_ours_error
from pipeline.infra.shared import (
    GLUE_ARN,
    MANAGED_BY_KEY,
    MANAGED_BY_VALUE,
    PREFIX_KEY,
    Context,
    Found,
    Resource,
    contains,
    read_or_none,
    status_row,
)

KIND = "glue-database"
NOT_FOUND = ("EntityNotFoundException",)
REF_STYLES = {"AWS::Glue::Database": RefStyle("Ref")}


def database_input(config: PipelineConfig) -> dict[str, Any]:
    """Return the Glue ``DatabaseInput``; the parameter marks it as this deployment's."""
    return {
        "Name": config.database,
        "Description": "Sales pipeline: raw tables (crawler) and curated tables (Athena DDL)",
        "Parameters": {PREFIX_KEY: config.prefix, MANAGED_BY_KEY: MANAGED_BY_VALUE},
    }


def plan(ctx: Context) -> list[Resource]:
    return [Resource(KIND, ctx.config.database, database_input(ctx.config))]


def find(ctx: Context) -> list[Found]:
    """Read the Glue database's existence and owner parameters (no change)."""
    config, name = ctx.config, ctx.config.database
    db = read_or_none(lambda: ctx.clients.glue.get_database(Name=name)["Database"], NOT_FOUND)
    if db is None:
        return [Found(KIND, name, exists=False)]
    params = db.get("Parameters") or {}
    owner = params.get(PREFIX_KEY)
    if owner == config.prefix and params.get(MANAGED_BY_KEY) == MANAGED_BY_VALUE:
        return [Found(KIND, name, exists=True, ours=True)]
    if owner == config.prefix:
        why = f"its {MANAGED_BY_KEY} parameter is not {MANAGED_BY_VALUE}"
    elif owner:
        why = f"its {PREFIX_KEY} parameter says it belongs to prefix {owner!r}"
    else:
        why = f"it has no {PREFIX_KEY} parameter: deploy.py did not create it"
    return [Found(KIND, name, exists=True, why_not_ours=why, owner=owner)]


def ensure(ctx: Context) -> list[str]:
    config, glue = ctx.config, ctx.clients.glue
    want = database_input(config)
    db = read_or_none(lambda: glue.get_database(Name=config.database)["Database"], NOT_FOUND)
    if db is None:
        glue.create_database(DatabaseInput=want)
        return [f"created database {config.database}"]
    found = find(ctx)
    if not found[0].ours:
        # Another prefix's (or a person's) database: its crawler tables and Athena tables
        # would be overwritten or silently point at the other deployment's buckets.
        raise not_ours_error(config, found)
    if not contains(want, db):
        glue.update_database(Name=config.database, DatabaseInput=want)
        return [f"updated database {config.database}"]
    return []


def delete(ctx: Context) -> list[str]:
    if not any(f.ours for f in ctx.found_of(KIND)):
        return []
    ctx.clients.glue.delete_database(Name=ctx.config.database)
    return [f"database {ctx.config.database} (and its tables)"]


def down_plan(config: PipelineConfig) -> list[str]:
    return [
        f"{KIND} {config.database} with its tables (only if its {PREFIX_KEY} parameter is "
        f"{config.prefix})"
    ]


def status(ctx: Context) -> list[dict[str, Any]]:
    glue, name = ctx.clients.glue, ctx.config.database
    found = read_or_none(lambda: glue.get_tables(DatabaseName=name), NOT_FOUND)
    if found is None:
        return [status_row(KIND, name, "missing")]
    tables = ",".join(t["Name"] for t in found["TableList"])
    return [status_row(KIND, name, "present", f"tables={tables}")]


# database_name in CloudFormation: DATABASE for the default prefix, else DATABASE_ and
# the prefix with its hyphens as underscores (Fn::Split and Fn::Join; Fn::Sub cannot).
TEMPLATE_NAME = {
    "Fn::If": [
        "IsDefaultPrefix",
        DATABASE,
        {
            "Fn::Join": [
                "",
                [f"{DATABASE}_", {"Fn::Join": ["_", {"Fn::Split": ["-", {"Ref": "Prefix"}]}]}],
            ]
        },
    ]
}


def template(r: Resource, s: Sentinels) -> list[CfnResource]:
    props = {"CatalogId": s.account, "DatabaseInput": r.settings}
    return [
        CfnResource(
            "GlueDatabase",
            "AWS::Glue::Database",
            props,
            "DatabaseInput.Name",
            name_value=TEMPLATE_NAME,
        )
    ]


# The database: up creates and repairs it, down deletes it (which needs the right on
# every table and function in it), status lists its tables. Athena, acting as the
# caller, reads the database and tables for each query and creates the two curated
# tables for the DDL.
DEPLOYER_CATALOG_ACTIONS = (
    "glue:GetDatabase",
    "glue:CreateDatabase",
    "glue:UpdateDatabase",
    "glue:DeleteDatabase",
    "glue:GetTable",
    "glue:GetTables",
    "glue:CreateTable",
    "glue:GetPartition",
    "glue:GetPartitions",
    "glue:BatchGetPartition",
)


def deployer_statements(ctx: Context) -> list[dict[str, Any]]:
    database = ctx.config.database
    return [
        {
            "Sid": "GlueDatabaseAndTables",
            "Effect": "Allow",
            "Action": list(DEPLOYER_CATALOG_ACTIONS),
            "Resource": [
                ctx.arn(GLUE_ARN, "catalog"),
                ctx.arn(GLUE_ARN, f"database/{database}"),
                ctx.arn(GLUE_ARN, f"table/{database}/*"),
                ctx.arn(GLUE_ARN, f"userDefinedFunction/{database}/*"),
            ],
        }
    ]
