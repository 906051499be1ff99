"""An exact response cache: the same model, messages and settings give the stored answer.

:class:`CachingModel` keys each call by the SHA-256 of (model name, messages, settings). A hit
returns the stored response with ``reused=True``, so the ledger records it with zero new tokens
and the budget is not charged. Only deterministic calls (temperature 0) are cached by default:
caching a sampled answer would silently make it deterministic.
"""

from __future__ import annotations

import abc
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Column, DateTime, Engine, MetaData, String, Table, Text, create_engine
from sqlalchemy import select as sa_select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from coditect.errors import StoreError
from coditect.llm.base import Message, Model, ModelResponse, ModelSettings
from coditect.llm.wrapper import WrapperModel
from coditect.state.engine import EngineCalls

__all__ = ["CacheStore", "CachingModel", "MemoryCacheStore", "SqliteCacheStore", "cache_key"]

T = TypeVar("T")


def cache_key(model_name: str, messages: Sequence[Message], settings: ModelSettings) -> str:
    """SHA-256 hex digest of the canonical JSON of (model name, messages, settings)."""
    payload = {
        "model": model_name,
        "messages": [m.model_dump(mode="json") for m in messages],
        "settings": settings.model_dump(mode="json"),
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class CacheStore(abc.ABC):
    """Where cached responses live."""

    @abc.abstractmethod
    async def get(self, key: str) -> ModelResponse | None:
        """The response stored under ``key``, or None."""

    @abc.abstractmethod
    async def put(self, key: str, response: ModelResponse) -> None:
        """Store ``response`` under ``key`` (replacing any older one)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class MemoryCacheStore(CacheStore):
    """Responses in a dict (one process)."""

    def __init__(self) -> None:
        self._items: dict[str, ModelResponse] = {}

    def __len__(self) -> int:
        return len(self._items)

    async def get(self, key: str) -> ModelResponse | None:
        """The stored response, or None."""
        return self._items.get(key)

    async def put(self, key: str, response: ModelResponse) -> None:
        """Store a response."""
        self._items[key] = response


_metadata = MetaData()
llm_cache = Table(
    "llm_cache",
    _metadata,
    Column("key", String(64), primary_key=True),
    Column("model", String, nullable=False),
    Column("response_json", Text, nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
)


class SqliteCacheStore(CacheStore):
    """Responses in the ``llm_cache`` table of a SQLite database (SQLAlchemy Core).

    Args:
        url: A SQLAlchemy SQLite URL, e.g. ``sqlite:///.coditect/cache.db``.

    Raises:
        StoreError: The database cannot be opened.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self._engine: Engine = create_engine(url)
            _metadata.create_all(self._engine)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open the response cache {url}: {exc}") from exc
        self._calls = EngineCalls(self._engine, f"response cache {url}")

    async def _run(self, fn: Callable[[Any], T]) -> T:
        def work() -> T:
            try:
                with self._engine.begin() as conn:
                    return fn(conn)
            except SQLAlchemyError as exc:
                raise StoreError(f"response cache {self.url} failed: {exc}") from exc

        return await self._calls.run(work)

    async def get(self, key: str) -> ModelResponse | None:
        """The stored response, or None."""
        query = sa_select(llm_cache.c.response_json).where(llm_cache.c.key == key)
        text = await self._run(lambda conn: conn.execute(query).scalar_one_or_none())
        return None if text is None else ModelResponse.model_validate_json(text)

    async def put(self, key: str, response: ModelResponse) -> None:
        """Insert or replace a response."""
        row = {
            "key": key,
            "model": response.model_name,
            "response_json": response.model_dump_json(),
            "created": datetime.now(UTC),
        }
        stmt = sqlite_insert(llm_cache).values(row)
        stmt = stmt.on_conflict_do_update(
            index_elements=[llm_cache.c.key],
            set_={"response_json": stmt.excluded.response_json, "created": stmt.excluded.created},
        )
        await self._run(lambda conn: conn.execute(stmt))

    async def close(self) -> None:
        """Wait for the calls still running, then dispose of the connection pool."""
        await self._calls.close()


class CachingModel(WrapperModel):
    """Answers repeated identical calls from ``store``.

    Args:
        inner: The model to forward misses to.
        store: Where responses are kept.
        only_deterministic: Cache only calls with temperature 0.
    """

    def __init__(self, inner: Model, store: CacheStore, *, only_deterministic: bool = True) -> None:
        super().__init__(inner)
        self.store = store
        self.only_deterministic = only_deterministic
        self.hits = 0
        self.misses = 0

    async def request(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> ModelResponse:
        """Return the stored answer (``reused=True``) or call ``inner`` and store its answer."""
        settings = settings or ModelSettings()
        if self.only_deterministic and settings.temperature != 0:
            return await self.inner.request(messages, settings)
        started = time.perf_counter()
        key = cache_key(self.inner.name, messages, settings)
        stored = await self.store.get(key)
        if stored is not None:
            self.hits += 1
            return stored.model_copy(
                update={"reused": True, "latency_s": time.perf_counter() - started}
            )
        self.misses += 1
        response = await self.inner.request(messages, settings)
        if not response.reused:
            await self.store.put(key, response)
        return response
