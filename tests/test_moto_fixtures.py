"""The moto patch in moto_fixtures.py fails loudly when moto changes what it wraps."""

from __future__ import annotations

import pytest
from moto.iam.access_control import IAMPolicyStatement
from moto_fixtures import _check_patched_moto


def test_the_patch_accepts_the_installed_moto():
    _check_patched_moto()  # raises when the installed moto no longer fits the patch


def test_the_patch_fails_naming_moto_when_the_wrapped_method_changes(monkeypatch):
    def changed(self, action, context=None):  # a different signature than the patch knows
        raise AssertionError("not called")

    monkeypatch.setattr(IAMPolicyStatement, "is_action_permitted", changed)
    with pytest.raises(pytest.fail.Exception, match=r"moto \d+\.\d+\.\d+ changed .*context"):
        _check_patched_moto()
