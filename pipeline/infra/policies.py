"""The deploying identity's policy (``deploy.py policy``): what a person needs to run
``up``, ``run``, ``status`` and ``down`` for one prefix, collected from each kind of
resource (``deployer_statements``, registry order). The bucket, role, topic and key
policies are their kinds' (buckets.py, role.py, topic.py, key.py).
"""

from __future__ import annotations

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
        "Version": "2012-10-17",
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
