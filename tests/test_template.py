"""The CloudFormation template (`deploy.py template`, infrastructure/template.yaml).

- fresh: the committed file is the command's output, byte for byte;
- one source of truth: resolved for a deployment (by a small evaluator written here, not
  the generator's code), every resource of ``plan()`` is in the template with every
  setting, resource by resource, with and without a schedule and an alert address;
- spot checks written by hand;
- cfn-lint (its Python API) and checkov (from .venv-checkov, which `make test` creates)
  report nothing;
- moto's CloudFormation creates the stack's buckets, role, topic and rule, read back
  with boto3 (tests/test_template_moto.py).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import deploy
from pipeline.config import PipelineConfig
from pipeline.infra.commands import plan
from pipeline.infra.operations import Operations

REPO = Path(__file__).resolve().parent.parent
TEMPLATE_FILE = REPO / "infrastructure" / "template.yaml"
CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"


def deploy_template(*args: str) -> str:
    """`deploy.py template` as a person runs it: stdout only."""
    done = subprocess.run(
        [sys.executable, str(REPO / "deploy.py"), "template", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def committed() -> dict[str, Any]:
    return yaml.safe_load(TEMPLATE_FILE.read_text())


# ---------------------------------------------------------------- fresh


def test_committed_template_is_the_output_of_deploy_template() -> None:
    output = deploy_template()
    assert TEMPLATE_FILE.read_text() == output, (
        "infrastructure/template.yaml is stale: run `make template` "
        "(python deploy.py template > infrastructure/template.yaml) and commit it"
    )


def test_json_format_is_the_same_template(committed: dict[str, Any], capsys) -> None:
    # In this process: the process itself is the test above's (`make template`).
    assert deploy.main(["template", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == committed


def test_no_sentinel_and_no_fixed_partition_survive() -> None:
    text = TEMPLATE_FILE.read_text()
    # The generator's sentinels (pipeline/infra/template.py), and what a plan shows
    # for an unknown account: none may reach the template.
    for leftover in (
        "zqx",
        "qzy",
        "730194862517",
        "604827153940",
        "0.0713",
        "0.0391",
        "<account-id>",
        "arn:aws:",
        "us-east-1",
    ):
        assert leftover not in text, leftover


# ------------------------------------------------- resolving the template
#
# A small evaluator of what the template uses (Ref, Fn::Sub, Fn::GetAtt, Fn::If,
# Fn::Equals, Fn::Not, Fn::Join, Fn::Split, AWS::NoValue), written here from CloudFormation's documentation
# of what each returns, independently of pipeline/infra/template.py.

NO_VALUE = object()

# What Ref returns for each resource type: its name, or (SNS) its ARN, or (a KMS key)
# its key id, which only exists once the key does: stood for by a placeholder.
REF_IS_ARN = {"AWS::SNS::Topic"}
# A queue's Ref is its URL.
REF_IS_URL = {"AWS::SQS::Queue"}
REF_IS_KEY_ID = {"AWS::KMS::Key"}
# Fn::GetAtt <resource>.Arn, from the documented ARN formats.
ARN_FORMATS = {
    "AWS::IAM::Role": "arn:{p}:iam::{a}:role/{n}",
    "AWS::SNS::Topic": "arn:{p}:sns:{r}:{a}:{n}",
    "AWS::Events::Rule": "arn:{p}:events:{r}:{a}:rule/{n}",
    "AWS::CloudWatch::Alarm": "arn:{p}:cloudwatch:{r}:{a}:alarm:{n}",
    "AWS::S3::Bucket": "arn:{p}:s3:::{n}",
    "AWS::SQS::Queue": "arn:{p}:sqs:{r}:{a}:{n}",
}
NAME_PROPERTIES = {
    "AWS::S3::Bucket": ("BucketName",),
    "AWS::IAM::Role": ("RoleName",),
    "AWS::Glue::Database": ("DatabaseInput", "Name"),
    "AWS::Glue::Crawler": ("Name",),
    "AWS::Glue::Job": ("Name",),
    "AWS::Glue::Workflow": ("Name",),
    "AWS::Glue::Trigger": ("Name",),
    "AWS::Athena::WorkGroup": ("Name",),
    "AWS::SNS::Topic": ("TopicName",),
    "AWS::Events::Rule": ("Name",),
    "AWS::CloudWatch::Alarm": ("AlarmName",),
    "AWS::KMS::Alias": ("AliasName",),
    "AWS::SQS::Queue": ("QueueName",),
}


class Stack:
    """The template resolved for one set of parameters in one account and region."""

    def __init__(
        self, tpl: dict[str, Any], params: dict[str, Any], account: str, region: str
    ) -> None:
        self.tpl = tpl
        self.partition = (
            "aws-cn"
            if region.startswith("cn-")
            else "aws-us-gov"
            if region.startswith("us-gov-")
            else "aws"
        )
        self.values: dict[str, Any] = {
            name: params.get(name, spec.get("Default")) for name, spec in tpl["Parameters"].items()
        }
        self.values |= {
            "AWS::AccountId": account,
            "AWS::Region": region,
            "AWS::Partition": self.partition,
        }
        self.account, self.region = account, region
        self.conditions = {
            name: self.eval(cond) for name, cond in tpl.get("Conditions", {}).items()
        }
        self.names: dict[str, str] = {}
        for logical, res in tpl["Resources"].items():
            path = NAME_PROPERTIES.get(res["Type"])
            if path:
                node = res["Properties"]
                for key in path:
                    node = node[key]
                self.names[logical] = self.eval(node)  # names use parameters only
        self.resources = {
            logical: {**res, "Properties": self.eval(res.get("Properties", {}))}
            for logical, res in tpl["Resources"].items()
            if self.conditions.get(res.get("Condition"), True)
        }

    def ref(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        if name == "AWS::NoValue":
            return NO_VALUE
        if self.tpl["Resources"][name]["Type"] in REF_IS_ARN:
            return self.getatt(name, "Arn")
        if self.tpl["Resources"][name]["Type"] in REF_IS_KEY_ID:
            return f"<key id of {name}>"
        if self.tpl["Resources"][name]["Type"] in REF_IS_URL:
            return f"https://sqs.{self.region}.amazonaws.com/{self.account}/{self.names[name]}"
        return self.names[name]

    def getatt(self, logical: str, attribute: str) -> str:
        cfn_type = self.tpl["Resources"][logical]["Type"]
        if attribute == "Arn":
            return ARN_FORMATS[cfn_type].format(
                p=self.partition, r=self.region, a=self.account, n=self.names[logical]
            )
        if (cfn_type, attribute) == ("AWS::SNS::Topic", "TopicName"):
            return self.names[logical]
        raise AssertionError(f"GetAtt {logical}.{attribute} is not in the evaluator")

    def eval(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.eval(x) for x in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), *_ = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                return self.getatt(*arg)
            if key == "Fn::Sub":
                return re.sub(r"\$\{(!?)([^}]+)\}", self._sub, arg)
            if key == "Fn::If":
                cond, yes, no = arg
                return self.eval(yes if self.conditions[cond] else no)
            if key == "Fn::Equals":
                a, b = (self.eval(x) for x in arg)
                return str(a) == str(b)
            if key == "Fn::Not":
                return not self.eval(arg[0])
            if key == "Fn::Join":  # a delimiter and a list of values
                delimiter, values = arg
                return delimiter.join(str(v) for v in self.eval(values))
            if key == "Fn::Split":  # a delimiter and a string
                delimiter, text = arg
                return str(self.eval(text)).split(delimiter)
            assert not key.startswith("Fn::"), f"{key} is not in the evaluator"
        out = {k: self.eval(v) for k, v in node.items()}
        return {k: v for k, v in out.items() if v is not NO_VALUE}

    def _sub(self, m: re.Match[str]) -> str:
        if m.group(1):  # ${!Literal}
            return "${" + m.group(2) + "}"
        name = m.group(2)
        if "." in name:
            return self.getatt(*name.split(".", 1))
        return str(self.ref(name))

    def named(self, name: str, cfn_type: str) -> dict[str, Any]:
        found = [
            r["Properties"]
            for logical, r in self.resources.items()
            if r["Type"] == cfn_type and self.names.get(logical) == name
        ]
        assert len(found) == 1, f"{cfn_type} {name}: {len(found)} in the template"
        return found[0]

    def of_type(self, cfn_type: str) -> list[dict[str, Any]]:
        return [r["Properties"] for r in self.resources.values() if r["Type"] == cfn_type]


def tag_map(tags: list[dict[str, str]]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags}


# ---- CloudFormation properties back into the request shapes up sends (by hand) ----


def bucket_settings(stack: Stack, name: str) -> dict[str, Any]:
    props = stack.named(name, "AWS::S3::Bucket")
    policies = [
        p["PolicyDocument"] for p in stack.of_type("AWS::S3::BucketPolicy") if p["Bucket"] == name
    ]
    assert len(policies) == 1, f"bucket policies of {name}: {len(policies)}"

    def rule(cfn: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"ID": cfn["Id"], "Status": cfn["Status"]}
        out["Filter"] = {"Prefix": cfn["Prefix"]}
        if "ExpirationInDays" in cfn:
            out["Expiration"] = {"Days": cfn["ExpirationInDays"]}
        for same in ("AbortIncompleteMultipartUpload", "NoncurrentVersionExpiration"):
            if same in cfn:
                out[same] = cfn[same]
        unknown = set(cfn) - {"Id", "Status", "Prefix", "ExpirationInDays"} - set(out)
        assert not unknown, unknown
        return out

    settings: dict[str, Any] = {
        "PublicAccessBlock": props["PublicAccessBlockConfiguration"],
        "Encryption": {
            "Rules": [
                {"ApplyServerSideEncryptionByDefault": r["ServerSideEncryptionByDefault"]}
                for r in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            ]
        },
        "Versioning": props.get("VersioningConfiguration", {}).get("Status"),
        "Lifecycle": {"Rules": [rule(r) for r in props["LifecycleConfiguration"]["Rules"]]},
        "Policy": policies[0],
        "Tags": tag_map(props["Tags"]),
    }
    # CloudFormation's switch; PutBucketNotificationConfiguration takes an empty object.
    if "NotificationConfiguration" in props:
        assert props["NotificationConfiguration"] == {
            "EventBridgeConfiguration": {"EventBridgeEnabled": True}
        }
        settings["Notifications"] = {"EventBridgeConfiguration": {}}
    return settings


def role_settings(stack: Stack, name: str) -> dict[str, Any]:
    props = stack.named(name, "AWS::IAM::Role")
    return {
        "AssumeRolePolicyDocument": props["AssumeRolePolicyDocument"],
        "InlinePolicies": {p["PolicyName"]: p["PolicyDocument"] for p in props["Policies"]},
        "ManagedPolicies": props.get("ManagedPolicyArns", []),
        "Tags": tag_map(props["Tags"]),
    }


def glue_settings(cfn_type: str, with_name: bool) -> Any:
    """Glue's CloudFormation properties are its API's request (Tags a map); the job's
    request names the job outside the spec, so the spec has no Name."""

    def settings(stack: Stack, name: str) -> dict[str, Any]:
        props = dict(stack.named(name, cfn_type))
        if not with_name:
            assert props.pop("Name") == name
        return props

    return settings


def database_settings(stack: Stack, name: str) -> dict[str, Any]:
    return stack.named(name, "AWS::Glue::Database")["DatabaseInput"]


def workgroup_settings(stack: Stack, name: str) -> dict[str, Any]:
    props = stack.named(name, "AWS::Athena::WorkGroup")
    return {"Configuration": props["WorkGroupConfiguration"], "Tags": tag_map(props["Tags"])}


def topic_settings(stack: Stack, name: str) -> dict[str, Any]:
    props = stack.named(name, "AWS::SNS::Topic")
    arn = stack.getatt(next(k for k, v in stack.names.items() if v == name), "Arn")
    policies = [
        p["PolicyDocument"] for p in stack.of_type("AWS::SNS::TopicPolicy") if p["Topics"] == [arn]
    ]
    assert len(policies) == 1
    return {
        "Name": props["TopicName"],
        # CreateTopic takes the policy as JSON text: compared as parsed JSON below.
        "Attributes": {"KmsMasterKeyId": props["KmsMasterKeyId"], "Policy": policies[0]},
        "Tags": props["Tags"],
    }


def key_settings(stack: Stack, name: str) -> dict[str, Any]:
    """The key whose alias is ``name``: CreateKey's request, its rotation and alias."""
    alias = stack.named(name, "AWS::KMS::Alias")
    [key] = [
        r["Properties"]
        for logical, r in stack.resources.items()
        if r["Type"] == "AWS::KMS::Key" and alias["TargetKeyId"] == f"<key id of {logical}>"
    ]
    # As down deletes it; not part of CreateKey's request.
    assert key["PendingWindowInDays"] == 7
    return {
        "Description": key["Description"],
        "KeyUsage": key["KeyUsage"],
        "KeySpec": key["KeySpec"],
        "Policy": key["KeyPolicy"],
        "Tags": [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in key["Tags"]],
        "EnableKeyRotation": key["EnableKeyRotation"],
        "AliasName": alias["AliasName"],
    }


