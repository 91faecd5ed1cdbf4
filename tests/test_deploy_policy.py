"""The deploying identity's policy, and the Glue role's S3 rights, enforced by moto's IAM checks."""

from __future__ import annotations

import inspect
import json
import re
import socket
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

import boto3
import moto
import pytest
from botocore.exceptions import ClientError
from moto.athena.models import QueryResults, athena_backends
from moto.iam.access_control import IAMRequestBase
from moto.kms.models import kms_backends
from moto_fixtures import ACCOUNT, REGION, STEM
from parliament import analyze_policy_string
from sql_blocks import ddl_names
from test_deploy_server import CHART_RESULTS, EMPTY_RESULT, OTHER_RESULT

import deploy
from pipeline.config import PipelineConfig
from pipeline.infra.policies import deployer_policy
from pipeline.sql import analytic_names
from pipeline.targets.aws import AwsTarget

ACCOUNT_BUCKETS = [f"{STEM}-athena-results", f"{STEM}-processed", f"{STEM}-raw", f"{STEM}-scripts"]
# moto's S3 names some checks unlike IAM; AWS authorizes these calls with these actions.
_S3_BUCKET_SUBRESOURCES = {
    ("GET", "encryption"): "s3:GetEncryptionConfiguration",
    ("PUT", "encryption"): "s3:PutEncryptionConfiguration",
    ("GET", "publicAccessBlock"): "s3:GetBucketPublicAccessBlock",
    ("PUT", "publicAccessBlock"): "s3:PutBucketPublicAccessBlock",
    ("GET", "notification"): "s3:GetBucketNotification",
    ("PUT", "notification"): "s3:PutBucketNotification",
}
_GLUE_CRAWLER_CALLS = {
    "GetCrawler", "UpdateCrawler", "DeleteCrawler", "StartCrawler",
    "StopCrawler", "ListCrawls",
}  # fmt: skip
_GLUE_JOB_CALLS = {
    "CreateJob", "GetJob", "UpdateJob", "DeleteJob", "StartJobRun", "GetJobRun", "GetJobRuns",
    "BatchStopJobRun",
}  # fmt: skip
_GLUE_WORKFLOW_CALLS = {
    "CreateWorkflow", "GetWorkflow", "UpdateWorkflow", "DeleteWorkflow", "StartWorkflowRun",
    "GetWorkflowRun", "GetWorkflowRuns", "StopWorkflowRun",
}  # fmt: skip
_GLUE_TRIGGER_CALLS = {
    "CreateTrigger", "GetTrigger", "UpdateTrigger", "DeleteTrigger", "StartTrigger", "StopTrigger",
}  # fmt: skip
ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}
RUN_ID = "run-least-privilege"


def _s3_checks(request, resource):
    bucket_level = "/" not in resource.split(":::", 1)[1]
    if not bucket_level:
        return [(request._action, resource)]
    query = parse_qs(urlsplit(request._path).query, keep_blank_values=True)
    if request._method == "HEAD":  # HeadBucket
        return [("s3:ListBucket", resource)]
    for (method, subresource), action in _S3_BUCKET_SUBRESOURCES.items():
        if request._method == method and subresource in query:
            return [(action, resource)]
    if request._method == "POST" and "delete" in query:  # DeleteObjects: each key
        checks = []
        for obj in ElementTree.fromstring(request._body).findall(".//{*}Object"):
            key, version = obj.findtext("{*}Key"), obj.findtext("{*}VersionId")
            action = "s3:DeleteObjectVersion" if version else "s3:DeleteObject"
            checks.append((action, f"{resource}/{key}"))
        return checks
    return [(request._action, resource)]


def _glue_checks(request, call, body):
    glue = f"arn:aws:glue:{request._region}:{request.account_id}"

    def database(name):
        return [f"{glue}:catalog", f"{glue}:database/{name}"]

    if call == "CreateDatabase":
        arns = database(body["DatabaseInput"]["Name"])
    elif call in ("GetDatabase", "UpdateDatabase"):
        arns = database(body["Name"])
    elif call == "DeleteDatabase":  # and every table and function in it
        name = body["Name"]
        arns = [*database(name), f"{glue}:table/{name}/*", f"{glue}:userDefinedFunction/{name}/*"]
    elif call == "GetTables":
        arns = [*database(body["DatabaseName"]), f"{glue}:table/{body['DatabaseName']}/*"]
    elif call in ("GetTable", "CreateTable", "UpdateTable", "DeleteTable", "GetPartitions"):
        table = body.get("Name") or body.get("TableName") or body["TableInput"]["Name"]
        db = body["DatabaseName"]
        arns = [*database(db), f"{glue}:table/{db}/{table}"]
    elif call in _GLUE_CRAWLER_CALLS:
        arns = [f"{glue}:crawler/{body.get('Name') or body['CrawlerName']}"]
    elif call in _GLUE_JOB_CALLS:
        arns = [f"{glue}:job/{body.get('JobName') or body['Name']}"]
    elif call in _GLUE_WORKFLOW_CALLS:
        arns = [f"{glue}:workflow/{body['Name']}"]
    elif call in _GLUE_TRIGGER_CALLS:
        arns = [f"{glue}:trigger/{body['Name']}"]
    elif call in ("GetTags", "TagResource"):
        arns = [body["ResourceArn"]]
    elif call == "CreateCrawler":  # no resource ARN: AWS authorizes it on "*"
        arns = ["*"]
    else:
        arns = ["*"]  # not modelled: only a "*" statement allows it
    checks = [(f"glue:{call}", arn) for arn in arns]
    if call == "CreateCrawler" and body.get("Tags"):
        checks.append(("glue:TagResource", f"{glue}:crawler/{body['Name']}"))
    elif call.startswith("Create") and body.get("Tags"):
        checks.append(("glue:TagResource", arns[-1]))
    role = body.get("Role") or body.get("JobUpdate", {}).get("Role")
    if role and call in ("CreateCrawler", "UpdateCrawler", "CreateJob", "UpdateJob"):
        if not role.startswith("arn:"):
            role = f"arn:aws:iam::{request.account_id}:role/{role}"
        checks.append(("iam:PassRole", role))
    return checks


