"""The Glue workflow that runs the crawler, then the job (its triggers: trigger.py)."""

from __future__ import annotations

from typing import Any

from pipeline.config import PipelineConfig
from pipeline.infra.cfn import CfnResource, RefStyle, Sentinels, glue_resource
from pipeline.infra.execution import node_states
from pipeline.infra.ownership import by_tags
from pipeline.infra.shared import (
    GLUE_ARN,
    Context,
    Found,
    Resource,
    contains,
    glue_tags,
    read_or_none,
    status_row,
    tags,
)

KIND = "glue-workflow"
NOT_FOUND = ("EntityNotFoundException",)
REF_STYLES = {"AWS::Glue::Workflow": RefStyle("Ref")}


def workflow_spec(config: PipelineConfig) -> dict[str, Any]:
    """CreateWorkflow's request (without Tags): one run at a time, as the job allows."""
    return {
        "Name": config.workflow_name,
        "Description": "Sales pipeline: crawl the raw inputs, then run the ETL job",
        "MaxConcurrentRuns": 1,
    }


def plan(ctx: Context) -> list[Resource]:
    settings = {**workflow_spec(ctx.config), "Tags": tags(ctx.config)}
    return [Resource(KIND, ctx.config.workflow_name, settings)]


def find(ctx: Context) -> list[Found]:
    """Read the Glue workflow's existence and tags (no change)."""
    name = ctx.config.workflow_name
    if read_or_none(lambda: ctx.clients.glue.get_workflow(Name=name), NOT_FOUND) is None:
        return [Found(KIND, name, exists=False)]
    return [by_tags(ctx.config, KIND, name, glue_tags(ctx, f"workflow/{name}"))]


def ensure(ctx: Context) -> list[str]:
    config, glue = ctx.config, ctx.clients.glue
    want = workflow_spec(config)
    found = read_or_none(lambda: glue.get_workflow(Name=config.workflow_name), NOT_FOUND)
    if found is None:
        glue.create_workflow(**want, Tags=tags(config))
        return [f"created workflow {config.workflow_name}"]
    if not contains(want, found["Workflow"]):
        glue.update_workflow(**want)
        return [f"updated workflow {config.workflow_name}"]
    return []


def delete(ctx: Context) -> list[str]:
    if not any(f.ours for f in ctx.found_of(KIND)):
        return []
    ctx.clients.glue.delete_workflow(Name=ctx.config.workflow_name)
    return [f"workflow {ctx.config.workflow_name}"]


def down_plan(config: PipelineConfig) -> list[str]:
    return [f"{KIND} {config.workflow_name}"]


def workflow_run_detail(run: dict[str, Any]) -> str:
    """One line for a workflow run: id, status, times and each crawler's and job's state."""
    detail = (
        f"last run={run['WorkflowRunId']} {run.get('Status', '?')} started {run.get('StartedOn')}"
    )
    if run.get("CompletedOn"):
        detail += f" completed {run['CompletedOn']}"
    states = [f"{name}={state}" for name, state in node_states(run).items()]
    if states:
        detail += " nodes: " + ", ".join(states)
    if run.get("ErrorMessage"):
        detail += f" error={run['ErrorMessage']}"
    return detail


def status(ctx: Context) -> list[dict[str, Any]]:
    glue, name = ctx.clients.glue, ctx.config.workflow_name
    found = read_or_none(lambda: glue.get_workflow(Name=name), NOT_FOUND)
    if found is None:
        return [status_row(KIND, name, "missing")]
    last = found["Workflow"].get("LastRun")
    detail = "last run=never"
    if last:
        # GetWorkflowRun with IncludeGraph: the crawler's and job's node states.
        run = glue.get_workflow_run(Name=name, RunId=last["WorkflowRunId"], IncludeGraph=True)
        detail = workflow_run_detail(run["Run"])
    return [status_row(KIND, name, "present", detail)]


def template(r: Resource, s: Sentinels) -> list[CfnResource]:
    return glue_resource(r, s, "AWS::Glue::Workflow", "Workflow")


DEPLOYER_WORKFLOW_ACTIONS = (
    "glue:CreateWorkflow",
    "glue:GetWorkflow",
    "glue:UpdateWorkflow",
    "glue:DeleteWorkflow",
    "glue:StartWorkflowRun",
    "glue:GetWorkflowRun",
    "glue:GetWorkflowRuns",
    "glue:StopWorkflowRun",
    "glue:GetTags",
    "glue:TagResource",
)


def deployer_statements(ctx: Context) -> list[dict[str, Any]]:
    return [
        {
            # The workflow and its two triggers (a trigger's ARN names the trigger).
            "Sid": "GlueWorkflow",
            "Effect": "Allow",
            "Action": list(DEPLOYER_WORKFLOW_ACTIONS),
            "Resource": [ctx.arn(GLUE_ARN, f"workflow/{ctx.config.workflow_name}")],
        }
    ]
