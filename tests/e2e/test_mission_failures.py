"""Missions that go wrong end with a clear report, and leave the user's files as they were."""

import asyncio

import pytest

from coditect.config import Settings
from coditect.domain import MissionOutcome
from coditect.llm.demo import FIBONACCI_CODE, FIBONACCI_PLAN, FIBONACCI_TESTS
from coditect.llm.testing import FunctionModel
from coditect.runtime import build_runtime

REQUEST = "Add a function to calculate the nth Fibonacci number"


def answers(plan=FIBONACCI_PLAN, code=FIBONACCI_CODE, tests=FIBONACCI_TESTS):
    def fn(messages, settings):
        if settings.purpose == "plan":
            return plan() if callable(plan) else plan
        if "test" in settings.purpose:
            return tests() if callable(tests) else tests
        return code() if callable(code) else code

    return FunctionModel(fn)


async def run(repo, model, **settings):
    rt = build_runtime(Settings(**settings), model=model)
    try:
        return await rt.runner.run(REQUEST, repo)
    finally:
        await rt.aclose()


def untouched(repo, git):
    assert git(repo, "status", "--porcelain") == ""
    assert git(repo, "branch", "--list", "coditect/*") == ""


async def test_invalid_plan_twice_falls_back_to_the_template(calculator_repo):
    report = await run(calculator_repo, answers(plan="t1 analyze\nt2 run_tests after t3"))
    assert report.status is MissionOutcome.SUCCESS, report.reason
    assert report.plan_source == "template"
    assert any("unknown task" in n for n in report.notes)


async def test_cyclic_plan_is_repaired_by_the_model(calculator_repo):
    plans = iter(
        ["t1 analyze after t4\nt2 write_code after t1\nt4 run_tests after t2", FIBONACCI_PLAN]
    )
    report = await run(calculator_repo, answers(plan=lambda: next(plans)))
    assert report.status is MissionOutcome.SUCCESS
    assert report.plan_source == "model-repaired"


async def test_code_that_never_parses_fails_cleanly(calculator_repo, git):
    report = await run(calculator_repo, answers(code="```python\ndef fibonacci(n:\n```"))
    assert report.status is MissionOutcome.FAILED
    coder = next(t for t in report.tasks if t.intent == "write_code")
    assert coder.status == "failed" and coder.error
    assert any(t.status == "blocked" for t in report.tasks)
    assert report.changed_files == [] or report.branch == ""
    untouched(calculator_repo, git)


async def test_code_its_own_tests_disagree_with_is_unverified(calculator_repo, git):
    # Only tests CODITECT wrote disagree and the model keeps its code: inconclusive evidence,
    # so the change is kept on the mission branch (never in the user's tree) as UNVERIFIED.
    wrong = FIBONACCI_CODE.replace("return a\n", "return a + 1\n")
    report = await run(calculator_repo, answers(code=wrong), max_repairs=1)
    assert report.status is MissionOutcome.UNVERIFIED
    assert "tests written by CODITECT disagree" in report.reason
    assert report.branch and "calculator/arithmetic.py" in report.changed_files
    assert report.evidence
    ids = [t.id for t in report.tasks]
    assert "repair1" in ids and "retest1" in ids
    first = next(t for t in report.tasks if t.id == "t4")
    assert first.superseded_by == "retest1"
    assert report.tests.failed > 0
    assert any(v.kind == "test_failure" for v in report.violations)
    assert git(calculator_repo, "status", "--porcelain") == ""


async def test_a_hanging_test_suite_times_out(calculator_repo, git):
    with (calculator_repo / "tests" / "test_arithmetic.py").open("a") as f:
        f.write("\n\ndef test_hang():\n    import time\n\n    time.sleep(600)\n")
    git(calculator_repo, "add", "-A")
    git(calculator_repo, "commit", "-qm", "hang")
    report = await run(calculator_repo, answers(), test_timeout_s=3, max_repairs=0)
    assert report.status is MissionOutcome.FAILED
    assert "timed out" in report.reason
    untouched(calculator_repo, git)


async def test_cancel_in_the_middle_changes_nothing(calculator_repo, git):
    started = asyncio.Event()

    async def slow_code():
        started.set()
        await asyncio.sleep(60)

    rt = build_runtime(Settings(), model=answers(code=slow_code))
    task = asyncio.ensure_future(rt.runner.run(REQUEST, calculator_repo, mission_id="m-cancel"))
    await asyncio.wait_for(started.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    report = await rt.store.get_report("m-cancel")
    await rt.aclose()
    assert report.status is MissionOutcome.CANCELLED
    assert any(t.status == "cancelled" for t in report.tasks)
    untouched(calculator_repo, git)


async def test_repository_without_tests_gets_tests_written(tmp_path, calculator_repo, git):
    import shutil

    shutil.rmtree(calculator_repo / "tests")
    git(calculator_repo, "add", "-A")
    git(calculator_repo, "commit", "-qm", "no tests")
    report = await run(calculator_repo, answers())
    assert report.status is MissionOutcome.SUCCESS, report.reason
    assert report.tests.written_by_coditect and report.tests.passed >= 1
