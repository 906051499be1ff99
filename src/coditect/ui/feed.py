"""A mission's events as one live, ordered, duplicate-free stream for server-sent events.

Two sources feed it. The event store is the record: the orchestrator of either mode appends
every lifecycle event there, whichever process runs the mission, so tailing it (by ``seq``)
never loses an event. The event bus (the in-process bus of missions this server started, or
JetStream with ``--nats``) carries the agents' events of distributed workers, which only the bus
has, and wakes the tail up at once instead of at its next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from coditect.aio import cancel_and_wait
from coditect.bus.base import EventBus
from coditect.domain.events import Event, MissionState
from coditect.ui.source import MissionSource

__all__ = ["EventFeed", "FeedItem"]


@dataclass(frozen=True)
class FeedItem:
    """One event of the stream; ``seq`` is its event-store position (0 for bus-only events)."""

    seq: int
    event: Event


def _final(event: Event) -> bool:
    return isinstance(event, MissionState) and event.state.is_terminal


class EventFeed:
    """Follows one mission's events until the mission ends.

    Args:
        source: The state database.
        bus: An event bus to subscribe to as well (None: the store alone).
        poll_s: How often the store is read when the bus is quiet.
    """

    def __init__(
        self, source: MissionSource, bus: EventBus | None = None, *, poll_s: float = 0.25
    ) -> None:
        self.source = source
        self.bus = bus
        self.poll_s = poll_s

    async def follow(self, mission_id: str, *, after_seq: int = 0) -> AsyncIterator[FeedItem]:
        """Events stored after ``after_seq``, then every new one, until the mission has ended."""
        wake = asyncio.Event()
        from_bus: asyncio.Queue[Event] = asyncio.Queue()
        # Subscribe before the first read of the store: an event published in between is then
        # in one source or the other (or both; duplicates are dropped by event id).
        listener = None
        if self.bus is not None:
            listener = asyncio.create_task(self._listen(self.bus, mission_id, from_bus, wake))
            await asyncio.sleep(0)
        seen: set[str] = set()
        # The page may have been rendered just after the mission's last event: then it is over.
        last = await self.source.last_mission_state(mission_id) if after_seq else None
        seq, ended = after_seq, last is not None and last.seq <= after_seq and _final(last.event)
        try:
            while True:
                for item in await self.source.events_after(mission_id, seq):
                    seq = item.seq
                    ended = ended or _final(item.event)
                    if item.event.event_id not in seen:
                        seen.add(item.event.event_id)
                        yield FeedItem(item.seq, item.event)
                while not from_bus.empty():
                    event = from_bus.get_nowait()
                    if event.event_id not in seen:
                        seen.add(event.event_id)
                        yield FeedItem(0, event)
                if ended:
                    return
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self.poll_s)
        finally:
            if listener is not None:
                await cancel_and_wait(listener)
                if not listener.cancelled():
                    listener.result()

    @staticmethod
    async def _listen(
        bus: EventBus, mission_id: str, out: asyncio.Queue[Event], wake: asyncio.Event
    ) -> None:
        async for event in bus.subscribe(">"):
            if event.mission_id == mission_id:
                out.put_nowait(event)
                wake.set()
