"""Every resource's desired settings: pure functions of the config, and the plan `up` follows."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline.config import (
    ACCOUNT_PLACEHOLDER,
    ATHENA_RESULTS_PREFIX,
    DEFAULT_MAX_QUARANTINE_RATE,
    ENRICHED_PREFIX,
    ENRICHED_TABLE,
    METRICS_DIMENSION,
    METRICS_NAMESPACE,
    SUMMARY_PREFIX,
    SUMMARY_TABLE,
    PipelineConfig,
)
from pipeline.infra.policies import (  # the marks, re-exported for ownership and teardown
    MANAGED_BY_KEY,
    MANAGED_BY_VALUE,
    PREFIX_KEY,
    alerts_key_alias_arn,
    alerts_key_policy,
    alerts_topic_policy,
    glue_role_policy,
    glue_trust_policy,
    partition_for_region,
    role_arn,
    tls_only_bucket_policy,
)

# The job: Glue 5.0 (Spark 3.5, Python 3.11), two G.1X workers (1 DPU each).
GLUE_VERSION = "5.0"
WORKER_TYPE = "G.1X"
NUMBER_OF_WORKERS = 2
DPU_PER_WORKER = {"G.1X": 1, "G.2X": 2, "G.4X": 4, "G.8X": 8}
JOB_TIMEOUT_MINUTES = 30
INLINE_POLICY_NAME = "glue-etl-least-privilege"

# Athena: fail any query that would scan more than 1 GiB (the data set is MBs).
BYTES_SCANNED_CUTOFF = 1024**3
ATHENA_ENGINE = "Athena engine version 3"

# Lifecycle (days).
RESULTS_EXPIRE_DAYS = 7
ABORT_MULTIPART_DAYS = 1
RAW_NONCURRENT_EXPIRE_DAYS = 30

# The tables the Athena DDL creates, each at a folder of the processed bucket.
CURATED_TABLES = {ENRICHED_TABLE: ENRICHED_PREFIX, SUMMARY_TABLE: SUMMARY_PREFIX}


def tags(config: PipelineConfig) -> dict[str, str]:
    """Return the tags every resource gets; ``down`` requires them before deleting."""
    return {MANAGED_BY_KEY: MANAGED_BY_VALUE, PREFIX_KEY: config.prefix}


def bucket_settings(config: PipelineConfig, bucket: str, partition: str = "aws") -> dict[str, Any]:
    """Return every setting ``up`` enforces on one bucket."""
    rules: list[dict[str, Any]] = [
        {
            "ID": "abort-incomplete-multipart-uploads",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_MULTIPART_DAYS},
        }
    ]
    if bucket == config.results_bucket:
        rules.append(
            {
                "ID": "expire-athena-results",
                "Status": "Enabled",
                "Filter": {"Prefix": ATHENA_RESULTS_PREFIX},
                "Expiration": {"Days": RESULTS_EXPIRE_DAYS},
            }
        )
    if bucket == config.raw_bucket:
        rules.append(
            {
                "ID": "expire-noncurrent-raw-versions",
                "Status": "Enabled",
                "Filter": {"Prefix": ""},
                "NoncurrentVersionExpiration": {"NoncurrentDays": RAW_NONCURRENT_EXPIRE_DAYS},
            }
        )
    return {
        "PublicAccessBlock": {
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
        "Encryption": {
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
        "Versioning": "Enabled" if bucket == config.raw_bucket else None,
        "Lifecycle": {"Rules": rules},
        "Policy": tls_only_bucket_policy(bucket, partition),
        "Tags": tags(config),
    }


def database_input(config: PipelineConfig) -> dict[str, Any]:
    """Return the Glue ``DatabaseInput``; the parameter marks it as this deployment's."""
    return {
        "Name": config.database,
        "Description": "Sales pipeline: raw tables (crawler) and curated tables (Athena DDL)",
        "Parameters": {PREFIX_KEY: config.prefix, MANAGED_BY_KEY: MANAGED_BY_VALUE},
    }


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
        "SchemaChangePolicy": {
            "UpdateBehavior": "UPDATE_IN_DATABASE",
            "DeleteBehavior": "DEPRECATE_IN_DATABASE",
        },
        "RecrawlPolicy": {"RecrawlBehavior": "CRAWL_EVERYTHING"},
    }


