import pytest

from coditect.domain import GoalState, Intent, TaskGraph, TaskSpec
from coditect.orchestrator.goals import GoalManager, GoalPolicy, InvalidTransitionError


def graph():
    return TaskGraph(
        [
            TaskSpec(id="a", intent=Intent.ANALYZE, description="a"),
            TaskSpec(id="c", intent=Intent.WRITE_CODE, description="c", depends_on=("a",)),
            TaskSpec(id="r", intent=Intent.RUN_TESTS, description="r", depends_on=("c",)),
        ]
    )


def run_all(gm, *ids):
    for tid in ids:
        gm.start(tid)
        gm.complete(tid)


def test_pending_running_complete():
    gm = GoalManager(graph())
    assert gm.mission_state() == (GoalState.PENDING, "")
    gm.start("a")
    assert gm.mission_state()[0] is GoalState.RUNNING
    gm.complete("a")
    run_all(gm, "c", "r")
    assert gm.mission_state() == (GoalState.COMPLETE, "") and gm.done


def test_failed_dependency_blocks_descendants_and_fails_mission():
    gm = GoalManager(graph())
    run_all(gm, "a")
    gm.start("c")
    assert gm.fail("c", "boom") == {"r"}
    assert gm.state("r") is GoalState.BLOCKED
    state, reason = gm.mission_state()
    assert state is GoalState.FAILED and "c failed: boom" in reason
    assert "blocked" in gm.error("r")


def test_superseded_failure_no_longer_counts():
    gm = GoalManager(graph(), GoalPolicy(max_repairs=1))
    run_all(gm, "a", "c")
    gm.start("r")
    gm.fail("r", "tests failed")
    assert gm.can_repair
    fix = TaskSpec(id="fix", intent=Intent.WRITE_CODE, description="f", depends_on=("c",))
    again = TaskSpec(id="again", intent=Intent.RUN_TESTS, description="r", depends_on=("fix",))
    gm.supersede("r", [fix, again])
    assert not gm.can_repair and gm.superseded_by("r") == "again"
    assert gm.mission_state()[0] is GoalState.RUNNING
    run_all(gm, "fix", "again")
    assert gm.mission_state()[0] is GoalState.COMPLETE


def test_only_failed_tasks_can_be_superseded_and_transitions_are_checked():
    gm = GoalManager(graph())
    with pytest.raises(InvalidTransitionError):
        gm.supersede("a", [])
    with pytest.raises(InvalidTransitionError):
        gm.complete("a")


def test_error_threshold_and_timeout():
    gm = GoalManager(graph(), GoalPolicy(error_threshold=2))
    gm.record_error("a", "x")
    gm.record_error("a", "y")
    assert "error threshold" in gm.mission_state()[1]

    now = [0.0]
    gm = GoalManager(graph(), GoalPolicy(mission_timeout_s=10), clock=lambda: now[0])
    now[0] = 11.0
    state, reason = gm.mission_state()
    assert state is GoalState.FAILED and "timed out" in reason


def test_cancel():
    gm = GoalManager(graph())
    run_all(gm, "a")
    gm.cancel()
    assert gm.state("a") is GoalState.COMPLETE and gm.state("c") is GoalState.CANCELLED
    assert gm.mission_state()[0] is GoalState.CANCELLED


def test_a_task_done_without_blocks_nothing_and_the_mission_can_complete():
    tests = TaskSpec(id="t", intent=Intent.WRITE_TESTS, description="t", depends_on=("c",))
    run = TaskSpec(id="r", intent=Intent.RUN_TESTS, description="r", depends_on=("t",))
    gm = GoalManager(TaskGraph([*list(graph())[:2], tests, run]))
    run_all(gm, "a", "c")
    gm.start("t")
    gm.skip("t", "no usable tests")
    assert gm.state("t") is GoalState.FAILED and gm.state("r") is GoalState.PENDING
    assert gm.skipped == {"t": "no usable tests"} and gm.error("t") == "no usable tests"
    run_all(gm, "r")
    assert gm.mission_state() == (GoalState.COMPLETE, "")
