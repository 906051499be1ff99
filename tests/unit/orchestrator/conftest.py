"""Scripted models shared by the orchestrator tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from coditect.llm.demo import fibonacci_model
from coditect.llm.testing import FunctionModel


@pytest.fixture
def no_tests_model() -> Callable[[], FunctionModel]:
    """A Fibonacci model whose every answer for tests is unusable (the code is right)."""

    def make() -> FunctionModel:
        base = fibonacci_model()

        async def answer(messages, settings):
            if "test" in settings.purpose:
                return "I would test it by hand."
            return await base.request(messages, settings)

        return FunctionModel(answer)

    return make
