"""The quarantine-rate alarm (against moto)."""

from __future__ import annotations

from moto_fixtures import (
    ALARM,
    ALARM_ARN,
    MARK_LIST,
    TOPIC_ARN,
    assert_repaired,
    sorted_tags,
)

from pipeline.infra.operations import Operations


def test_up_creates_the_quarantine_rate_alarm_on_the_jobs_metric(deployed):
    [alarm] = deployed.cloudwatch.describe_alarms(AlarmNames=[ALARM])["MetricAlarms"]
    assert {
        k: alarm[k]
        for k in (
            "AlarmName",
            "Namespace",
            "MetricName",
            "Dimensions",
            "Statistic",
            "Period",
            "EvaluationPeriods",
            "ComparisonOperator",
            "Threshold",
            "TreatMissingData",
            "ActionsEnabled",
            "AlarmActions",
        )
    } == {
        "AlarmName": ALARM,
        "Namespace": "SalesPipeline",
        "MetricName": "QuarantineRate",
        "Dimensions": [{"Name": "Pipeline", "Value": "test-sales"}],
        "Statistic": "Maximum",
        "Period": 300,
        "EvaluationPeriods": 1,
        "ComparisonOperator": "GreaterThanThreshold",
        "Threshold": 0.05,
        "TreatMissingData": "notBreaching",
        "ActionsEnabled": True,
        "AlarmActions": [TOPIC_ARN],
    }
    tags = deployed.cloudwatch.list_tags_for_resource(ResourceARN=ALARM_ARN)["Tags"]
    assert sorted_tags(tags) == MARK_LIST


def test_up_puts_back_the_alarm_threshold_and_follows_the_flag(deployed, config):
    cloudwatch = deployed.cloudwatch
    cloudwatch.put_metric_alarm(
        AlarmName=ALARM,
        Namespace="SalesPipeline",
        MetricName="QuarantineRate",
        Dimensions=[{"Name": "Pipeline", "Value": "test-sales"}],
        Statistic="Maximum",
        Period=300,
        EvaluationPeriods=1,
        ComparisonOperator="GreaterThanThreshold",
        Threshold=0.9,
        AlarmActions=[],
    )
    assert_repaired(config, deployed, [f"updated alarm {ALARM}"])
    [alarm] = cloudwatch.describe_alarms(AlarmNames=[ALARM])["MetricAlarms"]
    assert (alarm["Threshold"], alarm["AlarmActions"]) == (0.05, [TOPIC_ARN])

    assert_repaired(
        config, deployed, [f"updated alarm {ALARM}"], Operations(max_quarantine_rate=0.2)
    )
    [alarm] = cloudwatch.describe_alarms(AlarmNames=[ALARM])["MetricAlarms"]
    assert alarm["Threshold"] == 0.2
