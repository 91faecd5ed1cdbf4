"""The deploying identity's policy (``deploy.py policy``): what a person needs to run
``up``, ``run``, ``status`` and ``down`` for one prefix, collected from each kind of
resource (``deployer_statements``, registry order). The bucket, role, topic and key
policies are their kinds' (buckets.py, role.py, topic.py, key.py).

The whole is larger than one managed policy may be, so ``deploy.py policy --part N``
prints it in parts (``deployer_policy_parts``), each a managed policy of its own.
"""

from __future__ import annotations

import json
from typing import Any

from pipeline.config import PipelineConfig
from pipeline.infra.registry import KINDS
from pipeline.infra.shared import Account, Context


def deployer_policy(
    config: PipelineConfig, account_id: str, partition: str = "aws"
) -> dict[str, Any]:
    """Return the least-privilege policy of the identity that runs up, run, status and down.

    Built from the names ``up`` uses (the config's buckets, role, database, crawler, job
    and workgroup, and the tags ``up`` puts on what it creates), so it grants nothing on
    any other resource. Not in it: ``sts:GetCallerIdentity``, which needs no permission,
    and read access to your own ``s3://`` inputs (``--sales-path``), which the upload
    copies from a bucket of yours.

    Its holder can put the four buckets' policies and the Glue role's inline policy, and
    pass the role to Glue: treat it as the deployment's administrator. Because
    s3:PutBucketPolicy lets it grant itself any object right in those buckets, object
    rights are not narrowed to prefixes there (narrower ones would protect nothing).
    KMS: the rights on keys are conditioned on up's tags (``aws:ResourceTag``), so the
    holder manages only the key it created; as tagging at creation needs kms:TagResource
    on every key of the account and region, it could also put up's two tags on another
    key whose key policy lets IAM grant tagging, and so take that key over: one more
    reason to give this policy only to the deployment's administrators.
    """
    ctx = Context(config, None, Account(account_id, partition))
    statements = [s for kind in KINDS for s in kind.deployer_statements(ctx)]
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            *statements,
            {
                # up and run check that Lake Formation does not govern the catalog; this
                # action has no resource ARN. Without it they warn and go on.
                "Sid": "ReadLakeFormationSettings",
                "Effect": "Allow",
                "Action": ["lakeformation:GetDataLakeSettings"],
                "Resource": ["*"],
            },
        ],
    }


# IAM's quota on a customer managed policy's document, counted without whitespace
# (IAM User Guide, "IAM and AWS STS quotas"). An inline user policy may hold only 2,048,
# an inline role policy 10,240: managed policies are what fits every identity.
MANAGED_POLICY_MAX_CHARS = 6144
POLICY_VERSION = "2012-10-17"


def policy_size(document: dict[str, Any]) -> int:
    """A policy document's size as IAM counts it against its quotas: whitespace not counted."""
    return len("".join(json.dumps(document).split()))


def deployer_policy_parts(
    config: PipelineConfig, account_id: str, partition: str = "aws"
) -> list[dict[str, Any]]:
    """:func:`deployer_policy` cut into documents that each fit a managed policy.

    Statements stay whole and in order; a part is closed when the next statement would
    take it over :data:`MANAGED_POLICY_MAX_CHARS`. Together the parts grant exactly what
    the whole grants (IAM unions the policies attached to an identity).
    """
    parts: list[list[dict[str, Any]]] = [[]]
    for statement in deployer_policy(config, account_id, partition)["Statement"]:
        grown = {"Version": POLICY_VERSION, "Statement": [*parts[-1], statement]}
        if parts[-1] and policy_size(grown) > MANAGED_POLICY_MAX_CHARS:
            parts.append([])
        parts[-1].append(statement)
    for part in parts:
        document = {"Version": POLICY_VERSION, "Statement": part}
        if policy_size(document) > MANAGED_POLICY_MAX_CHARS:  # one statement alone
            raise ValueError(f"statement {part[0].get('Sid')} exceeds a managed policy")
    return [{"Version": POLICY_VERSION, "Statement": part} for part in parts]


def deployer_policy_name(config: PipelineConfig, part: int | str) -> str:
    """The managed policy's name ``deploy.py policy`` gives part ``part`` (1-based)."""
    return f"{config.prefix}-deployer-{part}"
