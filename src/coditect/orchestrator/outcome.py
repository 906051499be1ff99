"""The mission's outcome from its evidence (pure; shared by the one-process and distributed runners).

:func:`decide_outcome` turns what the mission ended with (did every task complete, which files
changed, the last test run, which test files CODITECT wrote) into SUCCESS, UNVERIFIED or FAILED:

* SUCCESS: the last test run passed (every test, the ones that were there before included) and
  something changed. The evidence lists what verified it.
* UNVERIFIED: the change stays (committed on the mission branch) because the only tests that
  disagree with it are tests this mission wrote itself: a small model's test asserting a wrong
  value must not cost the user a probably correct change. The reason names every disagreeing
  test. Likewise when the tests for the change could not be written (the tasks the mission did
  without) or a bug fix's reproduction tests passed on the unchanged code (the report was not
  reproduced), but every test that ran passes: nothing checks the change itself.
* FAILED: nothing usable: no change, only tests changed where the plan changes code (tests
  rewritten until they pass on the unchanged code are not a fix), no test run, a test run that
  timed out or could not run, no passing test at all, or a failing test that CODITECT did not
  write (regression safety is absolute: breaking a test that was there before is never accepted).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from coditect.agents.doctests import is_examples_test
from coditect.domain.mission import MissionOutcome
from coditect.domain.paths import is_test_path
from coditect.domain.results import FileEdit, TestFailure, TestReport

__all__ = ["OurTests", "Verdict", "decide_outcome", "retired_notes", "written_by_us"]

_MAX_LISTED = 5


@dataclass(frozen=True)
class Verdict:
    """A mission's outcome with its reasons.

    Attributes:
        outcome: SUCCESS, UNVERIFIED or FAILED (CANCELLED passes through unchanged).
        reason: Empty on SUCCESS; otherwise what failed or disagreed.
        evidence: What the outcome rests on, one line each (``MissionReport.evidence``).
    """

    outcome: MissionOutcome
    reason: str = ""
    evidence: tuple[str, ...] = ()


def _same_file(test_file: str, path: str) -> bool:
    """Whether a test id's file part names ``path``; sandboxes differ in the root they report."""
    a, b = test_file.strip("/"), path.strip("/")
    return a == b or a.endswith("/" + b) or b.endswith("/" + a)


#: Test file -> the names of the test functions this mission wrote in it; None when the mission
#: created the file (all of it is the mission's).
OurTests = Mapping[str, frozenset[str] | None]


def _function(test_id: str) -> str:
    """``test_y`` of ``tests/test_x.py::TestX::test_y[param]``."""
    return test_id.split("::")[-1].split("[")[0]


def written_by_us(
    failure: TestFailure, tests_written: Sequence[str], names: OurTests | None = None
) -> str:
    """The test file this mission wrote that ``failure`` belongs to, or "".

    Test ids look like ``tests/test_x.py::test_y`` (JUnit classname turned into a path), or
    ``test_x.py::test_y`` when the test run's root is the test folder. With ``names``, a test
    of the project's own in a file the mission added tests to is not the mission's: its
    failure is a regression, not a disagreement with a test CODITECT wrote.
    """
    test_file = failure.test_id.split("::")[0]
    for path in tests_written:
        if _same_file(test_file, path):
            mine = (names or {}).get(path)
            if mine is None or is_examples_test(failure.test_id):
                return path
            # A method of a test class the mission added is the mission's too.
            classes = {p.split("[")[0] for p in failure.test_id.split("::")[1:-1]}
            return path if ({_function(failure.test_id)} | classes) & mine else ""
    return ""


def _describe(failure: TestFailure) -> str:
    message = " ".join(failure.message.split())[:160]
    return f"{failure.test_id}: {message}" if message else failure.test_id


def _describe_error(failure: TestFailure) -> str:
    """A module's import failure by its last error line (pytest's message is generic)."""
    errors = [ln[1:].strip() for ln in failure.detail.splitlines() if ln.startswith("E ")]
    return f"{failure.test_id}: {errors[-1][:160]}" if errors else _describe(failure)


def retired_notes(edits: Iterable[FileEdit]) -> list[str]:
    """Evidence lines naming the project's tests removed with the code they tested.

    A removal takes the tests of what it removed with it (:mod:`coditect.agents.retire`):
    the passing run no longer holds them, and the report says so.
    """
    return [
        f"removed from {e.path} with the code they tested: {', '.join(e.deleted_symbols)}"
        for e in edits
        if e.deleted_symbols and is_test_path(e.path)
    ]


def _success(changed: Sequence[str], tests_written: Sequence[str], tests: TestReport) -> Verdict:
    ours = [p for p in tests_written if p in changed]
    theirs = "" if not ours else f", including the tests CODITECT wrote in {', '.join(ours)}"
    evidence = f"all {tests.passed} tests of the last run pass{theirs}"
    return Verdict(MissionOutcome.SUCCESS, evidence=(evidence,))


def decide_outcome(
    *,
    status: MissionOutcome,
    reason: str,
    changed: Sequence[str],
    tests_written: Sequence[str],
    last_tests: TestReport | None,
    code_expected: bool = False,
    untested: Sequence[str] = (),
    test_names: OurTests | None = None,
    unreproduced: Sequence[str] = (),
) -> Verdict:
    """Decide SUCCESS, UNVERIFIED or FAILED for a mission that ran to its end.

    Args:
        status: The runner's view: SUCCESS when every task completed, else FAILED (CANCELLED
            and RUNNING are returned unchanged).
        reason: The runner's reason for a failure.
        changed: Files the mission changed.
        tests_written: Test files the mission wrote (created or extended).
        last_tests: The last test run, None when no test ran.
        code_expected: The plan changes code (it has a ``write_code`` task): a change of tests
            alone does not do what was asked, however well they pass.
        untested: Why the tests for the change were not written (one line per task the
            mission did without); a change no new test checks is never SUCCESS.
        test_names: Which test functions of ``tests_written`` the mission wrote (see
            :func:`written_by_us`); None: every test in those files counts as the mission's.
        unreproduced: A bug fix's notes that its reproduction tests passed on the unchanged
            code: they do not check the fix, so a passing run is not SUCCESS.
    """
    if status not in (MissionOutcome.SUCCESS, MissionOutcome.FAILED):
        return Verdict(status, reason)
    if not changed:
        return Verdict(MissionOutcome.FAILED, reason or "the agents finished but changed no file")
    if code_expected and all(is_test_path(p) for p in changed):
        return Verdict(
            MissionOutcome.FAILED,
            "no source file changed: the request asks for a code change, but only tests were "
            f"changed ({', '.join(changed[:_MAX_LISTED])})"
            + (
                "; they pass on the unchanged code"
                if last_tests is not None and last_tests.ok
                else ""
            ),
        )
    if last_tests is None:
        if status is MissionOutcome.SUCCESS:
            return Verdict(MissionOutcome.SUCCESS, evidence=("no test run was planned",))
        return Verdict(MissionOutcome.FAILED, reason)
    if last_tests.ok and status is MissionOutcome.SUCCESS:
        unchecked = _unchecked(untested, unreproduced, last_tests)
        return unchecked or _success(changed, tests_written, last_tests)
    failures = last_tests.failures
    if last_tests.ok or last_tests.timed_out or not failures:
        return Verdict(MissionOutcome.FAILED, reason or "the last test run did not pass")
    # A module the mission wrote tests into that could not be imported before either: its
    # tests (the mission's) did not run; the project's own in it were failing already.
    stuck = frozenset(last_tests.unimportable_before)
    foreign = [
        f
        for f in failures
        if not written_by_us(f, tests_written, test_names)
        and not (f.test_id in stuck and written_by_us(f, tests_written))
    ]
    if foreign:
        listed = "; ".join(_describe(f) for f in foreign[:_MAX_LISTED])
        return Verdict(
            MissionOutcome.FAILED,
            f"tests that CODITECT did not write fail: {listed}",
        )
    if not any(not is_test_path(p) for p in changed):
        return Verdict(MissionOutcome.FAILED, reason or "no source file changed")
    if last_tests.passed == 0 and any(is_examples_test(f.test_id) for f in failures):
        # Nothing speaks for the change and the user's own examples speak against it. When
        # only tests a model wrote fail, the evidence is theirs alone: inconclusive.
        listed = "; ".join(_describe(f) for f in failures[:_MAX_LISTED])
        return Verdict(MissionOutcome.FAILED, f"no test passes: {listed}")
    return _unverified(failures, changed, tests_written, last_tests)


def _unchecked(
    untested: Sequence[str], unreproduced: Sequence[str], tests: TestReport
) -> Verdict | None:
    """UNVERIFIED for a passing run in which no test checks the change, else None."""
    if untested:
        return _untested(untested, tests)
    if unreproduced:
        return _unreproduced(unreproduced, tests)
    return None


def _untested(untested: Sequence[str], tests: TestReport) -> Verdict:
    why = "; ".join(" ".join(u.split())[:300] for u in untested[:_MAX_LISTED])
    ran = (
        f"the {tests.passed} tests that ran pass, but none of them was written for it"
        if tests.passed
        else "no test ran"
    )
    return Verdict(
        MissionOutcome.UNVERIFIED,
        f"no test checks the change: the tests for it could not be written ({why}); {ran}",
        evidence=(f"all {tests.passed} tests of the last run pass (none written for the change)",),
    )


def _unreproduced(notes: Sequence[str], tests: TestReport) -> Verdict:
    why = "; ".join(" ".join(n.split())[:300] for n in notes[:_MAX_LISTED])
    return Verdict(
        MissionOutcome.UNVERIFIED,
        f"the bug was not reproduced ({why}); the {tests.passed} tests that ran pass, but none "
        "of them failed before the change",
        evidence=(f"all {tests.passed} tests of the last run pass (none failed before the fix)",),
    )


def _unverified(
    failures: Sequence[TestFailure],
    changed: Sequence[str],
    tests_written: Sequence[str],
    tests: TestReport,
) -> Verdict:
    stuck = [f for f in failures if f.test_id in tests.unimportable_before]
    examples = [f for f in failures if is_examples_test(f.test_id)]
    generated = [f for f in failures if not is_examples_test(f.test_id) and f not in stuck]
    parts = []
    if stuck:
        parts.append(
            "the tests CODITECT wrote did not run: their module could not be imported before "
            "the change either: " + "; ".join(_describe_error(f) for f in stuck[:_MAX_LISTED])
        )
    if examples:
        parts.append(
            "the code fails the user's examples (from its docstring or the request): "
            + "; ".join(_describe(f) for f in examples[:_MAX_LISTED])
        )
    if generated:
        parts.append(
            "tests written by CODITECT disagree with the code: "
            + "; ".join(_describe(f) for f in generated[:_MAX_LISTED])
        )
    evidence = f"{tests.passed} tests pass, {tests.failed + tests.errors} written by CODITECT fail"
    return Verdict(MissionOutcome.UNVERIFIED, "; ".join(parts), evidence=(evidence,))
