"""Redis persistence for the world model: the file index and task state, cluster-safe.

Keys (hash tags ``{...}`` keep the keys of one project or mission in one cluster slot, so
RENAME and multi-key scripts work on a Redis Cluster)::

    coditect:files:{<root_key>}       hash  path -> {"size", "mtime_ns", "sha256"} as JSON
    coditect:tasks:{<mission_id>}     hash  task_id -> TaskStateRecord as JSON
    coditect:<kind>:{<mission_id>}    hash or string  a MissionValueStore kind (results, ...)

With ``ttl_s`` set, every write also sets the key's expiry to ``ttl_s`` (in the same
non-transactional pipeline, one key, so one slot): a key lives ``ttl_s`` after its last write.
Distributed mode passes ``state_retention_s`` (default :data:`DEFAULT_STATE_RETENTION_S`).

``redis-py`` is imported lazily (``pip install redis``).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from coditect.domain.actions import FileRecord
from coditect.domain.taskstate import TaskStateRecord
from coditect.errors import StoreError
from coditect.state.base import (
    DEFAULT_STATE_RETENTION_S,
    FileIndexStore,
    MissionValueStore,
    TaskStateStore,
    ttl_ms,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

    RedisClient = Redis | RedisCluster

__all__ = [
    "DEFAULT_STATE_RETENTION_S",
    "RedisFileIndexStore",
    "RedisMissionValueStore",
    "RedisTaskStateStore",
    "TaskStateRecord",
    "connect_redis",
    "ttl_ms",
]

_CHUNK = 500


def _import_redis() -> Any:
    try:
        import redis.asyncio as aioredis
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise StoreError(
            "the Redis client is not installed", retryable=False, hint="pip install redis"
        ) from exc
    return aioredis


async def connect_redis(
    url: str | None = None,
    *,
    cluster_nodes: list[tuple[str, int]] | None = None,
    connect_timeout_s: float = 2.0,
    max_wait_s: float = 10.0,
) -> RedisClient:
    """A connected client for one server (``url``) or a Redis Cluster (``cluster_nodes``).

    Pings with exponential backoff for at most ``max_wait_s`` so that a missing server is
    reported at start instead of at the first command.

    Raises:
        StoreError: Redis did not answer in time (retryable; the hint names the address).
    """
    aioredis = _import_redis()
    from redis.asyncio.cluster import ClusterNode, RedisCluster
    from redis.exceptions import RedisClusterException, RedisError

    if (url is None) == (cluster_nodes is None):
        raise ValueError("give url or cluster_nodes, exactly one")
    where = url or ", ".join(f"{h}:{p}" for h, p in cluster_nodes or [])
    opts: dict[str, Any] = {
        "socket_connect_timeout": connect_timeout_s,
        "socket_timeout": connect_timeout_s,
    }
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_wait_s
    delay_s = 0.05
    while True:
        client: Any = None
        try:
            if url is not None:
                client = aioredis.Redis.from_url(url, **opts)
            else:
                nodes = [ClusterNode(h, p) for h, p in cluster_nodes or []]
                client = RedisCluster(startup_nodes=nodes, **opts)
            await client.ping()
            return client  # type: ignore[no-any-return]
        except (RedisError, RedisClusterException, OSError) as exc:
            if client is not None:
                await client.aclose()
            remaining_s = deadline - loop.time()
            if remaining_s <= 0:
                raise StoreError(
                    f"cannot reach Redis at {where} within {max_wait_s:g}s: {exc!r}",
                    hint=f"is redis-server running at {where}?",
                ) from exc
            await asyncio.sleep(min(delay_s, remaining_s))
            delay_s = min(delay_s * 2, 2.0)


def _text(value: bytes | str) -> str:
    # Clients made with decode_responses=True return str, the default returns bytes.
    return value.decode() if isinstance(value, bytes) else value


def _store_error(what: str, exc: Exception) -> StoreError:
    return StoreError(f"redis {what}: {exc}")


class RedisFileIndexStore(FileIndexStore):
    """The world model's file index in one Redis hash per project.

    Args:
        client: A ``redis.asyncio.Redis`` or ``RedisCluster``.
        prefix: Key prefix.
        ttl_s: If set, an index expires this long after it was last saved.
    """

    def __init__(
        self, client: RedisClient, *, prefix: str = "coditect", ttl_s: float | None = None
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl_ms = ttl_ms(ttl_s)

    def key(self, root_key: str) -> str:
        """The hash holding the index of ``root_key``."""
        return f"{self._prefix}:files:{{{root_key}}}"

    async def load_file_index(self, root_key: str) -> list[FileRecord]:
        """The saved records of ``root_key``, sorted by path."""
        from redis.exceptions import RedisError

        try:
            raw: dict[Any, Any] = await self._client.hgetall(self.key(root_key))
        except RedisError as exc:
            raise _store_error("load_file_index", exc) from exc
        records = [FileRecord(path=_text(path), **json.loads(value)) for path, value in raw.items()]
        return sorted(records, key=lambda r: r.path)

    async def save_file_index(self, root_key: str, records: Iterable[FileRecord]) -> None:
        """Replace the saved records of ``root_key`` atomically.

        The new hash is written under a temporary key in the same slot, then RENAMEd over the
        old one, so a reader sees the old index or the new one, never a mix. With a TTL the
        temporary hash gets it from its first write (a writer that dies leaves no garbage for
        longer) and RENAME carries it over.
        """
        from redis.exceptions import RedisError

        key = self.key(root_key)
        fields = {
            r.path: json.dumps({"size": r.size, "mtime_ns": r.mtime_ns, "sha256": r.sha256})
            for r in records
        }
        try:
            if not fields:
                await self._client.delete(key)
                return
            tmp = f"{key}:tmp:{uuid.uuid4().hex}"
            items = list(fields.items())
            try:
                for i in range(0, len(items), _CHUNK):
                    pipe = self._client.pipeline(transaction=False)
                    pipe.hset(tmp, mapping=dict(items[i : i + _CHUNK]))
                    if self._ttl_ms and i == 0:
                        pipe.pexpire(tmp, self._ttl_ms)
                    await pipe.execute()
                await self._client.rename(tmp, key)
            except BaseException:
                await self._client.delete(tmp)
                raise
        except RedisError as exc:
            raise _store_error("save_file_index", exc) from exc


def _now() -> datetime:
    return datetime.now(UTC)


class RedisTaskStateStore(TaskStateStore):
    """Task state records in one Redis hash per mission.

    Args:
        client: A ``redis.asyncio.Redis`` or ``RedisCluster``.
        prefix: Key prefix.
        ttl_s: If set, a mission's hash expires this long after its last write.
    """

    def __init__(
        self, client: RedisClient, *, prefix: str = "coditect", ttl_s: float | None = None
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl_ms = ttl_ms(ttl_s)

    def key(self, mission_id: str) -> str:
        """The hash holding the task states of ``mission_id``."""
        return f"{self._prefix}:tasks:{{{mission_id}}}"

    async def set(self, record: TaskStateRecord) -> None:
        """Insert or replace the record of ``(record.mission_id, record.task_id)``."""
        from redis.exceptions import RedisError

        key = self.key(record.mission_id)
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.hset(key, record.task_id, record.model_dump_json())
            if self._ttl_ms:
                pipe.pexpire(key, self._ttl_ms)
            await pipe.execute()
        except RedisError as exc:
            raise _store_error("set task state", exc) from exc

    async def get(self, mission_id: str, task_id: str) -> TaskStateRecord | None:
        """One task's record, or None."""
        from redis.exceptions import RedisError

        try:
            raw = await self._client.hget(self.key(mission_id), task_id)
        except RedisError as exc:
            raise _store_error("get task state", exc) from exc
        return None if raw is None else TaskStateRecord.model_validate_json(raw)

    async def list_tasks(self, mission_id: str) -> list[TaskStateRecord]:
        """Every record of ``mission_id``, sorted by task id."""
        from redis.exceptions import RedisError

        try:
            raw: dict[Any, Any] = await self._client.hgetall(self.key(mission_id))
        except RedisError as exc:
            raise _store_error("list task states", exc) from exc
        records = [TaskStateRecord.model_validate_json(v) for v in raw.values()]
        return sorted(records, key=lambda r: r.task_id)

    async def delete_mission(self, mission_id: str) -> None:
        """Forget every record of ``mission_id``."""
        from redis.exceptions import RedisError

        try:
            await self._client.delete(self.key(mission_id))
        except RedisError as exc:
            raise _store_error("delete task states", exc) from exc


