"""Answers AWS gives that moto never does, injected into a real boto3 client.

moto answers at once and in full: it never reports a bucket it just made as missing,
a KMS key's fresh tags as not yet authorizing, or a batch call's entry as failed. These
helpers make a client's next calls of one operation answer as AWS may, through
botocore's own ``before-call`` event (a handler that returns a response replaces the
HTTP exchange); every later call goes to moto as usual.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from botocore.awsrequest import AWSResponse


def error(code: str, message: str = "", status: int = 400) -> tuple[int, dict[str, Any]]:
    """An error answer: botocore raises it as a ClientError with this code."""
    return status, {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }


def body(parsed: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """A 200 answer with this (parsed) body."""
    return 200, {**parsed, "ResponseMetadata": {"HTTPStatusCode": 200}}


class Faults:
    """The answers injected into one client's ``operation``, in order, and the calls seen."""

    def __init__(self, client: Any, operation: str, answers: Iterable[tuple[int, dict]]) -> None:
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []  # the params of every call, injected or not
        service = client.meta.service_model.service_id.hyphenize()
        client.meta.events.register(f"before-call.{service}.{operation}", self._answer)

    def _answer(self, params: dict[str, Any], **_: Any) -> Any:
        self.calls.append(params.get("body") or params.get("query_string") or params)
        if not self.answers:
            return None  # the real call, to moto
        status, parsed = self.answers.pop(0)
        return AWSResponse("https://injected.invalid", status, {}, None), parsed


def inject(client: Any, operation: str, *answers: tuple[int, dict]) -> Faults:
    """Make ``client``'s next ``operation`` calls answer ``answers``, then call moto again."""
    return Faults(client, operation, answers)
