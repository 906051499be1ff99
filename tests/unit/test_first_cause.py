"""Messages that blame the right thing (issue 12, finding 11): the first cause leads the reason
line, and a syntax error is reported against the file that has it."""

from __future__ import annotations

from coditect.agents.junit import parse_junit
from coditect.domain import GoalState, Intent, TaskGraph, TaskSpec
from coditect.domain.results import FailureCategory
from coditect.orchestrator.goals import GoalManager, GoalPolicy

COLLECTION_ERROR = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="0" skipped="0" tests="1">
<testcase classname="" name="tests.test_arithmetic" time="0.000">
<error message="collection failure">tests/test_arithmetic.py:1: in &lt;module&gt;
    from calculator.stats import mean
E     File "/work/calculator/stats.py", line 3
E       def mean(xs) return sum(xs)
E                    ^^^^^^
E   SyntaxError: invalid syntax</error></testcase></testsuite></testsuites>
"""


def test_a_syntax_error_in_an_imported_module_names_that_module():
    (failure,) = parse_junit(COLLECTION_ERROR).failures
    assert failure.category is FailureCategory.SYNTAX
    assert failure.test_id == "tests/test_arithmetic.py"
    assert failure.message == (
        "SyntaxError in /work/calculator/stats.py line 3: invalid syntax "
        "(while importing tests/test_arithmetic.py)"
    )


def test_a_syntax_error_in_the_test_file_itself_needs_no_detour():
    xml = COLLECTION_ERROR.replace("/work/calculator/stats.py", "/work/tests/test_arithmetic.py")
    (failure,) = parse_junit(xml).failures
    assert failure.message == "SyntaxError in /work/tests/test_arithmetic.py line 3: invalid syntax"


def test_the_reason_line_names_the_first_cause_when_a_repair_fails():
    graph = TaskGraph(
        [
            TaskSpec(id="c", intent=Intent.WRITE_CODE, description="c"),
            TaskSpec(id="r", intent=Intent.RUN_TESTS, description="r", depends_on=("c",)),
        ]
    )
    gm = GoalManager(graph, GoalPolicy(max_repairs=1))
    gm.start("c")
    gm.complete("c")
    gm.start("r")
    gm.fail("r", "the test run timed out")
    fix = TaskSpec(id="repair1", intent=Intent.WRITE_CODE, description="f")
    again = TaskSpec(
        id="retest1", intent=Intent.RUN_TESTS, description="r", depends_on=("repair1",)
    )
    gm.supersede("r", [fix, again])
    gm.start("repair1")
    gm.fail("repair1", "the model gave no usable code for a.py")
    state, reason = gm.mission_state()
    assert state is GoalState.FAILED
    assert reason.startswith("task r failed: the test run timed out; then task repair1 failed")
