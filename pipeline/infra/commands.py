"""``plan``, ``up``, ``status``, ``down`` and ``down_plan``, and the readiness check of a
run: each walks the registry of kinds (pipeline/infra/registry.py), forward to create,
read and show, backward to delete. ``up --dry-run`` is in dry_run.py."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from pipeline.config import ACCOUNT_PLACEHOLDER, PipelineConfig
from pipeline.errors import DeployError
from pipeline.infra.execution import check_lake_formation
from pipeline.infra.operations import Operations
from pipeline.infra.ownership import not_ours_error
from pipeline.infra.registry import KINDS
from pipeline.infra.shared import (
    MANAGED_BY_KEY,
    MANAGED_BY_VALUE,
    PREFIX_KEY,
    STOP_POLL_SECONDS,
    STOP_TIMEOUT_SECONDS,
    Account,
    Clients,
    Context,
    Found,
    Resource,
    partition_for_region,
)
from pipeline.infra.tables import check_table_locations
from pipeline.infra.trigger import kept

log = logging.getLogger(__name__)


def plan(
    config: PipelineConfig,
    account_id: str | None = None,
    partition: str | None = None,
    ops: Operations | None = None,
) -> list[Resource]:
    """Return every resource ``up`` manages, in creation order, with its settings.

    The account is ``account_id``, else the config's, else a placeholder; ``ops`` are
    ``up``'s flags (default: on demand, no email, the default threshold).
    """
    account = Account(
        account_id or config.account_id or ACCOUNT_PLACEHOLDER,
        partition or partition_for_region(config.region),
    )
    ctx = Context(config, None, account, ops or Operations())
    return [resource for kind in KINDS for resource in kind.plan(ctx)]


def find_all(ctx: Context) -> list[Found]:
    """Every resource name this deployment uses: what exists and whether it is ours."""
    return [found for kind in KINDS for found in kind.find(ctx)]


def _refuse_foreign(ctx: Context) -> None:
    foreign = [f for f in ctx.found if f.exists and not f.ours]
    if foreign:
        raise not_ours_error(ctx.config, foreign)


def up(
    config: PipelineConfig,
    clients: Clients | None = None,
    *,
    tables: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    ops: Operations | None = None,
) -> list[str]:
    """Create what is missing and put drifted settings back; return the changes made.

    ``ops`` are the flags for what starts the workflow, the alert email and the alarm's
    threshold (default: what is deployed, else on demand; the subscriptions as they are;
    5%). ``sleep`` is how the IAM-propagation
    retries and the waits for a trigger in a transient state sleep (tests pass a recorder).
    """
    ops = ops or Operations()
    problems = ops.problems()
    if problems:
        raise DeployError("; ".join(problems))
    clients = clients or Clients.for_config(config)
    ctx = Context(config, clients, Account.of(clients), ops, sleep, tables=tables)
    # Read everything first: refuse before any change if one of our names is taken.
    ctx.found = find_all(ctx)
    _refuse_foreign(ctx)
    # Where Lake Formation governs the catalog, the crawler and Athena would fail later.
    check_lake_formation(config, clients)
    # No flag about what starts the workflow: keep the schedule or arrivals deployed.
    ctx.ops = kept(ctx)
    changes: list[str] = []
    for kind in KINDS:
        made = kind.ensure(ctx)
        for change in made:
            log.info("%s", change)
        changes += made
    return changes


def status(
    config: PipelineConfig,
    clients: Clients | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> list[dict[str, Any]]:
    """Return one row per resource (kind, name, state, detail) plus the last crawl and job run.

    ``sleep`` is how a read of a KMS key minutes old waits for its tags to authorize.
    """
    clients = clients or Clients.for_config(config)
    ctx = Context(config, clients, Account.of(clients), sleep=sleep)
    return [row for kind in KINDS for row in kind.status(ctx)]


def format_status(rows: Iterable[dict[str, Any]]) -> str:
    """Return status rows as an aligned text table."""
    rows = list(rows)
    widths = [max(len(str(r[k])) for r in rows) for k in ("kind", "name", "state")]
    return "\n".join(
        f"{r['kind']:<{widths[0]}}  {r['name']:<{widths[1]}}  {r['state']:<{widths[2]}}  {r['detail']}"
        for r in rows
    )


def down(
    config: PipelineConfig,
    clients: Clients | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    stop_poll_seconds: float = STOP_POLL_SECONDS,
    stop_timeout_seconds: float = STOP_TIMEOUT_SECONDS,
) -> list[str]:
    """Delete what ``up`` made (only resources carrying its marks); return what was deleted.

    The registry backward: the alarm and the failures rule first (a job run stopped by
    ``down`` ends STOPPED, an event the rule matches, and a planned teardown must not
    mail the on-call address a failure); then a running workflow run, crawl or job run of
    ours is stopped and waited for (``sleep`` is how that wait sleeps), before the rest.
    """
    clients = clients or Clients.for_config(config)
    ctx = Context(
        config,
        clients,
        Account.of(clients),
        sleep=sleep,
        stop_poll_seconds=stop_poll_seconds,
        stop_timeout_seconds=stop_timeout_seconds,
    )
    ctx.found = find_all(ctx)
    for found in ctx.found:
        if found.exists and not found.ours:
            log.warning(
                "%s %s exists but deploy.py did not make it for prefix %s (%s); kept",
                found.kind,
                found.name,
                config.prefix,
                found.why_not_ours,
            )
    deleted: list[str] = []
    for kind in reversed(KINDS):
        try:
            deleted += kind.delete(ctx)
        except DeployError as exc:
            done = f"nothing but {', '.join(deleted)}" if deleted else "nothing"
            raise DeployError(f"down deleted {done}: {exc}") from exc
    for item in deleted:
        log.info("deleted %s", item)
    return deleted


def down_plan(config: PipelineConfig) -> list[str]:
    """Return what ``down`` would delete, without calling AWS."""
    return [
        *(line for kind in reversed(KINDS) for line in kind.down_plan(config)),
        f"(each only if tagged {MANAGED_BY_KEY}={MANAGED_BY_VALUE}, {PREFIX_KEY}={config.prefix})",
    ]


def check_ready_to_run(config: PipelineConfig, clients: Clients) -> None:
    """Raise :class:`DeployError` unless this prefix's deployment is complete and its own.

    A crawler writing into another prefix's database, or Athena tables left pointing
    at another prefix's bucket, would make this run read someone else's data.
    """
    ctx = Context(config, clients, Account.of(clients))
    ctx.found = find_all(ctx)
    _refuse_foreign(ctx)
    missing = [f"{f.kind} {f.name}" for f in ctx.found if not f.exists]
    if missing:
        raise DeployError(
            f"not deployed for prefix {config.prefix!r}: {', '.join(missing)} missing; "
            "run `deploy.py up` first"
        )
    check_lake_formation(config, clients)
    check_table_locations(config, clients.glue, warn_missing=False)
