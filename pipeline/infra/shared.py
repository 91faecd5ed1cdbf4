"""Written once, used by every kind of resource: the boto3 clients and the caller's account,
the context a command hands each kind, AWS error codes, up's marks and their tag lists,
the ARN formats, and the retry that waits out IAM propagation."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from pipeline import aws
from pipeline.config import PipelineConfig
from pipeline.errors import DeployError
from pipeline.infra.operations import Operations

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
    sqs: Any = None

    @classmethod
    def for_config(cls, config: PipelineConfig) -> Clients:
        """Return clients honouring the config's profile, region and endpoint URL."""
        services = (
            "s3", "iam", "sts", "glue", "athena", "lakeformation", "events", "sns", "cloudwatch",
            "kms", "sqs",
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


@dataclass
class Account:
    """The caller's account id and ARN partition."""

    account_id: str
    partition: str

    @classmethod
    def of(cls, clients: Clients) -> Account:
        ident = clients.sts.get_caller_identity()
        return cls(ident["Account"], ident["Arn"].split(":")[1])


@dataclass(frozen=True)
class Found:
    """What exists under one of this deployment's names, and whether it carries our marks."""

    kind: str
    name: str
    exists: bool
    ours: bool = False
    why_not_ours: str = ""
    owner: str | None = None  # the deploy.py prefix it is marked for, if another one


@dataclass(frozen=True)
class Resource:
    """One resource of the plan: what it is, its name and every setting up enforces."""

    kind: str
    name: str
    settings: dict[str, Any] = field(default_factory=dict)


# down stops a running crawl and the job's runs, then polls until they ended: every
# 10 s, for at most 10 minutes.
STOP_POLL_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 600.0


@dataclass
class Context:
    """What a command hands each kind: the config, the clients (None for a plan, which
    calls nothing), the account, up's flags, how waits sleep, and what ``find`` found."""

    config: PipelineConfig
    clients: Any
    account: Account
    ops: Operations = field(default_factory=Operations)
    sleep: Callable[[float], None] = time.sleep
    found: list[Found] = field(default_factory=list)
    tables: bool = True  # up: run the Athena DDL
    stop_poll_seconds: float = STOP_POLL_SECONDS
    stop_timeout_seconds: float = STOP_TIMEOUT_SECONDS

    def client(self, service: str) -> Any:
        return service_client(self.config, self.clients, service)

    def found_of(self, kind: str) -> list[Found]:
        return [f for f in self.found if f.kind == kind]

    def arn(self, fmt: str, name: str) -> str:
        return fmt.format(
            partition=self.account.partition,
            region=self.config.region,
            account=self.account.account_id,
            name=name,
        )


# ARN formats, each written once; a kind fills in its resource's name.
ROLE_ARN = "arn:{partition}:iam::{account}:role/{name}"
GLUE_ARN = "arn:{partition}:glue:{region}:{account}:{name}"  # name: crawler/<name>, ...
ATHENA_ARN = "arn:{partition}:athena:{region}:{account}:{name}"  # name: workgroup/<name>
TOPIC_ARN = "arn:{partition}:sns:{region}:{account}:{name}"
RULE_ARN = "arn:{partition}:events:{region}:{account}:rule/{name}"
ALARM_ARN = "arn:{partition}:cloudwatch:{region}:{account}:alarm:{name}"
KMS_ARN = "arn:{partition}:kms:{region}:{account}:{name}"  # name: alias/<name> or key/*
QUEUE_ARN = "arn:{partition}:sqs:{region}:{account}:{name}"


def partition_for_region(region: str) -> str:
    """Return the ARN partition (``aws``, ``aws-cn``, ``aws-us-gov``) of a region."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def status_row(kind: str, name: str, state: str, detail: str = "") -> dict[str, str]:
    """One row of ``status``."""
    return {"kind": kind, "name": name, "state": state, "detail": detail}


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def check_batch(
    call: str,
    about: str,
    failed: list[dict[str, Any]],
    total: int,
    describe: Callable[[dict[str, Any]], str],
) -> None:
    """Raise one line when a batch call answered success but failed some entries.

    PutTargets, RemoveTargets and DeleteObjects answer 200 and list what failed in the
    body (``FailedEntries``, ``Errors``): unchecked, an alert target or an object would
    silently not be there (or still be there).
    """
    if failed:
        raise DeployError(
            f"{call} on {about} failed for {len(failed)} of {total} entries; first: "
            f"{describe(failed[0])}"
        )


def read_or_none(call: Callable[[], T], not_found: tuple[str, ...]) -> T | None:
    """``call()``'s answer, or None when AWS answers one of the ``not_found`` codes. Any
    other error (AccessDenied, say) is raised: a resource one may not read is not missing."""
    try:
        return call()
    except ClientError as exc:
        if error_code(exc) in not_found:
            return None
        raise


def contains(desired: Any, actual: Any) -> bool:
    """True when every key and value of ``desired`` is present in ``actual``."""
    if isinstance(desired, dict):
        return isinstance(actual, dict) and all(
            k in actual and contains(v, actual[k]) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(actual, list)
            and len(desired) == len(actual)
            and all(contains(d, a) for d, a in zip(desired, actual, strict=True))
        )
    return desired == actual


# Marks that say "deploy.py made this" (tags, or the database's parameters); down
# deletes nothing without them.
MANAGED_BY_KEY = "managed-by"
MANAGED_BY_VALUE = "deploy.py"
PREFIX_KEY = "pipeline-prefix"


def tags(config: PipelineConfig) -> dict[str, str]:
    """Return the tags every resource gets; ``down`` requires them before deleting."""
    return {MANAGED_BY_KEY: MANAGED_BY_VALUE, PREFIX_KEY: config.prefix}


def tag_list(tag_map: dict[str, str], key: str = "Key", value: str = "Value") -> list[dict]:
    """A tag map as the list most APIs take (KMS names the fields TagKey/TagValue)."""
    return [{key: k, value: v} for k, v in sorted(tag_map.items())]


def tag_map(tag_list: Iterable[dict[str, str]], key: str = "Key", value: str = "Value") -> dict:
    """A tag list (``[{"Key": ..., "Value": ...}]``) as a map."""
    return {t[key]: t[value] for t in tag_list}


def role_name(role: str) -> str:
    """The role's name from an ARN (``arn:aws:iam::1:role/path/name``), a path or a name.

    Glue's GetCrawler answers with the name where CreateCrawler was given the ARN, so
    the two forms must compare equal.
    """
    return role.rsplit(":role/", 1)[-1].rsplit("/", 1)[-1]


def as_wanted_role(want: dict[str, Any], actual: dict[str, Any]) -> dict[str, Any]:
    """``actual`` with its Role in ``want``'s form when both name the same role.

    GetCrawler answers with the role's name where ``up`` passed its ARN: compared as
    given, every ``up`` would update the crawler (and fail while a crawl runs).
    """
    if role_name(actual.get("Role", "")) == role_name(want["Role"]):
        return {**actual, "Role": want["Role"]}
    return actual


def glue_tags(ctx: Context, resource: str) -> dict[str, str]:
    """The tags of a Glue crawler, job, workflow or trigger (``resource``: ``job/<name>``)."""
    arn = ctx.arn(GLUE_ARN, resource)
    return ctx.clients.glue.get_tags(ResourceArn=arn).get("Tags", {})


@dataclass(frozen=True)
class Backoff:
    """Waits between retries: ``first`` seconds, doubling up to ``cap``, never more than
    ``budget`` seconds in all."""

    first: float
    cap: float
    budget: float

    def delays(self) -> list[float]:
        delays, delay, total = [], self.first, 0.0
        while total + delay <= self.budget:
            delays.append(delay)
            total += delay
            delay = min(delay * 2, self.cap)
        return delays


def retry_on_codes(
    call: Callable[[], T],
    codes: tuple[str, ...],
    what: str,
    backoff: Backoff,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``call``; while it fails with one of ``codes``, wait (logged) and call again.

    For AWS's eventual consistency: a resource just made that a call cannot see or use
    yet. When ``backoff``'s budget is spent the last error is raised; any other at once.
    """
    delays = backoff.delays()
    for attempt, delay in enumerate([*delays, None], 1):
        try:
            return call()
        except ClientError as exc:
            if delay is None or error_code(exc) not in codes:
                raise
            log.info(
                "%s: %s, waiting %.0fs and trying again (attempt %d of %d, at most %.0fs "
                "of waiting in all)",
                what,
                error_code(exc),
                delay,
                attempt,
                len(delays) + 1,
                sum(delays),
            )
            sleep(delay)
    raise AssertionError("unreachable")  # the loop returns or raises


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
    if error_code(exc) not in ("InvalidInputException", "AccessDeniedException"):
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
                error_code(exc),
                attempt,
                attempts,
            )
            sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # the loop returns or raises