def job_spec(config: PipelineConfig, role_arn: str) -> dict[str, Any]:
    """Return the Glue job definition (without its name and tags)."""
    return {
        "Description": "Cleans, enriches and summarises sales into partitioned Parquet",
        "Role": role_arn,
        "Command": {"Name": "glueetl", "ScriptLocation": config.script_uri, "PythonVersion": "3"},
        "DefaultArguments": {
            "--sales_path": config.raw_sales_uri,
            "--customers_path": config.raw_customers_uri,
            "--output_path": config.processed_uri,
            "--job-language": "python",
            "--enable-metrics": "true",
            "--enable-continuous-cloudwatch-log": "true",
            # The job publishes its run metrics (rows read, written, quarantined, ...)
            # to this namespace, each with the dimension Pipeline=<prefix>.
            "--metrics_namespace": METRICS_NAMESPACE,
            "--pipeline_prefix": config.prefix,
        },
        "ExecutionProperty": {"MaxConcurrentRuns": 1},
        "GlueVersion": GLUE_VERSION,
        "WorkerType": WORKER_TYPE,
        "NumberOfWorkers": NUMBER_OF_WORKERS,
        "Timeout": JOB_TIMEOUT_MINUTES,
        "MaxRetries": 0,
    }


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


# ------------------------------------------------------------------ operations

# Glue's cron: six fields (minutes hours day-of-month month day-of-week year) in cron(...).
_CRON = re.compile(r"cron\((\S+ ){5}\S+\)")
# The alerts key: symmetric, rotated yearly by KMS, deleted by `down` after the shortest
# waiting period KMS allows.
KEY_USAGE = "ENCRYPT_DECRYPT"
KEY_SPEC = "SYMMETRIC_DEFAULT"
KEY_DELETION_WINDOW_DAYS = 7
ALERTS_TARGET_ID = "alerts-topic"
# Glue job runs and crawls that end badly, as EventBridge reports them.
FAILED_JOB_STATES = ("FAILED", "TIMEOUT", "STOPPED")
FAILED_CRAWLER_STATES = ("Failed",)
ALARM_PERIOD_SECONDS = 300
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def schedule_problem(schedule: str) -> str | None:
    """What is wrong with a Glue schedule expression, or None for ``cron(m h dom mon dow y)``."""
    if _CRON.fullmatch(schedule):
        return None
    return (
        f"schedule {schedule!r} is not a Glue cron expression: six fields in cron(...), "
        'e.g. "cron(0 6 * * ? *)" (06:00 UTC every day)'
    )


def email_problem(address: str) -> str | None:
    """What is wrong with an alert address, or None when it looks like an email address."""
    return None if _EMAIL.fullmatch(address) else f"{address!r} does not look like an email address"


@dataclass(frozen=True)
class Operations:
    """What ``up``'s flags choose for the workflow, the alerts and the alarm.

    They are the desired state: ``up`` without ``--schedule`` puts the start trigger back
    to on demand, and without ``--max-quarantine-rate`` the alarm back to the default.
    ``alert_email`` only adds a subscription; ``up`` never removes one.
    """

    schedule: str | None = None  # None: the workflow runs on demand only
    alert_email: str | None = None
    max_quarantine_rate: float = DEFAULT_MAX_QUARANTINE_RATE

    def problems(self) -> list[str]:
        found = []
        if self.schedule is not None and (why := schedule_problem(self.schedule)):
            found.append(why)
        if self.alert_email is not None and (why := email_problem(self.alert_email)):
            found.append(why)
        if not 0.0 <= self.max_quarantine_rate <= 1.0:
            found.append("--max-quarantine-rate must be between 0 and 1")
        return found


def _tag_list(config: PipelineConfig) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags(config).items())]


def workflow_spec(config: PipelineConfig) -> dict[str, Any]:
    """CreateWorkflow's request (without Tags): one run at a time, as the job allows."""
    return {
        "Name": config.workflow_name,
        "Description": "Sales pipeline: crawl the raw inputs, then run the ETL job",
        "MaxConcurrentRuns": 1,
    }


