"""Shared by every room: the boto3 clients, the caller's account, DeployError, AWS answers,
and the retry that waits out IAM propagation."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from pipeline import aws
from pipeline.config import PipelineConfig

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class Clients:
    """The boto3 clients one deployment talks to."""

    s3: Any
    iam: Any
    sts: Any
    glue: Any
    athena: Any
    lakeformation: Any = None
    events: Any = None
    sns: Any = None
    cloudwatch: Any = None
    kms: Any = None

    @classmethod
    def for_config(cls, config: PipelineConfig) -> Clients:
        """Return clients honouring the config's profile, region and endpoint URL."""
        services = (
            "s3", "iam", "sts", "glue", "athena", "lakeformation", "events", "sns", "cloudwatch",
            "kms",
        )  # fmt: skip
        return cls(*(aws.client(config, s) for s in services))


def service_client(config: PipelineConfig, clients: Any, service: str) -> Any:
    """The clients' client for ``service``, or one made from the config when they have none
    (callers may pass a namespace holding only some clients)."""
    found = getattr(clients, service, None)
    if found is None:
        found = aws.client(config, service)
        try:
            setattr(clients, service, found)
        except AttributeError:
            pass
    return found


def lakeformation_client(config: PipelineConfig, clients: Any) -> Any:
    """The clients' Lake Formation client, or one made from the config when they have none."""
    return service_client(config, clients, "lakeformation")


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


def role_name(role: str) -> str:
    """The role's name from an ARN (``arn:aws:iam::1:role/path/name``), a path or a name.

    Glue's GetCrawler answers with the name where CreateCrawler was given the ARN, so
    the two forms must compare equal.
    """
    return role.rsplit(":role/", 1)[-1].rsplit("/", 1)[-1]


# IAM propagation: a role made seconds ago may not be usable by Glue yet. Bounded:
# 6 attempts, waiting 2, 4, 8, 16 and 32 s in between (about a minute in all).
PROPAGATION_ATTEMPTS = 6
PROPAGATION_FIRST_DELAY = 2.0


def role_not_ready(exc: ClientError, role: str) -> bool:
    """True for the errors Glue gives while it cannot use a just-made ``role`` yet.

    E.g. InvalidInputException "Role arn:...:role/<role> should be given assume role
    permissions for Glue Service", or "Service is unable to assume provided role". A
    caller's own missing right ("... is not authorized to perform: ...", whose caller
    ARN may read "assumed-role") is not waited for: retrying does not grant it.
    """
    if _code(exc) not in ("InvalidInputException", "AccessDeniedException"):
        return False
    message = str(exc).lower()
    if "not authorized to perform" in message:
        return False
    return "assume" in message or role.lower() in message


def retry_iam_propagation(
    call: Callable[[], T],
    *,
    role: str,
    sleep: Callable[[float], None] = time.sleep,
    attempts: int = PROPAGATION_ATTEMPTS,
    first_delay: float = PROPAGATION_FIRST_DELAY,
) -> T:
    """Call ``call``; on an error :func:`role_not_ready` accepts, wait (doubling) and retry.

    After ``attempts`` calls the last error is raised; any other error at once.
    """
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except ClientError as exc:
            if attempt == attempts or not role_not_ready(exc, role):
                raise
            log.info(
                "waiting %.0fs for IAM to propagate role %s (%s, attempt %d of %d)",
                delay,
                role,
                _code(exc),
                attempt,
                attempts,
            )
            sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # the loop returns or raises
