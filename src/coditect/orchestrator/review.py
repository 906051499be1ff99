"""Review before landing: a gate the mission asks after verification, before the change lands.

The mission runner calls :meth:`ReviewGate.review` once its tests pass and the diff is known;
nothing has been committed or written back yet. The answer is one of:

- ``ACCEPT``: land the change as usual (a branch in a git repository, the files written back with
  a backup in a plain directory);
- ``REJECT``: nothing lands, the mission ends ``REJECTED``;
- ``FEEDBACK``: the reviewer's words become a repair round (fix, then test again), after which the
  gate is asked again with the new diff.

Implementations: :class:`AutoAccept` (no review, the default), :class:`TerminalReview` (a prompt
on the terminal, ``coditect run --review``) and :class:`PendingReviews` (the web view resolves
the decision from an HTTP request, ``coditect ui``).
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

from coditect.domain.events import AgentAct, Event
from coditect.domain.mission import MissionOutcome, MissionReport, TestTotals
from coditect.domain.tasks import Intent, TaskSpec
from coditect.errors import InputError

__all__ = [
    "AutoAccept",
    "Landing",
    "PendingReviews",
    "ReviewDecision",
    "ReviewGate",
    "ReviewRequest",
    "TerminalReview",
    "Verdict",
    "feedback_tasks",
    "review_before_landing",
]


class Verdict(StrEnum):
    """What the reviewer decided."""

    ACCEPT = "accept"
    REJECT = "reject"
    FEEDBACK = "feedback"


@dataclass(frozen=True)
class ReviewDecision:
    """A reviewer's answer; ``feedback`` is required with :attr:`Verdict.FEEDBACK`."""

    verdict: Verdict
    feedback: str = ""

    def __post_init__(self) -> None:
        if self.verdict is Verdict.FEEDBACK and not self.feedback.strip():
            raise InputError("feedback needs words", hint="say what to change, or accept/reject")


@dataclass(frozen=True)
class ReviewRequest:
    """What the reviewer sees: the verified change that would land."""

    mission_id: str
    request: str
    repo: str
    diff: str
    changed_files: tuple[str, ...]
    tests: TestTotals
    round_no: int = 1


class ReviewGate(abc.ABC):
    """Decides whether a verified change lands (see the module docstring)."""

    @abc.abstractmethod
    async def review(self, request: ReviewRequest) -> ReviewDecision:
        """The decision on ``request``; may wait for a human as long as it takes."""


class AutoAccept(ReviewGate):
    """No review: every verified change lands (the behaviour without ``--review``)."""

    async def review(self, request: ReviewRequest) -> ReviewDecision:
        """Always accept."""
        return ReviewDecision(Verdict.ACCEPT)


_ANSWERS = {"a": Verdict.ACCEPT, "r": Verdict.REJECT, "f": Verdict.FEEDBACK}


class TerminalReview(ReviewGate):
    """Shows the diff on the terminal and asks accept / reject / feedback.

    Args:
        show: Prints text (e.g. a rich console's ``print``).
        ask: Reads one answer line after printing its prompt (``input`` by default). It runs in
            a worker thread so the event loop (and the mission's event bus) keeps running.
    """

    def __init__(
        self,
        *,
        show: Callable[[str], None] = print,
        ask: Callable[[str], str] = input,
    ) -> None:
        self._show = show
        self._ask = ask

    async def review(self, request: ReviewRequest) -> ReviewDecision:
        """Print the change, then ask until the answer is one of a, r or f."""
        self._show(
            f"\nReview (round {request.round_no}) of {request.mission_id}: "
            f"{len(request.changed_files)} file(s) changed, tests {request.tests.passed} passed, "
            f"{request.tests.failed} failed\n\n{request.diff}"
        )
        while True:
            answer = await asyncio.to_thread(self._ask, "[a]ccept, [r]eject, [f]eedback? ")
            verdict = _ANSWERS.get(answer.strip().lower()[:1])
            if verdict is None:
                continue
            if verdict is not Verdict.FEEDBACK:
                return ReviewDecision(verdict)
            words = (await asyncio.to_thread(self._ask, "what should change? ")).strip()
            if words:
                return ReviewDecision(verdict, words)


