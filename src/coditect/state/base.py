"""State store interfaces.

Mission reports, events and checkpoints, the world model's file index, and what the distributed mode
coordinates through: task states, small per-mission values (results, cancel flags,
checkpoints) and locks with fencing tokens. The in-memory fakes are in
:mod:`coditect.state.memory`; the composition roots (:mod:`coditect.runtime`) pick the
concrete stores.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from types import TracebackType

from coditect.domain.actions import FileRecord
from coditect.domain.checkpoint import MissionCheckpoint
from coditect.domain.events import Event
from coditect.domain.mission import MissionReport
from coditect.domain.taskstate import TaskStateRecord
from coditect.errors import StoreError
from coditect.leftovers import ProcessIdentity

__all__ = [
    "DEFAULT_STATE_RETENTION_S",
    "CheckpointStore",
    "FileIndexStore",
    "Lock",
    "LockNotAcquiredError",
    "MissionStore",
    "MissionValueStore",
    "TaskStateStore",
    "ttl_ms",
]

#: How long a mission's shared state is kept after its last write, by default (7 days).
DEFAULT_STATE_RETENTION_S = 7 * 24 * 3600.0


def ttl_ms(ttl_s: float | None) -> int | None:
    """``ttl_s`` in whole milliseconds (at least 1), or None for "no expiry"."""
    if ttl_s is None:
        return None
    if ttl_s <= 0:
        raise ValueError(f"a TTL must be positive, got {ttl_s!r}s; give None for no expiry")
    return max(int(ttl_s * 1000), 1)


class MissionStore(abc.ABC):
    """Keeps mission reports and their event logs, so they outlive the process that ran them."""

    @abc.abstractmethod
    async def save_report(self, report: MissionReport) -> None:
        """Insert or replace the report of ``report.mission_id``."""

    @abc.abstractmethod
    async def get_report(self, mission_id: str) -> MissionReport | None:
        """The report of one mission, or None. A unique prefix of the id is accepted."""

    @abc.abstractmethod
    async def list_reports(self, limit: int = 50) -> list[MissionReport]:
        """Most recent missions first."""

    @abc.abstractmethod
    async def append_events(self, events: Sequence[Event]) -> None:
        """Append events to the mission event log."""

    @abc.abstractmethod
    async def list_events(self, mission_id: str) -> list[Event]:
        """A mission's events in the order they were appended."""

    async def events_after(self, mission_id: str, after_seq: int = 0) -> list[tuple[int, Event]]:
        """A mission's events stored after position ``after_seq``, with their positions.

        Positions increase in append order, so a reader that remembers the last one it saw
        reads on from there without gaps or repeats (``WatchMission`` resumes this way).

        Raises:
            NotImplementedError: The store does not number its events.
        """
        raise NotImplementedError(f"{type(self).__name__} does not number its events")

    async def owners(self, mission_ids: Sequence[str]) -> dict[str, ProcessIdentity]:
        """The recorded owner process of each RUNNING mission of ``mission_ids`` that has one.

        A store that records no owners returns ``{}``: none of its missions is judged
        interrupted (:mod:`coditect.state.owners`).
        """
        return {}

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class CheckpointStore(abc.ABC):
    """Keeps the last checkpoint of each running mission, so a new process can continue it."""

    @abc.abstractmethod
    async def save_checkpoint(self, mission_id: str, checkpoint: MissionCheckpoint) -> None:
        """Insert or replace the checkpoint of ``mission_id``."""

    @abc.abstractmethod
    async def get_checkpoint(self, mission_id: str) -> MissionCheckpoint | None:
        """The last checkpoint of ``mission_id`` (an exact id), or None."""

    @abc.abstractmethod
    async def delete_checkpoint(self, mission_id: str) -> None:
        """Forget the checkpoint of ``mission_id`` (it ended; nothing to continue)."""


class FileIndexStore(abc.ABC):
    """Persists the world model's file index between runs (so a rescan is incremental)."""

    @abc.abstractmethod
    async def load_file_index(self, root_key: str) -> list[FileRecord]:
        """The saved records for the project identified by ``root_key``."""

    @abc.abstractmethod
    async def save_file_index(self, root_key: str, records: Iterable[FileRecord]) -> None:
        """Replace the saved records for ``root_key``."""


class TaskStateStore(abc.ABC):
    """The state of each task of a mission, as the distributed workers report it."""

    @abc.abstractmethod
    async def set(self, record: TaskStateRecord) -> None:
        """Insert or replace the record of ``(record.mission_id, record.task_id)``."""

    @abc.abstractmethod
    async def get(self, mission_id: str, task_id: str) -> TaskStateRecord | None:
        """One task's record, or None."""

    @abc.abstractmethod
    async def list_tasks(self, mission_id: str) -> list[TaskStateRecord]:
        """Every record of ``mission_id``, sorted by task id."""

    @abc.abstractmethod
    async def delete_mission(self, mission_id: str) -> None:
        """Forget every record of ``mission_id``."""


class MissionValueStore(abc.ABC):
    """Small values the distributed services share per mission, grouped by kind.

    A kind (``results``, ``applied``, ``cancel``, ``checkpoint``) holds, per mission, either one
    value or a map of fields to values. Every write restarts the expiry of that kind's entry
    for the mission, when the store was given one. Errors are
    :class:`~coditect.errors.StoreError`.
    """

    @abc.abstractmethod
    async def put_field(self, kind: str, mission_id: str, name: str, value: str) -> None:
        """Set field ``name`` of the mission's ``kind`` map."""

    @abc.abstractmethod
    async def get_field(self, kind: str, mission_id: str, name: str) -> str | None:
        """Field ``name`` of the mission's ``kind`` map, or None."""

    @abc.abstractmethod
    async def fields(self, kind: str, mission_id: str) -> dict[str, str]:
        """The whole ``kind`` map of the mission (empty when none)."""

    @abc.abstractmethod
    async def delete_field(self, kind: str, mission_id: str, name: str) -> None:
        """Remove field ``name`` from the mission's ``kind`` map (no error if absent)."""

    @abc.abstractmethod
    async def put_value(self, kind: str, mission_id: str, value: str) -> None:
        """Set the mission's single ``kind`` value."""

    @abc.abstractmethod
    async def get_value(self, kind: str, mission_id: str) -> str | None:
        """The mission's single ``kind`` value, or None."""


class LockNotAcquiredError(StoreError):
    """The lock was held by someone else for the whole wait (retryable)."""


class Lock(abc.ABC):
    """A named lock with a TTL and a fencing token, usable as an async context manager.

    The token grows with every acquire of the same name, so a write stamped with it can be
    refused when a later holder has written since (a paused holder whose TTL ran out).
    """

    name: str

    @property
    @abc.abstractmethod
    def fencing_token(self) -> int:
        """The token of the current hold.

        Raises:
            StoreError: The lock is not held by this instance.
        """

    @property
    @abc.abstractmethod
    def held(self) -> bool:
        """True between a successful acquire and release."""

    @abc.abstractmethod
    async def acquire(self, wait_s: float | None = None) -> int:
        """Wait (at most ``wait_s``) for the lock; returns the fencing token.

        Raises:
            StoreError: Not acquired in time.
        """

    @abc.abstractmethod
    async def release(self) -> bool:
        """Release the hold; False when it had already expired."""

    @abc.abstractmethod
    async def extend(self, ttl_s: float | None = None) -> bool:
        """Renew the TTL of the hold; False when it was lost."""

    async def __aenter__(self) -> Lock:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release()
