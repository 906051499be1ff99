"""Redis file index and task state stores on a real Redis server and a real Redis Cluster."""

from __future__ import annotations

import asyncio
import socket

import pytest
from _distributed_helpers import eventually, unique

from coditect.domain.actions import FileRecord
from coditect.domain.tasks import GoalState
from coditect.errors import StoreError
from coditect.state.redis_world import (
    RedisFileIndexStore,
    RedisTaskStateStore,
    TaskStateRecord,
    connect_redis,
)


def rec(path: str, size: int = 1) -> FileRecord:
    return FileRecord(path=path, size=size, mtime_ns=size * 1000, sha256=f"{size:064x}")


async def test_file_index_round_trip_and_replace(redis_client) -> None:
    store = RedisFileIndexStore(redis_client, prefix=unique("p"))
    root = unique("root")
    assert await store.load_file_index(root) == []
    first = [rec("b.py", 2), rec("a.py", 1), rec("pkg/c.py", 3)]
    await store.save_file_index(root, first)
    assert await store.load_file_index(root) == sorted(first, key=lambda r: r.path)
    second = [rec("a.py", 10), rec("d.py", 4)]
    await store.save_file_index(root, iter(second))  # any iterable
    assert await store.load_file_index(root) == second
    await store.save_file_index(root, [])
    assert await store.load_file_index(root) == []


async def test_file_indexes_of_projects_are_separate(redis_client) -> None:
    store = RedisFileIndexStore(redis_client, prefix=unique("p"))
    roots = [unique("root") for _ in range(5)]  # spread over the cluster's slots
    for i, root in enumerate(roots):
        await store.save_file_index(root, [rec(f"f{i}.py", i + 1)])
    for i, root in enumerate(roots):
        assert await store.load_file_index(root) == [rec(f"f{i}.py", i + 1)]


async def test_large_file_index_is_written_in_chunks(redis_client) -> None:
    store = RedisFileIndexStore(redis_client, prefix=unique("p"))
    root = unique("root")
    records = [rec(f"src/m{i:04d}.py", i + 1) for i in range(1200)]
    await store.save_file_index(root, records)
    assert await store.load_file_index(root) == records
    # No temporary key is left behind.
    assert await redis_client.exists(store.key(root)) == 1
    assert [k async for k in redis_client.scan_iter(match=f"{store.key(root)}:tmp:*")] == []


async def test_task_states_per_mission(redis_client) -> None:
    states = RedisTaskStateStore(redis_client, prefix=unique("p"))
    mission, other = unique("m"), unique("m")
    running = TaskStateRecord(
        mission_id=mission, task_id="t1", state=GoalState.RUNNING, worker="w1"
    )
    await states.set(running)
    await states.set(TaskStateRecord(mission_id=mission, task_id="t0", state=GoalState.PENDING))
    await states.set(TaskStateRecord(mission_id=other, task_id="t1", state=GoalState.FAILED))
    assert await states.get(mission, "t1") == running
    assert await states.get(mission, "nope") is None
    assert [r.task_id for r in await states.list_tasks(mission)] == ["t0", "t1"]
    done = running.model_copy(update={"state": GoalState.COMPLETE, "attempt": 1})
    await states.set(done)
    assert (await states.get(mission, "t1")) == done
    await states.delete_mission(mission)
    assert await states.list_tasks(mission) == []
    assert len(await states.list_tasks(other)) == 1


async def test_task_states_expire_with_a_ttl(redis_client) -> None:
    states = RedisTaskStateStore(redis_client, prefix=unique("p"), ttl_s=0.2)
    mission = unique("m")
    await states.set(TaskStateRecord(mission_id=mission, task_id="t", state=GoalState.RUNNING))

    async def gone() -> bool:
        return await states.list_tasks(mission) == []

    await eventually(gone)


async def test_connect_to_nothing_fails_with_a_hint() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"redis://127.0.0.1:{port}/0"
    with pytest.raises(StoreError) as err:
        await connect_redis(url, connect_timeout_s=0.2, max_wait_s=0.3)
    assert err.value.retryable
    assert f"is redis-server running at {url}?" in str(err.value)


async def test_store_errors_are_translated(redis_url: str) -> None:
    client = await connect_redis(redis_url)
    store = RedisFileIndexStore(client, prefix=unique("p"))
    root = unique("root")
    await client.set(store.key(root), "not a hash")
    with pytest.raises(StoreError, match="load_file_index"):
        await store.load_file_index(root)
    await client.aclose()


def test_connect_needs_exactly_one_address() -> None:
    with pytest.raises(ValueError):
        asyncio.run(connect_redis())


async def test_writes_set_the_retention_ttl(redis_client) -> None:
    hour_ms = 3600 * 1000
    files = RedisFileIndexStore(redis_client, prefix=unique("p"), ttl_s=3600)
    root = unique("root")
    await files.save_file_index(root, [rec(f"m{i}.py", i + 1) for i in range(1200)])  # chunked
    assert 0 < await redis_client.pttl(files.key(root)) <= hour_ms
    # A later save refreshes the expiry (sliding retention).
    await redis_client.pexpire(files.key(root), 5000)
    await files.save_file_index(root, [rec("a.py")])
    assert 5000 < await redis_client.pttl(files.key(root)) <= hour_ms

    states = RedisTaskStateStore(redis_client, prefix=unique("p"), ttl_s=3600)
    mission = unique("m")
    await states.set(TaskStateRecord(mission_id=mission, task_id="t", state=GoalState.RUNNING))
    assert 0 < await redis_client.pttl(states.key(mission)) <= hour_ms


async def test_without_a_ttl_nothing_expires(redis_client) -> None:
    files = RedisFileIndexStore(redis_client, prefix=unique("p"))
    root = unique("root")
    await files.save_file_index(root, [rec("a.py")])
    assert await redis_client.pttl(files.key(root)) == -1
    with pytest.raises(ValueError, match="TTL must be positive"):
        RedisFileIndexStore(redis_client, ttl_s=0)