@dataclass
class _Waiting:
    request: ReviewRequest
    answer: asyncio.Future[ReviewDecision] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class PendingReviews(ReviewGate):
    """A gate answered from elsewhere in the process (the web view's buttons).

    :meth:`review` parks the request until :meth:`decide` is called for its mission. Both run
    on the same event loop.
    """

    def __init__(self) -> None:
        self._waiting: dict[str, _Waiting] = {}

    async def review(self, request: ReviewRequest) -> ReviewDecision:
        """Wait for :meth:`decide` on ``request.mission_id``."""
        waiting = _Waiting(request)
        self._waiting[request.mission_id] = waiting
        try:
            return await waiting.answer
        finally:
            self._waiting.pop(request.mission_id, None)

    def pending(self, mission_id: str) -> ReviewRequest | None:
        """The request waiting for a decision on ``mission_id``, if any."""
        waiting = self._waiting.get(mission_id)
        return waiting.request if waiting is not None else None

    def decide(self, mission_id: str, decision: ReviewDecision) -> None:
        """Answer the review of ``mission_id``.

        Raises:
            InputError: No review of that mission is waiting (never asked, or already answered).
        """
        waiting = self._waiting.get(mission_id)
        if waiting is None or waiting.answer.done():
            raise InputError(f"mission {mission_id} is not waiting for a review")
        waiting.answer.set_result(decision)


def feedback_tasks(*, request: str, feedback: str, round_no: int) -> tuple[TaskSpec, TaskSpec]:
    """The "change as the reviewer asked, then test again" tasks of feedback round ``round_no``.

    The fix task carries ``feedback`` and no target files, so (like a repair task) it keeps to
    the module the mission's latest code task wrote.
    """
    fix = TaskSpec(
        id=f"review{round_no}",
        intent=Intent.WRITE_CODE,
        description=f"A reviewer asked for changes: {feedback}\nThe original request: {request}",
        feedback=f"Reviewer feedback on the current change: {feedback}",
    )
    retest = TaskSpec(
        id=f"reviewtest{round_no}",
        intent=Intent.RUN_TESTS,
        description="Run the tests after the reviewer's changes.",
        depends_on=(fix.id,),
    )
    return fix, retest


@dataclass(frozen=True)
class Landing:
    """What :func:`review_before_landing` needs from the mission runner.

    Attributes:
        save: Stores the mission's report (a viewer then shows the diff under review).
        emit: Publishes and logs an event of the mission.
        feedback_round: Runs a feedback round's tasks; True when the new change passed its
            tests (the report's diff and changed files are then the new ones).
    """

    save: Callable[[], Awaitable[None]]
    emit: Callable[[Event], Awaitable[None]]
    feedback_round: Callable[[TaskSpec, TaskSpec], Awaitable[bool]]


async def _announce(landing: Landing, report: MissionReport, action: str, detail: str) -> None:
    await landing.emit(
        AgentAct(
            mission_id=report.mission_id,
            task_id="review",
            agent="reviewer",
            action=action,
            detail=detail,
        )
    )


async def review_before_landing(gate: ReviewGate, report: MissionReport, landing: Landing) -> None:
    """Ask ``gate`` about the verified change in ``report`` until it is accepted or not landing.

    On return ``report.status`` is SUCCESS (accepted: land it), REJECTED, or what a failed
    feedback round left (FAILED). While the gate waits the stored report says RUNNING, "waiting
    for review"; ``review.requested`` and ``review.<verdict>`` events mark the steps.
    """
    round_no = 1
    while True:
        report.status, report.reason = MissionOutcome.RUNNING, "waiting for review"
        await landing.save()
        await _announce(landing, report, "review.requested", f"round {round_no}")
        decision = await gate.review(
            ReviewRequest(
                mission_id=report.mission_id,
                request=report.request,
                repo=report.repo,
                diff=report.diff,
                changed_files=tuple(report.changed_files),
                tests=report.tests.model_copy(),
                round_no=round_no,
            )
        )
        await _announce(landing, report, f"review.{decision.verdict.value}", decision.feedback)
        report.status, report.reason = MissionOutcome.SUCCESS, ""
        if decision.verdict is Verdict.ACCEPT:
            return
        if decision.verdict is Verdict.REJECT:
            report.status, report.reason = (
                MissionOutcome.REJECTED,
                "rejected at review; nothing landed",
            )
            return
        fix, retest = feedback_tasks(
            request=report.request, feedback=decision.feedback, round_no=round_no
        )
        if not await landing.feedback_round(fix, retest):
            return
        round_no += 1
