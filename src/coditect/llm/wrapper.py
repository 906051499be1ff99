"""The base of every model wrapper: forward to ``inner`` unless a subclass adds something.

Cross-cutting concerns (usage counting, the cost ledger, budgets, the response cache, metrics)
wrap a :class:`~coditect.llm.base.Model` instead of living inside each backend. Each wrapper
subclasses :class:`WrapperModel` and overrides only :meth:`WrapperModel.request`; the name,
closing and ``route`` look-ups pass through to the wrapped model (as pydantic-ai's
``models/wrapper.py`` does).
"""

from __future__ import annotations

from collections.abc import Sequence

from coditect.llm.base import Message, Model, ModelResponse, ModelSettings

__all__ = ["WrapperModel", "innermost"]


class WrapperModel(Model):
    """A model that forwards every call to ``inner``.

    Args:
        inner: The wrapped model.
    """

    def __init__(self, inner: Model) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        """The wrapped model's name (a wrapper never renames the model it wraps)."""
        return self.inner.name

    async def request(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> ModelResponse:
        """Forward the call unchanged."""
        return await self.inner.request(messages, settings)

    async def aclose(self) -> None:
        """Close the wrapped model."""
        await self.inner.aclose()


def innermost(model: Model) -> Model:
    """The backend under any number of wrappers."""
    while isinstance(model, WrapperModel):
        model = model.inner
    return model