def subscription_settings(stack: Stack, name: str) -> dict[str, Any]:
    found = [p for p in stack.of_type("AWS::SNS::Subscription") if p["Endpoint"] == name]
    assert len(found) == 1
    return found[0]


def queue_settings(stack: Stack, name: str) -> dict[str, Any]:
    """CreateQueue's request: SQS takes every attribute as text, the tags as a map."""
    props = stack.named(name, "AWS::SQS::Queue")
    url = f"https://sqs.{stack.region}.amazonaws.com/{stack.account}/{name}"
    policies = [
        p["PolicyDocument"] for p in stack.of_type("AWS::SQS::QueuePolicy") if p["Queues"] == [url]
    ]
    assert len(policies) == 1
    return {
        "QueueName": props["QueueName"],
        "Attributes": {
            "KmsMasterKeyId": props["KmsMasterKeyId"],
            "MessageRetentionPeriod": str(props["MessageRetentionPeriod"]),
            "Policy": policies[0],
        },
        "Tags": tag_map(props["Tags"]),
    }


def rule_settings(stack: Stack, name: str) -> dict[str, Any]:
    return stack.named(name, "AWS::Events::Rule")


def alarm_settings(stack: Stack, name: str) -> dict[str, Any]:
    return stack.named(name, "AWS::CloudWatch::Alarm")


