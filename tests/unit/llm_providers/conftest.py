"""Fixtures for the provider tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from coditect.llm import guard

from .helpers import SleepRecorder


@pytest.fixture(autouse=True)
def _no_model_requests() -> Iterator[None]:
    # Same default as the suite-wide conftest: a test must opt in to (mocked) requests.
    with guard.override_allow_model_requests(False):
        yield


@pytest.fixture
def sleep() -> SleepRecorder:
    return SleepRecorder()
