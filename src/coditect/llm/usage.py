"""The one usage counter: fresh tokens, their cost, and what reuse saved.

A task's counter adds into its mission's counter (``parent``), so the mission's figures are
the sum of its tasks' without a second count. Both modes use it: one process counts as the
calls happen, the distributed coordinator adds what each worker's counter reported
(:meth:`UsageCounter.add_totals`).
"""

from __future__ import annotations

from collections.abc import Sequence

from coditect.llm.base import Message, Model, ModelResponse, ModelSettings
from coditect.llm.pricing import cost_usd, price_for
from coditect.llm.wrapper import WrapperModel

__all__ = ["UsageCounter"]


class UsageCounter(WrapperModel):
    """Adds up each response's usage into this counter and its ``parent``.

    A response served by the response cache (``reused``) adds nothing to the fresh counts; its
    original usage is counted in ``saved_tokens`` instead.

    Args:
        inner: The model to forward to.
        parent: A counter that every count here is added to as well (a mission's counter).
    """

    def __init__(self, inner: Model, parent: UsageCounter | None = None) -> None:
        super().__init__(inner)
        self.parent = parent
        self.calls = self.reused_calls = 0
        self.input_tokens = self.output_tokens = self.cached_input_tokens = 0
        self.saved_tokens = 0
        self.usd = 0.0

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
        if response.reused:
            self.add_totals(
                calls=1, reused_calls=1, saved_tokens=usage.input_tokens + usage.output_tokens
            )
            return
        self.add_totals(
            calls=1,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            usd=cost_usd(usage, price_for(response.model_name)),
        )

    def add_totals(
        self,
        *,
        calls: int = 0,
        reused_calls: int = 0,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cached_input_tokens: int = 0,
        saved_tokens: int = 0,
        usd: float = 0.0,
    ) -> None:
        """Count usage measured elsewhere (another process's counter), here and in the parent."""
        self.calls += calls
        self.reused_calls += reused_calls
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.cached_input_tokens += cached_input_tokens
        self.saved_tokens += saved_tokens
        self.usd += usd
        if self.parent is not None:
            self.parent.add_totals(
                calls=calls,
                reused_calls=reused_calls,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cached_input_tokens=cached_input_tokens,
                saved_tokens=saved_tokens,
                usd=usd,
            )

    def add_saved(self, tokens: int) -> None:
        """Count tokens saved by reusing a whole task result."""
        self.add_totals(saved_tokens=tokens)