def _athena_checks(request, call, body):
    backend = athena_backends[request.account_id][request._region]
    if call == "CreateWorkGroup":
        workgroup = body["Name"]
    elif call in ("GetWorkGroup", "UpdateWorkGroup", "DeleteWorkGroup"):
        workgroup = body["WorkGroup"]
    elif call == "StartQueryExecution":
        workgroup = body.get("WorkGroup", "primary")
    elif call in ("GetQueryExecution", "GetQueryResults", "StopQueryExecution"):
        found = backend.executions[body["QueryExecutionId"]].workgroup
        workgroup = getattr(found, "name", found) or "primary"
    elif call in ("ListTagsForResource", "TagResource"):
        return [(f"athena:{call}", body["ResourceARN"])]
    else:
        return [(f"athena:{call}", "*")]
    arn = f"arn:aws:athena:{request._region}:{request.account_id}:workgroup/{workgroup}"
    checks = [(f"athena:{call}", arn)]
    if call == "CreateWorkGroup" and body.get("Tags"):
        checks.append(("athena:TagResource", arn))
    return checks


def _iam_checks(request, resource):
    if "RoleName" not in request._data:
        return [(request._action, resource)]
    arn = f"arn:aws:iam::{request.account_id}:role/{request._data['RoleName'][0]}"
    checks = [(request._action, arn)]
    if request._action == "iam:CreateRole" and any(k.startswith("Tags.") for k in request._data):
        checks.append(("iam:TagRole", arn))
    return checks


def _events_checks(request, call, body):
    """EventBridge: every call of the pipeline's names its rule (default event bus)."""
    base = f"arn:aws:events:{request._region}:{request.account_id}"
    if call in ("ListTagsForResource", "TagResource"):
        return [(f"events:{call}", body["ResourceARN"])]
    rule = body.get("Name") or body.get("Rule")
    if rule is None:
        return [(f"events:{call}", "*")]
    checks = [(f"events:{call}", f"{base}:rule/{rule}")]
    if call == "PutRule" and body.get("Tags"):
        checks.append(("events:TagResource", f"{base}:rule/{rule}"))
    if call == "PutTargets":  # a target's role is passed to EventBridge
        checks += [("iam:PassRole", t["RoleArn"]) for t in body["Targets"] if t.get("RoleArn")]
    return checks


def _sqs_checks(request, call, body):
    """SQS: the queue the call names (by name or URL); CreateQueue with tags tags it."""
    base = f"arn:aws:sqs:{request._region}:{request.account_id}"
    name = body.get("QueueName") or (body.get("QueueUrl") or "").rsplit("/", 1)[-1]
    if not name:
        return [(f"sqs:{call}", "*")]
    checks = [(f"sqs:{call}", f"{base}:{name}")]
    if call == "CreateQueue" and body.get("tags"):
        checks.append(("sqs:TagQueue", f"{base}:{name}"))
    return checks


def _sns_checks(request, call):
    """SNS (query protocol): the topic the call names; CreateTopic with tags tags it."""
    data = {k: v[0] for k, v in request._data.items()}
    base = f"arn:aws:sns:{request._region}:{request.account_id}"
    topic = data.get("TopicArn") or data.get("ResourceArn")
    if call == "CreateTopic":
        topic = f"{base}:{data['Name']}"
    if topic is None:
        return [(f"sns:{call}", "*")]
    checks = [(f"sns:{call}", topic)]
    if call == "CreateTopic" and any(k.startswith("Tags.member.") for k in data):
        checks.append(("sns:TagResource", topic))
    return checks


def _cloudwatch_checks(request, call, body):
    """CloudWatch (moto names its actions monitoring:*): the alarms the call names."""
    base = f"arn:aws:cloudwatch:{request._region}:{request.account_id}:alarm:"
    if call in ("ListTagsForResource", "TagResource"):
        return [(f"cloudwatch:{call}", body["ResourceARN"])]
    names = body.get("AlarmNames") or ([body["AlarmName"]] if "AlarmName" in body else [])
    if not names:
        return [(f"cloudwatch:{call}", "*")]
    checks = [(f"cloudwatch:{call}", f"{base}{n}") for n in names]
    if call == "PutMetricAlarm" and body.get("Tags"):
        checks.append(("cloudwatch:TagResource", f"{base}{names[0]}"))
    return checks


