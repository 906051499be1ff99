"""Repair rounds: what to do after a failing test run (shared by the one-process and distributed runners)."""

from __future__ import annotations

from collections.abc import Sequence

from coditect.agents.doctests import is_examples_test
from coditect.domain.results import TestReport
from coditect.domain.tasks import Intent, TaskSpec
from coditect.orchestrator.outcome import OurTests, written_by_us

__all__ = ["repair_tasks", "test_failure_summary"]


def test_failure_summary(report: TestReport, *, detail: bool = False) -> str:
    """A short account of a failing test run; ``detail`` adds traces (fed back to the coder)."""
    if report.timed_out:
        return "the test run timed out"
    head = f"{report.failed} failed, {report.errors} errors, {report.passed} passed"
    if report.passed == report.failed == report.errors == 0:
        head = "no test ran"
    lines = [head]
    for f in report.failures[:5]:
        lines.append(f"- {f.test_id} [{f.category}]: {f.message}")
        if detail and f.detail:
            lines.append(f.detail[-800:])
    if report.output_tail and (detail or not report.failures):
        lines.append(report.output_tail[-600:])
    return "\n".join(lines)


test_failure_summary.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def repair_tasks(
    *,
    request: str,
    failed: TaskSpec,
    report: TestReport,
    tests_written: Sequence[str],
    round_no: int,
    test_names: OurTests | None = None,
) -> tuple[TaskSpec, TaskSpec]:
    """The "fix, then test again" tasks of repair round ``round_no`` for the failed run ``failed``.

    The first round gives the failures to the coder (which may keep the code, see
    :mod:`coditect.agents.candidates`); later rounds fix the tests when every failure is in a
    test this mission wrote (docstring-example tests excepted), the code otherwise.
    """
    # A failing docstring-examples test is the user's evidence against the code, never "ours".
    ours = bool(tests_written) and all(
        written_by_us(f, tests_written, test_names) and not is_examples_test(f.test_id)
        for f in report.failures
    )
    # Round 1 always goes to the coder, which weighs the evidence (docstring examples, the
    # tests, other candidates, the current code) and keeps the code when it is the test that
    # disagrees; only then (round 2 on) may the tests CODITECT wrote be rewritten. Rewriting a
    # test first would let a wrong change "pass" tests bent to fit it.
    fix_tests = ours and round_no > 1
    fix = TaskSpec(
        id=f"repair{round_no}",
        intent=Intent.WRITE_TESTS if fix_tests else Intent.WRITE_CODE,
        description=(
            f"The tests failed. Fix the {'tests' if fix_tests else 'code'} so that "
            f"they pass and still meet the request: {request}"
        ),
        depends_on=failed.depends_on,
        feedback=test_failure_summary(report, detail=True),
        target_files=tuple(tests_written) if fix_tests else (),
    )
    retest = TaskSpec(
        id=f"retest{round_no}",
        intent=Intent.RUN_TESTS,
        description=failed.description,
        depends_on=(fix.id,),
    )
    return fix, retest
