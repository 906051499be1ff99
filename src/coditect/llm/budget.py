"""Mission budgets: stop before the LLM call that would spend more than allowed.

One :class:`Budget` is shared by every model a mission's tasks use. :class:`BudgetModel`
estimates the next call (prompt characters / 4 plus ``settings.max_tokens``, priced), reserves
that estimate, and raises :class:`~coditect.errors.BudgetExceededError` *before* calling when
spent + reserved + estimate would pass a limit. After the call the reservation is replaced by the
actual usage. Reservations make concurrent tasks safe: two calls cannot both squeeze into the
last dollar.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from coditect.errors import BudgetExceededError
from coditect.llm.base import Message, Model, ModelResponse, ModelSettings
from coditect.llm.pricing import cost_usd, estimate_usd, price_for
from coditect.llm.wrapper import WrapperModel

__all__ = ["Budget", "BudgetModel", "Reservation", "estimate_tokens"]

CHARS_PER_TOKEN = 4


def estimate_tokens(messages: Sequence[Message], settings: ModelSettings) -> tuple[int, int]:
    """A rough ``(input, output)`` token estimate: characters / 4, and the output cap."""
    chars = sum(len(m.content) for m in messages)
    return -(-chars // CHARS_PER_TOKEN), settings.max_tokens


@dataclass(frozen=True)
class Reservation:
    """What one in-flight call has provisionally spent."""

    tokens: int
    usd: float


class Budget:
    """Token and USD limits shared across a mission's calls (None = unlimited).

    Args:
        max_usd: Most the mission may spend, in US dollars.
        max_tokens: Most input plus output tokens the mission may use.
    """

    def __init__(self, *, max_usd: float | None = None, max_tokens: int | None = None) -> None:
        self.max_usd = max_usd
        self.max_tokens = max_tokens
        self.spent_usd = 0.0
        self.spent_tokens = 0
        self._reserved_usd = 0.0
        self._reserved_tokens = 0
        self._lock = threading.Lock()

    def remaining_usd(self) -> float | None:
        """Dollars left after spending and reservations, or None without a USD limit."""
        if self.max_usd is None:
            return None
        return self.max_usd - self.spent_usd - self._reserved_usd

    def remaining_tokens(self) -> int | None:
        """Tokens left after spending and reservations, or None without a token limit."""
        if self.max_tokens is None:
            return None
        return self.max_tokens - self.spent_tokens - self._reserved_tokens

    def reserve(self, *, tokens: int, usd: float, what: str = "the next LLM call") -> Reservation:
        """Set aside an estimate for a call about to be made.

        Raises:
            BudgetExceededError: The estimate does not fit in what is left (not retryable).
        """
        with self._lock:
            left_tokens, left_usd = self.remaining_tokens(), self.remaining_usd()
            if left_tokens is not None and tokens > left_tokens:
                raise BudgetExceededError(
                    f"token budget exceeded: {what} may use ~{tokens} tokens, "
                    f"{max(left_tokens, 0)} of {self.max_tokens} left",
                    hint="raise the token budget or lower max_tokens",
                )
            if left_usd is not None and usd > left_usd:
                raise BudgetExceededError(
                    f"USD budget exceeded: {what} may cost ~${usd:.4f}, "
                    f"${max(left_usd, 0.0):.4f} of ${self.max_usd:.2f} left",
                    hint="raise the USD budget or use a cheaper model",
                )
            self._reserved_tokens += tokens
            self._reserved_usd += usd
            return Reservation(tokens=tokens, usd=usd)

    def settle(self, reservation: Reservation, *, tokens: int, usd: float) -> None:
        """Replace a reservation by what the call actually used (0, 0.0 if it failed)."""
        with self._lock:
            self._reserved_tokens -= reservation.tokens
            self._reserved_usd -= reservation.usd
            self.spent_tokens += tokens
            self.spent_usd += usd


def _target_name(model: Model, settings: ModelSettings) -> str:
    # A RoutedModel knows which model will answer; price that one, not the router.
    route = getattr(model, "route", None)
    if callable(route):
        chosen = route(settings)
        if isinstance(chosen, Model):
            return chosen.name
    return model.name


class BudgetModel(WrapperModel):
    """Refuses calls that would exceed ``budget``; charges the budget with actual usage.

    Args:
        inner: The model to forward to.
        budget: The (usually mission-wide, shared) budget.
    """

    def __init__(self, inner: Model, budget: Budget) -> None:
        super().__init__(inner)
        self.budget = budget

    async def request(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> ModelResponse:
        """Reserve the estimate, forward the call, then charge what it used.

        Raises:
            BudgetExceededError: Before the call, when its estimate does not fit.
        """
        settings = settings or ModelSettings()
        input_est, output_est = estimate_tokens(messages, settings)
        target = _target_name(self.inner, settings)
        reservation = self.budget.reserve(
            tokens=input_est + output_est,
            usd=estimate_usd(input_est, output_est, price_for(target)),
            what=f"a call to {target}",
        )
        used_tokens, used_usd = 0, 0.0
        try:
            response = await self.inner.request(messages, settings)
            if not response.reused:
                usage = response.usage
                used_tokens = usage.input_tokens + usage.output_tokens
                used_usd = cost_usd(usage, price_for(response.model_name))
        finally:
            self.budget.settle(reservation, tokens=used_tokens, usd=used_usd)
        return response
