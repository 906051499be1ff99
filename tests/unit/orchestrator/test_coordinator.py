"""Coordinator paths the mission contract suite does not reach (one process, scripted models)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from coditect.config import Settings
from coditect.domain import MissionOutcome
from coditect.llm.demo import fibonacci_model
from coditect.runtime import build_runtime

REQUEST = "Add a function to calculate the nth Fibonacci number"


async def test_a_plan_the_budget_refuses_ends_the_mission_before_it_starts(
    calculator_repo: Path,
) -> None:
    rt = build_runtime(
        Settings(sandbox="subprocess", reuse=False, budget_tokens=1), model=fibonacci_model()
    )
    try:
        report = await rt.runner.run(REQUEST, calculator_repo)
        events = await rt.store.list_events(report.mission_id)
    finally:
        await rt.aclose()
    assert report.status is MissionOutcome.FAILED
    assert "budget exceeded" in report.reason
    assert [(e.type, e.state.value) for e in events] == [
        ("mission.state", "pending"),
        ("mission.state", "failed"),
    ]


async def test_a_mission_cancelled_while_planning_is_stored_cancelled(
    calculator_repo: Path,
) -> None:
    from coditect.llm.testing import FunctionModel

    planning = asyncio.Event()

    async def slow(messages, settings):
        planning.set()
        await asyncio.sleep(600)

    rt = build_runtime(Settings(sandbox="subprocess", reuse=False), model=FunctionModel(slow))
    try:
        task = asyncio.ensure_future(rt.runner.run(REQUEST, calculator_repo, mission_id="m-c"))
        await asyncio.wait_for(planning.wait(), 30)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        report = await rt.store.get_report("m-c")
    finally:
        await rt.aclose()
    assert report.status is MissionOutcome.CANCELLED


async def test_a_commitless_mission_reports_the_diff_but_lands_nothing(
    calculator_repo: Path, git
) -> None:
    from coditect.orchestrator.mission import MissionRunner, MissionSettings

    rt = build_runtime(Settings(sandbox="subprocess", reuse=False), model=fibonacci_model())
    runner = MissionRunner(
        model=rt.model,
        sandbox=rt.sandbox,
        store=rt.store,
        bus=rt.bus,
        allocator=rt.runner.port.step.allocator,
        settings=MissionSettings(commit=False, reuse=False),
    )
    try:
        report = await runner.run(REQUEST, calculator_repo)
    finally:
        await rt.aclose()
    assert report.status is MissionOutcome.SUCCESS, report.reason
    assert "def fibonacci" in report.diff and report.commit == "" and report.branch == ""
    assert git(calculator_repo, "branch", "--list", "coditect/*") == ""


async def test_tests_that_cannot_be_written_leave_the_change_unverified_not_lost(
    calculator_repo: Path, git, no_tests_model
) -> None:
    # The code is right; every answer for the tests is unusable. The change must not be lost:
    # the project's own tests still run, and the mission says that nothing checks the change.
    from coditect.domain import GoalState

    rt = build_runtime(Settings(sandbox="subprocess", reuse=False), model=no_tests_model())
    try:
        report = await rt.runner.run(REQUEST, calculator_repo)
    finally:
        await rt.aclose()
    assert report.status is MissionOutcome.UNVERIFIED, report.reason
    assert report.reason.startswith("no test checks the change: the tests for it could not be")
    tasks = {t.intent.value: t for t in report.tasks}
    assert tasks["write_tests"].status is GoalState.FAILED
    assert tasks["run_tests"].status is GoalState.COMPLETE
    assert report.tests.passed > 0 and report.tests.failed == 0
    assert "def fibonacci" in git(
        calculator_repo, "show", f"{report.branch}:calculator/arithmetic.py"
    )
