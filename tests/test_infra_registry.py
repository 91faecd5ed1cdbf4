"""The registry of kinds (pipeline/infra/registry.py): every kind module holds the whole
interface the commands walk, under a name of its own."""

from __future__ import annotations

from pipeline.infra.registry import KINDS, kind_named

INTERFACE = (
    "KIND",
    "REF_STYLES",
    "plan",
    "find",
    "ensure",
    "delete",
    "down_plan",
    "status",
    "template",
    "deployer_statements",
)


def test_every_kind_holds_the_whole_interface():
    missing = [
        f"{kind.__name__}.{name}" for kind in KINDS for name in INTERFACE if not hasattr(kind, name)
    ]
    assert missing == []


def test_each_kind_has_a_name_of_its_own():
    names = [kind.KIND for kind in KINDS]
    assert len(set(names)) == len(names)
    assert all(kind_named(name).KIND == name for name in names)
    assert kind_named("dynamodb-table") is None
