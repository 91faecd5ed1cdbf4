"""The kinds of resource of the aws target, in creation order: ``plan``, ``up``, ``status``,
``template`` and the deployer policy walk it forward, ``down`` and its dry run backward.

Each kind is a module of this package holding, for its resources: ``KIND`` (the name
plans and status rows show), ``REF_STYLES`` (how CloudFormation refers to its types) and
``plan``, ``find``, ``ensure`` (create, or put drifted settings back), ``delete``,
``down_plan``, ``status``, ``template`` (its CloudFormation fragment) and
``deployer_statements`` (what the deploying identity may do to it). Adding a kind is a
new module and one line here.
"""

from __future__ import annotations

from types import ModuleType

from pipeline.infra import (
    alarm,
    buckets,
    crawler,
    database,
    events_role,
    job,
    key,
    queue,
    role,
    rule,
    runs,
    script,
    subscription,
    tables,
    topic,
    trigger,
    workflow,
    workgroup,
)

KINDS = (
    buckets,
    role,
    script,  # the job's files, in the scripts bucket
    database,
    crawler,  # with the role, into the database
    job,  # with the role, running the script
    workgroup,
    workflow,
    trigger,  # the workflow's: they start the crawler and the job
    events_role,  # with --on-arrival: the arrivals rule notifies the workflow as it
    key,
    topic,  # encrypted with the key
    subscription,
    queue,  # the failures rule's dead letters
    runs,  # down stops them after the alarm and the rules, before the rest
    rule,  # to the topic (and the queue); with --on-arrival, to the workflow
    alarm,  # to the topic
    tables,  # the Athena DDL, through the workgroup, once everything else is there
)


def kind_named(name: str) -> ModuleType | None:
    """The module of the kind whose resources are ``name`` (``"s3-bucket"``, ...), or None."""
    return next((k for k in KINDS if k.KIND == name), None)
