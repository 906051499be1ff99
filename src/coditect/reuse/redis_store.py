"""The Redis backend of the reuse store (redis-py's asyncio client), shared by all workers."""

from __future__ import annotations

from typing import Any

from coditect.errors import StoreError
from coditect.reuse.store import ReuseStore

__all__ = ["RedisReuseStore"]


class RedisReuseStore(ReuseStore):
    """Values as Redis strings under ``namespace`` + key.

    Args:
        url: A Redis URL such as ``redis://127.0.0.1:6379/0``.
        namespace: Prefix of every Redis key, so one database can hold other data too.
    """

    def __init__(self, url: str, *, namespace: str = "coditect:reuse:") -> None:
        try:
            from redis import asyncio as aioredis
        except ImportError as exc:  # pragma: no cover - redis ships with the package
            raise StoreError(
                "the Redis reuse store needs redis-py", hint="pip install redis"
            ) from exc
        self.url = url
        self.namespace = namespace
        self._redis: Any = aioredis.Redis.from_url(url, decode_responses=True)
        self._errors: tuple[type[BaseException], ...] = (aioredis.RedisError, OSError)

    async def get(self, key: str) -> str | None:
        """The value, or None."""
        try:
            value = await self._redis.get(self.namespace + key)
        except self._errors as exc:
            raise StoreError(f"reuse store {self.url} failed: {exc}") from exc
        return None if value is None else str(value)

    async def put(self, key: str, value: str) -> None:
        """Store a value."""
        try:
            await self._redis.set(self.namespace + key, value)
        except self._errors as exc:
            raise StoreError(f"reuse store {self.url} failed: {exc}") from exc

    async def items(self, prefix: str) -> list[tuple[str, str]]:
        """Matching items, sorted by key (SCAN, then one MGET)."""
        try:
            keys = [k async for k in self._redis.scan_iter(match=_glob(self.namespace + prefix))]
            values = await self._redis.mget(keys) if keys else []
        except self._errors as exc:
            raise StoreError(f"reuse store {self.url} failed: {exc}") from exc
        n = len(self.namespace)
        return sorted((k[n:], v) for k, v in zip(keys, values, strict=True) if v is not None)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


def _glob(prefix: str) -> str:
    escaped = "".join("\\" + c if c in "*?[]\\" else c for c in prefix)
    return escaped + "*"