FROM_TEMPLATE = {
    "s3-bucket": bucket_settings,
    "iam-role": role_settings,
    "glue-database": database_settings,
    "glue-crawler": glue_settings("AWS::Glue::Crawler", with_name=True),
    "glue-job": glue_settings("AWS::Glue::Job", with_name=False),
    "glue-workflow": glue_settings("AWS::Glue::Workflow", with_name=True),
    "glue-trigger": glue_settings("AWS::Glue::Trigger", with_name=True),
    "athena-workgroup": workgroup_settings,
    "kms-key": key_settings,
    "sns-topic": topic_settings,
    "sns-subscription": subscription_settings,
    "events-rule": rule_settings,
    "events-role": role_settings,
    "sqs-queue": queue_settings,
    "cloudwatch-alarm": alarm_settings,
}
# Not AWS resources: the script upload and the Athena DDL (README says how).
NOT_IN_TEMPLATE = {"s3-object", "athena-tables"}
# Settings up sends as JSON text, which CloudFormation takes as JSON.
JSON_TEXT = {
    ("sns-topic", "Attributes", "Policy"),
    ("events-rule", "EventPattern"),
    ("kms-key", "Policy"),
    ("sqs-queue", "Attributes", "Policy"),
}


def parsed(kind: str, settings: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(settings))
    for path in JSON_TEXT:
        if path[0] != kind:
            continue
        node = out
        for key in path[1:-1]:
            node = node[key]
        if isinstance(node[path[-1]], str):
            node[path[-1]] = json.loads(node[path[-1]])
    return out


