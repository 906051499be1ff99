"""A Model wrapper that adds up the usage of the calls made through it (per task, per mission)."""

from __future__ import annotations

from collections.abc import Sequence

from coditect.llm.base import Message, Model, ModelResponse, ModelSettings, Usage

__all__ = ["UsageMeter"]


class UsageMeter(Model):
    """Counts input and output tokens from the wrapped model's own usage figures."""

    def __init__(self, inner: Model) -> None:
        self.inner = inner
        self.input_tokens = 0
        self.output_tokens = 0
        self.calls = 0

    @property
    def name(self) -> str:
        """The wrapped model's name."""
        return self.inner.name

    async def request(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> ModelResponse:
        """Forward the call and count its usage."""
        response = await self.inner.request(messages, settings)
        self.add(response.usage)
        return response

    def add(self, usage: Usage) -> None:
        """Count usage obtained outside this wrapper (e.g. the planner's)."""
        self.calls += 1
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
