"""The Glue workflow and its two triggers: as made, drift, and triggers in passing states (against moto)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError
from moto_fixtures import (
    ACCOUNT,
    AFTER_CRAWL,
    CRAWLER,
    DAILY,
    JOB,
    MARKS,
    REGION,
    START,
    WORKFLOW,
    assert_repaired,
)

from pipeline import infra
from pipeline.errors import DeployError
from pipeline.infra import trigger
from pipeline.infra.operations import Operations
from pipeline.infra.shared import Account, Context

GLUE = f"arn:aws:glue:{REGION}:{ACCOUNT}"


def test_up_creates_the_workflow_with_an_on_demand_start_and_a_conditional_job_trigger(
    deployed,
):
    glue = deployed.glue
    workflow = glue.get_workflow(Name=WORKFLOW)["Workflow"]
    assert workflow["Description"] == "Sales pipeline: crawl the raw inputs, then run the ETL job"
    assert workflow["MaxConcurrentRuns"] == 1
    start = glue.get_trigger(Name=START)["Trigger"]
    assert start == {
        "Name": START,
        "WorkflowName": WORKFLOW,
        "Type": "ON_DEMAND",
        "Description": "Starts the crawler: on demand",
        "Actions": [{"CrawlerName": CRAWLER}],
        "State": "CREATED",
    }
    after = glue.get_trigger(Name=AFTER_CRAWL)["Trigger"]
    assert after == {
        "Name": AFTER_CRAWL,
        "WorkflowName": WORKFLOW,
        "Type": "CONDITIONAL",
        "Description": "Starts the ETL job when the crawl succeeded",
        "Predicate": {
            "Logical": "ANY",
            "Conditions": [
                {
                    "LogicalOperator": "EQUALS",
                    "CrawlerName": CRAWLER,
                    "CrawlState": "SUCCEEDED",
                }
            ],
        },
        "Actions": [{"JobName": JOB}],
        "State": "ACTIVATED",
    }
    for kind, name in (("workflow", WORKFLOW), ("trigger", START), ("trigger", AFTER_CRAWL)):
        assert glue.get_tags(ResourceArn=f"{GLUE}:{kind}/{name}")["Tags"] == MARKS


ON_DEMAND = Operations(schedule="none")


def test_up_with_a_schedule_makes_an_activated_scheduled_start_trigger(aws, config):
    infra.up(config, aws, tables=False, ops=Operations(schedule=DAILY))
    start = aws.glue.get_trigger(Name=START)["Trigger"]
    assert (start["Type"], start["Schedule"], start["State"]) == ("SCHEDULED", DAILY, "ACTIVATED")
    assert start["Actions"] == [{"CrawlerName": CRAWLER}]
    assert start["Description"] == "Starts the crawler: cron(0 6 * * ? *)"


def test_up_puts_back_a_schedule_changed_by_hand_and_follows_the_flag(aws, config):
    daily = Operations(schedule=DAILY)
    infra.up(config, aws, tables=False, ops=daily)
    aws.glue.update_trigger(
        Name=START, TriggerUpdate={"Name": START, "Schedule": "cron(0 1 * * ? *)"}
    )
    assert_repaired(config, aws, [f"updated trigger {START}"], daily)
    assert aws.glue.get_trigger(Name=START)["Trigger"]["Schedule"] == DAILY

    aws.glue.stop_trigger(Name=START)
    assert_repaired(config, aws, [f"activated trigger {START} (was DEACTIVATED)"], daily)

    # Without --schedule (drift repair, say) up keeps the schedule deployed.
    assert infra.up(config, aws, tables=False) == []
    kept = aws.glue.get_trigger(Name=START)["Trigger"]
    assert (kept["Type"], kept["Schedule"], kept["State"]) == ("SCHEDULED", DAILY, "ACTIVATED")

    # --schedule none: on demand; the type changes, so the trigger is replaced.
    on_demand = Operations(schedule="none")
    assert_repaired(config, aws, [f"replaced trigger {START}: SCHEDULED -> ON_DEMAND"], on_demand)
    start = aws.glue.get_trigger(Name=START)["Trigger"]
    assert (start["Type"], "Schedule" in start) == ("ON_DEMAND", False)
    assert aws.glue.get_tags(ResourceArn=f"{GLUE}:trigger/{START}")["Tags"] == MARKS


class _GlueTriggerStates:
    """moto's Glue client, but with the states a Glue trigger passes through on AWS, where
    moto's change at once: GetTrigger of ``name`` first answers the queued ``states`` (one
    a call, on moto's trigger); after DeleteTrigger of ``name`` it answers DELETING
    ``deleting`` times before moto's EntityNotFoundException, and CreateTrigger of that
    name fails meanwhile with AlreadyExistsException, as on AWS. ``calls`` records the
    trigger calls on ``name`` and the state each GetTrigger answered."""

    def __init__(self, glue, name, states=(), deleting=0):
        self._glue, self.name = glue, name
        self.states, self.deleting, self.deleting_left = list(states), deleting, 0
        self.deleted = None
        self.calls = []

    def __getattr__(self, attr):
        return getattr(self._glue, attr)

    def get_trigger(self, Name):  # noqa: N803
        if Name != self.name:
            return self._glue.get_trigger(Name=Name)
        if self.deleting_left:
            self.deleting_left -= 1
            self.calls.append(("get_trigger", "DELETING"))
            return {"Trigger": {**self.deleted, "State": "DELETING"}}
        try:
            trigger = self._glue.get_trigger(Name=Name)["Trigger"]
        except ClientError as exc:
            self.calls.append(("get_trigger", exc.response["Error"]["Code"]))
            raise
        if self.states:
            trigger = {**trigger, "State": self.states.pop(0)}
        self.calls.append(("get_trigger", trigger["State"]))
        return {"Trigger": trigger}

    def delete_trigger(self, Name):  # noqa: N803
        if Name == self.name:
            self.calls.append(("delete_trigger",))
            self.deleted = self._glue.get_trigger(Name=Name)["Trigger"]
            self.deleting_left = self.deleting
        return self._glue.delete_trigger(Name=Name)

    def create_trigger(self, **request):
        if request["Name"] == self.name:
            self.calls.append(("create_trigger", request["Type"]))
            if self.deleting_left:
                raise ClientError(
                    {
                        "Error": {
                            "Code": "AlreadyExistsException",
                            "Message": f"Trigger with name {self.name} already submitted",
                        }
                    },
                    "CreateTrigger",
                )
        return self._glue.create_trigger(**request)

    def start_trigger(self, Name):  # noqa: N803
        if Name == self.name:
            self.calls.append(("start_trigger",))
        return self._glue.start_trigger(Name=Name)


def _with_glue(clients, glue):
    return SimpleNamespace(**{**vars(clients), "glue": glue})


def test_up_replacing_the_start_trigger_creates_it_again_only_once_the_old_one_is_gone(aws, config):
    infra.up(config, aws, tables=False, ops=Operations(schedule=DAILY))
    glue = _GlueTriggerStates(aws.glue, START, deleting=2)
    sleeps = []

    changes = infra.up(
        config, _with_glue(aws, glue), tables=False, sleep=sleeps.append, ops=ON_DEMAND
    )

    assert changes == [f"replaced trigger {START}: SCHEDULED -> ON_DEMAND"]
    assert glue.calls == [
        ("get_trigger", "ACTIVATED"),  # up's ownership check
        ("get_trigger", "ACTIVATED"),
        ("delete_trigger",),
        ("get_trigger", "DELETING"),
        ("get_trigger", "DELETING"),
        ("get_trigger", "EntityNotFoundException"),
        ("create_trigger", "ON_DEMAND"),
    ]
    assert sleeps == [1.0, 1.0]
    start = aws.glue.get_trigger(Name=START)["Trigger"]
    assert (start["Type"], start["State"]) == ("ON_DEMAND", "CREATED")


def test_up_gives_up_on_a_trigger_that_stays_deleting_without_creating_it(aws, config):
    infra.up(config, aws, tables=False, ops=Operations(schedule=DAILY))
    glue = _GlueTriggerStates(aws.glue, START, deleting=31)
    sleeps = []

    with pytest.raises(DeployError) as stuck:
        infra.up(config, _with_glue(aws, glue), tables=False, sleep=sleeps.append, ops=ON_DEMAND)

    assert str(stuck.value) == (
        f"trigger {START} is still DELETING after 30s of waiting for it to be deleted; "
        "check it in the Glue console and run `deploy.py up` again"
    )
    assert sleeps == [1.0] * 30
    assert ("create_trigger", "ON_DEMAND") not in glue.calls


@pytest.mark.parametrize(
    ("deactivated", "states", "calls", "changes"),
    [
        # Being activated (say by someone in the console): waited for, not started again.
        (
            False,
            ["ACTIVATING", "ACTIVATING"],
            [("get_trigger", "ACTIVATING"), ("get_trigger", "ACTIVATING")]
            + [("get_trigger", "ACTIVATED")],
            [],
        ),
        # Being deactivated: waited for, then started.
        (
            True,
            ["DEACTIVATING"],
            [("get_trigger", "DEACTIVATING"), ("get_trigger", "DEACTIVATED")]
            + [("start_trigger",)],
            [f"activated trigger {START} (was DEACTIVATED)"],
        ),
    ],
    ids=["activating", "deactivating"],
)
def test_up_waits_out_a_trigger_in_a_passing_state_and_starts_only_a_stopped_one(
    aws, config, deactivated, states, calls, changes
):
    daily = Operations(schedule=DAILY)
    infra.up(config, aws, tables=False, ops=daily)
    if deactivated:
        aws.glue.stop_trigger(Name=START)
    glue = _GlueTriggerStates(aws.glue, START, states=states)
    sleeps = []

    made = trigger.ensure(
        Context(config, _with_glue(aws, glue), Account.of(aws), daily, sleeps.append)
    )

    assert made == changes
    assert glue.calls == calls
    assert sleeps == [1.0] * len(states)
    assert aws.glue.get_trigger(Name=START)["Trigger"]["State"] == "ACTIVATED"


def test_up_gives_up_on_a_trigger_that_stays_updating_and_leaves_it_alone(aws, config):
    daily = Operations(schedule=DAILY)
    infra.up(config, aws, tables=False, ops=daily)
    glue = _GlueTriggerStates(aws.glue, START, states=["UPDATING"] * 31)
    sleeps = []

    with pytest.raises(DeployError) as stuck:
        trigger.ensure(
            Context(config, _with_glue(aws, glue), Account.of(aws), daily, sleeps.append)
        )

    assert str(stuck.value) == (
        f"trigger {START} is still UPDATING after 30s of waiting for it to settle; "
        "check it in the Glue console and run `deploy.py up` again"
    )
    assert sleeps == [1.0] * 30
    assert glue.calls == [("get_trigger", "UPDATING")] * 31


def test_up_puts_back_the_job_trigger_changed_or_deactivated_by_hand(deployed, config):
    glue = deployed.glue
    glue.update_trigger(
        Name=AFTER_CRAWL,
        TriggerUpdate={
            "Name": AFTER_CRAWL,
            "Predicate": {
                "Logical": "ANY",
                "Conditions": [
                    {"LogicalOperator": "EQUALS", "CrawlerName": CRAWLER, "CrawlState": "FAILED"}
                ],
            },
        },
    )
    glue.stop_trigger(Name=AFTER_CRAWL)
    assert_repaired(
        config,
        deployed,
        [f"updated trigger {AFTER_CRAWL}", f"activated trigger {AFTER_CRAWL} (was DEACTIVATED)"],
    )
    condition = glue.get_trigger(Name=AFTER_CRAWL)["Trigger"]["Predicate"]["Conditions"][0]
    assert condition["CrawlState"] == "SUCCEEDED"