DEPLOYMENTS = {
    "scheduled-with-email": (
        {
            "Prefix": "acme-sales",
            "Schedule": "cron(0 6 * * ? *)",
            "AlertEmail": "data-team@example.com",
            "MaxQuarantineRate": 0.05,
        },
        "123456789012",
        "eu-west-1",
        Operations(
            schedule="cron(0 6 * * ? *)",
            alert_email="data-team@example.com",
            max_quarantine_rate=0.05,
        ),
    ),
    "on-demand-no-email-china": (
        {"Prefix": "ops", "MaxQuarantineRate": 0.2},
        "210987654321",
        "cn-north-1",
        Operations(max_quarantine_rate=0.2),
    ),
    "on-arrival-with-email": (
        {
            "Prefix": "land",
            "OnArrival": "true",
            "BatchSize": 5,
            "BatchWindow": 120,
            "AlertEmail": "data-team@example.com",
        },
        "123456789012",
        "us-west-2",
        Operations(
            on_arrival=True, batch_size=5, batch_window=120, alert_email="data-team@example.com"
        ),
    ),
    "on-arrival-defaults-no-email": (
        {"Prefix": "arrive", "OnArrival": "true"},
        "123456789012",
        "eu-central-1",
        Operations(on_arrival=True),
    ),
}