class RedisMissionValueStore(MissionValueStore):
    """A mission's values in ``<prefix>:<kind>:{<mission_id>}``: a hash, or a string.

    Args:
        client: A ``redis.asyncio.Redis`` or ``RedisCluster``.
        prefix: Key prefix.
        ttl_s: If set, every write sets the key's expiry to this (in the same pipeline).
    """

    def __init__(
        self, client: RedisClient, *, prefix: str = "coditect", ttl_s: float | None = None
    ) -> None:
        self._client: Any = client
        self._prefix = prefix
        self._ttl_ms = ttl_ms(ttl_s)

    def key(self, kind: str, mission_id: str) -> str:
        """The key holding the mission's ``kind``."""
        return f"{self._prefix}:{kind}:{{{mission_id}}}"

    async def _hash_write(self, what: str, key: str, op: str, *args: str) -> None:
        from redis.exceptions import RedisError

        try:
            pipe = self._client.pipeline(transaction=False)
            getattr(pipe, op)(key, *args)
            if self._ttl_ms:
                pipe.pexpire(key, self._ttl_ms)
            await pipe.execute()
        except RedisError as exc:
            raise _store_error(what, exc) from exc

    async def put_field(self, kind: str, mission_id: str, name: str, value: str) -> None:
        """HSET the field and restart the key's expiry."""
        await self._hash_write(f"write {kind}", self.key(kind, mission_id), "hset", name, value)

    async def delete_field(self, kind: str, mission_id: str, name: str) -> None:
        """HDEL the field and restart the key's expiry."""
        await self._hash_write(f"delete {kind}", self.key(kind, mission_id), "hdel", name)

    async def get_field(self, kind: str, mission_id: str, name: str) -> str | None:
        """HGET the field."""
        from redis.exceptions import RedisError

        try:
            raw = await self._client.hget(self.key(kind, mission_id), name)
        except RedisError as exc:
            raise _store_error(f"read {kind}", exc) from exc
        return None if raw is None else _text(raw)

    async def fields(self, kind: str, mission_id: str) -> dict[str, str]:
        """HGETALL the key."""
        from redis.exceptions import RedisError

        try:
            raw: dict[Any, Any] = await self._client.hgetall(self.key(kind, mission_id))
        except RedisError as exc:
            raise _store_error(f"read {kind}", exc) from exc
        return {_text(k): _text(v) for k, v in raw.items()}

    async def put_value(self, kind: str, mission_id: str, value: str) -> None:
        """SET the string with the expiry."""
        from redis.exceptions import RedisError

        try:
            await self._client.set(self.key(kind, mission_id), value, px=self._ttl_ms)
        except RedisError as exc:
            raise _store_error(f"write {kind}", exc) from exc

    async def get_value(self, kind: str, mission_id: str) -> str | None:
        """GET the string."""
        from redis.exceptions import RedisError

        try:
            raw = await self._client.get(self.key(kind, mission_id))
        except RedisError as exc:
            raise _store_error(f"read {kind}", exc) from exc
        return None if raw is None else _text(raw)
