"""A distributed lock on Redis (one server or a Redis Cluster) with fencing tokens.

Keys, for a lock named ``n`` (the hash tag ``{n}`` keeps both in one cluster slot)::

    coditect:lock:{n}          value: the owner's random id, expires after ttl_s (SET NX PX)
    coditect:lock:{n}:fence    counter, INCR'd on every successful acquire

With ``fence_ttl_s`` the counter expires that long (and never sooner than the lock's TTL)
after the last acquire, set in the acquire script; without it the counter is kept forever.
Acquiring sets the owner key and increments the counter in one Lua script, so every holder
gets a fencing token larger than any earlier holder's. A resource that stores the highest token
it has seen can reject writes from a holder whose lock expired while it was paused (the
classic GC-pause / network-partition problem that a TTL alone cannot solve). Release and
extend compare the owner id first, so a holder whose lock expired cannot delete or prolong
the lock of the next holder.
"""

from __future__ import annotations

import asyncio
import random
import re
import uuid
from types import TracebackType
from typing import TYPE_CHECKING, Any

from coditect.errors import StoreError
from coditect.state.base import Lock, LockNotAcquiredError

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

    RedisClient = Redis | RedisCluster

__all__ = ["LockNotAcquiredError", "RedisLock"]

_NAME = re.compile(r"^[^{}\s]{1,200}$")

# KEYS[1] owner key, KEYS[2] fence counter; ARGV[1] owner id, ARGV[2] ttl in ms, ARGV[3] the
# fence counter's TTL in ms ("" keeps it forever).
_ACQUIRE = """
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local token = redis.call('incr', KEYS[2])
  if ARGV[3] ~= '' then redis.call('pexpire', KEYS[2], ARGV[3]) end
  return token
end
return 0
"""

# Compare-and-delete: only the owner releases.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""

# Compare-and-pexpire: only the owner extends.
_EXTEND = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


class RedisLock(Lock):
    """A named lock with a TTL and a fencing token, usable as an async context manager.

    Example::

        async with RedisLock(client, "mission-42", ttl_s=30) as lock:
            await storage.write(data, fencing_token=lock.fencing_token)

    One instance is one would-be holder; create one per task that needs the lock.

    Args:
        client: A ``redis.asyncio.Redis`` or ``redis.asyncio.RedisCluster``.
        name: Lock name (no braces or whitespace).
        ttl_s: The lock expires this long after acquire or the last :meth:`extend`.
        wait_s: How long ``async with`` waits to acquire before raising.
        prefix: Key prefix.
        fence_ttl_s: If set, the fence counter expires this long after the last acquire
            (at least ``ttl_s``). Tokens start again at 1 after that, so give a time far
            longer than any holder can be paused (distributed mode: the state retention).
    """

    def __init__(
        self,
        client: RedisClient,
        name: str,
        *,
        ttl_s: float = 30.0,
        wait_s: float = 10.0,
        prefix: str = "coditect:lock",
        fence_ttl_s: float | None = None,
    ) -> None:
        if not _NAME.match(name):
            raise ValueError(f"invalid lock name {name!r}: 1-200 chars, no braces or whitespace")
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        if fence_ttl_s is not None and fence_ttl_s <= 0:
            raise ValueError("fence_ttl_s must be positive (or None: the fence never expires)")
        self.name = name
        self.ttl_s = ttl_s
        self.wait_s = wait_s
        self.key = f"{prefix}:{{{name}}}"
        self.fence_key = f"{self.key}:fence"
        self.fence_ttl_s = None if fence_ttl_s is None else max(fence_ttl_s, ttl_s)
        self._client = client
        self._owner = uuid.uuid4().hex
        self._fencing_token: int | None = None
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)
        self._extend = client.register_script(_EXTEND)

    @property
    def fencing_token(self) -> int:
        """The token of the current hold (increases with every acquire of this lock name).

        Raises:
            LockNotAcquiredError: The lock is not held by this instance.
        """
        if self._fencing_token is None:
            raise LockNotAcquiredError(f"lock {self.name!r} is not held", retryable=False)
        return self._fencing_token

    @property
    def held(self) -> bool:
        """True between a successful acquire and release (the TTL may have run out meanwhile)."""
        return self._fencing_token is not None

    async def _run(self, script: Any, keys: list[str], args: list[Any]) -> int:
        from redis.exceptions import RedisError

        try:
            return int(await script(keys=keys, args=args))
        except RedisError as exc:
            raise StoreError(f"redis lock {self.name!r}: {exc}") from exc

    async def try_acquire(self) -> int | None:
        """One attempt; returns the fencing token, or None if someone else holds the lock."""
        ttl_ms = max(int(self.ttl_s * 1000), 1)
        fence_ms = "" if self.fence_ttl_s is None else max(int(self.fence_ttl_s * 1000), 1)
        token = await self._run(
            self._acquire, [self.key, self.fence_key], [self._owner, ttl_ms, fence_ms]
        )
        if token == 0:
            return None
        self._fencing_token = token
        return token

    async def acquire(self, wait_s: float | None = None) -> int:
        """Acquire, retrying with jittered backoff for at most ``wait_s``; return the token.

        Raises:
            LockNotAcquiredError: Still held by someone else when the wait ended.
            StoreError: Redis failed.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.wait_s if wait_s is None else wait_s)
        delay_s = 0.01
        while True:
            token = await self.try_acquire()
            if token is not None:
                return token
            remaining_s = deadline - loop.time()
            if remaining_s <= 0:
                raise LockNotAcquiredError(
                    f"lock {self.name!r} is held by another owner",
                    hint="retry later, or check for a stuck holder (the lock expires after its TTL)",
                )
            await asyncio.sleep(min(delay_s * (0.5 + random.random()), remaining_s))
            delay_s = min(delay_s * 2, 0.5)

    async def release(self) -> bool:
        """Release if this instance still owns the lock; False if it had expired or was taken."""
        self._fencing_token = None
        return await self._run(self._release, [self.key], [self._owner]) == 1

    async def extend(self, ttl_s: float | None = None) -> bool:
        """Reset the TTL to ``ttl_s`` (default: the lock's) if still owned; False otherwise."""
        ttl_ms = max(int((ttl_s or self.ttl_s) * 1000), 1)
        return await self._run(self._extend, [self.key], [self._owner, ttl_ms]) == 1

    async def __aenter__(self) -> RedisLock:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release()
