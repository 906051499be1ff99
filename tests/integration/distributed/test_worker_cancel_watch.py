"""A worker's watch of its mission's cancel flag stops when the task ends, on a real Redis.

redis-py can lose a ``cancel()`` that arrives while a command's reply is being read (the command
returns its reply instead). The watch polls ``GET`` in a loop, so a lost cancel kept it polling,
and the worker waited for it: the task's lease was held until the mission was cancelled (a
distributed test's mission timed out after 120 s that way). Many short tasks make the race
likely on every run: before the fix one in three cancels was lost here.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from _distributed_helpers import unique

from coditect.distributed.taskqueue import CANCEL
from coditect.distributed.worker import Worker, WorkerSettings
from coditect.orchestrator.step import TaskStep
from coditect.state.memory import MemoryLocks
from coditect.state.redis_world import RedisMissionValueStore


def _worker(values: RedisMissionValueStore, tmp_path: Path, poll_s: float) -> Worker:
    """A worker with the real mission values; nothing else of it is used (no task is leased)."""
    locks = MemoryLocks()
    return Worker(
        settings=WorkerSettings(
            capabilities=("code",), cache_dir=tmp_path, worker_id="w1", cancel_poll_s=poll_s
        ),
        workqueue=None,  # type: ignore[arg-type]
        sink=None,  # type: ignore[arg-type]
        values=values,
        step=TaskStep(model=None, sandbox=None, allocator=None),  # type: ignore[arg-type]
        locks=lambda name: locks.lock(name),
    )


async def test_the_cancel_watch_ends_with_its_task_every_time(redis_client, tmp_path) -> None:
    worker = _worker(RedisMissionValueStore(redis_client, prefix=unique("p")), tmp_path, 0.0005)
    rng = random.Random(7)
    done = 0

    async def work() -> None:
        nonlocal done
        await asyncio.sleep(rng.random() * 0.003)
        done += 1

    async with asyncio.timeout(20):
        for _ in range(300):
            assert await worker._unless_cancelled("m1", work()) is None
    assert done == 300


async def test_a_cancelled_mission_stops_its_task(redis_client, tmp_path) -> None:
    values = RedisMissionValueStore(redis_client, prefix=unique("p"))
    worker = _worker(values, tmp_path, 0.01)
    await values.put_value(CANCEL, "m2", "cancelled by the user")
    async with asyncio.timeout(10):
        reason = await worker._unless_cancelled("m2", asyncio.sleep(30))
    assert reason == "cancelled by the user"