def start_trigger_spec(config: PipelineConfig, ops: Operations) -> dict[str, Any]:
    """CreateTrigger's request (without Tags) for the trigger that starts the crawler."""
    spec: dict[str, Any] = {
        "Name": config.start_trigger_name,
        "WorkflowName": config.workflow_name,
        "Type": "SCHEDULED" if ops.schedule else "ON_DEMAND",
        "Description": "Starts the crawler: " + (ops.schedule or "on demand"),
        "Actions": [{"CrawlerName": config.crawler_name}],
    }
    if ops.schedule:
        spec["Schedule"] = ops.schedule
        spec["StartOnCreation"] = True  # a scheduled trigger fires only when ACTIVATED
    return spec


def job_trigger_spec(config: PipelineConfig) -> dict[str, Any]:
    """CreateTrigger's request (without Tags): the job runs when the crawl SUCCEEDED."""
    return {
        "Name": config.job_trigger_name,
        "WorkflowName": config.workflow_name,
        "Type": "CONDITIONAL",
        "Description": "Starts the ETL job when the crawl succeeded",
        "Predicate": {
            "Logical": "ANY",
            "Conditions": [
                {
                    "LogicalOperator": "EQUALS",
                    "CrawlerName": config.crawler_name,
                    "CrawlState": "SUCCEEDED",
                }
            ],
        },
        "Actions": [{"JobName": config.job_name}],
        "StartOnCreation": True,
    }


def failures_event_pattern(config: PipelineConfig) -> dict[str, Any]:
    """The rule's pattern: our job's runs ending FAILED/TIMEOUT/STOPPED, our crawler's Failed.

    One rule: both detail-types, and ``$or`` in ``detail`` pairs each name with its states
    (a job event carries jobName, a crawler event crawlerName).
    """
    return {
        "source": ["aws.glue"],
        "detail-type": ["Glue Job State Change", "Glue Crawler State Change"],
        "detail": {
            "$or": [
                {"jobName": [config.job_name], "state": list(FAILED_JOB_STATES)},
                {"crawlerName": [config.crawler_name], "state": list(FAILED_CRAWLER_STATES)},
            ]
        },
    }


def failures_rule_spec(config: PipelineConfig) -> dict[str, Any]:
    """PutRule's request (without Tags); EventPattern is the JSON text PutRule takes."""
    return {
        "Name": config.failures_rule_name,
        "Description": "Glue job runs and crawls of this pipeline that fail: to the alerts topic",
        "EventPattern": json.dumps(failures_event_pattern(config), sort_keys=True),
        "State": "ENABLED",
    }


def key_tags(config: PipelineConfig) -> list[dict[str, str]]:
    """The tags in KMS's form (TagKey/TagValue)."""
    return [{"TagKey": k, "TagValue": v} for k, v in sorted(tags(config).items())]


def alerts_key_spec(config: PipelineConfig, account_id: str, partition: str) -> dict[str, Any]:
    """CreateKey's request for the key that encrypts the alerts topic."""
    return {
        # Not the topic's name: in the template that would make the key depend on the
        # topic, which depends on the key.
        "Description": f"Encrypts the alerts topic of sales pipeline {config.prefix} (deploy.py)",
        "KeyUsage": KEY_USAGE,
        "KeySpec": KEY_SPEC,
        "Policy": json.dumps(alerts_key_policy(config, account_id, partition), sort_keys=True),
        "Tags": key_tags(config),
    }


def alerts_topic_attributes(
    config: PipelineConfig, account_id: str, partition: str
) -> dict[str, str]:
    """CreateTopic's Attributes: encrypted with our key (named by its alias's ARN, so
    the topic follows the alias to a new key), and only our rule and alarm may publish."""
    return {
        "KmsMasterKeyId": alerts_key_alias_arn(config, account_id, partition),
        "Policy": json.dumps(alerts_topic_policy(config, account_id, partition), sort_keys=True),
    }


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
        "MetricName": "QuarantineRate",
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


def topic_arn(config: PipelineConfig, account_id: str, partition: str = "aws") -> str:
    return f"arn:{partition}:sns:{config.region}:{account_id}:{config.alerts_topic_name}"


@dataclass(frozen=True)
class Resource:
    """One resource of the plan: what it is, its name and every setting up enforces."""

    kind: str
    name: str
    settings: dict[str, Any] = field(default_factory=dict)