def _kms_checks(request, call, body):
    """KMS: a call on a key names the key (an alias resolved to its key, as KMS does); an
    alias call names the alias and the key or keys it points at; CreateKey (with
    kms:TagResource on the account's keys when it tags) and ListKeys have no resource."""
    backend = kms_backends[request.account_id][request._region]
    base = f"arn:aws:kms:{request._region}:{request.account_id}"

    def key(key_id):
        try:
            return f"{base}:key/{backend.any_id_to_key_id(key_id)}"
        except (AttributeError, KeyError):  # no such key or alias: KMS answers NotFound
            return f"{base}:key/{key_id}"

    if call == "CreateKey":
        checks = [("kms:CreateKey", "*")]
        if body.get("Tags"):
            checks.append(("kms:TagResource", f"{base}:key/*"))
        return checks
    if call in ("CreateAlias", "UpdateAlias", "DeleteAlias"):
        alias = body["AliasName"]
        checks = [(f"kms:{call}", f"{base}:{alias}")]
        current = backend.get_key_id_from_alias(alias)
        if current and call != "CreateAlias":
            checks.append((f"kms:{call}", key(current)))
        if body.get("TargetKeyId"):
            checks.append((f"kms:{call}", key(body["TargetKeyId"])))
        return checks
    if body.get("KeyId"):
        return [(f"kms:{call}", key(body["KeyId"]))]
    return [(f"kms:{call}", "*")]


def _aws_checks(request, resource):
    """The (action, resource) pairs AWS authorizes for this request."""
    service, call = request._action.split(":", 1)
    if service == "events":
        return _events_checks(request, call, json.loads(request._body or b"{}"))
    if service == "sns":
        return _sns_checks(request, call)
    if service == "monitoring":
        return _cloudwatch_checks(request, call, json.loads(request._body or b"{}"))
    if service == "kms":
        return _kms_checks(request, call, json.loads(request._body or b"{}"))
    if service == "sqs":
        return _sqs_checks(request, call, json.loads(request._body or b"{}"))
    if service == "s3":
        return _s3_checks(request, resource)
    if service == "iam":
        return _iam_checks(request, resource)
    if service in ("glue", "athena"):
        body = json.loads(request._body or b"{}")
        checker = _glue_checks if service == "glue" else _athena_checks
        return checker(request, call, body)
    return [(request._action, resource)]


@pytest.fixture
def aws_authorization(monkeypatch):
    """Make moto's IAM enforcement check what AWS checks, where moto 5.2 does not.

    moto checks every Glue and Athena call, and an IAM call on a role that does not exist
    yet, against the resource ``*``, so a policy that names its resources is denied
    everything there (EventBridge, SNS, SQS, CloudWatch and KMS too, and it names CloudWatch's
    actions monitoring:*); it names some S3 checks unlike IAM (HeadBucket is s3:ListBucket on
    AWS; the encryption and public access block calls; DeleteObjects is checked per key,
    as s3:DeleteObjectVersion for a version); and it does not ask for iam:PassRole when
    a crawler or job is given a role, nor for the TagResource/TagRole that creating with
    tags needs. This patch gives moto's own check those (action, resource) pairs, one by
    one, as AWS's service authorization reference lists them for the calls the
    pipeline makes. Conditions stay as moto evaluates them: it ignores StringLike and
    keys it does not know (iam:PassedToService).
    """
    original = IAMRequestBase.check_action_permitted
    found = list(inspect.signature(original).parameters)
    if found != ["self", "resource"]:
        pytest.fail(
            f"moto {moto.__version__} changed IAMRequestBase.check_action_permitted "
            f"(parameters {found}); aws_authorization in {Path(__file__).name} wraps it",
            pytrace=False,
        )

    def check_action_permitted(self, resource):
        asked = self._action
        try:
            for action, arn in _aws_checks(self, resource):
                self._action = action
                original(self, arn)
        finally:
            self._action = asked

    monkeypatch.setattr(IAMRequestBase, "check_action_permitted", check_action_permitted)


def _user(iam, name, parts):
    """An IAM user holding only ``parts``, each a managed policy attached to it (as
    `deploy.py policy` says to attach them); returns its access key."""
    iam.create_user(UserName=name)
    for number, part in enumerate(parts, 1):
        arn = iam.create_policy(PolicyName=f"{name}-{number}", PolicyDocument=json.dumps(part))
        iam.attach_user_policy(UserName=name, PolicyArn=arn["Policy"]["Arn"])
    return iam.create_access_key(UserName=name)["AccessKey"]


def _printed_parts(capsys, *argv):
    """Every part `deploy.py policy --part N` prints, N = 1, 2, ... until it refuses N."""
    parts = []
    while deploy.main(["policy", *argv, "--part", str(len(parts) + 1)]) == 0:
        parts.append(json.loads(capsys.readouterr().out))
    assert f"the deployer policy has parts 1 to {len(parts)}" in capsys.readouterr().err
    return parts


def _statements(parts):
    return [s for part in parts for s in part["Statement"]]


def _iam_size(text: str) -> int:
    """A policy's size as IAM counts it: every character but whitespace."""
    return len(re.sub(r"\s", "", text))


def _clients(key, *services):
    return [
        boto3.client(
            s,
            region_name=REGION,
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
        )
        for s in services
    ]


