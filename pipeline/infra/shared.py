"""Shared by every room: the boto3 clients, the caller's account, DeployError, AWS answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from pipeline import aws
from pipeline.cli import PipelineError
from pipeline.config import PipelineConfig


class DeployError(PipelineError):
    """A deployment problem the user must resolve (e.g. a bucket name taken)."""


@dataclass
class Clients:
    """The boto3 clients one deployment talks to."""

    s3: Any
    iam: Any
    sts: Any
    glue: Any
    athena: Any

    @classmethod
    def for_config(cls, config: PipelineConfig) -> Clients:
        """Return clients honouring the config's profile, region and endpoint URL."""
        return cls(*(aws.client(config, s) for s in ("s3", "iam", "sts", "glue", "athena")))


@dataclass
class Account:
    """The caller's account id and ARN partition."""

    account_id: str
    partition: str

    @classmethod
    def of(cls, clients: Clients) -> Account:
        ident = clients.sts.get_caller_identity()
        return cls(ident["Account"], ident["Arn"].split(":")[1])


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _contains(desired: Any, actual: Any) -> bool:
    """True when every key and value of ``desired`` is present in ``actual``."""
    if isinstance(desired, dict):
        return isinstance(actual, dict) and all(
            k in actual and _contains(v, actual[k]) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(actual, list)
            and len(desired) == len(actual)
            and all(_contains(d, a) for d, a in zip(desired, actual, strict=True))
        )
    return desired == actual
