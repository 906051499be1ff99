"""How many tasks are in each state, over every mission, kept in Redis (``coditect_tasks``).

The task queue writes every task state through :class:`CountedTaskStateStore`. Each write
swaps the task's record in its mission's hash and returns the previous one (one Lua script on
that hash, so two concurrent writes of one task cannot both count the same old state); when
the state changed, a second script moves one task between the states in the counts hash::

    coditect:tasks:{<mission_id>}    hash  task_id -> TaskStateRecord JSON   (the truth)
    coditect:task-counts             hash  state -> number of tasks in it     (HINCRBY)

The counts live in Redis, not in the process: a restarted task queue reports the same numbers,
and several replicas agree (each also polls the hash, see
:func:`coditect.telemetry.metrics.poll_task_counts`). Two scripts and not one because the keys
are in different Redis Cluster slots. A re-written identical state counts nothing, so retried
writes are harmless.

When the counts hash is missing (the first start with this feature, or Redis lost its data)
:meth:`CountedTaskStateStore.ensure_counts` rebuilds it from the task hashes (SCAN, every
cluster node); :meth:`~CountedTaskStateStore.rebuild_counts` does so on demand, e.g. after a
task queue died between the two scripts of a write, which leaves one task counted in its old
state.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from coditect.domain.tasks import GoalState
from coditect.errors import StoreError
from coditect.state.redis_world import RedisTaskStateStore, TaskStateRecord
from coditect.telemetry import metrics

if TYPE_CHECKING:
    from coditect.state.redis_world import RedisClient

__all__ = ["CountedTaskStateStore"]

_log = logging.getLogger(__name__)

# KEYS[1] the mission's task hash; ARGV[1] task id, ARGV[2] the new record, ARGV[3] the hash's
# new TTL in ms ("" keeps it). Returns the old record.
_SWAP = """
local old = redis.call('hget', KEYS[1], ARGV[1])
redis.call('hset', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] ~= '' then redis.call('pexpire', KEYS[1], ARGV[3]) end
return old
"""

# KEYS[1] the counts hash; ARGV[1] the old state ("" for a new task), ARGV[2] the new state.
_MOVE = """
if ARGV[1] ~= '' then redis.call('hincrby', KEYS[1], ARGV[1], -1) end
redis.call('hincrby', KEYS[1], ARGV[2], 1)
return redis.call('hgetall', KEYS[1])
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _all_states(counts: dict[str, int]) -> dict[str, int]:
    return {s.value: counts.get(s.value, 0) for s in GoalState} | counts


class CountedTaskStateStore(RedisTaskStateStore):
    """Task state records that also keep the number of tasks per state (see the module doc).

    Args:
        client: A ``redis.asyncio.Redis`` or ``RedisCluster``.
        prefix: Key prefix (the counts hash is ``<prefix>:task-counts``).
        ttl_s: If set, a mission's task hash expires this long after its last write (set in
            the same script as the write). The counts hash never expires.
    """

    def __init__(
        self, client: RedisClient, *, prefix: str = "coditect", ttl_s: float | None = None
    ) -> None:
        super().__init__(client, prefix=prefix, ttl_s=ttl_s)
        self._redis: Any = client
        self._key_prefix = prefix
        self.counts_key = f"{prefix}:task-counts"
        self._swap = client.register_script(_SWAP)
        self._move = client.register_script(_MOVE)

    async def set(self, record: TaskStateRecord) -> None:
        """Store ``record`` and move the task to its new state in the counts."""
        from redis.exceptions import RedisError

        new = record.state.value
        try:
            raw = await self._swap(
                keys=[self.key(record.mission_id)],
                args=[record.task_id, record.model_dump_json(), self._ttl_ms or ""],
            )
            old = TaskStateRecord.model_validate_json(raw).state.value if raw else ""
            if old == new:
                return
            flat = await self._move(keys=[self.counts_key], args=[old, new])
        except RedisError as exc:
            raise StoreError(f"redis set task state: {exc}") from exc
        metrics.TASKS.labels(state=new).inc()
        metrics.set_task_counts(_all_states(_pairs(flat)))

    async def counts(self) -> dict[str, int]:
        """Tasks per state now (every state named, 0 when none), as kept in Redis."""
        from redis.exceptions import RedisError

        try:
            raw: dict[Any, Any] = await self._redis.hgetall(self.counts_key)
        except RedisError as exc:
            raise StoreError(f"redis read task counts: {exc}") from exc
        return _all_states({_text(k): int(v) for k, v in raw.items()})

    async def count_from_records(self) -> dict[str, int]:
        """Tasks per state, counted from every mission's task hash (a full SCAN)."""
        from redis.exceptions import RedisError

        found: Counter[str] = Counter()
        pattern = f"{self._key_prefix}:tasks:{{*}}"
        try:
            async for key in self._redis.scan_iter(match=pattern, count=500):
                name = _text(key)
                if not name.endswith("}"):
                    continue
                for value in (await self._redis.hgetall(name)).values():
                    found[TaskStateRecord.model_validate_json(value).state.value] += 1
        except RedisError as exc:
            raise StoreError(f"redis scan task states: {exc}") from exc
        return _all_states(dict(found))

    async def rebuild_counts(self) -> dict[str, int]:
        """Replace the counts with :meth:`count_from_records`; returns them.

        Writes made by other replicas while the SCAN runs may be counted twice or not at all:
        rebuild when the task queues are idle, or accept an error of those few tasks.
        """
        from redis.exceptions import RedisError

        fresh = await self.count_from_records()
        try:
            await self._redis.hset(self.counts_key, mapping=fresh)
        except RedisError as exc:
            raise StoreError(f"redis write task counts: {exc}") from exc
        metrics.set_task_counts(fresh)
        return fresh

    async def ensure_counts(self) -> dict[str, int]:
        """The counts, rebuilt first if Redis has none (called when the task queue starts)."""
        from redis.exceptions import RedisError

        try:
            present = await self._redis.exists(self.counts_key)
        except RedisError as exc:
            raise StoreError(f"redis read task counts: {exc}") from exc
        if present:
            current = await self.counts()
            metrics.set_task_counts(current)
            return current
        current = await self.rebuild_counts()
        _log.info("task counts rebuilt from the task states: %s", current)
        return current


def _pairs(flat: Any) -> dict[str, int]:
    """HGETALL as a Lua script returns it (a flat list) -> {field: int}."""
    items = list(flat or [])
    return {_text(items[i]): int(items[i + 1]) for i in range(0, len(items) - 1, 2)}
