"""gRPC clients with a deadline on every call and bounded retries of retryable failures."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from opentelemetry.trace import Span

from coditect.api._pb import (
    orchestrator_pb2,
    orchestrator_pb2_grpc,
    task_queue_pb2,
    task_queue_pb2_grpc,
)
from coditect.api.convert import file_to_pb, task_to_pb
from coditect.api.errors import RpcError, from_rpc_error
from coditect.api.security import TlsConfig, auth_metadata
from coditect.api.server import DEFAULT_MAX_MESSAGE_BYTES, open_channel
from coditect.domain.actions import FileRecord
from coditect.domain.events import Event, event_adapter
from coditect.domain.mission import MissionReport
from coditect.domain.tasks import GoalState, TaskSpec
from coditect.domain.taskstate import StoredTaskView, TaskStateRecord
from coditect.errors import InputError
from coditect.telemetry import tracing

__all__ = ["ClientOptions", "OrchestratorClient", "TaskQueueClient"]

T = TypeVar("T")

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClientOptions:
    """How a client connects.

    Attributes:
        address: ``host:port`` of the server.
        deadline_s: Deadline of each unary call.
        retries: Extra attempts for a call that failed with UNAVAILABLE or DEADLINE_EXCEEDED
            (only idempotent calls are retried).
        backoff_s: First pause between attempts (doubles, at most 2 s).
    """

    address: str
    token: str = ""
    tls: TlsConfig = field(default_factory=TlsConfig)
    deadline_s: float = 10.0
    retries: int = 3
    backoff_s: float = 0.1
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES


class _Client:
    def __init__(self, options: ClientOptions) -> None:
        self.options = options
        self.channel = open_channel(
            options.address, tls=options.tls, max_message_bytes=options.max_message_bytes
        )
        self._md = auth_metadata(options.token)

    async def _call(
        self,
        what: str,
        method: Callable[..., Awaitable[T]],
        request: Any,
        *,
        retry: bool = True,
        deadline_s: float | None = None,
    ) -> T:
        attempts = 1 + (self.options.retries if retry else 0)
        delay_s = self.options.backoff_s
        for attempt in range(1, attempts + 1):
            deadline = deadline_s or self.options.deadline_s
            try:
                # The asyncio timeout backs up gRPC's own deadline, so that a completion that
                # never reaches the event loop cannot hang the caller.
                return await asyncio.wait_for(
                    method(request, timeout=deadline, metadata=self._md), deadline + 1.0
                )
            except grpc.aio.AioRpcError as exc:
                err = from_rpc_error(exc, f"{what} on {self.options.address}")
                if not err.retryable or attempt == attempts:
                    raise err from None
            except TimeoutError:
                if attempt == attempts:
                    raise RpcError(
                        f"{what} on {self.options.address}: no answer within {deadline:g}s",
                        code=grpc.StatusCode.DEADLINE_EXCEEDED,
                    ) from None
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, 2.0)
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        """Close the channel."""
        await self.channel.close()

    async def __aenter__(self: T) -> T:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class OrchestratorClient(_Client):
    """Client of the Orchestrator service."""

    def __init__(self, options: ClientOptions) -> None:
        super().__init__(options)
        self.stub = orchestrator_pb2_grpc.OrchestratorStub(self.channel)

    async def submit(
        self,
        request: str,
        repo: str,
        *,
        base_ref: str = "",
        plan_only: bool = False,
        deadline_s: float | None = None,
    ) -> orchestrator_pb2.SubmitMissionResponse:
        """Submit (or only plan) a mission; the response carries the plan (not retried)."""
        msg = orchestrator_pb2.SubmitMissionRequest(
            request=request, repo=repo, base_ref=base_ref, plan_only=plan_only
        )
        return await self._call(
            "SubmitMission", self.stub.SubmitMission, msg, retry=False, deadline_s=deadline_s
        )

    async def get(self, mission_id: str) -> MissionReport:
        """A mission's report."""
        msg = await self._call(
            "GetMission",
            self.stub.GetMission,
            orchestrator_pb2.GetMissionRequest(mission_id=mission_id),
        )
        return MissionReport.model_validate_json(msg.report_json)

    async def cancel(self, mission_id: str, reason: str = "") -> bool:
        """Cancel a mission; False when it had already ended."""
        msg = orchestrator_pb2.CancelMissionRequest(mission_id=mission_id, reason=reason)
        resp = await self._call("CancelMission", self.stub.CancelMission, msg)
        return bool(resp.cancelled)

    async def watch(
        self,
        mission_id: str,
        *,
        deadline_s: float = 3600.0,
        after_seq: int = 0,
        reconnect_s: float = 60.0,
    ) -> AsyncIterator[Event]:
        """The mission's events until it ends (or ``deadline_s`` passes).

        A stream that breaks with a retryable error (the orchestrator restarted, or is
        stopping) is opened again with backoff, from the last event received: events are
        neither lost nor repeated. It gives up after ``reconnect_s`` without receiving anything
        (0: never reconnect).

        Args:
            mission_id: The mission.
            deadline_s: How long to watch in all.
            after_seq: Start after this position of the stored history (0: from the start).
            reconnect_s: How long to keep reconnecting without progress.
        """
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        last, delay_s = after_seq, self.options.backoff_s
        progress = loop.time()
        while True:
            call = self.stub.WatchMission(
                orchestrator_pb2.WatchMissionRequest(mission_id=mission_id, after_seq=last),
                timeout=max(end - loop.time(), 0.001),
                metadata=self._md,
            )
            try:
                async for msg in call:
                    last = max(last, int(msg.seq))
                    progress, delay_s = loop.time(), self.options.backoff_s
                    yield event_adapter.validate_json(msg.event_json)
                return
            except grpc.aio.AioRpcError as exc:
                err = from_rpc_error(exc, f"WatchMission on {self.options.address}")
                again = err.retryable or exc.code() is grpc.StatusCode.CANCELLED
                now = loop.time()
                if not again or now - progress + delay_s > reconnect_s or now + delay_s > end:
                    raise err from None
                _log.info("watch of %s lost (%s); resuming after event %d", mission_id, err, last)
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, 2.0)


