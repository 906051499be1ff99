"""Cancelling asyncio tasks that call client libraries which may lose a cancellation.

On Python 3.11 a cancellation that arrives just as an inner wait completes can be lost inside
a client library: ``asyncio.wait_for`` (nats-py's fetch) returns the result instead, and a
redis-py command returns its reply (8.2 with or without a socket timeout, 5.2 with one: about
one cancel in three of a tight ``GET`` loop, measured against a real server). The
caller's ``cancel()`` is then gone, and a polling loop such as ``while True: sleep; GET``
runs on, so whoever waits for the task to end waits until the loop ends on its own: a worker
held a task's lease for the whole 120 s of its mission that way. The task still counts the
request (:meth:`asyncio.Task.cancelling`), which is what :func:`raise_if_cancelling` honours;
:func:`cancel_and_wait` repeats the cancellation until the task has ended.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["cancel_and_wait", "raise_if_cancelling"]


def raise_if_cancelling() -> None:
    """Raise :class:`asyncio.CancelledError` if the current task was asked to cancel.

    Call it after a client library's call returned in a loop that is stopped by cancelling it.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def cancel_and_wait(*tasks: asyncio.Task[Any], again_s: float = 0.5) -> None:
    """Cancel ``tasks`` and wait until every one has ended.

    A task still running ``again_s`` after a cancellation is cancelled again (a library lost
    the first one); a task that is only slow to clean up gets ``again_s`` before each new
    cancellation. The tasks' results and exceptions are left to their owners.
    """
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=again_s)
