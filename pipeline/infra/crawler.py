"""The Glue crawler: catalogs the raw sales CSV and customers NDJSON into the database."""

from __future__ import annotations

from typing import Any

from pipeline.config import PipelineConfig
from pipeline.infra import role
from pipeline.infra.cfn import (
    GLUE_SECURITY_CONFIGURATION_SKIP,
    CfnResource,
    RefStyle,
    Sentinels,
    checkov_skips,
    glue_resource,
)
from pipeline.infra.ownership import by_tags
from pipeline.infra.shared import (
    GLUE_ARN,
    Context,
    Found,
    Resource,
    as_wanted_role,
    contains,
    glue_tags,
    read_or_none,
    retry_iam_propagation,
    status_row,
    tags,
)

KIND = "glue-crawler"
NOT_FOUND = ("EntityNotFoundException",)
REF_STYLES = {"AWS::Glue::Crawler": RefStyle("Ref")}


def crawler_spec(config: PipelineConfig, role_arn: str) -> dict[str, Any]:
    """Return the crawler definition (one S3 target per raw source)."""
    return {
        "Name": config.crawler_name,
        "Role": role_arn,
        "DatabaseName": config.database,
        "Description": "Catalogs the raw sales CSV and customers NDJSON",
        "Targets": {
            "S3Targets": [{"Path": config.raw_sales_uri}, {"Path": config.raw_customers_uri}]
        },
        # Daily exports land in the folders the first crawl made the tables of: a crawl
        # reads only folders added since the last one, so its cost does not grow with
        # history (the job lists its inputs itself and reads only new files). Glue allows
        # that recrawl policy only with schema changes logged, not applied.
        "SchemaChangePolicy": {"UpdateBehavior": "LOG", "DeleteBehavior": "LOG"},
        "RecrawlPolicy": {"RecrawlBehavior": "CRAWL_NEW_FOLDERS_ONLY"},
    }


def plan(ctx: Context) -> list[Resource]:
    settings = {**crawler_spec(ctx.config, role.role_arn(ctx)), "Tags": tags(ctx.config)}
    return [Resource(KIND, ctx.config.crawler_name, settings)]


def find(ctx: Context) -> list[Found]:
    """Read the crawler's existence and tags (no change)."""
    name = ctx.config.crawler_name
    if read_or_none(lambda: ctx.clients.glue.get_crawler(Name=name), NOT_FOUND) is None:
        return [Found(KIND, name, exists=False)]
    return [by_tags(ctx.config, KIND, name, glue_tags(ctx, f"crawler/{name}"))]


def ensure(ctx: Context) -> list[str]:
    config, glue = ctx.config, ctx.clients.glue
    want = crawler_spec(config, role.role_arn(ctx))

    def retried(call: Any) -> Any:
        # The role may be seconds old: Glue may not be able to use it yet.
        return retry_iam_propagation(call, role=config.role_name, sleep=ctx.sleep)

    found = read_or_none(lambda: glue.get_crawler(Name=config.crawler_name), NOT_FOUND)
    if found is None:
        retried(lambda: glue.create_crawler(**want, Tags=tags(config)))
        return [f"created crawler {config.crawler_name}"]
    if not contains(want, as_wanted_role(want, found["Crawler"])):
        retried(lambda: glue.update_crawler(**want))
        return [f"updated crawler {config.crawler_name}"]
    return []


def delete(ctx: Context) -> list[str]:
    if not any(f.ours for f in ctx.found_of(KIND)):
        return []
    ctx.clients.glue.delete_crawler(Name=ctx.config.crawler_name)
    return [f"crawler {ctx.config.crawler_name}"]


def down_plan(config: PipelineConfig) -> list[str]:
    return [f"{KIND} {config.crawler_name}"]


def status(ctx: Context) -> list[dict[str, Any]]:
    name = ctx.config.crawler_name
    found = read_or_none(lambda: ctx.clients.glue.get_crawler(Name=name), NOT_FOUND)
    if found is None:
        return [status_row(KIND, name, "missing")]
    crawler = found["Crawler"]
    last = crawler.get("LastCrawl", {})
    detail = f"last crawl={last.get('Status', 'never')}"
    if last.get("StartTime"):
        detail += f" started {last['StartTime']}"
    if last.get("ErrorMessage"):
        detail += f" error={last['ErrorMessage']}"
    return [status_row(KIND, name, crawler.get("State", "?"), detail)]


def template(r: Resource, s: Sentinels) -> list[CfnResource]:
    skips = checkov_skips(GLUE_SECURITY_CONFIGURATION_SKIP)
    return glue_resource(r, s, "AWS::Glue::Crawler", "Crawler", skips)


DEPLOYER_CRAWLER_ACTIONS = (  # CreateCrawler: a statement of its own (no resource ARN)
    "glue:GetCrawler",
    "glue:UpdateCrawler",
    "glue:DeleteCrawler",
    "glue:StartCrawler",
    "glue:StopCrawler",
    "glue:ListCrawls",
    "glue:GetTags",
    "glue:TagResource",
)


def deployer_statements(ctx: Context) -> list[dict[str, Any]]:
    marks = tags(ctx.config)
    return [
        {
            # CreateCrawler has no resource ARN: only a crawler carrying up's marks.
            "Sid": "CreateGlueCrawler",
            "Effect": "Allow",
            "Action": ["glue:CreateCrawler"],
            "Resource": ["*"],
            "Condition": {"StringEquals": {f"aws:RequestTag/{k}": v for k, v in marks.items()}},
        },
        {
            "Sid": "GlueCrawler",
            "Effect": "Allow",
            "Action": list(DEPLOYER_CRAWLER_ACTIONS),
            "Resource": [ctx.arn(GLUE_ARN, f"crawler/{ctx.config.crawler_name}")],
        },
    ]