@pytest.mark.parametrize("deployment", sorted(DEPLOYMENTS))
def test_every_planned_setting_is_in_the_template(
    committed: dict[str, Any], deployment: str
) -> None:
    params, account, region, ops = DEPLOYMENTS[deployment]
    stack = Stack(committed, params, account, region)
    config = PipelineConfig(
        prefix=params["Prefix"],
        target="aws",
        region=region,
        account_id=account,
        profile=None,
        endpoint_url=None,
    )
    planned = plan(config, ops=ops)
    covered = 0
    for resource in planned:
        if resource.kind in NOT_IN_TEMPLATE:
            continue
        assert resource.kind in FROM_TEMPLATE, f"no check for plan kind {resource.kind}"
        in_template = FROM_TEMPLATE[resource.kind](stack, resource.name)
        assert parsed(resource.kind, in_template) == parsed(resource.kind, resource.settings), (
            f"{resource.kind} {resource.name}"
        )
        covered += 1
    # Nothing in the template that the plan does not have (policies ride with their
    # bucket and topic, the alias with its key).
    attached = {
        "AWS::S3::BucketPolicy",
        "AWS::SNS::TopicPolicy",
        "AWS::KMS::Alias",
        "AWS::SQS::QueuePolicy",
    }
    made = [r for r in stack.resources.values() if r["Type"] not in attached]
    assert len(made) == covered


def test_the_subscription_is_only_there_with_an_address(committed: dict[str, Any]) -> None:
    without = Stack(committed, {}, "123456789012", "us-west-2")
    assert without.of_type("AWS::SNS::Subscription") == []
    with_email = Stack(committed, {"AlertEmail": "a@example.com"}, "123456789012", "us-west-2")
    assert with_email.of_type("AWS::SNS::Subscription") == [
        {
            "Endpoint": "a@example.com",
            "Protocol": "email",
            "TopicArn": "arn:aws:sns:us-west-2:123456789012:sales-pipeline-alerts",
        }
    ]


# ------------------------------------------------------------ spot checks


@pytest.fixture(scope="module")
def stack(committed: dict[str, Any]) -> Stack:
    return Stack(committed, {"Prefix": "acme"}, "123456789012", "us-east-1")


def test_parameters(committed: dict[str, Any]) -> None:
    p = committed["Parameters"]
    assert set(p) == {
        "Prefix",
        "Schedule",
        "AlertEmail",
        "MaxQuarantineRate",
        "OnArrival",
        "BatchSize",
        "BatchWindow",
    }
    assert (p["OnArrival"]["Default"], p["BatchSize"]["Default"], p["BatchWindow"]) == (
        "false",
        2,
        p["BatchWindow"] | {"Default": 900, "MinValue": 1, "MaxValue": 900},
    )
    assert p["Prefix"]["Default"] == "sales-pipeline"
    assert p["Schedule"]["Default"] == "" and p["AlertEmail"]["Default"] == ""
    assert p["MaxQuarantineRate"] | {"Description": ""} == {
        "Type": "Number",
        "Default": 0.05,
        "MinValue": 0,
        "MaxValue": 1,
        "Description": "",
    }
    # The longest name, <prefix>-<12 digits>-ap-southeast-5-athena-results, fits 63.
    assert p["Prefix"]["MaxLength"] == 20


