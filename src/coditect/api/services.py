"""gRPC servicers: thin adapters from messages to the distributed services' logic."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc

from coditect.api._pb import (
    common_pb2,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
    task_queue_pb2,
    task_queue_pb2_grpc,
)
from coditect.api.convert import (
    event_to_pb,
    file_from_pb,
    file_to_pb,
    plan_to_pb,
    report_to_pb,
    task_from_pb,
)
from coditect.api.server import handle_errors, stream_errors
from coditect.errors import InputError

if TYPE_CHECKING:  # the services are given to the servicers; api never imports their modules
    from coditect.distributed.orchestrator import OrchestratorService
    from coditect.distributed.taskqueue import TaskQueueService

__all__ = [
    "ORCHESTRATOR_SERVICE",
    "TASK_QUEUE_SERVICE",
    "OrchestratorServicer",
    "TaskQueueServicer",
]

ORCHESTRATOR_SERVICE = orchestrator_pb2.DESCRIPTOR.services_by_name["Orchestrator"].full_name
TASK_QUEUE_SERVICE = task_queue_pb2.DESCRIPTOR.services_by_name["TaskQueue"].full_name


def _need(value: str, name: str) -> str:
    if not value:
        raise InputError(f"{name} is required")
    return value


class OrchestratorServicer(orchestrator_pb2_grpc.OrchestratorServicer):  # type: ignore[misc]  # generated base class is untyped
    """The Orchestrator service over a :class:`OrchestratorService`."""

    def __init__(self, coordinator: OrchestratorService) -> None:
        self.coordinator = coordinator

    def register(self, server: grpc.aio.Server) -> None:
        """Add this servicer to ``server``."""
        orchestrator_pb2_grpc.add_OrchestratorServicer_to_server(self, server)

    @handle_errors
    async def SubmitMission(self, request, context):  # type: ignore[no-untyped-def] # noqa: N802, D102
        report, graph, base = await self.coordinator.submit(
            request.request, request.repo, base_ref=request.base_ref, plan_only=request.plan_only
        )
        return orchestrator_pb2.SubmitMissionResponse(
            mission_id=report.mission_id,
            plan=plan_to_pb(graph, report.plan_source),
            branch=report.branch,
            base_commit=base,
        )

    @handle_errors
    async def GetMission(self, request, context):  # type: ignore[no-untyped-def] # noqa: N802, D102
        return report_to_pb(await self.coordinator.get(_need(request.mission_id, "mission_id")))

    @stream_errors
    async def WatchMission(self, request, context) -> AsyncIterator[orchestrator_pb2.MissionEvent]:  # type: ignore[no-untyped-def] # noqa: N802, D102
        mission_id = _need(request.mission_id, "mission_id")
        async for seq, event in self.coordinator.watch_from(mission_id, request.after_seq):
            msg = event_to_pb(event)
            msg.seq = seq
            yield msg

    @handle_errors
    async def CancelMission(self, request, context):  # type: ignore[no-untyped-def] # noqa: N802, D102
        ok = await self.coordinator.cancel(_need(request.mission_id, "mission_id"), request.reason)
        return orchestrator_pb2.CancelMissionResponse(cancelled=ok)


class TaskQueueServicer(task_queue_pb2_grpc.TaskQueueServicer):  # type: ignore[misc]  # generated base class is untyped
    """The TaskQueue service over a :class:`TaskQueueService`."""

    def __init__(self, service: TaskQueueService) -> None:
        self.service = service

    def register(self, server: grpc.aio.Server) -> None:
        """Add this servicer to ``server``."""
        task_queue_pb2_grpc.add_TaskQueueServicer_to_server(self, server)

    @handle_errors
    async def Enqueue(self, request, context):  # type: ignore[no-untyped-def] # noqa: N802, D102
        task = task_from_pb(request.task)
        msg_id, dup = await self.service.enqueue(
            _need(request.mission_id, "mission_id"),
            task,
            request.body_json or "{}",
            request.attempt,
        )
        return task_queue_pb2.EnqueueResponse(message_id=msg_id, duplicate=dup)

    @handle_errors
    async def Lease(self, request, context):  # type: ignore[no-untyped-def] # noqa: N802, D102
        wait_s = min(max(request.wait_s, 0.05), 30.0)
        leased = await self.service.lease(list(request.capabilities), request.worker, wait_s)
        if leased is None:
            return task_queue_pb2.LeaseResponse(found=False)
        m = leased.message
        return task_queue_pb2.LeaseResponse(
            found=True,
            lease_id=leased.lease_id,
            mission_id=m.mission_id,
            task_id=m.task_id,
            capability=m.capability,
            body_json=m.body,
            delivery=leased.delivery,
            trace_headers=leased.trace_headers,
        )

    @handle_errors
    async def Complete(self, request, context):  # type: ignore[no-untyped-def] # noqa: N802, D102
        await self.service.complete(
            _need(request.mission_id, "mission_id"),
            _need(request.task_id, "task_id"),
            worker=request.worker,
            outcome_json=request.result_json,
            attempt=request.attempt,
            files=[file_from_pb(f) for f in request.files] if request.files else None,
            lease_id=request.lease_id,
        )
        return task_queue_pb2.Ack(ok=True)

    @handle_errors
    async def Fail(self, request, context):  # type: ignore[no-untyped-def] # noqa: N802, D102
        await self.service.fail(
            _need(request.mission_id, "mission_id"),
            _need(request.task_id, "task_id"),
            worker=request.worker,
            error=request.error,
            retryable=request.retryable,
            attempt=request.attempt,
            lease_id=request.lease_id,
        )
        return task_queue_pb2.Ack(ok=True)

    @handle_errors
    async def Heartbeat(self, request, context):  # type: ignore[no-untyped-def] # noqa: N802, D102
        await self.service.heartbeat(
            _need(request.mission_id, "mission_id"),
            _need(request.task_id, "task_id"),
            request.worker,
            request.lease_id,
        )
        return task_queue_pb2.Ack(ok=True)

    @handle_errors
    async def GetTasks(self, request, context):  # type: ignore[no-untyped-def] # noqa: N802, D102
        stored = await self.service.get_tasks(_need(request.mission_id, "mission_id"))
        out = []
        for s in stored:
            r = s.record
            task = common_pb2.Task(
                id=r.task_id, state=r.state.value, error=r.error, worker=r.worker, attempt=r.attempt
            )
            out.append(task_queue_pb2.TaskStatus(task=task, result_json=s.outcome_json))
        return task_queue_pb2.GetTasksResponse(tasks=out)

    @handle_errors
    async def CancelTasks(self, request, context):  # type: ignore[no-untyped-def] # noqa: N802, D102
        await self.service.cancel_tasks(_need(request.mission_id, "mission_id"), request.reason)
        return task_queue_pb2.Ack(ok=True)

    @handle_errors
    async def PutCheckpoint(self, request, context):  # type: ignore[no-untyped-def] # noqa: N802, D102
        await self.service.put_checkpoint(
            _need(request.mission_id, "mission_id"), _need(request.state_json, "state_json")
        )
        return task_queue_pb2.Ack(ok=True)

    @handle_errors
    async def GetCheckpoint(self, request, context):  # type: ignore[no-untyped-def] # noqa: N802, D102
        mission_id = _need(request.mission_id, "mission_id")
        state = await self.service.get_checkpoint(mission_id)
        return task_queue_pb2.Checkpoint(mission_id=mission_id, state_json=state)

    @handle_errors
    async def QueryWorldModel(self, request, context):  # type: ignore[no-untyped-def] # noqa: N802, D102
        files = await self.service.query_world(
            _need(request.mission_id, "mission_id"), request.glob
        )
        return task_queue_pb2.WorldModelSnapshot(files=[file_to_pb(f) for f in files])
