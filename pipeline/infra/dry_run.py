"""``up --dry-run``: what ``up`` would do to each resource, read from the account with
nothing changed; or, offline (``--account-id``), the resources alone, nothing read.

``up`` reads, compares and writes kind by kind (each kind's ``ensure``). The dry run runs
those same ``ensure`` functions on clients that send only reads: an operation whose name
starts with Get, Describe, List or Head goes to AWS; every other one is held back and
answered here as if it had succeeded (:class:`ReadOnly`). The changes ``ensure`` returns
are then the lines ``up`` would log, with no second copy of any kind's comparison.
Where following ``up`` cannot work, the dry run does not try:

- a resource that does not exist is ``create``, and a kind whose every resource is to be
  created (or is not ours) is not run: its creation path would wait for, or read back,
  what it made (a role's ``role_exists`` waiter, a new bucket's settings);
- a resource inside another (the job's files in the scripts bucket, the topic's email
  subscription, the Athena tables of the database) is ``create`` while that one is missing;
- after a held-back Delete, a read of the same thing with the same parameters answers
  not-found, as AWS would once up deleted it (a trigger replaced by one of another type);
- a wait after a held-back change stops that kind (:class:`WouldWait`): ``up`` would be
  waiting for something the dry run never did; its resources then say ``unknown``.
"""

from __future__ import annotations

import copy
import json
import time
from collections import Counter
from dataclasses import dataclass, field, fields
from types import ModuleType
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from pipeline.config import PipelineConfig
from pipeline.errors import DeployError, one_line
from pipeline.infra import buckets, database, script, subscription, tables, topic
from pipeline.infra.commands import find_all, plan
from pipeline.infra.execution import check_lake_formation
from pipeline.infra.operations import Operations
from pipeline.infra.ownership import not_ours_error
from pipeline.infra.registry import KINDS
from pipeline.infra.shared import Account, Clients, Context, Found, Resource, service_client
from pipeline.infra.trigger import kept

# What the action column says.
CREATE = "create"
CHANGE = "change"
DELETE = "delete"  # exists, ours, and up removes it (the on-arrival resources without the flag)
NO_CHANGE = "no change"
NOT_OURS = "not ours"  # the name is taken by something without our marks: up refuses
FAIL = "fail"  # up would stop here with this error
UNKNOWN = "unknown"  # the dry run could not follow up here
NOT_READ = "create or repair (not read)"  # offline: nothing was read
COUNTED = (CREATE, CHANGE, DELETE, NO_CHANGE, NOT_OURS, FAIL, UNKNOWN, NOT_READ)

# The operations sent to AWS; any other is held back.
READ_PREFIXES = ("Get", "Describe", "List", "Head")
# What a held-back operation answers, where up goes on to use the answer.
HELD_ANSWERS: dict[str, dict[str, Any]] = {"CreateKey": {"KeyMetadata": {"KeyId": "<new key>"}}}
_PARAMS = "dry_run_params"  # where the call's parameters wait in botocore's request context


@dataclass(frozen=True)
class Call:
    """One operation a client was asked for: its service, name and parameters."""

    service: str
    operation: str
    params: dict[str, Any]


class WouldWait(Exception):
    """``up`` would wait here for a change that the dry run held back."""


