"""A worker process: lease tasks from the work queue, run the same agents, push, report back.

For each task the worker resets its own clone of the mission branch to the branch head, runs
the one task step of both modes (:class:`~coditect.orchestrator.step.TaskStep`: parametrise,
expect, agent, rescan, check), commits the changed files and pushes them, then reports the
outcome to the task queue service. A failed step (an agent error, a timeout, a budget stop,
a fatal violation) is reported as an outcome without a result and is not retried; only
infrastructure errors (git, Redis) go back to the queue for another delivery.

Before it takes any work the worker makes an authenticated call to the task queue service
(:meth:`ResultSink.check_access`): refused credentials end :meth:`Worker.run` with an
:class:`~coditect.errors.AuthenticationError`. Credentials refused while a task is held give
the task back for another worker (a nak, never a dead letter) and stop this worker.

The worker sees only interfaces (:class:`~coditect.bus.base.WorkQueue`,
:class:`~coditect.state.base.MissionValueStore`, :class:`~coditect.state.base.Lock`); the
composition root (:mod:`coditect.runtime.distributed`) hands it JetStream and Redis.

At-least-once delivery means a task can run twice (a worker dies after pushing, before the
ack). The push is therefore done under a lock per mission with a fencing token, and
recorded in the mission's ``applied`` values (task id -> outcome JSON): a redelivered task
whose change is already recorded is reported again instead of applied again. A push whose
commit landed but whose record did not (a crash in between) is recognised by the commit's
``Coditect-Task`` trailer on the branch head.

Before a mission's first task the worker runs the project's own tests at the mission's base
commit, as one process does before planning, and keeps the outcomes in the mission's
``baseline`` value: every task on every worker then has the same baseline in its clone, so a
test that was failing before the mission is not blamed on its change.

The applied hash and the push lock's fence counter expire ``state_retention_s`` after their
last write (as the task queue's keys of the mission do).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from coditect.aio import cancel_and_wait, raise_if_cancelling
from coditect.bus.base import EventBus, Lease, WorkQueue
from coditect.distributed.baselines import MissionBaselines
from coditect.distributed.messages import TaskBody, WorkerOutcome
from coditect.distributed.repos import GitError, RepoCache, git, task_trailer
from coditect.distributed.taskqueue import APPLIED, CANCEL
from coditect.domain.actions import FileRecord
from coditect.domain.events import Event
from coditect.errors import AuthenticationError, BusError, CoditectError
from coditect.generated import write_generated_modules
from coditect.orchestrator.step import TaskStep
from coditect.state.base import DEFAULT_STATE_RETENTION_S, Lock, MissionValueStore
from coditect.taskqueue.testsetup import install_missing_dependencies
from coditect.taskqueue.world_model import WorldModel
from coditect.telemetry import metrics
from coditect.telemetry.tasks import observe_lease

__all__ = ["ResultSink", "Worker", "WorkerSettings", "default_worker_id"]

_log = logging.getLogger(__name__)


def default_worker_id() -> str:
    """``<hostname>-<pid>``."""
    return f"{socket.gethostname()}-{os.getpid()}"


class ResultSink(Protocol):
    """Where a worker reports to (the task queue service's gRPC client in production)."""

    async def complete(
        self,
        mission_id: str,
        task_id: str,
        *,
        worker: str,
        outcome_json: str,
        attempt: int,
        files: list[FileRecord],
    ) -> None:
        """The task is done."""
        ...

    async def fail(
        self,
        mission_id: str,
        task_id: str,
        *,
        worker: str,
        error: str,
        retryable: bool,
        attempt: int,
    ) -> None:
        """The task failed."""
        ...

    async def heartbeat(self, mission_id: str, task_id: str, *, worker: str) -> None:
        """The task is running here."""
        ...

    async def check_access(self) -> None:
        """Make one authenticated call that changes nothing.

        Raises:
            AuthenticationError: The service refused this process's credentials.
            CoditectError: The service could not be reached (``retryable``).
        """
        ...


@dataclass(frozen=True)
class WorkerSettings:
    """Knobs of a worker.

    Attributes:
        capabilities: Which task kinds to lease (``analyze``, ``code``, ``test``).
        cache_dir: Where the worker keeps its clones.
        poll_s: How long one fetch waits for a task.
        push_lock_ttl_s: TTL of the per-mission push lock.
        task_delay_s: Sleep before each task (fault-injection tests only).
        test_timeout_s: Wall-clock limit of the project's suite run at the mission's base.
        cancel_poll_s: How often a running task's mission is checked for a cancel.
        state_retention_s: The mission's applied hash and push-lock fence expire this long
            after their last write.
        connect_wait_s: How long the task queue service is retried at start.
    """

    capabilities: tuple[str, ...]
    cache_dir: Path
    worker_id: str = ""
    poll_s: float = 0.5
    push_lock_ttl_s: float = 60.0
    task_delay_s: float = 0.0
    test_timeout_s: float = 120.0
    cancel_poll_s: float = 0.5
    state_retention_s: float = DEFAULT_STATE_RETENTION_S
    connect_wait_s: float = 10.0


class _Cancelled(Exception):
    """The mission was cancelled (found out just before pushing)."""


class Worker:
    """Leases and runs tasks until stopped (or, in burst mode, until idle)."""

    def __init__(
        self,
        *,
        settings: WorkerSettings,
        workqueue: WorkQueue,
        sink: ResultSink,
        values: MissionValueStore,
        step: TaskStep,
        locks: Callable[[str], Lock],
        events: EventBus | None = None,
    ) -> None:
        self.settings = settings
        self.worker_id = settings.worker_id or default_worker_id()
        self.workqueue = workqueue
        self.sink = sink
        #: The missions' cancel flags and applied pushes (Redis in production).
        self.values = values
        # The one task step, as in one process; agents are named <agent>@<worker> here.
        self.step = replace(step, agent_suffix=f"@{self.worker_id}")
        #: Makes the per-mission push lock (a Redis lock in production).
        self.locks = locks
        self.events = events
        self.repos = RepoCache(settings.cache_dir / "repos")
        self.baselines = MissionBaselines(
            values, self.step.sandbox, timeout_s=settings.test_timeout_s
        )
        self._stop = asyncio.Event()
        #: Why the worker stopped taking work on its own (its credentials were refused).
        self._fatal: AuthenticationError | None = None
        self.tasks_done = 0
        self.tasks_cancelled = 0
        self.tasks_released = 0

    def stop(self) -> None:
        """Finish the current task, then return from :meth:`run`."""
        self._stop.set()

    async def check_access(self) -> None:
        """Verify the worker's credentials with the task queue service before taking work.

        An unreachable service is retried for ``connect_wait_s``.

        Raises:
            AuthenticationError: The service refused the credentials.
            CoditectError: The service could not be reached in time.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.connect_wait_s
        delay_s = 0.1
        while True:
            try:
                await self.sink.check_access()
                return
            except AuthenticationError as exc:
                raise AuthenticationError(
                    f"worker {self.worker_id} was refused by the task queue service, so it "
                    f"takes no work: {exc.message}",
                    hint=exc.hint or "give the worker the task queue's token (--token)",
                ) from exc
            except CoditectError as exc:
                if not exc.retryable or loop.time() + delay_s > deadline:
                    raise
                _log.warning("task queue service not reachable yet, retrying: %s", exc)
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, 2.0)

    async def run(self, *, burst: bool = False, on_ready: Callable[[], None] | None = None) -> None:
        """Verify the credentials, then lease and run tasks of every capability in turn.

        Args:
            burst: Return once a full round over the capabilities found nothing.
            on_ready: Called once the credentials were accepted, before the first lease.

        Raises:
            AuthenticationError: The task queue service refused the credentials, at start or
                while a task was held (the task was given back to the queue).
        """
        await self.check_access()
        if on_ready is not None:
            on_ready()
        await self._loop(burst)
        if self._fatal is not None:
            raise self._fatal

    async def _loop(self, burst: bool) -> None:
        caps: Sequence[str] = self.settings.capabilities
        per_cap_s = max(self.settings.poll_s / max(len(caps), 1), 0.05)
        backoff_s = 0.1
        while not self._stop.is_set():
            found = False
            try:
                for cap in caps:
                    for lease in await self.workqueue.fetch(cap, batch=1, timeout_s=per_cap_s):
                        found = True
                        with observe_lease(lease, worker=self.worker_id):
                            await self.process(lease)
                    if self._stop.is_set():
                        return
            except BusError as exc:  # NATS went away: the client reconnects by itself
                _log.warning("fetching tasks failed, retrying in %.1fs: %s", backoff_s, exc)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, 5.0)
                continue
            backoff_s = 0.1
            if burst and not found:
                return

    async def process(self, lease: Lease) -> None:
        """Run one leased task and settle the lease (ack, nak for a retry, or term)."""
        msg = lease.message
        last = lease.num_delivered >= self.workqueue.max_deliveries
        cancelled = await self._cancel_reason(msg.mission_id)
        if cancelled is not None:  # cancelled while the task waited in the queue
            await self._drop(lease, cancelled)
            return
        try:
            async with lease.keep_alive():
                await self.sink.heartbeat(msg.mission_id, msg.task_id, worker=self.worker_id)
                body = TaskBody.model_validate_json(msg.body)
                cancelled = await self._unless_cancelled(
                    msg.mission_id, self._handle(body, lease.num_delivered)
                )
            if cancelled is not None:
                await self._drop(lease, cancelled)
                return
        except _Cancelled as exc:
            await self._drop(lease, str(exc))
            return
        except AuthenticationError as exc:
            await self._release(lease, exc)
            return
        except CoditectError as exc:
            retry = exc.retryable and not last
            _log.warning(
                "task %s/%s failed (retry=%s): %s", msg.mission_id, msg.task_id, retry, exc
            )
            await self._fail(lease, str(exc), retry, lease.num_delivered)
            return
        except ValueError as exc:  # a malformed body will not get better
            await self._fail(lease, f"bad task body: {exc}", False, 0)
            return
        except Exception as exc:  # e.g. a Redis connection error: try again, within limits
            _log.warning("task %s/%s failed: %r", msg.mission_id, msg.task_id, exc)
            await self._fail(lease, repr(exc), not last, lease.num_delivered)
            return
        await lease.ack()
        self.tasks_done += 1

    async def _cancel_reason(self, mission_id: str) -> str | None:
        """Why the mission was cancelled, or None while it was not (or Redis cannot tell)."""
        try:
            return await self.values.get_value(CANCEL, mission_id)
        except Exception as exc:  # not knowing is not a reason to stop; checked again soon
            _log.debug("cannot read the cancel flag of %s: %r", mission_id, exc)
            return None

    async def _unless_cancelled(
        self, mission_id: str, work: Coroutine[Any, Any, None]
    ) -> str | None:
        """Run ``work`` while polling the mission's cancel flag; the reason if it was stopped.

        Raises:
            Whatever ``work`` raised.
        """
        loop = asyncio.get_running_loop()
        task = loop.create_task(work)
        watch = loop.create_task(self._wait_cancelled(mission_id))
        try:
            await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # this worker itself is being stopped
            task.cancel()
            await cancel_and_wait(watch)
            await asyncio.wait({task})
            raise
        if task.done():
            await cancel_and_wait(watch)
            task.result()
            return None
        task.cancel()
        await asyncio.wait({task})
        return watch.result()

    async def _wait_cancelled(self, mission_id: str) -> str:
        while True:
            await asyncio.sleep(self.settings.cancel_poll_s)
            reason = await self._cancel_reason(mission_id)
            if reason is not None:
                return reason
            raise_if_cancelling()  # the Redis client may have lost a cancel() during the read

    async def _drop(self, lease: Lease, reason: str) -> None:
        """The mission was cancelled: remove the task from the queue without reporting it."""
        msg = lease.message
        _log.info("task %s/%s dropped: %s", msg.mission_id, msg.task_id, reason)
        self.tasks_cancelled += 1
        try:
            await lease.ack()
        except BusError as exc:  # redelivered later, and dropped again then
            _log.warning("could not drop %s/%s: %s", msg.mission_id, msg.task_id, exc)

    async def _release(self, lease: Lease, exc: AuthenticationError) -> None:
        """Credentials refused mid-task: give the task to another worker and stop taking work.

        The failure is not reported (the service would refuse that too) and the task is not
        dead-lettered: the nak makes it available again at once.
        """
        msg = lease.message
        _log.error(
            "task %s/%s given back: the task queue service refused this worker's "
            "credentials; the worker stops: %s",
            msg.mission_id,
            msg.task_id,
            exc,
        )
        self.tasks_released += 1
        self._fatal = AuthenticationError(
            f"worker {self.worker_id} stopped: the task queue service refused its credentials "
            f"while it held task {msg.mission_id}/{msg.task_id} (given back to the queue): "
            f"{exc.message}",
            hint=exc.hint or "give the worker the task queue's token (--token)",
        )
        self._stop.set()
        try:
            await lease.nak(delay_s=0)
        except BusError as err:  # redelivered after the ack wait instead
            _log.warning("could not give back %s/%s: %s", msg.mission_id, msg.task_id, err)

    async def _publish(self, event: Event) -> None:
        """Publish an agent's event (named ``<agent>@<worker>``); losing one never fails a task."""
        if self.events is None:
            return
        if event.agent and "@" not in event.agent:
            event = event.model_copy(update={"agent": f"{event.agent}@{self.worker_id}"})
        try:
            await self.events.publish(event)
        except CoditectError as exc:
            _log.warning("could not publish %s of %s: %s", event.type, event.task_id, exc)

    async def _fail(self, lease: Lease, error: str, retry: bool, attempt: int) -> None:
        """Report a failed task, then nak it (``retry``) or dead-letter it.

        When the service refuses the report for the worker's credentials, the task is given
        back instead (:meth:`_release`): another worker may well succeed.
        """
        mid, tid = lease.message.mission_id, lease.message.task_id
        try:
            await self.sink.fail(
                mid, tid, worker=self.worker_id, error=error, retryable=retry, attempt=attempt
            )
        except AuthenticationError as exc:
            await self._release(lease, exc)
            return
        except CoditectError as exc:  # the lease is still settled; the queue redelivers if naked
            _log.warning("could not report the failure of %s/%s: %s", mid, tid, exc)
        await (lease.nak() if retry else lease.term(error))

    async def _handle(self, body: TaskBody, delivery: int) -> None:
        task = body.task
        done = await self.values.get_field(APPLIED, body.mission_id, task.id)
        if done is not None:  # an earlier delivery applied it: report again, do not redo
            _log.info("task %s/%s already applied; reporting it again", body.mission_id, task.id)
            path, _ = await self.repos.checkout(body.repo, body.mission_id, body.branch)
            await self._complete(body, done, path, delivery)
            return
        if self.settings.task_delay_s:
            await asyncio.sleep(self.settings.task_delay_s)
        path, base = await self.repos.checkout(body.repo, body.mission_id, body.branch)
        write_generated_modules(path, body.generated)  # removed again by the next checkout
        installed = await install_missing_dependencies(path)  # once per clone (kept by clean)
        if installed.failed and not installed.reused:
            _log.warning("task %s/%s: %s", body.mission_id, task.id, installed.note())
        # The project's tests at the mission's base, as one process records them before planning.
        baseline = await self.baselines.put(
            body.mission_id, path, base=body.base or base, head=base, generated=body.generated
        )
        notes = [n for n in (installed.note(), baseline.note if baseline else "") if n]
        outcome = await self.step.run(body.order, path, emit=self._publish)
        if notes:  # for the report, as one process notes them at the mission's start
            outcome = outcome.model_copy(update={"notes": notes})
        metrics.count_violations(v.kind for v in outcome.violations)
        if outcome.result is not None:  # a failed step is reported, never pushed
            outcome = await self._apply_once(body, path, base, outcome)
        await self._complete(body, outcome.model_dump_json(), path, delivery)

    async def _complete(self, body: TaskBody, outcome_json: str, path: Path, delivery: int) -> None:
        world = WorldModel(path)
        await asyncio.to_thread(world.scan)
        await self.sink.complete(
            body.mission_id,
            body.task.id,
            worker=self.worker_id,
            outcome_json=outcome_json,
            attempt=delivery,
            files=world.records(),
        )

    async def _apply_once(
        self, body: TaskBody, path: Path, base: str, outcome: WorkerOutcome
    ) -> WorkerOutcome:
        """Commit and push under the mission's lock; record the outcome so it is applied once."""
        trailer = task_trailer(body.mission_id, body.task.id)
        lock = self.locks(f"push.{body.mission_id}")
        async with lock:
            token = lock.fencing_token
            done = await self.values.get_field(APPLIED, body.mission_id, body.task.id)
            if done is not None:
                return WorkerOutcome.model_validate_json(done)
            cancelled = await self._cancel_reason(body.mission_id)
            if cancelled is not None:
                raise _Cancelled(cancelled)
            commit = ""
            if outcome.changed_files:
                remote = await self.repos.remote_head(path, body.branch)
                if remote != base:
                    # The branch moved since our checkout: only an earlier delivery of this very
                    # task may have moved it (tasks of a mission run one at a time).
                    await git(path, "fetch", "-q", "origin", f"refs/heads/{body.branch}")
                    if trailer not in await self.repos.commit_message(path, "FETCH_HEAD"):
                        raise GitError(
                            f"branch {body.branch} moved to {remote[:10]} during the task"
                        )
                    commit = remote
                else:
                    message = f"{body.task.id}: {body.task.description[:60]}\n\n{trailer}\nCoditect-Fence: {token}"
                    commit = await self.repos.commit(path, outcome.changed_files, message)
                    if not await lock.extend():
                        raise GitError("lost the push lock before pushing; retrying the task")
                    await self.repos.push(path, body.branch)
            outcome = outcome.model_copy(update={"commit": commit, "fencing_token": token})
            await self.values.put_field(
                APPLIED, body.mission_id, body.task.id, outcome.model_dump_json()
            )
        return outcome