def test_raw_bucket_is_versioned_private_encrypted_and_tls_only(stack: Stack) -> None:
    raw = stack.named("acme-123456789012-us-east-1-raw", "AWS::S3::Bucket")
    assert raw["VersioningConfiguration"] == {"Status": "Enabled"}
    assert raw["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert raw["BucketEncryption"] == {
        "ServerSideEncryptionConfiguration": [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
        ]
    }
    (policy,) = [
        p for p in stack.of_type("AWS::S3::BucketPolicy") if p["Bucket"] == raw["BucketName"]
    ]
    assert policy["PolicyDocument"]["Statement"] == [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [
                "arn:aws:s3:::acme-123456789012-us-east-1-raw",
                "arn:aws:s3:::acme-123456789012-us-east-1-raw/*",
            ],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ]
    processed = stack.named("acme-123456789012-us-east-1-processed", "AWS::S3::Bucket")
    assert "VersioningConfiguration" not in processed


def test_results_expire_after_seven_days(stack: Stack) -> None:
    results = stack.named("acme-123456789012-us-east-1-athena-results", "AWS::S3::Bucket")
    assert {
        "Id": "expire-athena-results",
        "Status": "Enabled",
        "Prefix": "results/",
        "ExpirationInDays": 7,
    } in results["LifecycleConfiguration"]["Rules"]


def test_job_is_glue_5_on_two_workers_reading_the_uploaded_script(stack: Stack) -> None:
    job = stack.named("acme-etl-job", "AWS::Glue::Job")
    assert job["GlueVersion"] == "5.0"
    assert (job["WorkerType"], job["NumberOfWorkers"]) == ("G.1X", 2)
    assert job["Role"] == "arn:aws:iam::123456789012:role/acme-glue-role"
    assert job["Command"] == {
        "Name": "glueetl",
        "PythonVersion": "3",
        "ScriptLocation": "s3://acme-123456789012-us-east-1-scripts/scripts/glue_etl_job.py",
    }
    outputs = stack.eval(stack.tpl["Outputs"])
    assert outputs["ScriptLocation"]["Value"] == job["Command"]["ScriptLocation"]


def test_resources_refer_to_each_other_so_they_are_created_in_order(
    committed: dict[str, Any],
) -> None:
    res = committed["Resources"]
    assert res["EtlJob"]["Properties"]["Role"] == {"Fn::GetAtt": ["GlueRole", "Arn"]}
    assert res["RawCrawler"]["Properties"]["DatabaseName"] == {"Ref": "GlueDatabase"}
    assert res["RawBucketPolicy"]["Properties"]["Bucket"] == {"Ref": "RawBucket"}
    assert res["FailuresRule"]["Properties"]["Targets"] == [
        {
            "Arn": {"Ref": "AlertsTopic"},
            "DeadLetterConfig": {"Arn": {"Fn::GetAtt": ["AlertsDlqQueue", "Arn"]}},
            "Id": "alerts-topic",
            "RetryPolicy": {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185},
        }
    ]
    assert res["ArrivalsRule"]["Properties"]["Targets"][0]["RoleArn"] == {
        "Fn::GetAtt": ["EventsRole", "Arn"]
    }


def test_a_stack_cannot_switch_between_on_demand_and_scheduled(committed: dict[str, Any]) -> None:
    """What README and the Schedule parameter say: the start trigger's Type follows whether
    Schedule is empty, Type is create-only, and the trigger has a custom name, which
    CloudFormation cannot replace; so only a cron-to-cron update works in place."""
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", "AWS::Glue::Trigger")
    create_only = schema.schema["createOnlyProperties"]
    assert "/properties/Type" in create_only and "/properties/Name" in create_only
    assert "/properties/Schedule" not in create_only
    start = committed["Resources"]["WorkflowStartTrigger"]["Properties"]
    assert start["Type"] == {
        "Fn::If": ["OnArrival", "EVENT", {"Fn::If": ["HasSchedule", "SCHEDULED", "ON_DEMAND"]}]
    }
    assert start["Name"] == {"Fn::Sub": "${Prefix}-workflow-start"}
    described = committed["Parameters"]["Schedule"]["Description"]
    assert "Empty or not is fixed when the stack is created" in described
    assert "delete and recreate the stack" in described