def _act_as(monkeypatch, key):
    """Every client made from here on (boto3, pyathena) holds ``key``'s credentials."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_SECURITY_TOKEN", raising=False)


@pytest.fixture
def glue_role(deployed, config, request):
    """Objects seeded as the admin; then the Glue role's S3 client, with AWS's checks on."""
    s3 = deployed.s3
    s3.put_object(Bucket="test-sales-raw", Key="input/sales_data_csv/s.csv", Body=b"id\n1\n")
    s3.put_object(Bucket="test-sales-raw", Key="elsewhere/notes.txt", Body=b"not input")
    s3.put_object(Bucket="test-sales-processed", Key="elsewhere/x", Body=b"not output")
    s3.put_object(Bucket="test-sales-athena-results", Key="results/q.csv", Body=b"a\n")
    s3.create_bucket(Bucket="someone-elses-data")
    arn = deployed.iam.get_role(RoleName="test-sales-glue-role")["Role"]["Arn"]
    creds = deployed.sts.assume_role(RoleArn=arn, RoleSessionName="glue")["Credentials"]
    request.getfixturevalue("aws_authorization")
    request.getfixturevalue("iam_enforced")
    return boto3.client(
        "s3",
        region_name=REGION,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def _denied(call) -> bool:
    try:
        call()
    except ClientError as exc:
        return exc.response["Error"]["Code"] in ("AccessDenied", "403")
    return False


def test_glue_role_lists_and_heads_its_buckets_without_a_prefix(glue_role):
    for bucket in ("test-sales-raw", "test-sales-processed", "test-sales-scripts"):
        glue_role.head_bucket(Bucket=bucket)  # s3:ListBucket on AWS
        glue_role.list_objects_v2(Bucket=bucket, Delimiter="/")  # the root, no prefix
    keys = [o["Key"] for o in glue_role.list_objects_v2(Bucket="test-sales-raw")["Contents"]]
    assert keys == ["elsewhere/notes.txt", "input/sales_data_csv/s.csv"]


def test_glue_role_still_reads_only_its_prefixes_and_lists_no_other_bucket(glue_role):
    assert glue_role.get_object(Bucket="test-sales-raw", Key="input/sales_data_csv/s.csv")
    assert _denied(lambda: glue_role.get_object(Bucket="test-sales-raw", Key="elsewhere/notes.txt"))
    assert _denied(lambda: glue_role.get_object(Bucket="test-sales-processed", Key="elsewhere/x"))
    for bucket in ("test-sales-athena-results", "someone-elses-data"):
        assert _denied(lambda b=bucket: glue_role.head_bucket(Bucket=b))
        assert _denied(lambda b=bucket: glue_role.list_objects_v2(Bucket=b))
    assert _denied(
        lambda: glue_role.get_object(Bucket="test-sales-athena-results", Key="results/q.csv")
    )


def test_deploy_policy_prints_the_deployer_policy_for_the_prefix(capsys):
    argv = ["--prefix", "acme", "--region", "us-east-1", "--account-id", "111122223333"]
    policy = {"Statement": _statements(_printed_parts(capsys, *argv))}
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert statements["PipelineBuckets"]["Resource"] == [
        "arn:aws:s3:::acme-111122223333-us-east-1-raw",
        "arn:aws:s3:::acme-111122223333-us-east-1-processed",
        "arn:aws:s3:::acme-111122223333-us-east-1-scripts",
        "arn:aws:s3:::acme-111122223333-us-east-1-athena-results",
    ]
    assert statements["PassGlueRoleToGlue"] == {
        "Sid": "PassGlueRoleToGlue",
        "Effect": "Allow",
        "Action": ["iam:PassRole"],
        "Resource": ["arn:aws:iam::111122223333:role/acme-glue-role"],
        "Condition": {"StringEquals": {"iam:PassedToService": "glue.amazonaws.com"}},
    }
    # Object rights in the four buckets, the Athena results bucket included (see
    # deployer_policy: PutBucketPolicy could grant them anyway).
    assert statements["PipelineObjects"] == {
        "Sid": "PipelineObjects",
        "Effect": "Allow",
        "Action": [
            "s3:GetObject",
            "s3:PutObject",
            "s3:DeleteObject",
            "s3:DeleteObjectVersion",
            "s3:AbortMultipartUpload",
            "s3:ListMultipartUploadParts",
        ],
        "Resource": [
            "arn:aws:s3:::acme-111122223333-us-east-1-raw/*",
            "arn:aws:s3:::acme-111122223333-us-east-1-processed/*",
            "arn:aws:s3:::acme-111122223333-us-east-1-scripts/*",
            "arn:aws:s3:::acme-111122223333-us-east-1-athena-results/*",
        ],
    }
    glue = "arn:aws:glue:us-east-1:111122223333"
    assert statements["GlueDatabaseAndTables"]["Resource"] == [
        f"{glue}:catalog",
        f"{glue}:database/sales_analytics_db_acme",
        f"{glue}:table/sales_analytics_db_acme/*",
        f"{glue}:userDefinedFunction/sales_analytics_db_acme/*",
    ]
    assert "glue:CreateTable" in statements["GlueDatabaseAndTables"]["Action"]  # the DDL
    assert statements["GlueCrawler"]["Resource"] == [f"{glue}:crawler/acme-raw-crawler"]
    assert "glue:ListCrawls" in statements["GlueCrawler"]["Action"]
    # CreateCrawler has no resource ARN: "*", but only with up's tags on the request.
    assert statements["CreateGlueCrawler"] == {
        "Sid": "CreateGlueCrawler",
        "Effect": "Allow",
        "Action": ["glue:CreateCrawler"],
        "Resource": ["*"],
        "Condition": {
            "StringEquals": {
                "aws:RequestTag/managed-by": "deploy.py",
                "aws:RequestTag/pipeline-prefix": "acme",
            }
        },
    }
    assert statements["GlueJob"]["Resource"] == [f"{glue}:job/acme-etl-job"]
    assert statements["AthenaWorkgroup"]["Resource"] == [
        "arn:aws:athena:us-east-1:111122223333:workgroup/acme-workgroup"
    ]
    assert "athena:StopQueryExecution" in statements["AthenaWorkgroup"]["Action"]
    # No wildcard action; '*' only where the action has no resource ARN.
    for statement in policy["Statement"]:
        assert all("*" not in a for a in statement["Action"])
        if statement["Sid"] not in (
            "CreateGlueCrawler",
            "ReadLakeFormationSettings",
            "CreateAlertsKey",
            "ListKeysToFindAlertsKey",
        ):
            assert "*" not in statement["Resource"]
    # KMS: the key only with up's tags (created with them, managed by them), the alias
    # by its name, and a key holding that alias readable to refuse it if not ours.
    keys = "arn:aws:kms:us-east-1:111122223333:key/*"
    marks = {"managed-by": "deploy.py", "pipeline-prefix": "acme"}
    assert statements["CreateAlertsKey"] == {
        "Sid": "CreateAlertsKey",
        "Effect": "Allow",
        "Action": ["kms:CreateKey"],
        "Resource": ["*"],
        "Condition": {
            "StringEquals": {f"aws:RequestTag/{k}": v for k, v in marks.items()},
            "ForAllValues:StringEquals": {"aws:TagKeys": ["managed-by", "pipeline-prefix"]},
        },
    }
    assert statements["TagAlertsKeyOnCreate"]["Resource"] == [keys]
    assert (
        statements["TagAlertsKeyOnCreate"]["Condition"]
        == (statements["CreateAlertsKey"]["Condition"])
    )
    assert statements["AlertsKey"]["Resource"] == [keys]
    assert statements["AlertsKey"]["Condition"] == {
        "StringEquals": {f"aws:ResourceTag/{k}": v for k, v in marks.items()}
    }
    assert {"kms:PutKeyPolicy", "kms:EnableKeyRotation", "kms:ScheduleKeyDeletion"} <= set(
        statements["AlertsKey"]["Action"]
    )
    assert "kms:CancelKeyDeletion" not in statements["AlertsKey"]["Action"]
    assert statements["DescribeKeyBehindAlertsAlias"]["Condition"] == {
        "StringEquals": {"kms:RequestAlias": "alias/acme-alerts"}
    }
    assert statements["AlertsKeyAlias"]["Resource"] == [
        "arn:aws:kms:us-east-1:111122223333:alias/acme-alerts",
        keys,
    ]
    assert statements["ReadLakeFormationSettings"]["Action"] == [
        "lakeformation:GetDataLakeSettings"
    ]


def test_deploy_policy_asks_sts_for_the_account_when_none_is_given(aws, capsys):
    statements = _statements(_printed_parts(capsys, "--prefix", "test-sales"))
    assert (
        statements
        == deployer_policy(
            PipelineConfig(prefix="test-sales", target="aws", region=REGION, account_id=ACCOUNT),
            ACCOUNT,
        )["Statement"]
    )
    assert statements[0]["Resource"][0] == f"arn:aws:s3:::{STEM}-raw"


def test_without_sts_the_policy_says_account_id_works_offline(aws_env, capsys, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    assert deploy.main(["policy", "--endpoint-url", closed, "--part", "1"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.strip().splitlines()
    assert line.startswith("error: could not ask STS for the account the policy is for (")
    assert "Could not connect to the endpoint URL" in line
    assert line.endswith("pass --account-id 123456789012 to print it without calling AWS")


@pytest.mark.parametrize(
    ("prefix", "region"),
    [("sales-pipeline", "us-east-1"), ("a" * 20, "ap-southeast-2"), ("b" * 25, "us-east-1")],
    ids=["default", "longest-in-a-long-region", "longest"],
)
def test_every_part_fits_a_managed_policy_and_the_parts_are_the_whole_policy(
    capsys, prefix, region
):
    account = "111122223333"
    argv = ["--prefix", prefix, "--region", region, "--account-id", account]
    texts = []
    number = 1
    while deploy.main(["policy", *argv, "--part", str(number)]) == 0:
        texts.append(capsys.readouterr().out)
        number += 1
    capsys.readouterr()
    # IAM's quota on a customer managed policy, whitespace not counted; at most 10
    # managed policies attach to a user or role by default.
    assert [_iam_size(t) <= 6144 for t in texts] == [True] * len(texts)
    assert 2 <= len(texts) <= 10
    # Every statement once, in order: the parts grant what the whole policy grants.
    config = PipelineConfig(prefix=prefix, target="aws", region=region, account_id=account)
    whole = deployer_policy(config, account)
    assert _iam_size(json.dumps(whole)) > 6144  # why it comes in parts
    assert _statements(json.loads(t) for t in texts) == whole["Statement"]
    assert {json.loads(t)["Version"] for t in texts} == {"2012-10-17"}
    sids = [s["Sid"] for s in whole["Statement"]]
    assert len(sids) == len(set(sids))

    # Without --part: how many parts, and the commands that create and attach them.
    assert deploy.main(["policy", *argv]) == 0
    out = capsys.readouterr().out
    name = f"{prefix}-deployer-$part"
    assert f"for part in {' '.join(str(i) for i in range(1, len(texts) + 1))}; do" in out
    assert f"--part $part > {name}.json" in out
    assert f"aws iam create-policy --policy-name {name} --policy-document file://{name}.json" in out
    assert (
        f"aws iam attach-user-policy --user-name YOUR-USER --policy-arn "
        f"arn:aws:iam::{account}:policy/{name}" in out
    )
    assert "aws iam attach-role-policy" in out


def _findings(policy: dict, community: bool) -> list:
    text = json.dumps(policy)
    return analyze_policy_string(text, include_community_auditors=community).findings


def test_parliament_finds_nothing_in_the_deployer_policy_but_its_permission_management():
    config = PipelineConfig(
        prefix="acme", target="aws", region="eu-west-1", account_id="111122223333"
    )
    policy = deployer_policy(config, "111122223333")
    assert _findings(policy, community=False) == []
    # The community auditors flag every action that manages permissions (MEDIUM). A
    # deployer cannot do without these: up creates the role, writes its policy and
    # passes it to Glue, repairs a drifted trust policy or attached policy, puts the
    # buckets' policies and public access blocks; down deletes the role; up creates the
    # alerts topic with its policy and repairs that policy (SetTopicAttributes); up
    # creates the alerts key with its key policy and repairs that policy (PutKeyPolicy);
    # up creates the dead-letter queue with its policy and repairs it (SetQueueAttributes).
    [finding] = _findings(policy, community=True)
    assert finding.issue == "PERMISSIONS_MANAGEMENT_ACTIONS"
    assert sorted(finding.location["actions"]) == [
        "iam:createrole",
        "iam:deleterole",
        "iam:deleterolepolicy",
        "iam:detachrolepolicy",
        "iam:passrole",
        "iam:putrolepolicy",
        "iam:updateassumerolepolicy",
        "kms:createkey",
        "kms:putkeypolicy",
        "s3:putbucketpolicy",
        "s3:putbucketpublicaccessblock",
        "sns:createtopic",
        "sns:settopicattributes",
        "sqs:createqueue",
        "sqs:setqueueattributes",
    ]


def _queue_athena_results():
    """What Athena returns to the run, in its order: the DDL, then each query once."""
    results = [EMPTY_RESULT for _ in ddl_names()]
    results += [CHART_RESULTS.get(name, OTHER_RESULT) for name in analytic_names()]
    queue = athena_backends[ACCOUNT][REGION].query_results_queue
    queue.extend(QueryResults(rows=r["rows"], column_info=r["column_info"]) for r in results)


@pytest.fixture
def deployer(aws, capsys, monkeypatch, tmp_path, request):
    """A user holding only `deploy.py policy`'s output, and an admin, with AWS's checks on.

    Every client made afterwards holds the deployer's credentials; returns the admin's
    S3, IAM and Glue clients for putting what moto cannot make and reading back.
    """
    parts = _printed_parts(capsys, "--prefix", "test-sales")
    key = _user(aws.iam, "deployer", parts)
    admin = _clients(_user(aws.iam, "admin", [ADMIN_POLICY]), "s3", "iam", "glue")
    monkeypatch.setenv("PIPELINE_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    _act_as(monkeypatch, key)
    request.getfixturevalue("aws_authorization")
    request.getfixturevalue("iam_enforced")
    return admin


def test_a_user_with_only_the_deployer_policy_runs_up_run_status_and_down(
    deployer, capsys, tmp_path
):
    s3, iam, glue = deployer
    prefix = ["--prefix", "test-sales"]
    # What this test grants: the managed policies attached to the user, which together
    # are the whole deployer policy.
    attached = iam.list_attached_user_policies(UserName="deployer")["AttachedPolicies"]
    granted = []
    for policy in sorted(attached, key=lambda a: a["PolicyName"]):
        version = iam.get_policy(PolicyArn=policy["PolicyArn"])["Policy"]["DefaultVersionId"]
        document = iam.get_policy_version(PolicyArn=policy["PolicyArn"], VersionId=version)
        granted += _statements([document["PolicyVersion"]["Document"]])
    assert iam.list_user_policies(UserName="deployer")["PolicyNames"] == []
    config = PipelineConfig(prefix="test-sales", target="aws", region=REGION, account_id=ACCOUNT)
    assert granted == deployer_policy(config, ACCOUNT)["Statement"]

    # The dry run's reads are up's own: the policy allows them, on nothing and on everything.
    assert deploy.main(["up", "--dry-run", *prefix]) == 0, capsys.readouterr()
    assert "20 resources: 20 create\n" in capsys.readouterr().out
    assert deploy.main(["up", *prefix]) == 0, capsys.readouterr()
    assert sorted(b["Name"] for b in s3.list_buckets()["Buckets"]) == ACCOUNT_BUCKETS
    assert glue.get_job(JobName="test-sales-etl-job")["Job"]["Role"] == (
        f"arn:aws:iam::{ACCOUNT}:role/test-sales-glue-role"
    )
    assert deploy.main(["up", *prefix]) == 0
    out = capsys.readouterr().out
    assert "up: everything already in place" in out
    # Where a right is missing, some checks only warn: here none did.
    assert "could not read" not in out
    assert deploy.main(["up", "--dry-run", *prefix]) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "20 resources: 20 no change\n" in out and "could not read" not in out

    # moto runs no Spark and no SQL: put the job's metrics file and queue Athena's answers.
    metrics = {"run_id": RUN_ID, "rows_read": {"sales": 200}, "rows_written": {"enriched": 200}}
    s3.put_object(Bucket=f"{STEM}-processed", Key=f"_runs/{RUN_ID}.json", Body=json.dumps(metrics))
    _queue_athena_results()
    charts = tmp_path / "charts"
    run = ["run", *prefix, "--rows", "200", "--customers", "40", "--run-id", RUN_ID]
    assert deploy.main([*run, "--charts-dir", str(charts)]) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert ["sales", "read", "200"] in [line.split() for line in out.splitlines()]
    assert "could not read" not in out  # the Lake Formation settings, the crawl's DPU-hours
    raw = s3.list_objects_v2(Bucket=f"{STEM}-raw", Prefix="input/")["Contents"]
    assert sorted(o["Key"] for o in raw) == [
        "input/customer_demographics_json/customer_demographics.json",
        "input/sales_data_csv/sales_data.csv",
    ]
    assert len(list(charts.glob("*.png"))) == 6

    assert deploy.main(["status", *prefix]) == 0
    out = capsys.readouterr().out
    rows = [line.split()[:3] for line in out.splitlines()]
    assert all(["s3-bucket", bucket, "present"] in rows for bucket in ACCOUNT_BUCKETS)
    assert "last crawl=COMPLETED" in out and "SUCCEEDED" in out

    key_row = next(line for line in out.splitlines() if line.startswith("kms-key"))
    assert key_row.split()[:3] == ["kms-key", "alias/test-sales-alerts", "Enabled"]
    assert "rotation=on" in key_row

    assert deploy.main(["down", "--yes", *prefix]) == 0, capsys.readouterr()
    assert s3.list_buckets()["Buckets"] == []
    assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == []
    [key] = kms_backends[ACCOUNT][REGION].keys.values()
    assert (key.key_state, key.aliases) == ("PendingDeletion", {})

    # Up again: a new key, the alias on it; the old one left to its deletion.
    assert deploy.main(["up", *prefix]) == 0, capsys.readouterr()
    states = sorted(k.key_state for k in kms_backends[ACCOUNT][REGION].keys.values())
    assert states == ["Enabled", "PendingDeletion"]
    assert deploy.main(["down", "--yes", *prefix]) == 0, capsys.readouterr()
    assert glue.list_jobs()["JobNames"] == [] and glue.list_crawlers()["CrawlerNames"] == []


def test_a_user_with_only_the_deployer_policy_runs_the_workflow_with_alerts(
    deployer, glue_workflows, capsys, tmp_path, monkeypatch
):
    s3, _, glue = deployer
    prefix = ["--prefix", "test-sales"]
    flags = ["--schedule", "cron(0 6 * * ? *)", "--alert-email", "oncall@example.com"]
    assert deploy.main(["up", *prefix, *flags]) == 0, capsys.readouterr()
    assert deploy.main(["up", *prefix, *flags]) == 0
    assert "up: everything already in place" in capsys.readouterr().out

    def write_metrics(job_run_id):  # as the admin: moto's job runs no code
        metrics = {"run_id": job_run_id, "rows_read": {"sales": 200}, "rows_written": {}}
        key = f"_runs/{job_run_id}.json"
        s3.put_object(Bucket=f"{STEM}-processed", Key=key, Body=json.dumps(metrics))

    glue_workflows.on_job_start.append(write_metrics)
    monkeypatch.setattr(AwsTarget.__init__, "__defaults__", (None, 5.0, lambda seconds: None))
    _queue_athena_results()
    run = ["run", "--workflow", *prefix, "--rows", "200", "--customers", "40"]
    assert deploy.main([*run, "--charts-dir", str(tmp_path / "charts")]) == 0, capsys.readouterr()
    [workflow_run] = glue.get_workflow_runs(Name="test-sales-workflow")["Runs"]
    assert workflow_run["Status"] == "COMPLETED"

    assert deploy.main(["status", *prefix]) == 0
    assert f"last run={workflow_run['WorkflowRunId']} COMPLETED" in capsys.readouterr().out
    assert deploy.main(["down", "--yes", *prefix]) == 0, capsys.readouterr()
    assert glue.list_workflows()["Workflows"] == []


def test_a_user_with_only_the_deployer_policy_deploys_on_arrival_and_removes_it(
    deployer, glue_workflows, capsys
):
    """The on-arrival resources (bucket notifications, the arrivals rule passing the
    events role, the role itself, the event trigger) with the policy's rights alone."""
    prefix = ["--prefix", "test-sales"]
    assert deploy.main(["up", *prefix, "--on-arrival", "--batch-size", "4"]) == 0, (
        capsys.readouterr()
    )
    assert deploy.main(["up", *prefix]) == 0
    assert "up: everything already in place" in capsys.readouterr().out
    assert deploy.main(["status", *prefix]) == 0
    shown = capsys.readouterr().out
    assert "test-sales-arrivals" in shown and "eventbridge=on" in shown
    # Reading what up would take away again (the role's policies, the rule's targets).
    assert deploy.main(["up", "--dry-run", *prefix, "--schedule", "none"]) == 0
    plan = capsys.readouterr().out
    assert "2 change, 2 delete, 18 no change\n" in plan, plan
    assert deploy.main(["up", *prefix, "--schedule", "none"]) == 0, capsys.readouterr()
    assert deploy.main(["up", *prefix, "--on-arrival"]) == 0, capsys.readouterr()
    assert deploy.main(["down", "--yes", *prefix]) == 0, capsys.readouterr()


