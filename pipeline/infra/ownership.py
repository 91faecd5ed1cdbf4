"""Ownership: whether what exists under one of our names carries this prefix's marks, and
the one-line refusal when it does not (docs/aws.md, "Ownership")."""

from __future__ import annotations

from pipeline.config import PipelineConfig
from pipeline.errors import DeployError
from pipeline.infra.shared import (
    MANAGED_BY_KEY,
    MANAGED_BY_VALUE,
    PREFIX_KEY,
    Found,
    contains,
    tags,
)

# HeadBucket answers 403: the bucket exists and this identity may not list it. S3
# names are global, so it is most likely another account's.
NAME_TAKEN = "the name is taken: HeadBucket answers 403 (another account's bucket?)"


def by_tags(config: PipelineConfig, kind: str, name: str, found_tags: dict[str, str]) -> Found:
    """An existing resource, ours when its tags carry our marks."""
    if contains(tags(config), found_tags):
        return Found(kind, name, exists=True, ours=True)
    owner = found_tags.get(PREFIX_KEY)
    if found_tags.get(MANAGED_BY_KEY) == MANAGED_BY_VALUE and owner:
        why = f"tagged for deploy.py prefix {owner!r}, not {config.prefix!r}"
        return Found(kind, name, exists=True, ours=False, why_not_ours=why, owner=owner)
    if found_tags:
        why = f"not tagged {MANAGED_BY_KEY}={MANAGED_BY_VALUE}, {PREFIX_KEY}={config.prefix}"
    else:
        why = "it has no tags"
    return Found(kind, name, exists=True, ours=False, why_not_ours=why)


def not_ours_error(config: PipelineConfig, foreign: list[Found]) -> DeployError:
    """The error for resources that carry one of our names but not our marks (one line)."""
    taken = [f.name for f in foreign if f.kind == "s3-bucket" and f.why_not_ours == NAME_TAKEN]
    if taken and len(taken) == len(foreign):
        return DeployError(
            f"bucket name{'s' if len(taken) > 1 else ''} {', '.join(taken)} taken: S3 bucket "
            "names are global and HeadBucket answers 403 (another account owns the name, or "
            "this identity may not list it); choose another --prefix"
        )
    listed = "; ".join(f"{f.kind} {f.name} ({f.why_not_ours})" for f in foreign)
    hints = ["choose another --prefix (every name derives from it)"]
    if any(f.kind == "s3-bucket" and f.why_not_ours == "it has no tags" for f in foreign):
        hints.append(
            "if an untagged bucket is an empty one that an interrupted `up` created just before "
            "it could tag it, delete it yourself and run `up` again"
        )
    return DeployError(
        f"refusing to touch prefix {config.prefix!r}: these already exist and deploy.py did not "
        f"create them for this prefix, so it will neither change nor delete them: {listed}. "
        f"To go on, {'; '.join(hints)}."
    )
