"""The task queue manager's logic: tasks onto a work queue, their state and results into stores.

It sees only the interfaces (:class:`~coditect.bus.base.WorkQueue`,
:class:`~coditect.state.base.TaskStateStore`, :class:`~coditect.state.base.FileIndexStore`,
:class:`~coditect.state.base.MissionValueStore`); :mod:`coditect.runtime.distributed` hands it
JetStream and Redis. Redis layout in production (besides the task states' hash)::

    coditect:results:{<mission_id>}   hash  task_id -> WorkerOutcome JSON        (RESULTS)
    coditect:files:{<mission_id>}     hash  the mission branch's file index (world model)
    coditect:task-counts              hash  state -> tasks in it (coditect.state.redis_counts)
    coditect:cancel:{<mission_id>}    string  the reason a mission was cancelled  (CANCEL)
    coditect:checkpoint:{<mission_id>} string the orchestrator's MissionCheckpoint JSON

Every write to a mission's key sets its expiry to ``state_retention_s`` (the task counts hash
excepted): a mission's state is kept that long after its last activity, then Redis drops it.

The service keeps nothing in memory that a restart would lose, except leases handed out
through :meth:`TaskQueueService.lease` (JetStream redelivers those after ``ack_wait``).
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from coditect.bus.base import DeadLetter, Lease, TaskMessage, WorkQueue
from coditect.domain.actions import FileRecord
from coditect.domain.tasks import GoalState, TaskSpec
from coditect.domain.taskstate import TaskStateRecord
from coditect.errors import CoditectError, InputError
from coditect.state.base import FileIndexStore, MissionValueStore, TaskStateStore
from coditect.telemetry import metrics, tracing

__all__ = [
    "APPLIED",
    "BASELINE",
    "CANCEL",
    "CHECKPOINT",
    "RESULTS",
    "LeasedTask",
    "StoredTask",
    "TaskQueueService",
    "message_id_for",
]

_log = logging.getLogger(__name__)

#: :class:`MissionValueStore` kinds: the workers' outcomes (task id -> WorkerOutcome JSON)...
RESULTS = "results"
#: ...the reason a mission was cancelled (its presence tells workers to stop)...
CANCEL = "cancel"
#: ...the orchestrator's checkpoint...
CHECKPOINT = "checkpoint"
#: ...the changes workers pushed (task id -> WorkerOutcome JSON), so each is applied once...
APPLIED = "applied"
#: ...and the project's tests at the mission's base commit (a Baseline's JSON; "": none ran).
BASELINE = "baseline"


def _step_error(outcome_json: str) -> str | None:
    """The error of a worker's outcome without a result (a failed step), else None.

    Cheap for the common case: only an outcome whose result is null is parsed.
    """
    if '"result":null' not in outcome_json:
        return None
    try:
        data = json.loads(outcome_json)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("result") is not None:
        return None
    return str(data.get("error") or "the task produced no result")


def message_id_for(mission_id: str, task_id: str, attempt: int) -> str:
    """The de-duplication id of one enqueue (the same attempt enqueued twice is stored once)."""
    return f"{mission_id}.{task_id}.{attempt}"


@dataclass(frozen=True)
class LeasedTask:
    """A task handed out through :meth:`TaskQueueService.lease`."""

    lease_id: str
    message: TaskMessage
    delivery: int
    #: The trace context the task was enqueued in (``traceparent``...), for the worker's span.
    trace_headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredTask:
    """A task's stored state and, once complete, the worker's outcome (JSON)."""

    record: TaskStateRecord
    outcome_json: str = ""


class TaskQueueService:
    """Enqueue, lease, complete, fail, heartbeat and query, over a work queue and stores.

    Args:
        workqueue: Where tasks are queued and leased.
        states: Task state records (counted per state in production).
        files: The mission branches' file indexes.
        values: Results, cancel flags and checkpoints per mission.
        dead_letter_consumer: Name under which every replica follows the dead letters.
        notify: Called with a task's new record when it starts running or ends (the
            composition root publishes it as a ``task.state`` event: coordinators are pushed
            their tasks' outcomes instead of polling for them). A failed notification is
            logged; the coordinator's backstop reads the state later.
    """

    def __init__(
        self,
        *,
        workqueue: WorkQueue,
        states: TaskStateStore,
        files: FileIndexStore,
        values: MissionValueStore,
        dead_letter_consumer: str = "workers-dlq-settle",
        notify: Callable[[TaskStateRecord], Awaitable[None]] | None = None,
    ) -> None:
        self.workqueue = workqueue
        self.notify = notify
        self.states = states
        self.files = files
        self.values = values
        self.dead_letter_consumer = dead_letter_consumer
        self._leases: dict[str, Lease] = {}

    async def _changed(self, record: TaskStateRecord) -> None:
        """Store ``record``, then notify (after the store: a notified reader finds it)."""
        await self.states.set(record)
        if self.notify is None:
            return
        try:
            await self.notify(record)
        except Exception as exc:  # the coordinator's backstop reads the state later
            _log.warning("cannot notify %s/%s: %r", record.mission_id, record.task_id, exc)

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
        await self.values.delete_field(RESULTS, mission_id, task.id)
        attributes: dict[str, str | int | None] = {
            "coditect.mission_id": mission_id,
            "coditect.task_id": task.id,
            "coditect.capability": task.capability,
            "coditect.attempt": attempt,
        }
        with tracing.span(
            "taskqueue.publish", kind=tracing.SpanKind.PRODUCER, attributes=attributes
        ):
            published = await self.workqueue.enqueue(
                TaskMessage(
                    mission_id=mission_id,
                    task_id=task.id,
                    capability=task.capability,
                    body=body_json,
                    message_id=msg_id,
                ),
                headers=tracing.inject(),  # the worker's span continues this trace
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
                metrics.observe_lease_latency(cap, lease.enqueued_at)
                lease_id = uuid.uuid4().hex
                self._leases[lease_id] = lease
                await self.heartbeat(lease.message.mission_id, lease.message.task_id, worker, "")
                return LeasedTask(
                    lease_id=lease_id,
                    message=lease.message,
                    delivery=lease.num_delivered,
                    trace_headers=tracing.context_headers(lease.headers),
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
        await self.values.put_field(RESULTS, mission_id, task_id, outcome_json)
        if files is not None:
            await self.files.save_file_index(mission_id, files)
        error = _step_error(outcome_json)
        await self._changed(
            TaskStateRecord(
                mission_id=mission_id,
                task_id=task_id,
                state=GoalState.FAILED if error is not None else GoalState.COMPLETE,
                attempt=attempt,
                worker=worker,
                error=error or "",
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
        record = TaskStateRecord(
            mission_id=mission_id,
            task_id=task_id,
            state=state,
            attempt=attempt,
            worker=worker,
            error=error,
        )
        await (self.states.set(record) if retryable else self._changed(record))
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
        record = TaskStateRecord(
            mission_id=mission_id,
            task_id=task_id,
            state=GoalState.RUNNING,
            attempt=current.attempt if current else 0,
            worker=worker,
        )
        started = (
            current is None or current.state is not GoalState.RUNNING or (current.worker != worker)
        )
        await (self._changed(record) if started else self.states.set(record))
        lease = self._leases.get(lease_id) if lease_id else None
        if lease is not None:
            await lease.in_progress()

    async def settle_dead_letter(self, letter: DeadLetter) -> bool:
        """Mark the task of a dead letter FAILED with its reason; False if nothing changed.

        A task already in a final state (its worker reported the failure itself, or the
        mission was cancelled) is left as it is, so handling a letter twice is harmless.
        """
        msg = letter.message
        if msg is None:
            return False
        current = await self.states.get(msg.mission_id, msg.task_id)
        if current is None or current.state.is_terminal:
            return False
        reason = letter.reason or "no reason recorded"
        with tracing.span(  # in the mission's trace: the letter keeps the task's context
            "taskqueue.dead_letter",
            parent=letter.headers,
            kind=tracing.SpanKind.CONSUMER,
            attributes={
                "coditect.mission_id": msg.mission_id,
                "coditect.task_id": msg.task_id,
                "coditect.capability": msg.capability,
                "coditect.reason": reason[:200],
            },
        ):
            await self._changed(
                TaskStateRecord(
                    mission_id=msg.mission_id,
                    task_id=msg.task_id,
                    state=GoalState.FAILED,
                    attempt=current.attempt,
                    worker=current.worker,
                    error=f"dead-lettered: {reason}",
                )
            )
        _log.warning("task %s/%s dead-lettered: %s", msg.mission_id, msg.task_id, reason)
        return True

    async def watch_dead_letters(self, *, max_backoff_s: float = 5.0) -> None:
        """Settle every new dead letter (see :meth:`settle_dead_letter`) until the queue closes.

        Runs in the service for its whole life; NATS or Redis errors are retried with backoff.
        """
        durable = self.dead_letter_consumer
        delay_s = 0.1
        while True:
            try:
                async for letter in self.workqueue.follow_dead_letters(durable):
                    await self.settle_dead_letter(letter)
                    delay_s = 0.1
                return
            except CoditectError as exc:
                if not exc.retryable:  # e.g. the queue was closed
                    _log.warning("stopped watching dead letters: %s", exc)
                    return
                _log.warning("watching dead letters failed, retrying in %.1fs: %s", delay_s, exc)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, max_backoff_s)
            except Exception as exc:  # keep watching through NATS and Redis outages
                _log.warning("watching dead letters failed, retrying in %.1fs: %r", delay_s, exc)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, max_backoff_s)

    async def cancel_tasks(self, mission_id: str, reason: str = "") -> int:
        """Cancel a mission's tasks; returns how many were not final yet (idempotent).

        Sets the mission's cancel flag, which workers check before and while they run a task
        and before they push: a running task is stopped, a queued one is dropped when leased.
        """
        if not mission_id:
            raise InputError("mission_id is required")
        reason = reason or "the mission was cancelled"
        await self.values.put_value(CANCEL, mission_id, reason)
        count = 0
        for rec in await self.states.list_tasks(mission_id):
            if rec.state.is_terminal:
                continue
            count += 1
            await self.states.set(
                TaskStateRecord(
                    mission_id=mission_id,
                    task_id=rec.task_id,
                    state=GoalState.CANCELLED,
                    attempt=rec.attempt,
                    worker=rec.worker,
                    error=reason,
                )
            )
        return count

    async def put_checkpoint(self, mission_id: str, state_json: str) -> None:
        """Keep the orchestrator's checkpoint of a mission (replacing the previous one)."""
        if not mission_id or not state_json:
            raise InputError("a checkpoint needs a mission_id and its state")
        await self.values.put_value(CHECKPOINT, mission_id, state_json)

    async def get_checkpoint(self, mission_id: str) -> str:
        """The mission's last checkpoint ("" when none is kept)."""
        if not mission_id:
            raise InputError("mission_id is required")
        return await self.values.get_value(CHECKPOINT, mission_id) or ""

    async def get_tasks(self, mission_id: str) -> list[StoredTask]:
        """Every stored task of ``mission_id`` with its outcome."""
        records = await self.states.list_tasks(mission_id)
        results = await self.values.fields(RESULTS, mission_id)
        return [StoredTask(record=r, outcome_json=results.get(r.task_id, "")) for r in records]

    async def query_world(self, mission_id: str, glob: str = "") -> list[FileRecord]:
        """The mission branch's file index as last reported, filtered by ``glob``."""
        records = await self.files.load_file_index(mission_id)
        if glob:
            records = [r for r in records if fnmatch.fnmatch(r.path, glob)]
        return sorted(records, key=lambda r: r.path)
