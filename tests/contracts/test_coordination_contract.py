"""One contract for the distributed mode's coordination stores: task states, values, locks.

Each runs on the in-memory fake (coditect.state.memory) and on Redis (a private server from
tests/infra), task states also on the counted Redis store the task queue uses
(coditect.state.redis_counts), so a test that uses the fake can trust it to behave like
production.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from coditect.domain.tasks import GoalState
from coditect.domain.taskstate import TaskStateRecord
from coditect.state.base import Lock, LockNotAcquiredError, MissionValueStore, TaskStateStore
from coditect.state.memory import MemoryLocks, MemoryMissionValueStore, MemoryTaskStateStore

LockFactory = Callable[..., Lock]


@pytest.fixture(params=["memory", "redis"])
async def redis_client(request: pytest.FixtureRequest) -> AsyncIterator[object | None]:
    if request.param == "memory":
        yield None
        return
    from coditect.state.redis_world import connect_redis

    client = await connect_redis(request.getfixturevalue("redis_url"), max_wait_s=3)
    yield client
    await client.aclose()


@pytest.fixture(params=["memory", "redis", "redis-counted"])
async def states(request: pytest.FixtureRequest) -> AsyncIterator[TaskStateStore]:
    if request.param == "memory":
        yield MemoryTaskStateStore()
        return
    from coditect.state.redis_counts import CountedTaskStateStore
    from coditect.state.redis_world import RedisTaskStateStore, connect_redis

    client = await connect_redis(request.getfixturevalue("redis_url"), max_wait_s=3)
    kind = CountedTaskStateStore if request.param == "redis-counted" else RedisTaskStateStore
    yield kind(client, prefix="t" + uuid.uuid4().hex[:10], ttl_s=3600)
    await client.aclose()


@pytest.fixture
def values(redis_client: object | None) -> MissionValueStore:
    if redis_client is None:
        return MemoryMissionValueStore()
    from coditect.state.redis_world import RedisMissionValueStore

    return RedisMissionValueStore(redis_client, prefix="t" + uuid.uuid4().hex[:10], ttl_s=3600)


@pytest.fixture
def make_lock(redis_client: object | None) -> LockFactory:
    name = "push." + uuid.uuid4().hex[:10]
    if redis_client is None:
        locks = MemoryLocks()
        return lambda ttl_s=30.0, wait_s=0.2: locks.lock(name, ttl_s=ttl_s, wait_s=wait_s)
    from coditect.state.redis_locks import RedisLock

    return lambda ttl_s=30.0, wait_s=0.2: RedisLock(redis_client, name, ttl_s=ttl_s, wait_s=wait_s)


def rec(task: str, state: GoalState, mission: str = "m1") -> TaskStateRecord:
    return TaskStateRecord(mission_id=mission, task_id=task, state=state, worker="w1")


async def test_task_states_replace_list_and_forget(states: TaskStateStore) -> None:
    assert await states.get("m1", "t1") is None and await states.list_tasks("m1") == []
    await states.set(rec("t2", GoalState.PENDING))
    await states.set(rec("t1", GoalState.RUNNING))
    await states.set(rec("t1", GoalState.COMPLETE))
    await states.set(rec("t1", GoalState.PENDING, mission="m2"))
    got = await states.get("m1", "t1")
    assert got is not None and got.state is GoalState.COMPLETE
    assert [(r.task_id, r.state) for r in await states.list_tasks("m1")] == [
        ("t1", GoalState.COMPLETE),
        ("t2", GoalState.PENDING),
    ]
    await states.delete_mission("m1")
    assert await states.list_tasks("m1") == []
    assert len(await states.list_tasks("m2")) == 1


async def test_mission_values_keep_maps_and_single_values_per_kind_and_mission(
    values: MissionValueStore,
) -> None:
    assert await values.fields("results", "m1") == {}
    assert await values.get_field("results", "m1", "t1") is None
    assert await values.get_value("cancel", "m1") is None
    await values.put_field("results", "m1", "t1", '{"ok": 1}')
    await values.put_field("results", "m1", "t2", "{}")
    await values.put_field("results", "m1", "t1", '{"ok": 2}')
    await values.put_field("applied", "m1", "t1", "pushed")
    await values.put_field("results", "m2", "t1", "other mission")
    assert await values.get_field("results", "m1", "t1") == '{"ok": 2}'
    assert await values.fields("results", "m1") == {"t1": '{"ok": 2}', "t2": "{}"}
    await values.delete_field("results", "m1", "t2")
    await values.delete_field("results", "m1", "absent")
    assert await values.fields("results", "m1") == {"t1": '{"ok": 2}'}
    assert await values.fields("applied", "m1") == {"t1": "pushed"}
    await values.put_value("cancel", "m1", "stop")
    await values.put_value("checkpoint", "m1", '{"tasks": []}')
    await values.put_value("checkpoint", "m1", '{"tasks": [1]}')
    assert await values.get_value("cancel", "m1") == "stop"
    assert await values.get_value("checkpoint", "m1") == '{"tasks": [1]}'
    assert await values.get_value("cancel", "m2") is None


async def test_a_lock_excludes_others_and_its_tokens_grow(make_lock: LockFactory) -> None:
    first, second = make_lock(), make_lock()
    async with first:
        token = first.fencing_token
        assert first.held and not second.held
        with pytest.raises(LockNotAcquiredError):
            await second.acquire(wait_s=0.05)
        assert await first.extend()
    assert not first.held
    with pytest.raises(LockNotAcquiredError):
        _ = first.fencing_token
    async with second:
        assert second.fencing_token > token


async def test_an_expired_hold_is_lost_to_the_next_owner(make_lock: LockFactory) -> None:
    paused, later = make_lock(ttl_s=0.05), make_lock()
    await paused.acquire()
    old = paused.fencing_token
    await asyncio.sleep(0.1)
    assert await later.acquire() > old
    assert not await paused.extend()  # the paused holder finds out before it writes
    assert not await paused.release()
    assert await later.release()
