"""The EventBridge patterns `up` deploys, against AWS's documented sample events.

Each sample in tests/data/events/ is copied verbatim from AWS's documentation (its
README says where). A test puts our job's, crawler's or bucket's name (and an input key)
in place of the sample's, deploys with `up` on moto's server, and asks EventBridge's
TestEventPattern whether the deployed pattern matches: the field paths, detail-types,
sources and state spellings come from AWS, not from the patterns' own strings. The
samples as published (someone else's job, crawler or bucket) and those of other states
or detail-types must not match.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto_fixtures import CRAWLER, JOB, PREFIX, REGION

from pipeline import infra
from pipeline.config import PipelineConfig
from pipeline.infra.operations import Operations

SAMPLES = Path(__file__).resolve().parent / "data" / "events"
RAW = f"{PREFIX}-raw"  # the raw bucket of a config without an account (moto_fixtures)


def sample(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES / f"{name}.json").read_text())


def ours(event: dict[str, Any], **detail: Any) -> dict[str, Any]:
    """The sample with our names put in ``detail`` (nested keys as dotted names)."""
    event = copy.deepcopy(event)
    for dotted, value in detail.items():
        node = event["detail"]
        *parents, last = dotted.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    return event


@pytest.fixture
def deployed_patterns(moto_server: str) -> tuple[Any, dict[str, str]]:
    """`up --on-arrival` on moto's server; EventBridge's client and both rules' patterns."""
    config = PipelineConfig(
        prefix=PREFIX, target="aws", region=REGION, profile=None, endpoint_url=moto_server
    )
    infra.up(config, tables=False, ops=Operations(on_arrival=True))
    events = boto3.client("events", region_name=REGION, endpoint_url=moto_server)
    found = {
        rule: events.describe_rule(Name=f"{PREFIX}-{rule}")["EventPattern"]
        for rule in ("failures", "arrivals")
    }
    return events, found


def _matches(events: Any, pattern: str, event: dict[str, Any]) -> bool:
    return events.test_event_pattern(EventPattern=pattern, Event=json.dumps(event))["Result"]


FAILURES = [
    ("glue_job_failed", {"jobName": JOB}, True),
    ("glue_job_timeout", {"jobName": JOB}, True),
    ("glue_job_stopped", {"jobName": JOB}, True),
    ("glue_crawler_failed", {"crawlerName": CRAWLER}, True),
    # Must not match: success, someone else's job or crawler as published, and our
    # crawler's name in a job event.
    ("glue_job_succeeded", {"jobName": JOB}, False),
    ("glue_crawler_succeeded", {"crawlerName": CRAWLER}, False),
    ("glue_job_failed", {}, False),
    ("glue_crawler_failed", {}, False),
    ("glue_job_failed", {"jobName": CRAWLER}, False),
]
ARRIVALS = [
    ("s3_object_created", {"bucket__name": RAW, "object__key": "input/sales_data_csv/d.csv"}, True),
    (
        "s3_object_created",
        {"bucket__name": RAW, "object__key": "input/customer_demographics_json/c.json"},
        True,
    ),
    # Must not match: the sample as published (another bucket), another folder of our
    # bucket, and a deletion under an input folder.
    ("s3_object_created", {}, False),
    ("s3_object_created", {"bucket__name": RAW, "object__key": "input/other/x.csv"}, False),
    (
        "s3_object_deleted",
        {"bucket__name": RAW, "object__key": "input/sales_data_csv/d.csv"},
        False,
    ),
]


def _case(name: str, detail: dict[str, Any]) -> str:
    return f"{name} {detail or 'as published'}"


def test_deployed_patterns_against_aws_sample_events(deployed_patterns):
    """One deployment for both rules; every case's answer, so a failure lists them all."""
    events, found = deployed_patterns
    answers = {
        rule: {
            _case(name, detail): _matches(events, found[rule], ours(sample(name), **detail))
            for name, detail, _ in cases
        }
        for rule, cases in (("failures", FAILURES), ("arrivals", ARRIVALS))
    }
    assert answers == {
        rule: {_case(name, detail): matched for name, detail, matched in cases}
        for rule, cases in (("failures", FAILURES), ("arrivals", ARRIVALS))
    }
