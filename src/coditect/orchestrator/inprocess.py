"""The in-process port: tasks run in this process, on the mission's private workspace.

This is ``coditect run``: one :class:`~coditect.orchestrator.step.TaskStep` per task, started
as an asyncio task whose start and outcome are pushed into the mission's inbox. After each settled
task a checkpoint is kept (:mod:`coditect.orchestrator.checkpoint`), from which
``coditect resume`` continues a mission whose process was killed. At the end the change is
committed on a branch (git) or applied with a backup (a plain directory).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from coditect.domain.events import Event
from coditect.domain.mission import MissionOutcome
from coditect.errors import CoditectError
from coditect.orchestrator.checkpoint import checkpoint_of, file_states
from coditect.orchestrator.port import (
    Changes,
    Landing,
    MissionRun,
    TaskFinished,
    TaskPort,
    TaskStarted,
)
from coditect.orchestrator.step import StepOutcome, TaskOrder, TaskStep
from coditect.state.base import CheckpointStore
from coditect.taskqueue.world_model import WorldModel
from coditect.workspace import Workspace

__all__ = ["InProcessPort"]

_log = logging.getLogger(__name__)


class InProcessPort(TaskPort):
    """Runs each task's step in this process on the mission's workspace.

    Args:
        step: The task step (agents, model, sandbox of this process).
        emit: Where the agents' events go (the coordinator's :meth:`emit`).
        state_dir: Where backups of files applied to a plain directory are kept.
        checkpoints: Where a checkpoint is kept after each settled task (None: none is kept,
            and an interrupted mission can only be run again from the start).
    """

    def __init__(
        self,
        step: TaskStep,
        *,
        state_dir: Path,
        emit: Callable[[Event], Awaitable[None]] | None = None,
        checkpoints: CheckpointStore | None = None,
    ) -> None:
        self.step = step
        self.state_dir = state_dir
        self.checkpoints = checkpoints
        #: Set by the runner once its coordinator exists (the coordinator needs the port first).
        self.emit = emit
        self._workspaces: dict[str, Workspace] = {}
        self._running: dict[str, asyncio.Task[None]] = {}

    def attach(self, mission_id: str, ws: Workspace) -> None:
        """Run ``mission_id``'s tasks in ``ws``."""
        self._workspaces[mission_id] = ws

    def detach(self, mission_id: str) -> None:
        """Forget a mission that never ran (its planning failed) and remove its workspace."""
        ws = self._workspaces.pop(mission_id, None)
        if ws is not None:
            ws.cleanup()

    def tree(self, run: MissionRun) -> Path | None:
        """The mission's workspace."""
        return self._workspaces[run.mission_id].path

    async def submit(self, run: MissionRun, order: TaskOrder) -> None:
        """Start the task's step as an asyncio task; it pushes its events into ``run``."""
        ws = self._workspaces[run.mission_id]

        async def on_start(agent: str) -> None:
            run.push(TaskStarted(task_id=order.task.id, agent=agent))

        async def emit(event: Event) -> None:
            if self.emit is not None:
                await self.emit(event)

        async def work() -> None:
            try:
                outcome = await self.step.run(order, ws.path, emit=emit, on_start=on_start)
            except Exception as exc:  # a bug in a step fails its task, not the coordinator
                _log.exception("task %s crashed", order.task.id)
                outcome = StepOutcome(error=f"internal error: {exc!r}")
            run.push(TaskFinished(task_id=order.task.id, outcome=outcome))

        task = asyncio.get_running_loop().create_task(work(), name=f"task-{order.task.id}")
        self._running[run.mission_id] = task

    async def cancel(self, run: MissionRun, reason: str) -> None:
        """Cancel the running step (its changes stay in the private workspace only)."""
        task = self._running.pop(run.mission_id, None)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _changed(self, run: MissionRun) -> list[str]:
        """The files of the workspace that differ from the mission's baseline."""
        ws, initial = self._workspaces[run.mission_id], run.baseline
        world = WorldModel(ws.path)
        await asyncio.to_thread(world.scan)
        final = world.snapshot()
        return sorted(p for p in set(initial) | set(final) if initial.get(p) != final.get(p))

    async def changes(self, run: MissionRun) -> Changes:
        """The files that differ from the mission's baseline, and their diff."""
        files = await self._changed(run)
        ws = self._workspaces[run.mission_id]
        return Changes(files=files, diff=ws.diff(files) if files else "")

    async def after_step(self, run: MissionRun) -> None:
        """Keep the mission's checkpoint: decisions, results and the changed files' contents.

        A checkpoint that cannot be stored is logged and skipped: the previous one still
        describes a consistent earlier point of the mission.
        """
        if self.checkpoints is None:
            return
        ws = self._workspaces[run.mission_id]
        changed = await self._changed(run)
        files = await asyncio.to_thread(file_states, ws.path, changed, run.baseline)
        checkpoint = checkpoint_of(run, base=ws.git.head if ws.git else "", files=files)
        try:
            await self.checkpoints.save_checkpoint(run.mission_id, checkpoint)
        except CoditectError as exc:
            _log.warning("mission %s: checkpoint not stored: %s", run.mission_id, exc)

    async def land(self, run: MissionRun, changes: Changes) -> Landing:
        """Commit on ``coditect/<mission>`` (git), or apply in place with a backup."""
        ws = self._workspaces[run.mission_id]
        report = run.report
        if ws.git is not None:
            branch = f"coditect/{report.mission_id}"
            commit = ws.commit(
                changes.files,
                branch=branch,
                message=f"{report.request}\n\nCODITECT mission {report.mission_id}",
            )
            return Landing(branch=branch, commit=commit)
        if report.status is MissionOutcome.UNVERIFIED:
            # No branch to keep it on: the user's files stay as they are, the change is a patch.
            patch = self.state_dir / "missions" / report.mission_id / "change.patch"
            patch.parent.mkdir(parents=True, exist_ok=True)
            patch.write_text(changes.diff, encoding="utf-8")
            return Landing(notes=(f"unverified change not applied; the patch is in {patch}",))
        backup = self.state_dir / "missions" / report.mission_id / "backup"
        ws.apply(changes.files, backup_dir=backup)
        return Landing(
            applied_to=str(ws.repo), notes=(f"originals of changed files saved in {backup}",)
        )

    async def close(self, run: MissionRun) -> None:
        """Stop a step still running, remove the workspace and forget the checkpoint."""
        await self.cancel(run, "the mission ended")
        self.detach(run.mission_id)
        if self.checkpoints is not None:
            try:
                await self.checkpoints.delete_checkpoint(run.mission_id)
            except CoditectError as exc:
                _log.warning("mission %s: checkpoint not removed: %s", run.mission_id, exc)