class TaskQueueClient(_Client):
    """Client of the TaskQueue service (the orchestrator's port and the workers' sink)."""

    def __init__(self, options: ClientOptions) -> None:
        super().__init__(options)
        self.stub = task_queue_pb2_grpc.TaskQueueStub(self.channel)

    async def enqueue(self, mission_id: str, task: TaskSpec, body_json: str, attempt: int) -> str:
        """Enqueue a task (retried: the de-duplication id makes it idempotent)."""
        msg = task_queue_pb2.EnqueueRequest(
            mission_id=mission_id, task=task_to_pb(task), body_json=body_json, attempt=attempt
        )
        resp = await self._call("Enqueue", self.stub.Enqueue, msg)
        return str(resp.message_id)

    async def check_access(self) -> None:
        """One authenticated call that reads and changes nothing (a worker's start-up check).

        ``GetTasks`` without a mission passes the token check, then is refused as an invalid
        argument before any store is touched: that refusal means the credentials are good.

        Raises:
            AuthenticationError: The server refused the token (``RpcAuthError``).
            RpcError: The server could not be reached (retryable) or failed otherwise.
        """
        try:
            await self._call(
                "GetTasks", self.stub.GetTasks, task_queue_pb2.GetTasksRequest(mission_id="")
            )
        except InputError:
            return

    async def get_tasks(self, mission_id: str) -> list[StoredTaskView]:
        """Stored task states and outcomes of a mission."""
        resp = await self._call(
            "GetTasks", self.stub.GetTasks, task_queue_pb2.GetTasksRequest(mission_id=mission_id)
        )
        return [
            StoredTaskView(
                record=TaskStateRecord(
                    mission_id=mission_id,
                    task_id=s.task.id,
                    state=GoalState(s.task.state),
                    attempt=s.task.attempt,
                    worker=s.task.worker,
                    error=s.task.error,
                ),
                outcome_json=s.result_json,
            )
            for s in resp.tasks
        ]

    async def complete(
        self,
        mission_id: str,
        task_id: str,
        *,
        worker: str,
        outcome_json: str,
        attempt: int,
        files: list[FileRecord],
        lease_id: str = "",
    ) -> None:
        """Report a completed task (idempotent, retried)."""
        msg = task_queue_pb2.CompleteRequest(
            mission_id=mission_id,
            task_id=task_id,
            worker=worker,
            result_json=outcome_json,
            attempt=attempt,
            files=[file_to_pb(f) for f in files],
            lease_id=lease_id,
        )
        await self._call("Complete", self.stub.Complete, msg)

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
        """Report a failed task."""
        msg = task_queue_pb2.FailRequest(
            mission_id=mission_id,
            task_id=task_id,
            worker=worker,
            error=error,
            retryable=retryable,
            attempt=attempt,
            lease_id=lease_id,
        )
        await self._call("Fail", self.stub.Fail, msg)

    async def heartbeat(
        self, mission_id: str, task_id: str, *, worker: str, lease_id: str = ""
    ) -> None:
        """The task runs on ``worker``."""
        msg = task_queue_pb2.HeartbeatRequest(
            mission_id=mission_id, task_id=task_id, worker=worker, lease_id=lease_id
        )
        await self._call("Heartbeat", self.stub.Heartbeat, msg)

    async def lease(
        self, capabilities: list[str], worker: str, wait_s: float = 1.0
    ) -> task_queue_pb2.LeaseResponse:
        """Lease one task through the service (not retried: a lost answer would lose the lease).

        Run the task inside :meth:`task_span` so that it joins the mission's trace.
        """
        msg = task_queue_pb2.LeaseRequest(capabilities=capabilities, worker=worker, wait_s=wait_s)
        return await self._call(
            "Lease", self.stub.Lease, msg, retry=False, deadline_s=wait_s + self.options.deadline_s
        )

    @staticmethod
    @contextlib.contextmanager
    def task_span(leased: task_queue_pb2.LeaseResponse, *, worker: str) -> Iterator[Span]:
        """A CONSUMER span ``worker.task`` for a task leased with :meth:`lease`.

        Its parent is the trace context the task was enqueued in (the response's
        ``trace_headers``), so the task, and the Heartbeat/Complete/Fail calls made inside the
        block, belong to the mission's trace::

            leased = await client.lease(["code"], "w1")
            with client.task_span(leased, worker="w1"):
                await client.complete(leased.mission_id, leased.task_id, ...)
        """
        with tracing.span(
            "worker.task",
            parent=dict(leased.trace_headers),
            kind=tracing.SpanKind.CONSUMER,
            attributes={
                "coditect.mission_id": leased.mission_id,
                "coditect.task_id": leased.task_id,
                "coditect.capability": leased.capability,
                "coditect.worker": worker,
                "coditect.delivery": leased.delivery,
                "messaging.system": "grpc",
            },
        ) as span:
            yield span

    async def cancel_tasks(self, mission_id: str, reason: str = "") -> None:
        """Cancel a mission's tasks on the workers (idempotent, retried)."""
        msg = task_queue_pb2.CancelTasksRequest(mission_id=mission_id, reason=reason)
        await self._call("CancelTasks", self.stub.CancelTasks, msg)

    async def put_checkpoint(self, mission_id: str, state_json: str) -> None:
        """Keep the orchestrator's checkpoint of a mission (idempotent, retried)."""
        msg = task_queue_pb2.Checkpoint(mission_id=mission_id, state_json=state_json)
        await self._call("PutCheckpoint", self.stub.PutCheckpoint, msg)

    async def get_checkpoint(self, mission_id: str) -> str:
        """The mission's last checkpoint ("" when none is kept)."""
        msg = task_queue_pb2.GetCheckpointRequest(mission_id=mission_id)
        resp = await self._call("GetCheckpoint", self.stub.GetCheckpoint, msg)
        return str(resp.state_json)

    async def query_world(self, mission_id: str, glob: str = "") -> list[FileRecord]:
        """The mission's world model as last reported by a worker."""
        resp = await self._call(
            "QueryWorldModel",
            self.stub.QueryWorldModel,
            task_queue_pb2.WorldModelQuery(mission_id=mission_id, glob=glob),
        )
        return [
            FileRecord(path=f.path, size=f.size, mtime_ns=f.mtime_ns, sha256=f.sha256)
            for f in resp.files
        ]