class ReadOnly:
    """Installed on every client of a deployment: reads go to AWS, every other operation
    is held back (kept in ``held``) and answered with success, sending nothing."""

    def __init__(self) -> None:
        self.held: list[Call] = []
        self._deleted: list[Call] = []
        self._mark = 0
        self._clients: list[Any] = []

    def install(self, config: PipelineConfig, clients: Any) -> None:
        """Guard each client of ``clients``, first making those it lacks (a kind may ask
        ``ctx.client`` for one, which must not be made unguarded later)."""
        for name in (f.name for f in fields(Clients)):
            service_client(config, clients, name)
        for client in vars(clients).values():
            if hasattr(getattr(client, "meta", None), "events"):
                client.meta.events.register("before-parameter-build", self._remember)
                client.meta.events.register("before-call", self._answer)
                self._clients.append(client)

    def remove(self) -> None:
        for client in self._clients:
            client.meta.events.unregister("before-parameter-build", self._remember)
            client.meta.events.unregister("before-call", self._answer)
        self._clients = []

    def begin(self) -> None:
        """A kind starts: waits stop only after its own held-back changes, and only its
        own deletes make reads answer not-found."""
        self._mark, self._deleted = len(self.held), []

    def sleep(self, seconds: float) -> None:
        """``ctx.sleep``: a real wait while this kind has changed nothing, else stop."""
        if len(self.held) > self._mark:
            raise WouldWait(
                f"up would wait here for its own {self.held[-1].operation}, which the dry "
                "run did not send"
            )
        time.sleep(seconds)

    def _remember(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context[_PARAMS] = dict(params)

    def _answer(self, model: Any, context: dict[str, Any], **_: Any) -> Any:
        call = Call(model.service_model.service_name, model.name, context.get(_PARAMS, {}))
        if call.operation.startswith(READ_PREFIXES):
            if any(_reads_deleted(call, deleted) for deleted in self._deleted):
                return _not_found(model, call)
            return None  # botocore sends it
        self.held.append(call)
        if call.operation.startswith("Delete"):
            self._deleted.append(call)
        parsed = copy.deepcopy(HELD_ANSWERS.get(call.operation, {}))
        parsed["ResponseMetadata"] = {"HTTPStatusCode": 200, "RequestId": "dry-run"}
        return AWSResponse("", 200, {}, None), parsed


def _reads_deleted(read: Call, deleted: Call) -> bool:
    """GetTrigger(Name=n) after DeleteTrigger(Name=n): the same noun and parameters."""
    noun = next(read.operation[len(p) :] for p in READ_PREFIXES if read.operation.startswith(p))
    return (read.service, read.params) == (deleted.service, deleted.params) and (
        deleted.operation == f"Delete{noun}"
    )


def _not_found(model: Any, call: Call) -> tuple[AWSResponse, dict[str, Any]]:
    """The error the operation answers for a missing resource (its not-found error shape)."""
    codes = [
        shape.metadata.get("error", {}).get("code", shape.name)
        for shape in model.error_shapes
        if "NotFound" in shape.name or shape.name.startswith("NoSuch")
    ]
    error = {"Code": codes[0] if codes else "NotFound", "Message": f"deleted by {call.operation}"}
    return AWSResponse("", 404, {}, None), {
        "Error": error,
        "ResponseMetadata": {"HTTPStatusCode": 404, "RequestId": "dry-run"},
    }


@dataclass(frozen=True)
class Action:
    """One row of the dry run: a resource and what ``up`` would do to it."""

    kind: str
    name: str
    action: str
    details: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return f"{self.action}: {'; '.join(self.details)}" if self.details else self.action


@dataclass
class DryRun:
    """What the dry run found: every resource ``up`` manages with every setting, a row per
    resource, notes (why ``up`` would stop before any change), and whether it read AWS."""

    config: PipelineConfig
    account_id: str
    resources: list[Resource]
    actions: list[Action]
    notes: list[str] = field(default_factory=list)
    read: bool = True


def offline_plan(config: PipelineConfig, ops: Operations | None = None) -> DryRun:
    """The resources up manages, for the config's account, with nothing read."""
    resources = plan(config, ops=ops)
    actions = [Action(r.kind, r.name, NOT_READ) for r in resources]
    return DryRun(config, config.account_id or "", resources, actions, read=False)


def dry_run(
    config: PipelineConfig, clients: Any = None, *, ops: Operations | None = None
) -> DryRun:
    """Read the account as ``up`` does and say, per resource, what ``up`` would do;
    nothing but reads is sent. ``ops`` are up's flags, as for :func:`commands.up`."""
    ops = ops or Operations()
    if problems := ops.problems():
        raise DeployError("; ".join(problems))
    clients = clients or Clients.for_config(config)
    guard = ReadOnly()
    guard.install(config, clients)
    try:
        ctx = Context(config, clients, Account.of(clients), ops, guard.sleep, tables=False)
        found = find_all(ctx)
        notes = []
        foreign = [f for f in found if f.exists and not f.ours]
        if foreign:
            notes.append(f"up would stop before any change: {not_ours_error(config, foreign)}")
        try:
            check_lake_formation(config, clients)
        except DeployError as exc:
            notes.append(f"up would stop before any change: {exc}")
        ctx.ops = kept(ctx)  # as up: a deployed schedule or arrivals stay without a flag
        ctx.found = [f for f in found if f.exists and f.ours]  # what ensure may work on
        resources: list[Resource] = []
        actions: list[Action] = []
        for kind in KINDS:
            planned = kind.plan(ctx)
            resources += planned
            actions += _kind_actions(ctx, guard, kind, planned, found)
    finally:
        guard.remove()
    return DryRun(config, ctx.account.account_id, resources, actions, notes)


# Kinds whose resources live inside another of the deployment (their ``find`` reports
# none): the kind and name of the one that holds them.
def _container(config: PipelineConfig, kind: ModuleType) -> tuple[str, str] | None:
    return {
        script.KIND: (buckets.KIND, config.scripts_bucket),
        subscription.KIND: (topic.KIND, config.alerts_topic_name),
        tables.KIND: (database.KIND, config.database),
    }.get(kind.KIND)


def _kind_actions(
    ctx: Context, guard: ReadOnly, kind: ModuleType, planned: list[Resource], found: list[Found]
) -> list[Action]:
    """The rows of one kind: its planned resources, then those of its that exist and up
    would remove; ``ensure`` run read-only where there is something to compare."""
    planned_names = [r.name for r in planned]
    mine = {f.name: f for f in found if f.kind == kind.KIND}
    names = planned_names + [n for n, f in mine.items() if f.exists and n not in planned_names]
    holder = _container(ctx.config, kind)
    if holder is not None:
        outer = next((f for f in found if (f.kind, f.name) == holder), None)
        if outer is None or not outer.exists:
            return [Action(kind.KIND, n, CREATE) for n in names]
        if not outer.ours:
            why = (f"inside {outer.kind} {outer.name}, which is not ours",)
            return [Action(kind.KIND, n, UNKNOWN, why) for n in names]
    decided: dict[str, Action] = {}
    for name in names:
        f = mine.get(name)
        if f is not None and f.exists and not f.ours:
            decided[name] = Action(kind.KIND, name, NOT_OURS, (f.why_not_ours,))
        elif holder is None and (f is None or not f.exists):
            decided[name] = Action(kind.KIND, name, CREATE)
    changes: list[str] = []
    if not names or len(decided) < len(names):
        guard.begin()
        try:
            changes = kind.ensure(ctx)
        except (DeployError, ClientError, WouldWait) as exc:
            # DeployError: up would stop there; otherwise the dry run cannot follow it.
            what = FAIL if isinstance(exc, DeployError) else UNKNOWN
            return [
                decided.get(n) or Action(kind.KIND, n, what, (one_line(exc),))
                for n in names or ["-"]  # a kind with no resource of its own still says it
            ]
    by_name: dict[str | None, list[str]] = {}
    for change in changes:
        by_name.setdefault(_named(change, names), []).append(change)
    actions = []
    for name in names:
        details = tuple(by_name.get(name, ()))
        if name in decided:
            actions.append(decided[name])
        elif not details:
            actions.append(Action(kind.KIND, name, NO_CHANGE))
        else:
            actions.append(
                Action(kind.KIND, name, CHANGE if name in planned_names else DELETE, details)
            )
    actions += [Action(kind.KIND, "-", CHANGE, (c,)) for c in by_name.get(None, [])]
    return actions


def _named(change: str, names: list[str]) -> str | None:
    """The resource a change line is about: the one whose name is a word of it, else the
    kind's only resource (a KMS key's lines name its id, the row its alias)."""
    words = {w.strip(".,:;()") for w in change.split()}
    named = [n for n in names if n in words]
    if named:
        return named[0]
    return names[0] if len(names) == 1 else None


def counts(result: DryRun) -> str:
    """``3 create, 2 change, 13 no change``: each action with its number of resources."""
    counted = Counter(a.action for a in result.actions)
    return ", ".join(f"{counted[a]} {a}" for a in COUNTED if counted[a])


def header(result: DryRun) -> str:
    config, n = result.config, len(result.actions)
    where = f"plan for prefix {config.prefix} in {config.region}, account {result.account_id}"
    if not result.read:
        return (
            f"{where} (offline, --account-id: nothing was read or changed): {n} resources, "
            "each created if missing, else its drifted settings put back"
        )
    return f"{where} (read-only: nothing was changed): {n} resources: {counts(result)}"


def format_dry_run(result: DryRun, verbose: bool = False) -> str:
    """The header, a table (resource, name, action: one screen), the notes; with
    ``verbose``, then each resource's settings as JSON."""
    rows = [("resource", "name", "action"), *((a.kind, a.name, a.text) for a in result.actions)]
    kind_width = max(len(r[0]) for r in rows)
    name_width = max(len(r[1]) for r in rows)
    lines = [header(result)]
    lines += [f"{k:<{kind_width}}  {n:<{name_width}}  {t}".rstrip() for k, n, t in rows]
    lines += result.notes
    if not verbose:
        lines.append("(every setting of each: add --verbose)")
        return "\n".join(lines)
    return "\n".join([*lines, format_settings(result.resources)])


def format_settings(resources: list[Resource]) -> str:
    """Each resource's settings, as JSON under an ``== kind: name`` line."""
    lines = []
    for r in resources:
        lines.append(f"== {r.kind}: {r.name}")
        lines.append(json.dumps(r.settings, indent=2, sort_keys=True, default=str))
    return "\n".join(lines)


def as_json(result: DryRun, verbose: bool = False) -> dict[str, Any]:
    """The dry run as a JSON document: the header's facts, a row per resource, the notes
    (with ``verbose``, each resource's settings too)."""
    settings = {(r.kind, r.name): r.settings for r in result.resources}
    rows = []
    for a in result.actions:
        row: dict[str, Any] = {"kind": a.kind, "name": a.name, "action": a.action}
        row["details"] = list(a.details)
        if verbose and (a.kind, a.name) in settings:
            row["settings"] = settings[(a.kind, a.name)]
        rows.append(row)
    return {
        "prefix": result.config.prefix,
        "region": result.config.region,
        "account": result.account_id,
        "read": result.read,
        "resources": rows,
        "notes": result.notes,
    }
