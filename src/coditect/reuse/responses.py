"""The exact LLM response cache kept in a reuse store (so workers share it through Redis)."""

from __future__ import annotations

from coditect.llm.base import ModelResponse
from coditect.llm.cache import CacheStore
from coditect.reuse.store import ReuseStore

__all__ = ["ReuseStoreCache"]


class ReuseStoreCache(CacheStore):
    """Responses as JSON under ``llm:<key>`` in a :class:`ReuseStore`.

    Args:
        store: The reuse store (closed by its owner, not by this cache).
    """

    def __init__(self, store: ReuseStore) -> None:
        self.store = store

    async def get(self, key: str) -> ModelResponse | None:
        """The stored response, or None (an unreadable one counts as a miss)."""
        text = await self.store.get("llm:" + key)
        if text is None:
            return None
        try:
            return ModelResponse.model_validate_json(text)
        except ValueError:
            return None

    async def put(self, key: str, response: ModelResponse) -> None:
        """Store ``response``."""
        await self.store.put("llm:" + key, response.model_dump_json())
