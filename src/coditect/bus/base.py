"""The EventBus interface, implemented in memory for one process and by NATS JetStream when distributed."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator

from coditect.domain.events import Event

__all__ = ["EventBus", "subject_matches"]


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS-style subject match: ``*`` matches one token, ``>`` the rest (one or more tokens)."""
    p_tokens = pattern.split(".")
    s_tokens = subject.split(".")
    for i, tok in enumerate(p_tokens):
        if tok == ">":
            return len(s_tokens) > i
        if i >= len(s_tokens) or (tok != "*" and tok != s_tokens[i]):
            return False
    return len(p_tokens) == len(s_tokens)


class EventBus(abc.ABC):
    """Publishes typed events and lets consumers subscribe by subject pattern.

    An event's subject is its ``type`` (``agent.think``, ``task.state``, ...).
    """

    @abc.abstractmethod
    async def publish(self, event: Event) -> None:
        """Publish one event. Raises :class:`~coditect.errors.CoditectError` if it cannot be stored."""

    @abc.abstractmethod
    def subscribe(self, pattern: str = ">") -> AsyncIterator[Event]:
        """Events published from now on whose subject matches ``pattern``, until the bus closes."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Stop delivering events and release connections."""
