"""RedisLock on a real Redis server and on a real 3-node Redis Cluster."""

from __future__ import annotations

import asyncio

import pytest
from _distributed_helpers import eventually, unique

from coditect.state.redis_locks import LockNotAcquiredError, RedisLock


async def test_mutual_exclusion_between_two_clients(redis_connect) -> None:
    name = unique("lock")
    a = RedisLock(await redis_connect(), name, ttl_s=10)
    b = RedisLock(await redis_connect(), name, ttl_s=10)
    token_a = await a.acquire()
    assert await b.try_acquire() is None
    with pytest.raises(LockNotAcquiredError) as err:
        await b.acquire(wait_s=0.2)
    assert err.value.retryable
    assert await a.release()
    token_b = await b.acquire(wait_s=1)
    assert token_b > token_a
    assert await b.release()


async def test_expiry_lets_another_acquire_with_a_higher_fencing_token(redis_connect) -> None:
    name = unique("lock")
    a = RedisLock(await redis_connect(), name, ttl_s=0.2)
    redis_client = await redis_connect()
    b = RedisLock(redis_client, name, ttl_s=10)
    token_a = await a.acquire()

    async def b_got_it() -> bool:
        return await b.try_acquire() is not None

    await eventually(b_got_it)
    assert b.fencing_token > token_a
    # The expired holder can neither release nor prolong the new holder's lock.
    assert not await a.release()
    assert not await a.extend()
    assert await redis_client.get(b.key) is not None
    assert await b.release()


async def test_release_by_a_non_owner_does_nothing(redis_connect) -> None:
    name = unique("lock")
    owner = RedisLock(await redis_connect(), name, ttl_s=10)
    intruder = RedisLock(await redis_connect(), name, ttl_s=10)
    await owner.acquire()
    assert not await intruder.release()
    assert not await intruder.extend(60)
    assert await intruder.try_acquire() is None
    assert await owner.release()
    assert not await owner.release()  # a second release is a no-op too


async def test_extend_keeps_the_lock(redis_client) -> None:
    name = unique("lock")
    a = RedisLock(redis_client, name, ttl_s=0.3)
    b = RedisLock(redis_client, name, ttl_s=10)
    await a.acquire()
    assert await a.extend(10)
    assert await redis_client.pttl(a.key) > 5000
    assert await b.try_acquire() is None
    assert await a.release()


async def test_context_manager_serialises_concurrent_holders(redis_client) -> None:
    name = unique("lock")
    inside = 0
    max_inside = 0
    tokens: list[int] = []

    async def worker() -> None:
        nonlocal inside, max_inside
        async with RedisLock(redis_client, name, ttl_s=5, wait_s=5) as lock:
            inside += 1
            max_inside = max(max_inside, inside)
            tokens.append(lock.fencing_token)
            await asyncio.sleep(0.01)
            inside -= 1

    await asyncio.gather(*(worker() for _ in range(8)))
    assert max_inside == 1
    assert tokens == sorted(tokens) and len(set(tokens)) == 8


async def test_lock_and_counter_share_a_cluster_slot(redis_client) -> None:
    lock = RedisLock(redis_client, unique("lock"))
    assert lock.key.split("{")[1].split("}")[0] == lock.fence_key.split("{")[1].split("}")[0]
    # Many names spread over the cluster's nodes; each acquire runs its script in one slot.
    locks = [RedisLock(redis_client, unique("lock"), ttl_s=5) for _ in range(20)]
    for lk in locks:
        assert await lk.try_acquire() == 1
    for lk in locks:
        assert await lk.release()


async def test_fencing_token_needs_a_hold(redis_client) -> None:
    lock = RedisLock(redis_client, unique("lock"))
    assert not lock.held
    with pytest.raises(LockNotAcquiredError):
        _ = lock.fencing_token
    await lock.acquire()
    assert lock.held
    await lock.release()
    assert not lock.held


@pytest.mark.parametrize("name", ["", "a{b}", "has space", "x" * 201])
def test_invalid_lock_names_are_rejected(name: str) -> None:
    with pytest.raises(ValueError, match="invalid lock name"):
        RedisLock(None, name)  # type: ignore[arg-type]


async def test_the_fence_counter_expires_after_the_retention(redis_client) -> None:
    kept = RedisLock(redis_client, unique("lock"), ttl_s=5)
    await kept.acquire()
    assert await redis_client.pttl(kept.fence_key) == -1  # no fence_ttl_s: kept forever
    await kept.release()

    lock = RedisLock(redis_client, unique("lock"), ttl_s=5, fence_ttl_s=3600)
    await lock.acquire()
    assert 5000 < await redis_client.pttl(lock.fence_key) <= 3600 * 1000
    await lock.release()
    # The fence outlives the lock even when the retention is shorter than the lock's TTL.
    short = RedisLock(redis_client, unique("lock"), ttl_s=60, fence_ttl_s=1)
    await short.acquire()
    assert 1000 < await redis_client.pttl(short.fence_key) <= 60 * 1000
    # Read the fence first: the later read of the lock can only be lower when both expire together.
    fence_ms = await redis_client.pttl(short.fence_key)
    assert await redis_client.pttl(short.key) <= fence_ms
    await short.release()
    with pytest.raises(ValueError, match="fence_ttl_s must be positive"):
        RedisLock(redis_client, unique("lock"), fence_ttl_s=0)
