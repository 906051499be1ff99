"""In-memory task states, mission values and locks: the fakes of the distributed mode's stores.

Typed like the Redis ones (:class:`~coditect.state.base.TaskStateStore`,
:class:`~coditect.state.base.MissionValueStore`, :class:`~coditect.state.base.Lock`) and held
to the same contract suite
(tests/contracts/test_coordination_contract.py), for tests and one-process use.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from coditect.domain.taskstate import TaskStateRecord
from coditect.state.base import Lock, LockNotAcquiredError, MissionValueStore, TaskStateStore

__all__ = ["MemoryLock", "MemoryLocks", "MemoryMissionValueStore", "MemoryTaskStateStore"]


class MemoryTaskStateStore(TaskStateStore):
    """Task state records in a dict per mission."""

    def __init__(self) -> None:
        self._missions: dict[str, dict[str, TaskStateRecord]] = {}

    async def set(self, record: TaskStateRecord) -> None:
        """Insert or replace the record of ``(record.mission_id, record.task_id)``."""
        self._missions.setdefault(record.mission_id, {})[record.task_id] = record

    async def get(self, mission_id: str, task_id: str) -> TaskStateRecord | None:
        """One task's record, or None."""
        return self._missions.get(mission_id, {}).get(task_id)

    async def list_tasks(self, mission_id: str) -> list[TaskStateRecord]:
        """Every record of ``mission_id``, sorted by task id."""
        return sorted(self._missions.get(mission_id, {}).values(), key=lambda r: r.task_id)

    async def delete_mission(self, mission_id: str) -> None:
        """Forget every record of ``mission_id``."""
        self._missions.pop(mission_id, None)


class MemoryMissionValueStore(MissionValueStore):
    """Mission values in dicts keyed by (kind, mission); nothing expires."""

    def __init__(self) -> None:
        self._maps: dict[tuple[str, str], dict[str, str]] = {}
        self._values: dict[tuple[str, str], str] = {}

    async def put_field(self, kind: str, mission_id: str, name: str, value: str) -> None:
        """Set field ``name`` of the mission's ``kind`` map."""
        self._maps.setdefault((kind, mission_id), {})[name] = value

    async def get_field(self, kind: str, mission_id: str, name: str) -> str | None:
        """Field ``name`` of the mission's ``kind`` map, or None."""
        return self._maps.get((kind, mission_id), {}).get(name)

    async def fields(self, kind: str, mission_id: str) -> dict[str, str]:
        """A copy of the mission's ``kind`` map."""
        return dict(self._maps.get((kind, mission_id), {}))

    async def delete_field(self, kind: str, mission_id: str, name: str) -> None:
        """Remove field ``name`` (no error if absent)."""
        self._maps.get((kind, mission_id), {}).pop(name, None)

    async def put_value(self, kind: str, mission_id: str, value: str) -> None:
        """Set the mission's single ``kind`` value."""
        self._values[(kind, mission_id)] = value

    async def get_value(self, kind: str, mission_id: str) -> str | None:
        """The mission's single ``kind`` value, or None."""
        return self._values.get((kind, mission_id))


@dataclass
class _Held:
    owner: int
    until: float


@dataclass
class MemoryLocks:
    """The locks of one process: :meth:`lock` makes a lock; locks of one name exclude each other."""

    _held: dict[str, _Held] = field(default_factory=dict)
    _fences: dict[str, int] = field(default_factory=dict)
    _owners: int = 0

    def lock(self, name: str, *, ttl_s: float = 30.0, wait_s: float = 10.0) -> MemoryLock:
        """A lock on ``name`` (a new owner)."""
        self._owners += 1
        return MemoryLock(self, name, owner=self._owners, ttl_s=ttl_s, wait_s=wait_s)


class MemoryLock(Lock):
    """A lock of a :class:`MemoryLocks`, with a TTL and a fencing token like the Redis one."""

    def __init__(
        self, locks: MemoryLocks, name: str, *, owner: int, ttl_s: float, wait_s: float
    ) -> None:
        self.name = name
        self.ttl_s = ttl_s
        self.wait_s = wait_s
        self._locks = locks
        self._owner = owner
        self._token: int | None = None

    @property
    def fencing_token(self) -> int:
        """The token of the current hold."""
        if self._token is None:
            raise LockNotAcquiredError(f"lock {self.name!r} is not held", retryable=False)
        return self._token

    @property
    def held(self) -> bool:
        """True between a successful acquire and release."""
        return self._token is not None

    def _owned(self) -> bool:
        held = self._locks._held.get(self.name)
        return held is not None and held.owner == self._owner and held.until > time.monotonic()

    def try_acquire(self) -> int | None:
        """One attempt; the fencing token, or None while someone else holds the lock."""
        held = self._locks._held.get(self.name)
        if held is not None and held.owner != self._owner and held.until > time.monotonic():
            return None
        self._locks._held[self.name] = _Held(self._owner, time.monotonic() + self.ttl_s)
        self._token = self._locks._fences.get(self.name, 0) + 1
        self._locks._fences[self.name] = self._token
        return self._token

    async def acquire(self, wait_s: float | None = None) -> int:
        """Wait (at most ``wait_s``, default the lock's) for the lock; returns the token."""
        deadline = time.monotonic() + (self.wait_s if wait_s is None else wait_s)
        while True:
            token = self.try_acquire()
            if token is not None:
                return token
            if time.monotonic() >= deadline:
                raise LockNotAcquiredError(f"lock {self.name!r} is held by another owner")
            await asyncio.sleep(0.01)

    async def release(self) -> bool:
        """Release if still owned; False when it had expired or was taken."""
        self._token = None
        if not self._owned():
            return False
        del self._locks._held[self.name]
        return True

    async def extend(self, ttl_s: float | None = None) -> bool:
        """Renew the TTL if still owned; False otherwise."""
        if not self._owned():
            return False
        self._locks._held[self.name].until = time.monotonic() + (ttl_s or self.ttl_s)
        return True