def _without(parts, sid=None, action=None, resource=None):
    """``parts`` less one statement, or one action, or with one statement's resource swapped."""
    return [_part_without(part, sid, action, resource) for part in parts]


def _part_without(policy, sid, action, resource):
    statements = []
    for s in policy["Statement"]:
        if s["Sid"] == sid and action is None and resource is None:
            continue
        s = dict(s)
        if s["Sid"] == sid and action:
            s["Action"] = [a for a in s["Action"] if a != action]
        if s["Sid"] == sid and resource:
            s["Resource"] = [resource]
        statements.append(s)
    return {**policy, "Statement": statements}


@pytest.mark.parametrize(
    ("change", "denied"),
    [
        ({"sid": "PassGlueRoleToGlue"}, "not authorized to perform: iam:PassRole"),
        (
            {"sid": "PipelineBuckets", "action": "s3:PutEncryptionConfiguration"},
            "PutBucketEncryption operation",
        ),
        (
            {"sid": "GlueJob", "resource": "arn:aws:glue:us-east-1:123456789012:job/other"},
            "not authorized to perform: glue:GetJob",
        ),
        (
            {
                "sid": "GlueWorkflowTriggers",
                "resource": "arn:aws:glue:us-east-1:123456789012:trigger/other",
            },
            "not authorized to perform: glue:GetTrigger",
        ),
        ({"sid": "EventRules"}, "not authorized to perform: events:DescribeRule"),
        (
            {"sid": "AlertsTopic", "action": "sns:TagResource"},
            "not authorized to perform: sns:TagResource",
        ),
        ({"sid": "QuarantineAlarm"}, "not authorized to perform: cloudwatch:DescribeAlarms"),
        ({"sid": "TagAlertsKeyOnCreate"}, "not authorized to perform: kms:TagResource"),
        (
            {"sid": "AlertsKeyAlias", "resource": "arn:aws:kms:us-east-1:123456789012:alias/x"},
            "not authorized to perform: kms:CreateAlias",
        ),
    ],
    ids=[
        "no-passrole",
        "no-bucket-encryption",
        "another-job",
        "another-trigger",
        "no-rule",
        "no-topic-tagging",
        "no-alarm",
        "no-key-tagging",
        "another-alias",
    ],
)
def test_up_fails_when_the_policy_lacks_one_right(
    aws, capsys, monkeypatch, request, change, denied
):
    # Controls: the checks above are live, for an action moto does not ask for itself,
    # an S3 action moto names otherwise, and a Glue resource moto does not compare.
    parts = _without(_printed_parts(capsys, "--prefix", "test-sales"), **change)
    _act_as(monkeypatch, _user(aws.iam, "deployer", parts))
    request.getfixturevalue("aws_authorization")
    request.getfixturevalue("iam_enforced")

    assert deploy.main(["up", "--prefix", "test-sales"]) == 1
    err = capsys.readouterr().err
    assert "error: AWS call failed" in err
    assert denied in err