def test_start_trigger_follows_the_schedule(committed: dict[str, Any]) -> None:
    on_demand = Stack(committed, {}, "123456789012", "us-east-1")
    trigger = on_demand.named("sales-pipeline-workflow-start", "AWS::Glue::Trigger")
    assert trigger["Type"] == "ON_DEMAND"
    assert "Schedule" not in trigger and "StartOnCreation" not in trigger
    daily = Stack(committed, {"Schedule": "cron(0 6 * * ? *)"}, "123456789012", "us-east-1")
    trigger = daily.named("sales-pipeline-workflow-start", "AWS::Glue::Trigger")
    assert (trigger["Type"], trigger["Schedule"], trigger["StartOnCreation"]) == (
        "SCHEDULED",
        "cron(0 6 * * ? *)",
        True,
    )
    assert trigger["Actions"] == [{"CrawlerName": "sales-pipeline-raw-crawler"}]
    after = daily.named("sales-pipeline-workflow-after-crawl", "AWS::Glue::Trigger")
    assert after["Predicate"]["Conditions"] == [
        {
            "LogicalOperator": "EQUALS",
            "CrawlerName": "sales-pipeline-raw-crawler",
            "CrawlState": "SUCCEEDED",
        }
    ]
    assert after["Actions"] == [{"JobName": "sales-pipeline-etl-job"}]


def test_alerts_topic_is_encrypted_and_only_the_rule_and_alarm_publish(stack: Stack) -> None:
    topic = stack.named("acme-alerts", "AWS::SNS::Topic")
    assert topic["KmsMasterKeyId"] == "arn:aws:kms:us-east-1:123456789012:alias/acme-alerts"
    (policy,) = stack.of_type("AWS::SNS::TopicPolicy")
    sources = {
        s["Principal"]["Service"]: s["Condition"]["ArnEquals"]["aws:SourceArn"]
        for s in policy["PolicyDocument"]["Statement"]
    }
    assert sources == {
        "events.amazonaws.com": "arn:aws:events:us-east-1:123456789012:rule/acme-failures",
        "cloudwatch.amazonaws.com": (
            "arn:aws:cloudwatch:us-east-1:123456789012:alarm:acme-quarantine-rate"
        ),
    }


def test_alerts_key_is_rotated_and_only_eventbridge_and_cloudwatch_may_use_it(
    committed: dict[str, Any], stack: Stack
) -> None:
    key = committed["Resources"]["AlertsKey"]
    assert key["Type"] == "AWS::KMS::Key"
    assert committed["Resources"]["AlertsKeyAlias"]["Properties"]["TargetKeyId"] == {
        "Ref": "AlertsKey"
    }
    # The topic names its key through the alias: created after both.
    assert committed["Resources"]["AlertsTopic"]["Properties"]["KmsMasterKeyId"] == {
        "Fn::Sub": "arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:${AlertsKeyAlias}"
    }
    [props] = stack.of_type("AWS::KMS::Key")
    assert (props["EnableKeyRotation"], props["KeySpec"], props["PendingWindowInDays"]) == (
        True,
        "SYMMETRIC_DEFAULT",
        7,
    )
    statements = props["KeyPolicy"]["Statement"]
    assert [(s["Principal"], s["Action"], s.get("Condition")) for s in statements] == [
        ({"AWS": "arn:aws:iam::123456789012:root"}, "kms:*", None),
        ({"Service": "events.amazonaws.com"}, ["kms:GenerateDataKey*", "kms:Decrypt"], None),
        (
            {"Service": "cloudwatch.amazonaws.com"},
            ["kms:GenerateDataKey*", "kms:Decrypt"],
            {"StringEquals": {"aws:SourceAccount": "123456789012"}},
        ),
    ]
    assert stack.of_type("AWS::KMS::Alias") == [
        {"AliasName": "alias/acme-alerts", "TargetKeyId": "<key id of AlertsKey>"}
    ]


