"""Checkpoints of a mission run in one process: take one after each task, restore it on resume.

The in-process port (:mod:`coditect.orchestrator.inprocess`) keeps a
:class:`~coditect.domain.checkpoint.MissionCheckpoint` after every settled task: the plan, the
coordinator's decisions, each settled task's result and the files the mission has changed so
far (their bytes, against the files as the mission started). ``coditect resume`` rebuilds the
workspace from the base commit plus those files (:func:`restore_files`) after checking that the
checkpoint still applies (:func:`mismatch`), and the coordinator replays the decisions, so only
the tasks not yet completed run again.
"""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath

from coditect.domain.checkpoint import CheckpointStep, FileState, MissionCheckpoint
from coditect.errors import CoditectError
from coditect.orchestrator.port import JournalStep, MissionRun

__all__ = ["checkpoint_of", "file_states", "journal_of", "mismatch", "restore_files"]


def file_states(tree: Path, changed: Iterable[str], baseline: Mapping[str, str]) -> list[FileState]:
    """The state of each of ``changed`` (project-relative paths) in ``tree``.

    Args:
        tree: The mission's workspace.
        changed: The files that differ from ``baseline``.
        baseline: Path -> SHA-256 of the files as the mission started.
    """
    states: list[FileState] = []
    for rel in sorted(changed):
        path = tree / rel
        original = baseline.get(rel, "")
        if path.is_symlink():
            state = FileState(path=rel, original_sha256=original, link=os.readlink(path))
        elif path.is_file():
            state = FileState(
                path=rel,
                original_sha256=original,
                content_b64=base64.b64encode(path.read_bytes()).decode("ascii"),
                executable=bool(path.stat().st_mode & stat.S_IXUSR),
            )
        else:
            state = FileState(path=rel, original_sha256=original, deleted=True)
        states.append(state)
    return states


def checkpoint_of(run: MissionRun, *, base: str, files: list[FileState]) -> MissionCheckpoint:
    """The checkpoint of ``run`` as it stands, with the workspace's changed ``files``."""
    steps = [
        CheckpointStep(kind=s.kind, task_id=s.task_id, error=s.error, tasks=list(s.tasks))
        for s in run.journal
    ]
    settled = {s.task_id for s in run.journal}
    results = {tid: r for tid, r in run.task_results.items() if tid in settled}
    return MissionCheckpoint(
        base=base, plan=run.plan.specs(), steps=steps, results=results, files=files
    )


def journal_of(checkpoint: MissionCheckpoint) -> list[JournalStep]:
    """The coordinator's journal a checkpoint holds (for :meth:`Coordinator.replay`)."""
    return [
        JournalStep(kind=s.kind, task_id=s.task_id, error=s.error, tasks=tuple(s.tasks))
        for s in checkpoint.steps
    ]


def mismatch(checkpoint: MissionCheckpoint, *, head: str, files: Mapping[str, str]) -> str:
    """Why ``checkpoint`` does not apply to the repository as it is now ("" when it does).

    Args:
        checkpoint: The interrupted mission's checkpoint.
        head: The commit the repository is at now ("": it is not a git repository).
        files: Path -> SHA-256 of the repository's files now (a fresh copy of them).
    """
    if checkpoint.base and not head:
        return (
            f"the mission started from commit {checkpoint.base[:12]}; the repository is no "
            "longer a git repository"
        )
    if head and not checkpoint.base:
        return "the mission started from a plain directory; the repository is now a git repository"
    if checkpoint.base != head:
        return (
            f"the repository moved on: the mission started from commit {checkpoint.base[:12]}, "
            f"HEAD is now {head[:12]}"
        )
    for f in checkpoint.files:
        now = files.get(f.path, "")
        if now != f.original_sha256:
            was = "did not exist" if not f.original_sha256 else "had other contents"
            now_is = "does not exist" if not now else "differs"
            return (
                f"{f.path} {now_is} from the file the mission started from "
                f"(it {was} then); the mission changed that file"
            )
    return ""


_EXECUTE = stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH


def restore_files(tree: Path, files: Iterable[FileState]) -> None:
    """Write the checkpointed ``files`` into ``tree`` (a fresh copy of the base).

    Raises:
        CoditectError: A path leads outside ``tree`` (the checkpoint was not written by CODITECT).
    """
    for f in files:
        rel = PurePosixPath(f.path)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise CoditectError(f"the checkpoint names a path outside the project: {f.path!r}")
        path = tree / rel
        if path.is_symlink() or path.is_file():
            path.unlink()
        if f.deleted:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if f.link:
            os.symlink(f.link, path)
            continue
        path.write_bytes(base64.b64decode(f.content_b64))
        mode = stat.S_IMODE(path.stat().st_mode)
        path.chmod(mode | _EXECUTE if f.executable else mode & ~_EXECUTE)
