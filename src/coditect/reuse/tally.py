"""A Model wrapper counting fresh tokens, their cost, and what the response cache saved."""

from __future__ import annotations

from collections.abc import Sequence

from coditect.llm.base import Message, Model, ModelResponse, ModelSettings
from coditect.llm.pricing import cost_usd, price_for

__all__ = ["TokenTally"]


class TokenTally(Model):
    """Adds up each response's usage into this tally and its ``parent`` (a mission's tally).

    A response served by the response cache (``reused``) adds nothing to the fresh counts; its
    original usage is counted in ``saved_tokens`` instead.
    """

    def __init__(self, inner: Model, parent: TokenTally | None = None) -> None:
        self.inner = inner
        self.parent = parent
        self.calls = self.reused_calls = 0
        self.input_tokens = self.output_tokens = self.cached_input_tokens = 0
        self.saved_tokens = 0
        self.usd = 0.0

    @property
    def name(self) -> str:
        """The wrapped model's name."""
        return self.inner.name

    @property
    def total_tokens(self) -> int:
        """Fresh input plus output tokens."""
        return self.input_tokens + self.output_tokens

    async def request(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> ModelResponse:
        """Forward the call and count it."""
        response = await self.inner.request(messages, settings)
        self.count(response)
        return response

    def count(self, response: ModelResponse) -> None:
        """Count one response here and in the parent."""
        usage = response.usage
        self.calls += 1
        if response.reused:
            self.reused_calls += 1
            self.saved_tokens += usage.input_tokens + usage.output_tokens
        else:
            self.input_tokens += usage.input_tokens
            self.output_tokens += usage.output_tokens
            self.cached_input_tokens += usage.cached_input_tokens
            self.usd += cost_usd(usage, price_for(response.model_name))
        if self.parent is not None:
            self.parent.count(response)

    def add_saved(self, tokens: int) -> None:
        """Count tokens saved by reusing a whole task result."""
        self.saved_tokens += tokens
        if self.parent is not None:
            self.parent.add_saved(tokens)

    async def aclose(self) -> None:
        """Close the wrapped model."""
        await self.inner.aclose()
