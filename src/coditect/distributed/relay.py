"""The workers' agent events into the missions' histories, none lost across a restart.

Workers publish their agents' events (``agent.think`` / ``act`` / ``learn``) on the events
stream; the orchestrator keeps those of its missions with the mission's history. A live
subscription misses what is published while no orchestrator runs (it was killed and is
starting again), so a bus that can (JetStream) is read through a durable consumer: its position
is kept in NATS, and the next orchestrator reads on from where the last one stopped. An event
is acknowledged only once kept, so one whose keeping was interrupted is delivered again; the
store ignores an event id it already has.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, runtime_checkable

from coditect.bus.base import EventBus
from coditect.distributed.port import follow_events, follow_with_backoff
from coditect.domain.events import Event
from coditect.errors import CoditectError

__all__ = ["DurableEvents", "MissionFilter", "relay_events"]

_log = logging.getLogger(__name__)


@runtime_checkable
class DurableEvents(Protocol):
    """A bus that keeps a follower's position (``JetStreamBus.follow_durable``)."""

    def follow_durable(self, pattern: str, durable: str) -> AsyncIterator[Event]:
        """Events matching ``pattern`` from where the follower ``durable`` stopped."""
        ...


async def relay_events(
    events: EventBus,
    pattern: str,
    handle: Callable[[Event], Awaitable[None]],
    *,
    durable: str,
) -> None:
    """Hand every event matching ``pattern`` to ``handle`` until the bus is closed.

    With a :class:`DurableEvents` bus, through the durable consumer ``durable``: an event is
    acknowledged after ``handle`` returned, so one that ``handle`` failed on (it raised a
    retryable :class:`CoditectError`, e.g. the database was down) is delivered again; the
    relay follows again with backoff. Any other bus is followed live (:func:`follow_events`),
    and an event ``handle`` failed on is lost.
    """
    if not isinstance(events, DurableEvents):

        async def best_effort(event: Event) -> None:
            try:
                await handle(event)
            except CoditectError as exc:
                _log.warning("could not keep %s of %s: %s", event.type, event.task_id, exc)

        await follow_events(events, pattern, best_effort)
        return
    await follow_with_backoff(lambda: events.follow_durable(pattern, durable), handle, pattern)


class MissionFilter:
    """Whether an event's mission is kept by this orchestrator's database.

    Args:
        known: The missions driven in this process right now.
        stored: Looks a mission up in the database (True when it has a report there).
        max_cached: Answers about other missions are remembered up to this many.
    """

    def __init__(
        self,
        known: Callable[[str], bool],
        stored: Callable[[str], Awaitable[bool]],
        *,
        max_cached: int = 10_000,
    ) -> None:
        self._known = known
        self._stored = stored
        self._cache: dict[str, bool] = {}
        self._max = max_cached

    async def __call__(self, mission_id: str) -> bool:
        """True for a mission of this database (driven here now, or stored earlier)."""
        if self._known(mission_id):
            return True
        hit = self._cache.get(mission_id)
        if hit is None:
            hit = await self._stored(mission_id)
            if len(self._cache) >= self._max:
                self._cache.clear()
            self._cache[mission_id] = hit
        return hit
