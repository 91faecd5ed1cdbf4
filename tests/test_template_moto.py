"""infrastructure/template.yaml as a stack on moto's CloudFormation, read back with boto3.

moto 5's CloudFormation creates AWS::S3::Bucket (with its encryption and tags; not its
versioning, public access block or lifecycle), AWS::IAM::Role (trust policy, inline
policies, tags), AWS::KMS::Key (description, key policy, rotation, tags: given in the
form moto's CreateKey reads, see ``moto_subset``) and AWS::KMS::Alias, AWS::SNS::Topic
(name and attributes such as KmsMasterKeyId; not its tags) and AWS::Events::Rule
(pattern, state, targets). It skips, with a warning, every
other type of the template: the Glue database, crawler, job, workflow and triggers, the
Athena workgroup, the CloudWatch alarm, AWS::S3::BucketPolicy, AWS::SNS::TopicPolicy and
AWS::SNS::Subscription; those are checked by cfn-lint's schemas and, setting by setting,
against plan() in tests/test_template.py.

The stack is made from the template less the types moto skips, a reference to a skipped
resource replaced by the name expression it would return: otherwise moto resolves it to
null (the rule's pattern would name no job).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws
from moto.cloudformation.parsing import get_model_map
from moto_fixtures import REGION, moto_account

TEMPLATE_FILE = Path(__file__).resolve().parent.parent / "infrastructure" / "template.yaml"
ACCOUNT = "123456789012"  # moto's default account
PREFIX = "acme"
STEM = f"{PREFIX}-{ACCOUNT}-{REGION}"

CREATED_BY_MOTO = {
    "AWS::S3::Bucket",
    "AWS::IAM::Role",
    "AWS::KMS::Key",
    "AWS::KMS::Alias",
    "AWS::SNS::Topic",
    "AWS::Events::Rule",
    "AWS::SQS::Queue",
}
SKIPPED_BY_MOTO = {
    "AWS::SQS::QueuePolicy",
    "AWS::S3::BucketPolicy",
    "AWS::Glue::Database",
    "AWS::Glue::Crawler",
    "AWS::Glue::Job",
    "AWS::Glue::Workflow",
    "AWS::Glue::Trigger",
    "AWS::Athena::WorkGroup",
    "AWS::SNS::TopicPolicy",
    "AWS::SNS::Subscription",
    "AWS::CloudWatch::Alarm",
}
NAME_PROPERTY = {
    "AWS::Glue::Database": ("DatabaseInput", "Name"),
    "AWS::Glue::Crawler": ("Name",),
    "AWS::Glue::Job": ("Name",),
    "AWS::Glue::Workflow": ("Name",),
    "AWS::Glue::Trigger": ("Name",),
    "AWS::Athena::WorkGroup": ("Name",),
    "AWS::CloudWatch::Alarm": ("AlarmName",),
}


def test_moto_creates_these_types_and_skips_the_others() -> None:
    """What this file's docstring and the README say, read from moto itself."""
    supported = set(get_model_map())
    types = {r["Type"] for r in yaml.safe_load(TEMPLATE_FILE.read_text())["Resources"].values()}
    assert types == CREATED_BY_MOTO | SKIPPED_BY_MOTO
    assert types & supported == CREATED_BY_MOTO


def moto_subset(tpl: dict[str, Any]) -> dict[str, Any]:
    """The template less the types moto skips; Ref X / ${X} of a skipped X (each returns
    the resource's name) replaced by the expression of that name."""
    resources = tpl["Resources"]
    names: dict[str, str] = {}
    for logical, res in resources.items():
        if res["Type"] in NAME_PROPERTY:
            node = res["Properties"]
            for key in NAME_PROPERTY[res["Type"]]:
                node = node[key]
            names[logical] = node

    def text(name: Any) -> str | None:
        """A name as Fn::Sub text, or None when it is another intrinsic (Fn::If, ...)."""
        if isinstance(name, str):
            return name
        return name["Fn::Sub"] if set(name) == {"Fn::Sub"} else None

    def replace(node: Any) -> Any:
        if isinstance(node, list):
            return [replace(v) for v in node]
        if not isinstance(node, dict):
            return node
        if set(node) == {"Ref"} and node["Ref"] in names:
            name = names[node["Ref"]]
            return {"Fn::Sub": text(name)} if text(name) is not None else name
        if set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):
            # A name CloudFormation computes otherwise goes in as a variable of Fn::Sub.
            variables = {}

            def inline(m: re.Match[str]) -> str:
                if m[1] not in names:
                    return m[0]
                if text(names[m[1]]) is not None:
                    return text(names[m[1]])
                variables[m[1]] = names[m[1]]
                return m[0]

            body = re.sub(r"\$\{([A-Za-z0-9]+)\}", inline, node["Fn::Sub"])
            return {"Fn::Sub": [body, variables] if variables else body}
        assert set(node) != {"Fn::GetAtt"} or node["Fn::GetAtt"][0] not in names, node
        return {k: replace(v) for k, v in node.items()}

    kept = {k: replace(r) for k, r in resources.items() if r["Type"] in CREATED_BY_MOTO}
    for res in kept.values():
        if res["Type"] == "AWS::KMS::Key":
            # moto 5.2.5 hands AWS::KMS::Key's Tags (Key/Value, as CloudFormation takes
            # them) to its CreateKey, which reads TagKey/TagValue (KeyError): given here
            # in the form its CreateKey reads.
            res["Properties"]["Tags"] = [
                {"TagKey": t["Key"], "TagValue": t["Value"]} for t in res["Properties"]["Tags"]
            ]
    outputs = {k: o for k, o in tpl["Outputs"].items() if replace(o) == o}
    return {**tpl, "Resources": kept, "Outputs": outputs}


