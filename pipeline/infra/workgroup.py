"""The Athena workgroup: enforced settings, encrypted results, a per-query scan cutoff."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from pipeline.config import PipelineConfig
from pipeline.infra.cfn import CfnResource, RefStyle, Sentinels
from pipeline.infra.ownership import by_tags
from pipeline.infra.shared import (
    ATHENA_ARN,
    Context,
    Found,
    Resource,
    contains,
    error_code,
    read_or_none,
    status_row,
    tag_list,
    tag_map,
    tags,
)

KIND = "athena-workgroup"
# moto answers an empty body for a missing workgroup, AWS an InvalidRequestException.
NOT_FOUND = ("InvalidRequestException",)
REF_STYLES = {"AWS::Athena::WorkGroup": RefStyle("Ref")}

# Athena: fail any query that would scan more than 1 GiB (the data set is MBs).
BYTES_SCANNED_CUTOFF = 1024**3
ATHENA_ENGINE = "Athena engine version 3"


def workgroup_configuration(config: PipelineConfig) -> dict[str, Any]:
    """Return the Athena workgroup configuration (enforced on every query)."""
    return {
        "ResultConfiguration": {
            "OutputLocation": config.athena_results_uri,
            "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"},
        },
        "EnforceWorkGroupConfiguration": True,
        "PublishCloudWatchMetricsEnabled": True,
        "BytesScannedCutoffPerQuery": BYTES_SCANNED_CUTOFF,
        "EngineVersion": {"SelectedEngineVersion": ATHENA_ENGINE},
    }


def get_workgroup(athena: Any, name: str) -> dict[str, Any] | None:
    """Return the workgroup description, or None when it does not exist."""
    found = read_or_none(lambda: athena.get_work_group(WorkGroup=name), NOT_FOUND)
    return found.get("WorkGroup") if found else None


def plan(ctx: Context) -> list[Resource]:
    settings = {"Configuration": workgroup_configuration(ctx.config), "Tags": tags(ctx.config)}
    return [Resource(KIND, ctx.config.workgroup, settings)]


def find(ctx: Context) -> list[Found]:
    """Read the Athena workgroup's existence and tags (no change)."""
    name = ctx.config.workgroup
    if get_workgroup(ctx.clients.athena, name) is None:
        return [Found(KIND, name, exists=False)]
    arn = ctx.arn(ATHENA_ARN, f"workgroup/{name}")
    try:
        found_tags = ctx.clients.athena.list_tags_for_resource(ResourceARN=arn).get("Tags", [])
    except ClientError as exc:
        # moto answers this for a workgroup created without tags; either way the
        # workgroup exists and shows no marks of ours, so it is not ours.
        if error_code(exc) != "InvalidRequestException":
            raise
        found_tags = []
    return [by_tags(ctx.config, KIND, name, tag_map(found_tags))]


def ensure(ctx: Context) -> list[str]:
    config, athena = ctx.config, ctx.clients.athena
    want = workgroup_configuration(config)
    wg = get_workgroup(athena, config.workgroup)
    if wg is None:
        athena.create_work_group(
            Name=config.workgroup,
            Configuration=want,
            Description="Sales pipeline queries: enforced settings, encrypted results",
            Tags=tag_list(tags(config)),
        )
        return [f"created workgroup {config.workgroup}"]
    current = wg.get("Configuration", {})
    if wg.get("State") != "ENABLED" or not contains(want, current):
        athena.update_work_group(
            WorkGroup=config.workgroup,
            State="ENABLED",
            ConfigurationUpdates={
                "ResultConfigurationUpdates": want["ResultConfiguration"],
                "EnforceWorkGroupConfiguration": want["EnforceWorkGroupConfiguration"],
                "PublishCloudWatchMetricsEnabled": want["PublishCloudWatchMetricsEnabled"],
                "BytesScannedCutoffPerQuery": want["BytesScannedCutoffPerQuery"],
                "EngineVersion": want["EngineVersion"],
            },
        )
        return [f"updated workgroup {config.workgroup}"]
    return []


def delete(ctx: Context) -> list[str]:
    if not any(f.ours for f in ctx.found_of(KIND)):
        return []
    # With its saved queries.
    ctx.clients.athena.delete_work_group(WorkGroup=ctx.config.workgroup, RecursiveDeleteOption=True)
    return [f"workgroup {ctx.config.workgroup}"]


def down_plan(config: PipelineConfig) -> list[str]:
    return [f"{KIND} {config.workgroup} (with its saved queries)"]


def status(ctx: Context) -> list[dict[str, Any]]:
    name = ctx.config.workgroup
    wg = get_workgroup(ctx.clients.athena, name)
    if wg is None:
        return [status_row(KIND, name, "missing")]
    cutoff = wg.get("Configuration", {}).get("BytesScannedCutoffPerQuery")
    return [status_row(KIND, name, wg.get("State", "?"), f"cutoff={cutoff} bytes")]


def template(r: Resource, s: Sentinels) -> list[CfnResource]:
    props = {
        "Name": r.name,
        "WorkGroupConfiguration": r.settings["Configuration"],
        # As `down` deletes it: with its named queries and history.
        "RecursiveDeleteOption": True,
        "Tags": tag_list(r.settings["Tags"]),
    }
    return [CfnResource("AthenaWorkgroup", "AWS::Athena::WorkGroup", props, "Name")]


DEPLOYER_WORKGROUP_ACTIONS = (
    "athena:GetWorkGroup",
    "athena:CreateWorkGroup",
    "athena:UpdateWorkGroup",
    "athena:DeleteWorkGroup",
    "athena:StartQueryExecution",
    "athena:GetQueryExecution",
    "athena:GetQueryResults",
    "athena:StopQueryExecution",
)


def deployer_statements(ctx: Context) -> list[dict[str, Any]]:
    name = ctx.config.workgroup
    return [
        {
            "Sid": "AthenaWorkgroup",
            "Effect": "Allow",
            "Action": list(DEPLOYER_WORKGROUP_ACTIONS),
            "Resource": [ctx.arn(ATHENA_ARN, f"workgroup/{name}")],
        },
        {
            # The workgroup's tags: read (is it ours?) and set when creating it. These
            # two actions also name capacity reservations and data catalogs, and
            # parliament wants one of each: named like the workgroup, they are ours.
            "Sid": "AthenaWorkgroupTags",
            "Effect": "Allow",
            "Action": ["athena:ListTagsForResource", "athena:TagResource"],
            "Resource": [
                ctx.arn(ATHENA_ARN, f"{kind}/{name}")
                for kind in ("workgroup", "capacity-reservation", "datacatalog")
            ],
        },
    ]
