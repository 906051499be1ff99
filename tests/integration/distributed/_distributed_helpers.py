"""Helpers shared by the distributed-mode tests (bounded waits, unique names)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from coditect.bus.jetstream import PublishPolicy

FAST_PUBLISH = PublishPolicy(timeout_s=1.0, attempts=3, backoff_initial_s=0.01, backoff_max_s=0.05)


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


async def take(it: AsyncIterator, n: int, timeout_s: float = 5.0) -> list:
    """The next ``n`` items of ``it``; raises TimeoutError if they do not all arrive in time."""
    out: list = []
    async with asyncio.timeout(timeout_s):
        while len(out) < n:
            out.append(await anext(it))
    return out


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 5.0) -> None:
    """Poll ``check`` until it returns True; raises TimeoutError after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        while not await check():
            await asyncio.sleep(0.05)