def _create_stack(parameters: dict[str, str]) -> Any:
    tpl = moto_subset(yaml.safe_load(TEMPLATE_FILE.read_text()))
    cfn = boto3.client("cloudformation", region_name=REGION)
    cfn.create_stack(
        StackName="sales-pipeline",
        TemplateBody=yaml.safe_dump(tpl),
        Capabilities=["CAPABILITY_NAMED_IAM"],
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
    )
    return cfn


SCHEDULED = {"Prefix": PREFIX, "Schedule": "cron(0 6 * * ? *)", "MaxQuarantineRate": "0.1"}


class TestOneStack:
    """One stack (scheduled, with an alarm) for the tests that read it."""

    @pytest.fixture(scope="class")
    def stack(self) -> Any:
        with moto_account():
            yield _create_stack(SCHEDULED)

    def test_stack_creates_the_buckets_role_topic_and_rule(self, stack: Any) -> None:
        (described,) = stack.describe_stacks(StackName="sales-pipeline")["Stacks"]
        assert described["StackStatus"] == "CREATE_COMPLETE"
        made = {
            r["LogicalResourceId"]: r["PhysicalResourceId"]
            for r in stack.list_stack_resources(StackName="sales-pipeline")[
                "StackResourceSummaries"
            ]
            # moto 5.2.5 lists a resource whose Condition is false (the OnArrival ones) with
            # empty ids: not made.
            if r["LogicalResourceId"]
        }
        assert made == {
            "RawBucket": f"{STEM}-raw",
            "ProcessedBucket": f"{STEM}-processed",
            "ScriptsBucket": f"{STEM}-scripts",
            "AthenaResultsBucket": f"{STEM}-athena-results",
            "GlueRole": "acme-glue-role",
            "AlertsKey": made["AlertsKey"],  # the key id KMS gives it
            "AlertsKeyAlias": "alias/acme-alerts",
            "AlertsTopic": f"arn:aws:sns:{REGION}:{ACCOUNT}:acme-alerts",
            "AlertsDlqQueue": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/acme-alerts-dlq",
            "FailuresRule": "acme-failures",
        }
        outputs = {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}
        assert outputs["ScriptLocation"] == f"s3://{STEM}-scripts/scripts/glue_etl_job.py"

    def test_buckets_are_encrypted_and_tagged(self, stack: Any) -> None:
        s3 = boto3.client("s3", region_name=REGION)
        for suffix in ("raw", "processed", "scripts", "athena-results"):
            bucket = f"{STEM}-{suffix}"
            rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
            assert rules["Rules"][0]["ApplyServerSideEncryptionByDefault"] == {
                "SSEAlgorithm": "AES256"
            }
            tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
            assert tags == {"managed-by": "deploy.py", "pipeline-prefix": PREFIX}

    def test_role_trusts_glue_and_has_the_least_privilege_policy(self, stack: Any) -> None:
        iam = boto3.client("iam", region_name=REGION)
        role = iam.get_role(RoleName="acme-glue-role")["Role"]
        assert role["AssumeRolePolicyDocument"]["Statement"] == [
            {
                "Effect": "Allow",
                "Principal": {"Service": "glue.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ]
        assert {t["Key"]: t["Value"] for t in role["Tags"]} == {
            "managed-by": "deploy.py",
            "pipeline-prefix": PREFIX,
        }
        assert iam.list_role_policies(RoleName="acme-glue-role")["PolicyNames"] == [
            "glue-etl-least-privilege"
        ]
        document = iam.get_role_policy(
            RoleName="acme-glue-role", PolicyName="glue-etl-least-privilege"
        )["PolicyDocument"]
        if isinstance(document, str):
            # moto keeps the document CloudFormation gave it as a dict and answers its
            # Python text (single quotes), where AWS answers JSON.
            document = ast.literal_eval(document)
        statements = {s["Sid"]: s for s in document["Statement"]}
        assert statements["ReadRawInput"]["Resource"] == [
            f"arn:aws:s3:::{STEM}-raw/input/sales_data_csv*",
            f"arn:aws:s3:::{STEM}-raw/input/customer_demographics_json*",
        ]
        assert statements["ReadJobScript"]["Resource"] == [
            f"arn:aws:s3:::{STEM}-scripts/scripts/glue_etl_job.py",
            f"arn:aws:s3:::{STEM}-scripts/scripts/sales_etl.zip",
        ]
        assert (
            f"arn:aws:glue:{REGION}:{ACCOUNT}:database/sales_analytics_db_acme"
            in statements["CrawlerRawTables"]["Resource"]
        )
        assert iam.list_attached_role_policies(RoleName="acme-glue-role")["AttachedPolicies"] == []

    def test_topic_is_encrypted_with_its_own_rotated_key(self, stack: Any) -> None:
        sns = boto3.client("sns", region_name=REGION)
        arn = f"arn:aws:sns:{REGION}:{ACCOUNT}:acme-alerts"
        assert sns.get_topic_attributes(TopicArn=arn)["Attributes"]["KmsMasterKeyId"] == (
            f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/acme-alerts"
        )
        kms = boto3.client("kms", region_name=REGION)
        # Not DescribeKey: moto 5.2.5 validates the key policy there as JSON text, and a key
        # CloudFormation made keeps it as the template's dict (TypeError). The alias names it.
        [alias] = [
            a for a in kms.list_aliases()["Aliases"] if a["AliasName"] == "alias/acme-alerts"
        ]
        key = {"KeyId": alias["TargetKeyId"]}
        assert [k["KeyId"] for k in kms.list_keys()["Keys"]] == [key["KeyId"]]
        assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is True
        tags = kms.list_resource_tags(KeyId=key["KeyId"])["Tags"]
        assert {t["TagKey"]: t["TagValue"] for t in tags} == {
            "managed-by": "deploy.py",
            "pipeline-prefix": PREFIX,
        }
        policy = kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"]
        if isinstance(policy, str):
            policy = json.loads(policy)
        # else moto keeps the document CloudFormation gave it as a dict and answers it as a
        # JSON object, where AWS answers JSON text.
        statements = policy["Statement"]
        assert [(s["Sid"], s["Principal"]) for s in statements] == [
            ("AccountAdministersKeyThroughIAM", {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}),
            ("FailuresRuleEncryptsAlerts", {"Service": "events.amazonaws.com"}),
            ("QuarantineAlarmEncryptsAlerts", {"Service": "cloudwatch.amazonaws.com"}),
        ]
        assert statements[2]["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}

    def test_rule_sends_our_failed_job_runs_and_crawls_to_the_topic(self, stack: Any) -> None:
        events = boto3.client("events", region_name=REGION)
        rule = events.describe_rule(Name="acme-failures")
        assert rule["State"] == "ENABLED"
        assert json.loads(rule["EventPattern"]) == {
            "source": ["aws.glue"],
            "detail-type": ["Glue Job State Change", "Glue Crawler State Change"],
            "detail": {
                "$or": [
                    {"jobName": ["acme-etl-job"], "state": ["FAILED", "TIMEOUT", "STOPPED"]},
                    {"crawlerName": ["acme-raw-crawler"], "state": ["Failed"]},
                ]
            },
        }
        assert events.list_targets_by_rule(Rule="acme-failures")["Targets"] == [
            {
                "Id": "alerts-topic",
                "Arn": f"arn:aws:sns:{REGION}:{ACCOUNT}:acme-alerts",
                "RetryPolicy": {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400},
                "DeadLetterConfig": {"Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:acme-alerts-dlq"},
            }
        ]

    def test_dead_letter_queue_is_encrypted_with_the_alerts_key_and_tagged(
        self, stack: Any
    ) -> None:
        sqs = boto3.client("sqs", region_name=REGION)
        url = sqs.get_queue_url(QueueName="acme-alerts-dlq")["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attributes["KmsMasterKeyId"] == f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/acme-alerts"
        assert attributes["MessageRetentionPeriod"] == "1209600"
        assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {
            "managed-by": "deploy.py",
            "pipeline-prefix": PREFIX,
        }


def test_an_on_arrival_stack_adds_the_events_role_and_the_arrivals_rule(aws_env: None) -> None:
    with mock_aws():
        cfn = _create_stack({"Prefix": PREFIX, "OnArrival": "true", "BatchSize": "3"})
        made = {
            r["LogicalResourceId"]
            for r in cfn.list_stack_resources(StackName="sales-pipeline")["StackResourceSummaries"]
        }
        assert {"EventsRole", "ArrivalsRule"} <= made
        events = boto3.client("events", region_name=REGION)
        [target] = events.list_targets_by_rule(Rule="acme-arrivals")["Targets"]
        assert target["RoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/acme-events-role"
        assert target["Arn"] == f"arn:aws:glue:{REGION}:{ACCOUNT}:workflow/acme-workflow"
        pattern = json.loads(events.describe_rule(Name="acme-arrivals")["EventPattern"])
        assert pattern["detail"]["bucket"] == {"name": [f"{STEM}-raw"]}
        iam = boto3.client("iam", region_name=REGION)
        assert iam.list_role_policies(RoleName="acme-events-role")["PolicyNames"] == [
            "notify-workflow"
        ]


def test_deleting_the_stack_removes_what_it_made(aws_env: None) -> None:
    with mock_aws():
        _create_stack(SCHEDULED).delete_stack(StackName="sales-pipeline")
        s3 = boto3.client("s3", region_name=REGION)
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == []
        iam = boto3.client("iam", region_name=REGION)
        assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == []
