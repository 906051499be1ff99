"""``coditect resume ID``: continue an interrupted mission after its last completed task.

A mission is INTERRUPTED when the process that ran it ended while it was RUNNING (``kill -9``,
a crash, a reboot; see :mod:`coditect.state.owners`). Its workspace copy went with the process,
but after every settled task a checkpoint was stored (:mod:`coditect.orchestrator.checkpoint`):
the plan, each task's result and the files changed so far. Resume rebuilds the workspace from
the mission's base commit plus those files, keeps the completed tasks with their results (the
later tasks get them as upstream input) and runs only the rest, under the same mission id.

When there is no checkpoint (the mission was interrupted before its first task ended) or it
does not apply (the repository moved on from the base commit, a file the mission changed
differs), resume says why and does nothing; ``--from-start`` then runs the stored plan again
from the first task on the repository as it is now. Nothing was committed or applied by the
interrupted run (that happens only at the very end), so the change is applied exactly once.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from coditect.config import Settings
from coditect.domain.checkpoint import MissionCheckpoint
from coditect.domain.graph import TaskGraph
from coditect.domain.mission import MissionOutcome, MissionReport, TaskRun
from coditect.domain.tasks import TaskSpec
from coditect.errors import CoditectError, InputError
from coditect.orchestrator.planner import Planner, PlanOutcome
from coditect.state.base import CheckpointStore, MissionStore
from coditect.state.owners import judge_reports

__all__ = [
    "StoredPlanner",
    "judged_report",
    "judged_reports",
    "no_checkpoint_reason",
    "resume",
    "stored_plan",
]

Checkpoint = MissionCheckpoint | None

# Repair rounds are added while a mission runs (orchestrator/repair.py names them so); the plan
# to run again is the one made before them.
_REPAIR_ID = re.compile(r"^(repair|retest)\d+$")


async def judged_reports(
    store: MissionStore, reports: Sequence[MissionReport]
) -> list[MissionReport]:
    """``reports`` with those whose owner process is gone shown as INTERRUPTED."""
    owners = await store.owners([r.mission_id for r in reports])
    return judge_reports(reports, owners)


async def judged_report(store: MissionStore, mission_id: str) -> MissionReport | None:
    """One report by id or prefix, judged like :func:`judged_reports`; None when unknown."""
    report = await store.get_report(mission_id)
    if report is None:
        return None
    return (await judged_reports(store, [report]))[0]


def stored_plan(tasks: Sequence[TaskRun]) -> TaskGraph | None:
    """The plan recorded in a report (without repair rounds), or None when there is none."""
    planned = [t for t in tasks if not _REPAIR_ID.match(t.id)]
    if not planned:
        return None
    ids = {t.id for t in planned}
    return TaskGraph(
        TaskSpec(
            id=t.id,
            intent=t.intent,
            description=t.description or t.id,
            depends_on=tuple(d for d in t.depends_on if d in ids),
        )
        for t in planned
    )


class StoredPlanner(Planner):
    """A planner that answers with a plan made earlier (no model call)."""

    def __init__(self, planner: Planner, graph: TaskGraph) -> None:
        super().__init__(planner.model, max_files_listed=planner.max_files_listed)
        self.graph = graph

    async def plan(self, request: str, files: Sequence[str], *, has_tests: bool) -> PlanOutcome:
        """The stored plan."""
        return PlanOutcome(graph=self.graph, source="resumed")


def why_not_resumable(report: MissionReport) -> str:
    """Why ``report``'s mission cannot be resumed, or ``""`` when it can."""
    if report.status is MissionOutcome.RUNNING:
        return "it is still running (its process is alive); wait for it or cancel it"
    if report.status is not MissionOutcome.INTERRUPTED:
        return (
            f"it ended {report.status.value}, it was not interrupted; start a new mission with "
            "`coditect run`"
        )
    repo = Path(report.repo)
    if not repo.is_dir():
        return f"its repository {repo} no longer exists"
    branch = f"coditect/{report.mission_id}"
    probe = subprocess.run(
        ["git", "rev-parse", "--verify", "-q", f"refs/heads/{branch}"],
        cwd=repo,
        capture_output=True,
        check=False,
    )
    if probe.returncode == 0:
        return f"its branch {branch} already exists: the change was committed before it ended"
    return ""


def no_checkpoint_reason(mission_id: str) -> str:
    """What resume says of an interrupted mission that left no checkpoint."""
    return (
        "no checkpoint of it was stored (it was interrupted before its first task ended, or "
        f"it ran on an older CODITECT); `coditect resume {mission_id} --from-start` runs its "
        "plan again from the first task"
    )


async def _load(
    store: MissionStore, checkpoints: CheckpointStore, mission_id: str
) -> tuple[MissionReport | None, Checkpoint]:
    report = await judged_report(store, mission_id)
    if report is None:
        return None, None
    return report, await checkpoints.get_checkpoint(report.mission_id)


async def _resume(
    report: MissionReport, checkpoint: Checkpoint, settings: Settings
) -> MissionReport:
    """Continue from ``checkpoint``, or (None) run the stored plan again from the first task."""
    from coditect.runtime import build_runtime

    rt = build_runtime(settings)
    try:
        if checkpoint is not None:
            return await rt.runner.resume(report, checkpoint)
        graph = stored_plan(report.tasks)
        if graph is not None:  # this runtime serves this one mission: swap its planner
            coordinator = rt.runner.coordinator
            coordinator.planner = StoredPlanner(coordinator.planner, graph)
        return await rt.runner.run(report.request, Path(report.repo), mission_id=report.mission_id)
    finally:
        await rt.aclose()


def resume(
    mission_id: Annotated[str, typer.Argument(help="An interrupted mission's id (or prefix).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON report.")] = False,
    llm: Annotated[str | None, typer.Option(help="Model: local (default) or a spec.")] = None,
    sandbox: Annotated[str | None, typer.Option(help="Sandbox backend.")] = None,
    from_start: Annotated[
        bool,
        typer.Option(
            "--from-start",
            help="Run the stored plan again from the first task, on the repository as it is "
            "now (when there is no checkpoint to continue from, or it no longer applies).",
        ),
    ] = False,
) -> None:
    """Continue an INTERRUPTED mission after its last completed task (same id, same plan)."""
    from coditect.cli.main import EXIT_CANCELLED, EXIT_FAILED, EXIT_INPUT, _err, _print_report
    from coditect.leftovers import collect
    from coditect.runtime import open_mission_store

    overrides: dict[str, object] = {}
    if llm is not None:
        overrides["llm"] = llm
    if sandbox is not None:
        overrides["sandbox"] = sandbox
    settings = Settings(**overrides)  # type: ignore[arg-type]
    console = Console(stderr=as_json)
    store = open_mission_store(settings.database_url)
    try:
        report, checkpoint = asyncio.run(_load(store, store, mission_id))
        reason = why_not_resumable(report) if report is not None else ""
        if report is not None and not reason and from_start and checkpoint is not None:
            asyncio.run(store.delete_checkpoint(report.mission_id))  # it would describe the old run
            checkpoint = None
    except InputError as exc:
        _err(console, exc)
        raise typer.Exit(EXIT_INPUT) from None
    finally:
        asyncio.run(store.close())
    if report is None:
        console.print(f"[red]no mission {mission_id!r}[/] (see `coditect status`)")
        raise typer.Exit(EXIT_INPUT)
    if not reason and checkpoint is None and not from_start:
        reason = no_checkpoint_reason(report.mission_id)
    if reason:
        console.print(f"[bold red]error:[/] cannot resume {report.mission_id}: {reason}")
        raise typer.Exit(EXIT_INPUT)
    collect()
    try:
        final = asyncio.run(_resume(report, checkpoint, settings))
    except KeyboardInterrupt:
        console.print("[magenta]cancelled[/]: the mission was stopped; nothing was changed.")
        raise typer.Exit(EXIT_CANCELLED) from None
    except CoditectError as exc:
        _err(console, exc)
        raise typer.Exit(EXIT_INPUT if isinstance(exc, InputError) else EXIT_FAILED) from None
    _print_report(final, as_json=as_json, console=console, show_tasks=False)
    if final.status is not MissionOutcome.SUCCESS:
        raise typer.Exit(EXIT_FAILED)
