"""What a kind's CloudFormation fragment is made of: the sentinels the template's plan is
built from, one CloudFormation resource, and how other resources refer to one of a type."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Sentinels:
    """One value per template parameter; the template is made twice, from two sets."""

    prefix: str
    account: str
    region: str
    partition: str
    schedule: str
    email: str
    rate: float
    batch_size: int  # up --on-arrival's batching: integers, not in any text
    batch_window: int

    def strings(self) -> dict[str, str]:
        """Each string sentinel and what it becomes inside ``Fn::Sub``."""
        return {
            self.partition: "AWS::Partition",
            self.account: "AWS::AccountId",
            self.region: "AWS::Region",
            self.prefix: "Prefix",
            self.schedule: "Schedule",
            self.email: "AlertEmail",
            str(self.rate): "MaxQuarantineRate",  # the threshold in a text
        }

    def arn(self, fmt: str, name: str) -> str:
        """An ARN format of pipeline.infra.shared filled in with the sentinels."""
        return fmt.format(
            partition=self.partition, region=self.region, account=self.account, name=name
        )


@dataclass
class CfnResource:
    """One CloudFormation resource made from a plan resource."""

    logical_id: str
    type: str
    properties: dict[str, Any]
    name_property: str | None  # the property holding the resource's own name
    metadata: dict[str, Any] | None = None
    # What the template writes for the resource's own name when CloudFormation must
    # compute it from the parameters in a way Fn::Sub cannot (None: the name as planned).
    name_value: Any = None

    @property
    def name(self) -> str | None:
        """The resource's own name (a database's is inside DatabaseInput)."""
        if self.name_property is None:
            return None
        value: Any = self.properties
        for key in self.name_property.split("."):
            value = value[key]
        return value


@dataclass(frozen=True)
class RefStyle:
    """How other resources refer to one of a type: its name by ``Ref`` or an attribute
    (None: not at all), its ARN likewise, and the ARN's format (pipeline.infra.shared)."""

    name: str | None
    arn: str | None = None
    arn_format: str | None = None


def checkov_skips(*skips: tuple[str, str]) -> dict[str, Any]:
    return {"checkov": {"skip": [{"id": i, "comment": c} for i, c in skips]}}


def _camel(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", text))


def logical_id(suffix: str, name: str, s: Sentinels) -> str:
    """``<prefix>-<account>-<region>-raw`` -> ``RawBucket``; ``<prefix>-glue-role`` -> ``GlueRole``."""
    short = name
    for stem in (f"{s.prefix}-{s.account}-{s.region}-", f"{s.prefix}-"):
        if short.startswith(stem):
            short = short[len(stem) :]
            break
    logical = _camel(short)
    return logical if logical.endswith(suffix) else logical + suffix


GLUE_SECURITY_CONFIGURATION_SKIP = (
    "CKV_AWS_195",
    "no Glue security configuration, as up makes none: S3 data is encrypted by the "
    "buckets' SSE-S3 default; logs and bookmarks with a KMS key are left to the account",
)


def glue_resource(
    r: Any, s: Sentinels, cfn_type: str, suffix: str, metadata: dict[str, Any] | None = None
) -> list[CfnResource]:
    """Glue crawler, job, workflow, trigger: CloudFormation takes the request's own
    shape, the name as ``Name`` and the tags as a JSON map, as Glue's API does."""
    props = {**r.settings, "Name": r.name}
    return [CfnResource(logical_id(suffix, r.name, s), cfn_type, props, "Name", metadata)]
