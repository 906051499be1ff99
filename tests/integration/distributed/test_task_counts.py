"""Tasks per state kept in Redis (``coditect_tasks``) on a real Redis server and Redis Cluster."""

from __future__ import annotations

import asyncio

from _distributed_helpers import unique
from prometheus_client import REGISTRY

from coditect.domain.tasks import GoalState
from coditect.state.redis_counts import CountedTaskStateStore
from coditect.state.redis_world import TaskStateRecord
from coditect.telemetry import metrics

ZERO = {s.value: 0 for s in GoalState}


def rec(mission: str, task: str, state: GoalState, **kw) -> TaskStateRecord:
    return TaskStateRecord(mission_id=mission, task_id=task, state=state, **kw)


def gauge(state: str) -> float:
    return REGISTRY.get_sample_value("coditect_tasks", {"state": state}) or 0.0


async def test_counts_follow_each_task_through_its_states(redis_client) -> None:
    store = CountedTaskStateStore(redis_client, prefix=unique("p"))
    missions = [unique("m") for _ in range(3)]  # spread over the cluster's slots
    for m in missions:
        for t in ("t1", "t2"):
            await store.set(rec(m, t, GoalState.PENDING))
    assert await store.counts() == ZERO | {"pending": 6}
    await store.set(rec(missions[0], "t1", GoalState.RUNNING, worker="w1"))
    await store.set(rec(missions[0], "t1", GoalState.RUNNING, worker="w1"))  # a heartbeat
    await store.set(rec(missions[0], "t1", GoalState.COMPLETE))
    await store.set(rec(missions[1], "t1", GoalState.FAILED, error="boom"))
    await store.set(rec(missions[2], "t2", GoalState.CANCELLED))
    want = ZERO | {"pending": 3, "complete": 1, "failed": 1, "cancelled": 1}
    assert await store.counts() == want
    assert await store.count_from_records() == want
    assert {s: gauge(s) for s in want} == want  # set after each write


async def test_concurrent_writes_of_one_task_count_it_once(redis_client) -> None:
    store = CountedTaskStateStore(redis_client, prefix=unique("p"))
    mission = unique("m")
    await store.set(rec(mission, "t1", GoalState.PENDING))
    # Two task-queue replicas (two clients) race on the same task's state.
    states = [GoalState.RUNNING, GoalState.PENDING] * 20 + [GoalState.COMPLETE]
    other = CountedTaskStateStore(redis_client, prefix=store.counts_key.rsplit(":", 1)[0])
    await asyncio.gather(
        *(
            (store if i % 2 else other).set(rec(mission, "t1", s, attempt=i))
            for i, s in enumerate(states)
        )
    )
    counts = await store.counts()
    assert sum(counts.values()) == 1
    assert counts == await store.count_from_records()


async def test_counts_survive_a_restart_and_are_rebuilt_when_missing(
    redis_connect,
) -> None:
    prefix = unique("p")
    first = CountedTaskStateStore(await redis_connect(), prefix=prefix)
    mission = unique("m")
    for i in range(4):
        await first.set(rec(mission, f"t{i}", GoalState.PENDING))
    await first.set(rec(mission, "t0", GoalState.COMPLETE))
    want = ZERO | {"pending": 3, "complete": 1}

    # A restarted task queue (a new client and store) reports the same numbers.
    client = await redis_connect()
    restarted = CountedTaskStateStore(client, prefix=prefix)
    metrics.set_task_counts(ZERO)
    assert await restarted.ensure_counts() == want
    assert gauge("pending") == 3 and gauge("complete") == 1

    # Counts lost (or kept from before this feature): rebuilt from the task states.
    await client.delete(restarted.counts_key)
    assert await restarted.counts() == ZERO
    assert await restarted.ensure_counts() == want
    assert await restarted.counts() == want
    await restarted.set(rec(mission, "t1", GoalState.RUNNING))
    assert await restarted.counts() == want | {"pending": 2, "running": 1}

    # A count gone wrong (a replica died between the two writes) is repaired on demand.
    await client.hincrby(restarted.counts_key, "failed", 5)
    assert await restarted.rebuild_counts() == want | {"pending": 2, "running": 1}


async def test_poll_task_counts_refreshes_the_gauge(redis_client) -> None:
    store = CountedTaskStateStore(redis_client, prefix=unique("p"))
    await store.set(rec(unique("m"), "t1", GoalState.BLOCKED))
    metrics.set_task_counts(ZERO)
    poller = asyncio.create_task(metrics.poll_task_counts(store.counts, interval_s=0.05))
    try:
        async with asyncio.timeout(5):
            while gauge("blocked") != 1:
                await asyncio.sleep(0.02)
    finally:
        poller.cancel()
        await asyncio.gather(poller, return_exceptions=True)


async def test_each_write_refreshes_the_mission_hash_ttl(redis_client) -> None:
    store = CountedTaskStateStore(redis_client, prefix=unique("p"), ttl_s=3600)
    mission = unique("m")
    await store.set(rec(mission, "t1", GoalState.PENDING))
    assert 0 < await redis_client.pttl(store.key(mission)) <= 3600 * 1000
    await redis_client.pexpire(store.key(mission), 5000)
    await store.set(rec(mission, "t1", GoalState.PENDING))  # unchanged state: still refreshed
    assert 5000 < await redis_client.pttl(store.key(mission)) <= 3600 * 1000
    assert await redis_client.pttl(store.counts_key) == -1  # the counts never expire
