"""The baseline rule in a whole mission: a test failing before the change is not blamed on it."""

from coditect.agents.baseline import BASELINE_PATH
from coditect.config import Settings
from coditect.domain import MissionOutcome
from coditect.llm.demo import FIBONACCI_CODE, FIBONACCI_PLAN, FIBONACCI_TESTS
from coditect.llm.testing import FunctionModel
from coditect.runtime import build_runtime

REQUEST = "Add a function to calculate the nth Fibonacci number"
# Imports the package, so the mission's test selection picks it up; fails before any edit.
ALREADY_BROKEN = "import calculator\n\n\ndef test_known_bug():\n    assert calculator is None\n"


def answers():
    def fn(messages, settings):
        if settings.purpose == "plan":
            return FIBONACCI_PLAN
        if "test" in settings.purpose:
            return FIBONACCI_TESTS
        return FIBONACCI_CODE

    return FunctionModel(fn)


async def test_a_test_failing_before_the_change_does_not_fail_the_mission(calculator_repo, git):
    (calculator_repo / "tests" / "test_known_bug.py").write_text(ALREADY_BROKEN)
    git(calculator_repo, "add", "-A")
    git(calculator_repo, "commit", "-qm", "a known failing test")
    rt = build_runtime(Settings(max_repairs=0), model=answers())
    try:
        report = await rt.runner.run(REQUEST, calculator_repo)
    finally:
        await rt.aclose()
    assert report.status is MissionOutcome.SUCCESS, report.reason
    assert not any(t.id.startswith("repair") for t in report.tasks)
    assert BASELINE_PATH not in report.changed_files
    assert "tests/test_known_bug.py" not in report.changed_files
