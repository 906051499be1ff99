import asyncio

import pytest

from coditect.domain.mission import TestTotals
from coditect.domain.tasks import Intent
from coditect.errors import InputError
from coditect.orchestrator.review import (
    AutoAccept,
    PendingReviews,
    ReviewDecision,
    ReviewRequest,
    TerminalReview,
    Verdict,
    feedback_tasks,
)

REQ = ReviewRequest(
    mission_id="m-1",
    request="add fib",
    repo="/r",
    diff="+def fib(): ...",
    changed_files=("a.py",),
    tests=TestTotals(passed=3),
)


async def test_auto_accept_accepts():
    assert (await AutoAccept().review(REQ)).verdict is Verdict.ACCEPT


@pytest.mark.parametrize(
    "answers, verdict, feedback",
    [
        (["a"], Verdict.ACCEPT, ""),
        (["?", "", "Reject"], Verdict.REJECT, ""),
        (["f", "  ", "f", "use a loop"], Verdict.FEEDBACK, "use a loop"),
    ],
)
async def test_terminal_review_asks_until_it_gets_an_answer(answers, verdict, feedback):
    shown, asked = [], list(answers)
    gate = TerminalReview(show=shown.append, ask=lambda _prompt: asked.pop(0))
    decision = await gate.review(REQ)
    assert (decision.verdict, decision.feedback) == (verdict, feedback)
    assert "+def fib()" in shown[0] and "3 passed" in shown[0]


def test_feedback_needs_words():
    with pytest.raises(InputError):
        ReviewDecision(Verdict.FEEDBACK, " ")


async def test_pending_reviews_wait_for_a_decision():
    gate = PendingReviews()
    waiting = asyncio.create_task(gate.review(REQ))
    await asyncio.sleep(0)
    assert gate.pending("m-1") == REQ and gate.pending("m-2") is None
    with pytest.raises(InputError):
        gate.decide("m-2", ReviewDecision(Verdict.ACCEPT))
    gate.decide("m-1", ReviewDecision(Verdict.REJECT))
    assert (await waiting).verdict is Verdict.REJECT
    assert gate.pending("m-1") is None
    with pytest.raises(InputError):
        gate.decide("m-1", ReviewDecision(Verdict.ACCEPT))


def test_feedback_round_is_fix_then_test():
    fix, test = feedback_tasks(request="add fib", feedback="use a loop", round_no=2)
    assert (fix.id, fix.intent, test.id, test.intent) == (
        "review2",
        Intent.WRITE_CODE,
        "reviewtest2",
        Intent.RUN_TESTS,
    )
    assert "use a loop" in fix.description and "use a loop" in fix.feedback
    assert test.depends_on == ("review2",) and fix.target_files == ()


def test_goal_manager_extends_a_finished_mission():
    from coditect.domain import GoalState, TaskGraph, TaskSpec
    from coditect.orchestrator.goals import GoalManager

    gm = GoalManager(TaskGraph([TaskSpec(id="a", intent=Intent.ANALYZE, description="a")]))
    gm.start("a")
    gm.complete("a")
    assert gm.done
    gm.extend(feedback_tasks(request="r", feedback="f", round_no=1))
    assert not gm.done and gm.state("review1") is GoalState.PENDING
    assert "reviewtest1" in gm.graph
