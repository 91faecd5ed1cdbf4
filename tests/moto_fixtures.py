"""moto fixtures for the ``aws`` target, loaded once as a plugin by ``conftest.py``.

Every fixture pins the region and fake credentials, so nothing can reach a real account.
"""

from __future__ import annotations

import inspect
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import moto
import pytest
from moto import mock_aws, settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.iam.access_control import IAMPolicyStatement, PermissionResult
from moto.moto_api import state_manager

from pipeline import infra
from pipeline.config import PipelineConfig

REGION = "us-east-1"
PREFIX = "test-sales"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and a pinned region; no profile or endpoint leaks in."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    # No ~/.aws files: a developer's real profile can never leak into a test.
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")


def _statement_denies_only_insecure_transport(statement: dict[str, Any]) -> bool:
    condition = statement.get("Condition") or {}
    flag = condition.get("Bool", {}).get("aws:SecureTransport")
    return statement.get("Effect") == "Deny" and str(flag).lower() == "false"


@pytest.fixture
def tls_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto treat every request as one sent over TLS, as real SDK requests are.

    moto does not evaluate the ``Bool`` operator, so the standard TLS-only deny
    (``aws:SecureTransport`` = ``false``) matches every request and S3 answers 403 to
    all object calls. This patch touches exactly that case: a ``Deny`` statement
    conditioned on insecure transport does not apply (as on AWS for HTTPS requests).
    Every other statement is evaluated by moto unchanged. The deployed policy is not
    modified; tests read it back as AWS stores it.
    """
    _check_patched_moto()
    monkeypatch.setattr(
        IAMPolicyStatement,
        "is_action_permitted",
        _tls_aware(IAMPolicyStatement.is_action_permitted),
    )


# What the patch relies on, as in moto 5.1-5.2: the method's parameters, and the
# statement kept as the dict it was built from.
_PATCHED_PARAMETERS = ["self", "action", "resource", "principal", "incoming_condition_values"]


def _check_patched_moto() -> None:
    """Fail loudly, naming moto's version, when the function the patch wraps has changed."""
    found = list(inspect.signature(IAMPolicyStatement.is_action_permitted).parameters)
    statement = {"Effect": "Deny", "Action": "s3:*"}
    kept = getattr(IAMPolicyStatement(statement), "_statement", None)
    if found != _PATCHED_PARAMETERS or kept != statement:
        pytest.fail(
            f"moto {moto.__version__} changed IAMPolicyStatement.is_action_permitted "
            f"(parameters {found}, statement kept as {kept!r}); tls_requests in "
            "tests/moto_fixtures.py patches it for the TLS-only bucket policy: update the patch",
            pytrace=False,
        )


def _tls_aware(original: Any) -> Any:
    def is_action_permitted(
        self: IAMPolicyStatement, *args: Any, **kwargs: Any
    ) -> PermissionResult:
        if _statement_denies_only_insecure_transport(self._statement):
            return PermissionResult.NEUTRAL
        return original(self, *args, **kwargs)

    return is_action_permitted


@pytest.fixture
def immediate_glue() -> Iterator[None]:
    """Let moto's crawler finish on the next poll (its state only moves via the state manager)."""
    state_manager.set_transition(model_name="glue::crawl", transition={"progression": "immediate"})
    state_manager.set_transition(
        model_name="glue::job_run", transition={"progression": "immediate"}
    )
    yield
    state_manager.unset_transition(model_name="glue::crawl")
    state_manager.unset_transition(model_name="glue::job_run")


@pytest.fixture
def config() -> PipelineConfig:
    """The deployment under test; every name comes from the prefix."""
    return PipelineConfig(
        prefix=PREFIX,
        target="aws",
        region=REGION,
        profile=None,
        endpoint_url=None,
        lake=Path("lake"),
    )


def _clients() -> SimpleNamespace:
    names = ("s3", "iam", "sts", "glue", "athena", "logs")
    return SimpleNamespace(**{n: boto3.client(n, region_name=REGION) for n in names})


@pytest.fixture
def aws(aws_env: None, tls_requests: None, immediate_glue: None) -> Iterator[SimpleNamespace]:
    """Open ``mock_aws`` and yield boto3 clients (s3, iam, sts, glue, athena, logs)."""
    with mock_aws():
        yield _clients()


@pytest.fixture
def deployed(aws: SimpleNamespace, config: PipelineConfig) -> SimpleNamespace:
    """Run ``up`` once (without Athena DDL) and yield the same clients."""
    infra.up(config, aws, tables=False)
    return aws


@pytest.fixture
def iam_enforced(monkeypatch: pytest.MonkeyPatch) -> None:
    """Turn on moto's IAM enforcement from the next request on (INITIAL_NO_AUTH_ACTION_COUNT=0)."""
    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    monkeypatch.setattr(ActionAuthenticatorMixin, "request_count", 0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def moto_server(aws_env: None, tls_requests: None, immediate_glue: None) -> Iterator[str]:
    """Start moto's server on a free 127.0.0.1 port and yield its endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def serve(port: int = 5000) -> None:
    """Run a moto server for trying deploy.py by hand, with the same two test settings.

    ``python -m tests.moto_fixtures [PORT]``: requests count as TLS (see ``tls_requests``)
    and crawls and job runs finish on the next poll. Stop with Ctrl-C.
    """
    from moto.server import ThreadedMotoServer

    IAMPolicyStatement.is_action_permitted = _tls_aware(IAMPolicyStatement.is_action_permitted)
    for model in ("glue::crawl", "glue::job_run"):
        state_manager.set_transition(model_name=model, transition={"progression": "immediate"})
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    print(f"moto server on http://127.0.0.1:{port} (Ctrl-C to stop)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    import sys

    serve(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
