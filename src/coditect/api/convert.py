"""Conversions between protobuf messages and domain objects."""

from __future__ import annotations

from coditect.api._pb import common_pb2, orchestrator_pb2, task_queue_pb2
from coditect.domain.actions import FileRecord
from coditect.domain.events import Event
from coditect.domain.graph import TaskGraph
from coditect.domain.mission import MissionReport, TaskRun
from coditect.domain.tasks import Intent, TaskSpec
from coditect.errors import InputError

__all__ = [
    "event_to_pb",
    "file_from_pb",
    "file_to_pb",
    "plan_to_pb",
    "report_to_pb",
    "task_from_pb",
    "task_run_to_pb",
    "task_to_pb",
]


def task_to_pb(
    task: TaskSpec, *, state: str = "pending", error: str = "", worker: str = "", attempt: int = 0
) -> common_pb2.Task:
    """A planned task (and optionally its state) as a message."""
    return common_pb2.Task(
        id=task.id,
        intent=task.intent.value,
        description=task.description,
        depends_on=list(task.depends_on),
        priority=task.priority,
        target_files=list(task.target_files),
        capability=task.capability,
        state=state,
        error=error,
        worker=worker,
        attempt=attempt,
    )


def task_from_pb(msg: common_pb2.Task) -> TaskSpec:
    """The task a message describes.

    Raises:
        InputError: The message is not a valid task.
    """
    try:
        return TaskSpec(
            id=msg.id,
            intent=Intent(msg.intent),
            description=msg.description,
            depends_on=tuple(msg.depends_on),
            priority=msg.priority,
            target_files=tuple(msg.target_files),
        )
    except ValueError as exc:
        raise InputError(f"invalid task: {exc}") from exc


def task_run_to_pb(run: TaskRun) -> common_pb2.Task:
    """A task of a mission report as a message."""
    return common_pb2.Task(
        id=run.id,
        intent=run.intent.value,
        description=run.description,
        depends_on=list(run.depends_on),
        capability="",
        state=run.status.value,
        error=run.error,
        worker=run.agent,
        attempt=run.attempts,
    )


def plan_to_pb(graph: TaskGraph, source: str) -> orchestrator_pb2.Plan:
    """A planned DAG as a message."""
    return orchestrator_pb2.Plan(tasks=[task_to_pb(t) for t in graph], source=source)


def report_to_pb(report: MissionReport) -> orchestrator_pb2.Mission:
    """A mission report as a message (the full report rides along as JSON)."""
    return orchestrator_pb2.Mission(
        mission_id=report.mission_id,
        status=report.status.value,
        reason=report.reason,
        request=report.request,
        repo=report.repo,
        branch=report.branch,
        commit=report.commit,
        tasks=[task_run_to_pb(t) for t in report.tasks],
        report_json=report.model_dump_json(),
    )


def event_to_pb(event: Event) -> orchestrator_pb2.MissionEvent:
    """An event as a message."""
    return orchestrator_pb2.MissionEvent(
        mission_id=event.mission_id,
        type=event.type,
        task_id=event.task_id,
        event_json=event.model_dump_json(),
    )


def file_to_pb(record: FileRecord) -> task_queue_pb2.FileEntry:
    """A world-model file record as a message."""
    return task_queue_pb2.FileEntry(
        path=record.path, size=record.size, sha256=record.sha256, mtime_ns=record.mtime_ns
    )


def file_from_pb(msg: task_queue_pb2.FileEntry) -> FileRecord:
    """The file record a message describes."""
    return FileRecord(path=msg.path, size=msg.size, mtime_ns=msg.mtime_ns, sha256=msg.sha256)