def plan(
    config: PipelineConfig,
    account_id: str | None = None,
    partition: str | None = None,
    ops: Operations | None = None,
) -> list[Resource]:
    """Return every resource ``up`` manages, in creation order, with its settings.

    The account is ``account_id``, else the config's, else a placeholder; ``ops`` are
    ``up``'s flags (default: on demand, no email, the default threshold).
    """
    ops = ops or Operations()
    account_id = account_id or config.account_id or ACCOUNT_PLACEHOLDER
    partition = partition or partition_for_region(config.region)
    arn = role_arn(config, account_id, partition)
    resources = [
        Resource("s3-bucket", b, bucket_settings(config, b, partition)) for b in config.buckets
    ]
    resources += [
        Resource(
            "iam-role",
            config.role_name,
            {
                "AssumeRolePolicyDocument": glue_trust_policy(),
                "InlinePolicies": {
                    INLINE_POLICY_NAME: glue_role_policy(config, account_id, partition)
                },
                "ManagedPolicies": [],
                "Tags": tags(config),
            },
        ),
        Resource("s3-object", config.script_uri, {"Source": "glue_etl_job.py"}),
        Resource("glue-database", config.database, database_input(config)),
        Resource(
            "glue-crawler", config.crawler_name, {**crawler_spec(config, arn), "Tags": tags(config)}
        ),
        Resource("glue-job", config.job_name, {**job_spec(config, arn), "Tags": tags(config)}),
        Resource(
            "athena-workgroup",
            config.workgroup,
            {"Configuration": workgroup_configuration(config), "Tags": tags(config)},
        ),
        Resource(
            "athena-tables",
            config.database,
            {"Source": "athena_queries.sql (DDL blocks, run through the workgroup)"},
        ),
    ]
    resources += operations_plan(config, account_id, partition, ops)
    return resources


def operations_plan(
    config: PipelineConfig, account_id: str, partition: str, ops: Operations
) -> list[Resource]:
    """The workflow and its triggers, the alerts key, topic and rule, the alarm: API request
    shapes. The key also gets its rotation (EnableKeyRotation) and its alias (CreateAlias)."""
    topic = topic_arn(config, account_id, partition)
    resources = [
        Resource(
            "glue-workflow", config.workflow_name, {**workflow_spec(config), "Tags": tags(config)}
        ),
        Resource(
            "glue-trigger",
            config.start_trigger_name,
            {**start_trigger_spec(config, ops), "Tags": tags(config)},
        ),
        Resource(
            "glue-trigger",
            config.job_trigger_name,
            {**job_trigger_spec(config), "Tags": tags(config)},
        ),
        Resource(
            "kms-key",
            config.alerts_key_alias,
            {
                **alerts_key_spec(config, account_id, partition),
                "EnableKeyRotation": True,
                "AliasName": config.alerts_key_alias,
            },
        ),
        Resource(
            "sns-topic",
            config.alerts_topic_name,
            {
                "Name": config.alerts_topic_name,
                "Attributes": alerts_topic_attributes(config, account_id, partition),
                "Tags": _tag_list(config),
            },
        ),
    ]
    if ops.alert_email:
        resources.append(
            Resource(
                "sns-subscription",
                ops.alert_email,
                {"TopicArn": topic, "Protocol": "email", "Endpoint": ops.alert_email},
            )
        )
    resources += [
        Resource(
            "events-rule",
            config.failures_rule_name,
            {
                **failures_rule_spec(config),
                "Tags": _tag_list(config),
                # PutTargets' request for this rule.
                "Targets": [{"Id": ALERTS_TARGET_ID, "Arn": topic}],
            },
        ),
        Resource(
            "cloudwatch-alarm",
            config.quarantine_alarm_name,
            {**quarantine_alarm_spec(config, ops, topic), "Tags": _tag_list(config)},
        ),
    ]
    return resources


def format_plan(resources: Iterable[Resource]) -> str:
    """Return the plan as readable text: one header per resource, settings as JSON."""
    lines = []
    for r in resources:
        lines.append(f"== {r.kind}: {r.name}")
        lines.append(json.dumps(r.settings, indent=2, sort_keys=True, default=str))
    return "\n".join(lines)
