r"""Test models: answers from a function or a script, no LLM involved.

They are shipped in the package (not only under ``tests/``) so that users can test their own
agents and missions the same way CODITECT's tests do::

    model = ScriptedModel(["PLAN: ...", "def add(a, b):\\n    return a + b\\n"])
    ...
    assert len(model.calls) == 2

Neither model has a tokenizer, so the usage they report is an **estimate**: about four
characters per token (rounded up, at least 1 per message list and per answer). Accounting code
can rely on it being positive and growing with the text, not on its exact value.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Awaitable, Callable, Sequence

from coditect.errors import ModelError
from coditect.llm.base import (
    DEFAULT_CONTEXT_WINDOW,
    Message,
    Model,
    ModelResponse,
    ModelSettings,
    Usage,
)

__all__ = ["FunctionModel", "ModelCall", "ResponseFunction", "ScriptedModel", "estimate_tokens"]

ModelCall = tuple[tuple[Message, ...], ModelSettings]
"""One recorded request: the messages and the settings it was made with."""

ResponseFunction = Callable[
    [Sequence[Message], ModelSettings],
    str | ModelResponse | Awaitable[str | ModelResponse],
]
"""A function that answers a request: returns the text, or a full ModelResponse."""

_CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    """Estimate the token count of ``text``: ``ceil(len(text) / 4)``, at least 1."""
    return max(1, math.ceil(len(text) / _CHARS_PER_TOKEN))


class _RecordingModel(Model):
    """Shared behaviour: record calls, wrap text answers with estimated usage."""

    def __init__(self, name: str, context_window: int = DEFAULT_CONTEXT_WINDOW) -> None:
        self._name = name
        self._context_window = context_window
        self.calls: list[ModelCall] = []

    @property
    def name(self) -> str:
        """The model name reported in responses."""
        return self._name

    @property
    def context_window(self) -> int:
        """The window the fake claims (the embedded model's by default), for prompt budgets."""
        return self._context_window

    def _record(self, messages: Sequence[Message], settings: ModelSettings | None) -> ModelCall:
        call: ModelCall = (tuple(messages), settings or ModelSettings())
        self.calls.append(call)
        return call

    def _wrap(
        self, answer: str | ModelResponse, messages: Sequence[Message], started: float
    ) -> ModelResponse:
        if isinstance(answer, ModelResponse):
            return answer
        if not isinstance(answer, str):
            raise ModelError(
                f"{self._name}: the answer must be str or ModelResponse, "
                f"got {type(answer).__name__}"
            )
        prompt = "".join(m.content for m in messages)
        return ModelResponse(
            text=answer,
            usage=Usage(
                input_tokens=estimate_tokens(prompt), output_tokens=estimate_tokens(answer)
            ),
            model_name=self._name,
            latency_s=time.perf_counter() - started,
            finish_reason="stop",
        )


class FunctionModel(_RecordingModel):
    """A model whose answers come from a function.

    Args:
        fn: Called as ``fn(messages, settings)``; returns the answer text or a full
            :class:`ModelResponse` (returned unchanged), or an awaitable of either. Exceptions
            it raises propagate to the caller, so it can simulate failures too.
        name: The model name reported in responses.
        context_window: The context window it claims (prompts are budgeted against it).

    Attributes:
        calls: Every request made, as (messages, settings) in order.
    """

    def __init__(
        self,
        fn: ResponseFunction,
        *,
        name: str = "test:function",
        context_window: int = DEFAULT_CONTEXT_WINDOW,
    ) -> None:
        super().__init__(name, context_window)
        self._fn = fn

    async def request(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> ModelResponse:
        """Record the request and answer it with the function."""
        started = time.perf_counter()
        recorded_messages, recorded_settings = self._record(messages, settings)
        answer = self._fn(recorded_messages, recorded_settings)
        if inspect.isawaitable(answer):
            answer = await answer
        return self._wrap(answer, recorded_messages, started)


class ScriptedModel(_RecordingModel):
    """A model that returns prepared answers in order, whatever it is asked.

    Args:
        responses: The answers, as text or full :class:`ModelResponse` objects.
        name: The model name reported in responses.
        context_window: The context window it claims (prompts are budgeted against it).

    Attributes:
        calls: Every request made, as (messages, settings) in order.
    """

    def __init__(
        self,
        responses: Sequence[str | ModelResponse],
        *,
        name: str = "test:scripted",
        context_window: int = DEFAULT_CONTEXT_WINDOW,
    ) -> None:
        super().__init__(name, context_window)
        self._responses = list(responses)

    @property
    def remaining(self) -> int:
        """How many prepared answers have not been used yet."""
        return max(0, len(self._responses) - len(self.calls))

    async def request(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> ModelResponse:
        """Record the request and return the next prepared answer.

        Raises:
            ModelError: Every prepared answer has been used.
        """
        started = time.perf_counter()
        index = len(self.calls)
        recorded_messages, _ = self._record(messages, settings)
        if index >= len(self._responses):
            last = recorded_messages[-1].content if recorded_messages else ""
            raise ModelError(
                f"{self._name}: script exhausted, all {len(self._responses)} answers used; "
                f"request {index + 1} was not expected (last message: {last[:200]!r})"
            )
        return self._wrap(self._responses[index], recorded_messages, started)
