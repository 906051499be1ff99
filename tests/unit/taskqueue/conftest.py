"""Fixtures of the task queue tests: every sandbox backend available on this machine."""

from __future__ import annotations

import pytest

from coditect.sandbox.base import Sandbox
from coditect.sandbox.policy import SANDBOX_BACKENDS

_instances: dict[str, Sandbox] = {}


@pytest.fixture(params=sorted(SANDBOX_BACKENDS))
def sandbox(request: pytest.FixtureRequest) -> Sandbox:
    """One instance per backend for the whole session; skipped where it is unavailable."""
    name = request.param
    spec = SANDBOX_BACKENDS[name]
    if not spec.available():
        pytest.skip(f"{name} sandbox unavailable here: {spec.install_hint}")
    if name not in _instances:
        _instances[name] = spec.factory()
    return _instances[name]
