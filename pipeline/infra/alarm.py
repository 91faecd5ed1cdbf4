"""The quarantine-rate alarm: a run's quarantined share over the threshold, to the topic."""

from __future__ import annotations

from typing import Any

from pipeline.config import METRICS_DIMENSION, METRICS_NAMESPACE, PipelineConfig
from pipeline.infra.cfn import CfnResource, RefStyle, Sentinels, logical_id
from pipeline.infra.operations import Operations
from pipeline.infra.ownership import by_tags
from pipeline.infra.shared import (
    ALARM_ARN,
    Context,
    Found,
    Resource,
    contains,
    status_row,
    tag_list,
    tag_map,
    tags,
)
from pipeline.infra.topic import topic_arn
from sales_etl import published

KIND = "cloudwatch-alarm"
REF_STYLES = {"AWS::CloudWatch::Alarm": RefStyle("Ref", "Arn", ALARM_ARN)}
ALARM_PERIOD_SECONDS = 300


def quarantine_alarm_spec(
    config: PipelineConfig, ops: Operations, topic_arn: str
) -> dict[str, Any]:
    """PutMetricAlarm's request (without Tags): a run's quarantined share over the threshold."""
    return {
        "AlarmName": config.quarantine_alarm_name,
        # The threshold as given (a share), not a percentage: CloudFormation's template
        # (deploy.py template) writes this text from its MaxQuarantineRate parameter.
        "AlarmDescription": (
            f"A run quarantined more than {ops.max_quarantine_rate} of the rows it read "
            "(a share, 0 to 1)"
        ),
        "Namespace": METRICS_NAMESPACE,
        "MetricName": published.QUARANTINE_RATE,
        "Dimensions": [{"Name": METRICS_DIMENSION, "Value": config.prefix}],
        "Statistic": "Maximum",
        "Period": ALARM_PERIOD_SECONDS,
        "EvaluationPeriods": 1,
        "ComparisonOperator": "GreaterThanThreshold",
        "Threshold": ops.max_quarantine_rate,
        "TreatMissingData": "notBreaching",
        "ActionsEnabled": True,
        "AlarmActions": [topic_arn],
    }


def get_alarm(cloudwatch: Any, name: str) -> dict[str, Any] | None:
    """The metric alarm's description, or None when there is none by that name."""
    alarms = cloudwatch.describe_alarms(AlarmNames=[name], AlarmTypes=["MetricAlarm"])
    found = alarms.get("MetricAlarms", [])
    return found[0] if found else None


def plan(ctx: Context) -> list[Resource]:
    spec = quarantine_alarm_spec(ctx.config, ctx.ops, topic_arn(ctx))
    settings = {**spec, "Tags": tag_list(tags(ctx.config))}
    return [Resource(KIND, ctx.config.quarantine_alarm_name, settings)]


def find(ctx: Context) -> list[Found]:
    """Read the quarantine-rate alarm's existence and tags (no change)."""
    cloudwatch, name = ctx.client("cloudwatch"), ctx.config.quarantine_alarm_name
    if get_alarm(cloudwatch, name) is None:
        return [Found(KIND, name, exists=False)]
    arn = ctx.arn(ALARM_ARN, name)
    found_tags = cloudwatch.list_tags_for_resource(ResourceARN=arn).get("Tags", [])
    return [by_tags(ctx.config, KIND, name, tag_map(found_tags))]


def ensure(ctx: Context) -> list[str]:
    config, cloudwatch = ctx.config, ctx.client("cloudwatch")
    want = quarantine_alarm_spec(config, ctx.ops, topic_arn(ctx))
    alarm = get_alarm(cloudwatch, config.quarantine_alarm_name)
    if alarm is None:
        cloudwatch.put_metric_alarm(**want, Tags=tag_list(tags(config)))
        return [f"created alarm {config.quarantine_alarm_name}"]
    extra_actions = alarm.get("OKActions") or alarm.get("InsufficientDataActions")
    if not contains(want, alarm) or extra_actions:
        cloudwatch.put_metric_alarm(**want)  # replaces the alarm's whole definition
        return [f"updated alarm {config.quarantine_alarm_name}"]
    return []


def delete(ctx: Context) -> list[str]:
    if not any(f.ours for f in ctx.found_of(KIND)):
        return []
    ctx.client("cloudwatch").delete_alarms(AlarmNames=[ctx.config.quarantine_alarm_name])
    return [f"alarm {ctx.config.quarantine_alarm_name}"]


def down_plan(config: PipelineConfig) -> list[str]:
    return [f"{KIND} {config.quarantine_alarm_name}"]


def status(ctx: Context) -> list[dict[str, Any]]:
    name = ctx.config.quarantine_alarm_name
    alarm = get_alarm(ctx.client("cloudwatch"), name)
    if alarm is None:
        return [status_row(KIND, name, "missing")]
    detail = f"{alarm.get('MetricName')} > {alarm.get('Threshold')}"
    return [status_row(KIND, name, alarm.get("StateValue", "?"), detail)]


def template(r: Resource, s: Sentinels) -> list[CfnResource]:
    # PutMetricAlarm's request is the resource's properties, name and all.
    logical = logical_id("Alarm", r.name, s)
    return [CfnResource(logical, "AWS::CloudWatch::Alarm", r.settings, "AlarmName")]


DEPLOYER_ALARM_ACTIONS = (
    "cloudwatch:PutMetricAlarm",
    "cloudwatch:DescribeAlarms",
    "cloudwatch:DeleteAlarms",
    "cloudwatch:ListTagsForResource",
    "cloudwatch:TagResource",
)


def deployer_statements(ctx: Context) -> list[dict[str, Any]]:
    return [
        {
            "Sid": "QuarantineAlarm",
            "Effect": "Allow",
            "Action": list(DEPLOYER_ALARM_ACTIONS),
            "Resource": [ctx.arn(ALARM_ARN, ctx.config.quarantine_alarm_name)],
        }
    ]
