"""A verified cascade: every task runs on the first (cheap) model first.

A task moves to the next tier only when its result failed verification or the model's answer was
unusable.

``--llm local,escalate=anthropic:claude-sonnet-4-5`` builds a :class:`CascadeModel` with two tiers
(any model spec on either side; ``escalate=`` may repeat for more tiers). The model itself does
not judge answers: the mission runner does (tests, consistency checks, an agent that could not
use the answer) and then runs the task again inside :func:`at_tier`. The tier travels with the
call's ledger context (:class:`~coditect.llm.ledger.CallContext`), so the ledger and
``coditect costs`` show which tier answered each call and what escalation cost.

Inside :func:`at_tier`, :attr:`CascadeModel.name` is that tier's model name: the response cache
keys, the budget's price and the ledger's price all see the model that really answers.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence

from coditect.errors import ConfigError
from coditect.llm.base import Message, Model, ModelResponse, ModelSettings

__all__ = ["CascadeModel", "at_tier", "current_tier", "tiers_of"]

_TIER: contextvars.ContextVar[int | None] = contextvars.ContextVar("coditect_tier", default=None)


def current_tier() -> int:
    """The tier calls made now go to (0 outside :func:`at_tier`)."""
    return _TIER.get() or 0


@contextlib.contextmanager
def at_tier(tier: int) -> Iterator[None]:
    """Send the cascade calls made inside this block (and tasks started in it) to ``tier``."""
    if tier < 0:
        raise ValueError(f"tier must be >= 0, not {tier}")
    token = _TIER.set(tier)
    try:
        yield
    finally:
        _TIER.reset(token)


class CascadeModel(Model):
    """Tiers of models, cheapest first; a call goes to the tier of :func:`current_tier`.

    Args:
        tiers: Two or more models; a tier past the last one answers with the last.

    Raises:
        ConfigError: Fewer than two tiers.
    """

    def __init__(self, tiers: Sequence[Model]) -> None:
        if len(tiers) < 2:
            raise ConfigError("a cascade needs at least two models (local,escalate=<spec>)")
        self.tiers = tuple(tiers)

    @property
    def name(self) -> str:
        """The active tier's name inside :func:`at_tier`, else ``cascade(<tier0>><tier1>...)``."""
        if _TIER.get() is None:
            return "cascade(" + ">".join(m.name for m in self.tiers) + ")"
        return self.model_at(current_tier()).name

    def model_at(self, tier: int) -> Model:
        """The model of ``tier`` (the last one past the end)."""
        return self.tiers[min(tier, len(self.tiers) - 1)]

    async def request(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> ModelResponse:
        """Forward to the current tier's model (its name is on the response)."""
        return await self.model_at(current_tier()).request(messages, settings)

    async def aclose(self) -> None:
        """Close each distinct tier once."""
        seen: set[int] = set()
        for model in self.tiers:
            if id(model) not in seen:
                seen.add(id(model))
                await model.aclose()


def tiers_of(model: Model) -> int:
    """How many tiers ``model`` has: a cascade's count, found through wrappers; 1 otherwise."""
    seen: Model | None = model
    for _ in range(16):  # wrappers nest a few deep; a cycle must not hang us
        if seen is None:
            break
        if isinstance(seen, CascadeModel):
            return len(seen.tiers)
        inner = getattr(seen, "inner", None) or getattr(seen, "default", None)
        seen = inner if isinstance(inner, Model) else None
    return 1