def test_a_bucket_name_taken_is_said_in_one_line_with_the_fix(aws, capsys, monkeypatch, request):
    # HeadBucket answers 403, as for another account's bucket: here a Deny does it.
    parts = _printed_parts(capsys, "--prefix", "test-sales")
    parts[-1]["Statement"].append(
        {
            "Sid": "SomeoneElses",
            "Effect": "Deny",
            "Action": ["s3:ListBucket"],
            "Resource": [f"arn:aws:s3:::{STEM}-raw"],
        }
    )
    _act_as(monkeypatch, _user(aws.iam, "deployer", parts))
    request.getfixturevalue("aws_authorization")
    request.getfixturevalue("iam_enforced")

    assert deploy.main(["up", "--prefix", "test-sales"]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == (
        f"error: bucket name {STEM}-raw taken: S3 bucket names are global and HeadBucket "
        "answers 403 (another account owns the name, or this identity may not list it); "
        "choose another --prefix"
    )


def test_deployer_policy_names_the_new_resources(capsys):
    argv = ["--prefix", "acme", "--region", "us-east-1", "--account-id", "111122223333"]
    statements = {s["Sid"]: s for s in _statements(_printed_parts(capsys, *argv))}
    glue = "arn:aws:glue:us-east-1:111122223333"
    assert statements["GlueWorkflow"]["Resource"] == [f"{glue}:workflow/acme-workflow"]
    assert "glue:StartWorkflowRun" in statements["GlueWorkflow"]["Action"]
    assert statements["GlueWorkflowTriggers"]["Resource"] == [
        f"{glue}:trigger/acme-workflow-start",
        f"{glue}:trigger/acme-workflow-after-crawl",
    ]
    assert "glue:UpdateTrigger" in statements["GlueWorkflowTriggers"]["Action"]
    assert statements["EventRules"]["Resource"] == [
        "arn:aws:events:us-east-1:111122223333:rule/acme-failures",
        "arn:aws:events:us-east-1:111122223333:rule/acme-arrivals",
    ]
    assert statements["AlertsDeadLetterQueue"]["Resource"] == [
        "arn:aws:sqs:us-east-1:111122223333:acme-alerts-dlq"
    ]
    assert statements["EventsRole"]["Resource"] == [
        "arn:aws:iam::111122223333:role/acme-events-role"
    ]
    assert statements["PassEventsRoleToEventBridge"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "events.amazonaws.com"}
    }
    assert statements["AlertsTopic"]["Resource"] == [
        "arn:aws:sns:us-east-1:111122223333:acme-alerts"
    ]
    assert statements["QuarantineAlarm"] == {
        "Sid": "QuarantineAlarm",
        "Effect": "Allow",
        "Action": [
            "cloudwatch:PutMetricAlarm",
            "cloudwatch:DescribeAlarms",
            "cloudwatch:DeleteAlarms",
            "cloudwatch:ListTagsForResource",
            "cloudwatch:TagResource",
        ],
        "Resource": ["arn:aws:cloudwatch:us-east-1:111122223333:alarm:acme-quarantine-rate"],
    }
