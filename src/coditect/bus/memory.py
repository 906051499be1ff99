"""An in-process event bus: the embedded-mode implementation of :class:`EventBus`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from coditect.bus.base import EventBus, subject_matches
from coditect.domain.events import Event

__all__ = ["MemoryBus"]

_CLOSED = object()


class MemoryBus(EventBus):
    """Fans each published event out to the subscribers whose pattern matches its type.

    Subscribers get every event published after they subscribed, in publish order. A slow
    subscriber buffers without limit, which is fine for one mission's events in one process.
    """

    def __init__(self) -> None:
        self._subs: list[tuple[str, asyncio.Queue[object]]] = []
        self._closed = False

    async def publish(self, event: Event) -> None:
        """Deliver ``event`` to matching subscribers."""
        if self._closed:
            return
        for pattern, queue in list(self._subs):
            if subject_matches(pattern, event.type):
                queue.put_nowait(event)

    def subscribe(self, pattern: str = ">") -> AsyncIterator[Event]:
        """Subscribe now; iterate to receive events until the bus closes."""
        queue: asyncio.Queue[object] = asyncio.Queue()
        entry = (pattern, queue)
        self._subs.append(entry)
        return self._iterate(entry)

    async def _iterate(self, entry: tuple[str, asyncio.Queue[object]]) -> AsyncIterator[Event]:
        queue = entry[1]
        try:
            while True:
                item = await queue.get()
                if item is _CLOSED:
                    return
                yield item  # type: ignore[misc]
        finally:
            if entry in self._subs:
                self._subs.remove(entry)

    async def close(self) -> None:
        """End every subscription."""
        self._closed = True
        for _, queue in self._subs:
            queue.put_nowait(_CLOSED)
