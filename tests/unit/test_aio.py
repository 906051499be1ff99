"""A cancel() that a library lost still ends the task (pure asyncio)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from coditect.aio import cancel_and_wait, raise_if_cancelling


async def test_a_task_that_lost_the_first_cancel_is_cancelled_again() -> None:
    rounds = 0

    async def poll() -> None:  # a polling loop whose client library swallows one cancel
        nonlocal rounds
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(10)
        while True:
            rounds += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(poll())
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await cancel_and_wait(task, again_s=0.05)
    assert task.cancelled() and rounds >= 1


async def test_ended_and_slow_tasks() -> None:
    ended = asyncio.create_task(asyncio.sleep(0))
    await ended
    cleaned = []

    async def slow_cleanup() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.shield(asyncio.sleep(0.02))  # cleanup shorter than again_s
            cleaned.append(True)

    slow = asyncio.create_task(slow_cleanup())
    await asyncio.sleep(0)
    await cancel_and_wait(ended, slow, again_s=0.5)
    assert slow.cancelled() and cleaned == [True]
    await cancel_and_wait()  # nothing to do


async def test_raise_if_cancelling_only_when_asked() -> None:
    raise_if_cancelling()  # not asked: nothing happens

    async def swallowed() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(10)
        raise_if_cancelling()

    task = asyncio.create_task(swallowed())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
