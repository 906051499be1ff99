"""The task queue manager's logic: tasks onto JetStream, their state and results into Redis.

Redis layout (besides :class:`~coditect.state.redis_world.RedisTaskStateStore`'s hash)::

    coditect:results:{<mission_id>}   hash  task_id -> WorkerOutcome JSON
    coditect:files:{<mission_id>}     hash  the mission branch's file index (world model)

The service keeps nothing in memory that a restart would lose, except leases handed out
through :meth:`TaskQueueService.lease` (JetStream redelivers those after ``ack_wait``).
"""

from __future__ import annotations

import fnmatch
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from coditect.bus.workqueue import JetStreamWorkQueue, Lease, TaskMessage
from coditect.domain.actions import FileRecord
from coditect.domain.tasks import GoalState, TaskSpec
from coditect.errors import InputError, StoreError
from coditect.state.redis_world import RedisFileIndexStore, RedisTaskStateStore, TaskStateRecord

__all__ = ["LeasedTask", "StoredTask", "TaskQueueService", "message_id_for"]

_log = logging.getLogger(__name__)


def message_id_for(mission_id: str, task_id: str, attempt: int) -> str:
    """The de-duplication id of one enqueue (the same attempt enqueued twice is stored once)."""
    return f"{mission_id}.{task_id}.{attempt}"


@dataclass(frozen=True)
class LeasedTask:
    """A task handed out through :meth:`TaskQueueService.lease`."""

    lease_id: str
    message: TaskMessage
    delivery: int


@dataclass(frozen=True)
class StoredTask:
    """A task's stored state and, once complete, the worker's outcome (JSON)."""

    record: TaskStateRecord
    outcome_json: str = ""


class TaskQueueService:
    """Enqueue, lease, complete, fail, heartbeat and query, over JetStream and Redis."""

    def __init__(
        self, *, workqueue: JetStreamWorkQueue, redis: Any, prefix: str = "coditect"
    ) -> None:
        self.workqueue = workqueue
        self.redis = redis
        self.states = RedisTaskStateStore(redis, prefix=prefix)
        self.files = RedisFileIndexStore(redis, prefix=prefix)
        self._prefix = prefix
        self._leases: dict[str, Lease] = {}

    def _results_key(self, mission_id: str) -> str:
        return f"{self._prefix}:results:{{{mission_id}}}"

    async def enqueue(
        self, mission_id: str, task: TaskSpec, body_json: str, attempt: int
    ) -> tuple[str, bool]:
        """Publish ``task`` on its capability's subject; returns (message id, duplicate).

        The PENDING record is written first, so that a fast worker's RUNNING is not overwritten.
        """
        if not mission_id:
            raise InputError("mission_id is required")
        msg_id = message_id_for(mission_id, task.id, attempt)
        await self.states.set(
            TaskStateRecord(
                mission_id=mission_id, task_id=task.id, state=GoalState.PENDING, attempt=attempt
            )
        )
        await self.redis.hdel(self._results_key(mission_id), task.id)
        published = await self.workqueue.enqueue(
            TaskMessage(
                mission_id=mission_id,
                task_id=task.id,
                capability=task.capability,
                body=body_json,
                message_id=msg_id,
            )
        )
        return msg_id, published.duplicate

    async def lease(self, capabilities: list[str], worker: str, wait_s: float) -> LeasedTask | None:
        """Lease one task of any of ``capabilities`` (None when none came within ``wait_s``)."""
        if not capabilities:
            raise InputError("name at least one capability")
        per_cap = max(wait_s / len(capabilities), 0.05)
        for cap in capabilities:
            leases = await self.workqueue.fetch(cap, batch=1, timeout_s=per_cap)
            if leases:
                lease = leases[0]
                lease_id = uuid.uuid4().hex
                self._leases[lease_id] = lease
                await self.heartbeat(lease.message.mission_id, lease.message.task_id, worker, "")
                return LeasedTask(
                    lease_id=lease_id, message=lease.message, delivery=lease.num_delivered
                )
        return None

    async def complete(
        self,
        mission_id: str,
        task_id: str,
        *,
        worker: str,
        outcome_json: str,
        attempt: int,
        files: list[FileRecord] | None = None,
        lease_id: str = "",
    ) -> None:
        """Store the outcome, mark the task COMPLETE and ack a gRPC lease (idempotent)."""
        if not outcome_json:
            raise InputError("a completed task needs its result")
        try:
            await self.redis.hset(self._results_key(mission_id), task_id, outcome_json)
        except Exception as exc:
            raise StoreError(f"cannot store the result of {task_id}: {exc!r}") from exc
        if files is not None:
            await self.files.save_file_index(mission_id, files)
        await self.states.set(
            TaskStateRecord(
                mission_id=mission_id,
                task_id=task_id,
                state=GoalState.COMPLETE,
                attempt=attempt,
                worker=worker,
            )
        )
        lease = self._leases.pop(lease_id, None) if lease_id else None
        if lease is not None:
            await lease.ack()

    async def fail(
        self,
        mission_id: str,
        task_id: str,
        *,
        worker: str,
        error: str,
        retryable: bool,
        attempt: int,
        lease_id: str = "",
    ) -> None:
        """Record a failure: retryable ones go back to PENDING (and the lease is naked)."""
        state = GoalState.PENDING if retryable else GoalState.FAILED
        await self.states.set(
            TaskStateRecord(
                mission_id=mission_id,
                task_id=task_id,
                state=state,
                attempt=attempt,
                worker=worker,
                error=error,
            )
        )
        lease = self._leases.pop(lease_id, None) if lease_id else None
        if lease is not None:
            if retryable:
                await lease.nak()
            else:
                await lease.term(error)

    async def heartbeat(self, mission_id: str, task_id: str, worker: str, lease_id: str) -> None:
        """The worker is alive and runs the task: mark RUNNING, keep a gRPC lease alive."""
        current = await self.states.get(mission_id, task_id)
        if current is not None and current.state.is_terminal:
            return
        await self.states.set(
            TaskStateRecord(
                mission_id=mission_id,
                task_id=task_id,
                state=GoalState.RUNNING,
                attempt=current.attempt if current else 0,
                worker=worker,
            )
        )
        lease = self._leases.get(lease_id) if lease_id else None
        if lease is not None:
            await lease.in_progress()

    async def get_tasks(self, mission_id: str) -> list[StoredTask]:
        """Every stored task of ``mission_id`` with its outcome."""
        records = await self.states.list_tasks(mission_id)
        raw: dict[Any, Any] = await self.redis.hgetall(self._results_key(mission_id))
        results = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()
        }
        return [StoredTask(record=r, outcome_json=results.get(r.task_id, "")) for r in records]

    async def query_world(self, mission_id: str, glob: str = "") -> list[FileRecord]:
        """The mission branch's file index as last reported, filtered by ``glob``."""
        records = await self.files.load_file_index(mission_id)
        if glob:
            records = [r for r in records if fnmatch.fnmatch(r.path, glob)]
        return sorted(records, key=lambda r: r.path)
