"""Checkpoints of one-process missions: taken after each task, restored on resume."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from coditect.config import Settings
from coditect.domain import GoalState, MissionOutcome, MissionReport, TaskState
from coditect.domain.checkpoint import FileState, MissionCheckpoint
from coditect.errors import CoditectError, InputError
from coditect.llm.demo import fibonacci_model
from coditect.orchestrator.checkpoint import file_states, mismatch, restore_files
from coditect.runtime import build_runtime
from coditect.state.sql import SqlStore
from coditect.taskqueue.world_model import WorldModel

REQUEST = "Add a function to calculate the nth Fibonacci number"


def snapshot(tree: Path) -> dict[str, str]:
    world = WorldModel(tree)
    world.scan()
    return world.snapshot()


def test_changed_files_round_trip_into_a_fresh_copy(tmp_path: Path) -> None:
    base = tmp_path / "base"
    (base / "pkg").mkdir(parents=True)
    (base / "pkg" / "a.py").write_text("a = 1\n")
    (base / "gone.py").write_text("x = 1\n")
    (base / "tool.sh").write_text("echo\n")
    baseline = snapshot(base)
    work = tmp_path / "work"
    shutil.copytree(base, work, symlinks=True)
    (work / "pkg" / "a.py").write_text("a = 2\n")
    (work / "gone.py").unlink()
    (work / "new" / "deep").mkdir(parents=True)
    (work / "new" / "deep" / "b.py").write_bytes(b"\x00binary\xff")
    (work / "tool.sh").chmod(0o755)
    (work / "tool.sh").write_text("echo hi\n")
    (work / "link.py").symlink_to("pkg/a.py")
    final = snapshot(work)
    changed = sorted(p for p in set(baseline) | set(final) if baseline.get(p) != final.get(p))

    states = file_states(work, changed, baseline)
    by_path = {s.path: s for s in states}
    assert by_path["gone.py"].deleted and by_path["gone.py"].original_sha256
    assert by_path["link.py"].link == "pkg/a.py" and not by_path["link.py"].original_sha256
    assert by_path["tool.sh"].executable

    fresh = tmp_path / "fresh"
    shutil.copytree(base, fresh, symlinks=True)
    restore_files(fresh, states)
    assert snapshot(fresh) == final
    assert os.readlink(fresh / "link.py") == "pkg/a.py"
    assert os.access(fresh / "tool.sh", os.X_OK)
    assert not os.access(fresh / "pkg" / "a.py", os.X_OK)


@pytest.mark.parametrize("path", ["../outside.py", "/etc/passwd", "a/../../b.py"])
def test_a_path_outside_the_project_is_refused(tmp_path: Path, path: str) -> None:
    with pytest.raises(CoditectError, match="outside the project"):
        restore_files(tmp_path, [FileState(path=path, content_b64="")])


def checkpoint(base: str, *files: FileState) -> MissionCheckpoint:
    return MissionCheckpoint(base=base, plan=[], files=list(files))


def test_mismatch_says_why_the_checkpoint_does_not_apply() -> None:
    f = FileState(path="m.py", original_sha256="aaa", content_b64="")
    new = FileState(path="n.py", content_b64="")
    assert mismatch(checkpoint("c1", f, new), head="c1", files={"m.py": "aaa"}) == ""
    assert mismatch(checkpoint("", f), head="", files={"m.py": "aaa"}) == ""
    moved = mismatch(checkpoint("c1" * 10, f), head="c2" * 10, files={"m.py": "aaa"})
    assert moved.startswith("the repository moved on") and "c2c2c2c2c2c2" in moved
    assert "no longer a git repository" in mismatch(checkpoint("c1"), head="", files={})
    assert "now a git repository" in mismatch(checkpoint(""), head="c1", files={})
    assert mismatch(checkpoint("", f), head="", files={"m.py": "bbb"}).startswith(
        "m.py differs from the file the mission started from (it had other contents then)"
    )
    assert mismatch(checkpoint("", f), head="", files={}).startswith("m.py does not exist")
    assert mismatch(checkpoint("", new), head="", files={"n.py": "ccc"}).startswith(
        "n.py differs from the file the mission started from (it did not exist then)"
    )


class KeepingStore(SqlStore):
    """A SQL store that also keeps every checkpoint saved, and never forgets one."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.saved: list[MissionCheckpoint] = []

    async def save_checkpoint(self, mission_id: str, checkpoint: MissionCheckpoint) -> None:
        self.saved.append(checkpoint)
        await super().save_checkpoint(mission_id, checkpoint)

    async def delete_checkpoint(self, mission_id: str) -> None:
        return None


def runner_on(store, model, *, commit: bool):
    from coditect.orchestrator.mission import MissionRunner, MissionSettings

    rt = build_runtime(Settings(sandbox="subprocess", reuse=False), model=model)
    runner = MissionRunner(
        model=model,
        sandbox=rt.sandbox,
        store=store,
        bus=rt.bus,
        allocator=rt.runner.port.step.allocator,
        settings=MissionSettings(commit=commit, reuse=False),
    )
    return rt, runner


async def test_resume_runs_only_the_tasks_after_the_checkpoint(calculator_repo: Path, git) -> None:
    store = KeepingStore(Settings().database_url)
    rt, runner = runner_on(store, fibonacci_model(), commit=False)
    try:
        first = await runner.run(REQUEST, calculator_repo, mission_id="m-ckpt")
    finally:
        await rt.aclose()
    assert first.status is MissionOutcome.SUCCESS, first.reason
    # One checkpoint a settled task; the second one holds t1 and t2 and the new function.
    assert [c.completed for c in store.saved][:2] == [["t1"], ["t1", "t2"]]
    after_code = store.saved[1]
    assert set(after_code.results) == {"t1", "t2"}
    assert "calculator/arithmetic.py" in [f.path for f in after_code.files]

    # The mission as a killed process would have left it: RUNNING after t2, t3 and t4 not run.
    report = MissionReport.model_validate_json(first.model_dump_json())
    report.status, report.diff, report.branch = MissionOutcome.INTERRUPTED, "", ""
    model = fibonacci_model()
    rt, runner = runner_on(store, model, commit=True)
    try:
        before = len(await store.list_events("m-ckpt"))
        final = await runner.resume(report, after_code)
        events = (await store.list_events("m-ckpt"))[before:]
    finally:
        await rt.aclose()
        await store.close()
    assert final.status is MissionOutcome.SUCCESS, final.reason
    purposes = [s.purpose for _, s in model.calls]
    assert purposes and not {"plan", "code"} & set(purposes), purposes
    started = [
        e.task_id for e in events if isinstance(e, TaskState) and e.state is GoalState.RUNNING
    ]
    assert started == ["t3", "t4"]
    assert final.plan_source == "resumed" and "resumed from its checkpoint" in final.notes[-1]
    diff = git(calculator_repo, "diff", "main..coditect/m-ckpt")
    assert diff.count("+def fibonacci(n):") == 1
    assert "tests/test_arithmetic.py" in final.changed_files


async def test_resume_refuses_a_checkpoint_whose_file_differs(calculator_repo: Path) -> None:
    cp = MissionCheckpoint(
        base="",
        plan=[],
        files=[FileState(path="calculator/arithmetic.py", original_sha256="0" * 64)],
    )
    store = SqlStore(Settings().database_url)
    rt, runner = runner_on(store, fibonacci_model(), commit=False)
    report = MissionReport(mission_id="m-differs", request=REQUEST, repo=str(calculator_repo))
    try:
        with pytest.raises(InputError, match="does not apply") as err:
            await runner.resume(report, cp.model_copy(update={"base": _head(calculator_repo)}))
    finally:
        await rt.aclose()
        await store.close()
    assert "calculator/arithmetic.py differs" in err.value.message
    assert "--from-start" in (err.value.hint or "")


def _head(repo: Path) -> str:
    import subprocess

    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()


async def test_a_resume_after_a_task_done_without_runs_its_dependents(
    calculator_repo: Path, no_tests_model
) -> None:

    store = KeepingStore(Settings().database_url)
    rt, runner = runner_on(store, no_tests_model(), commit=False)
    try:
        first = await runner.run(REQUEST, calculator_repo, mission_id="m-skip")
    finally:
        await rt.aclose()
    assert first.status is MissionOutcome.UNVERIFIED, first.reason
    after_tests = next(c for c in store.saved if any(s.kind == "skip" for s in c.steps))
    report = MissionReport.model_validate_json(first.model_dump_json())
    report.status, report.diff, report.branch = MissionOutcome.INTERRUPTED, "", ""
    rt, runner = runner_on(store, no_tests_model(), commit=False)
    try:
        final = await runner.resume(report, after_tests)
    finally:
        await rt.aclose()
        await store.close()
    assert final.status is MissionOutcome.UNVERIFIED, final.reason
    assert final.reason.startswith("no test checks the change")
    assert {t.id: t.status for t in final.tasks}["t4"] is GoalState.COMPLETE