def test_alarm_watches_the_quarantine_rate_against_the_parameter(committed: dict[str, Any]) -> None:
    stack = Stack(committed, {"MaxQuarantineRate": 0.1}, "123456789012", "us-east-1")
    alarm = stack.named("sales-pipeline-quarantine-rate", "AWS::CloudWatch::Alarm")
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Threshold"]) == (
        "SalesPipeline",
        "QuarantineRate",
        0.1,
    )
    assert alarm["Dimensions"] == [{"Name": "Pipeline", "Value": "sales-pipeline"}]
    assert alarm["AlarmActions"] == ["arn:aws:sns:us-east-1:123456789012:sales-pipeline-alerts"]


# ---------------------------------------------------------------- scanners


def test_cfn_lint_reports_nothing() -> None:
    from cfnlint.api import ManualArgs, lint_file

    matches = lint_file(
        TEMPLATE_FILE, config=ManualArgs(regions=["us-east-1", "eu-west-1", "ap-southeast-2"])
    )
    assert matches == [], "\n".join(str(m) for m in matches)


# Each skip is written in the template by pipeline/infra/template.py with its reason;
# the list here is what a reviewer agreed to.
EXPECTED_SKIPS = {
    ("CKV_AWS_18", "RawBucket"),
    ("CKV_AWS_18", "ProcessedBucket"),
    ("CKV_AWS_18", "ScriptsBucket"),
    ("CKV_AWS_18", "AthenaResultsBucket"),
    ("CKV_AWS_21", "ProcessedBucket"),
    ("CKV_AWS_21", "ScriptsBucket"),
    ("CKV_AWS_21", "AthenaResultsBucket"),
    ("CKV_AWS_195", "RawCrawler"),
    ("CKV_AWS_195", "EtlJob"),
}


def test_checkov_reports_no_failed_check() -> None:
    if not CHECKOV.exists():
        pytest.fail(
            f"{CHECKOV.relative_to(REPO)} is missing: run the tests with `make test`, which "
            "creates checkov's own venv from requirements-checkov.txt",
            pytrace=False,
        )
    done = subprocess.run(
        [
            str(CHECKOV),
            "--file",
            str(TEMPLATE_FILE),
            "--framework",
            "cloudformation",
            "--output",
            "json",
            "--skip-download",  # no call to Prisma Cloud: offline, the same every run
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov printed no JSON (exit {done.returncode}):\n{done.stderr[-3000:]}")
    results = report["results"]
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in results["failed_checks"]
    ]
    assert failed == [], "\n".join(failed)
    skipped = {(c["check_id"], c["resource"].split(".")[-1]) for c in results["skipped_checks"]}
    assert skipped == EXPECTED_SKIPS
    assert all(c["check_result"].get("suppress_comment") for c in results["skipped_checks"])
    assert report["summary"]["passed"] > 30
    assert done.returncode == 0, done.stderr[-3000:]


# ------------------------------------------------------- generator's refusals


def test_a_setting_the_template_cannot_compute_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A threshold shown as a percentage cannot be computed from the parameter by
    CloudFormation: the generator says where, rather than freezing one value."""
    from pipeline.infra import alarm, template

    original = alarm.quarantine_alarm_spec

    def as_percentage(config: Any, ops: Any, topic_arn: str) -> dict[str, Any]:
        spec = original(config, ops, topic_arn)
        spec["AlarmDescription"] = f"over {ops.max_quarantine_rate:.2%}"
        return spec

    monkeypatch.setattr(alarm, "quarantine_alarm_spec", as_percentage)
    with pytest.raises(ValueError, match="QuarantineRateAlarm.Properties.AlarmDescription"):
        template.template()


def test_a_kind_the_template_does_not_translate_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipeline.infra import template
    from pipeline.infra.shared import Resource

    def with_a_table(*args: Any, **kwargs: Any) -> list[Resource]:
        return [*plan(*args, **kwargs), Resource("dynamodb-table", "zqxprefixqz-table", {})]

    monkeypatch.setattr(template, "plan", with_a_table)
    with pytest.raises(ValueError, match="'dynamodb-table'"):
        template.template()
