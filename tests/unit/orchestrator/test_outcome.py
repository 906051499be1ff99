from coditect.domain.mission import MissionOutcome
from coditect.domain.results import FailureCategory, FileEdit, TestFailure, TestReport
from coditect.domain.tasks import Intent, TaskSpec
from coditect.orchestrator.outcome import decide_outcome, retired_notes, written_by_us
from coditect.orchestrator.repair import repair_tasks

OURS = ("tests/test_solution.py",)
CHANGED = ["solution.py", "tests/test_solution.py"]


def failure(test_id: str, message: str = "assert 1 == 2") -> TestFailure:
    return TestFailure(test_id=test_id, category=FailureCategory.ASSERTION, message=message)


def failing(*failures: TestFailure, passed: int = 3) -> TestReport:
    return TestReport(passed=passed, failed=len(failures), failures=failures)


def decide(status=MissionOutcome.FAILED, *, changed=CHANGED, last=None, reason="tests failed"):
    return decide_outcome(
        status=status, reason=reason, changed=changed, tests_written=OURS, last_tests=last
    )


def test_all_tests_pass_is_success_with_evidence():
    verdict = decide(MissionOutcome.SUCCESS, last=TestReport(passed=4), reason="")
    assert verdict.outcome is MissionOutcome.SUCCESS
    assert verdict.evidence == (
        "all 4 tests of the last run pass, including the tests CODITECT wrote in "
        "tests/test_solution.py",
    )


def test_only_our_tests_disagree_is_unverified_and_says_what():
    last = failing(failure("tests/test_solution.py::test_f", "assert 4 == 5"))
    verdict = decide(last=last)
    assert verdict.outcome is MissionOutcome.UNVERIFIED
    assert verdict.reason == (
        "tests written by CODITECT disagree with the code: "
        "tests/test_solution.py::test_f: assert 4 == 5"
    )


def test_docstring_examples_failing_are_named_as_such():
    last = failing(failure("tests/test_solution.py::test_f_docstring_examples"))
    verdict = decide(last=last)
    assert verdict.outcome is MissionOutcome.UNVERIFIED
    assert verdict.reason.startswith("the code fails the user's examples")


def test_a_broken_test_that_was_there_before_is_never_accepted():
    last = failing(
        failure("tests/test_solution.py::test_f"), failure("tests/test_old.py::test_g", "boom")
    )
    verdict = decide(last=last)
    assert verdict.outcome is MissionOutcome.FAILED
    assert (
        verdict.reason == "tests that CODITECT did not write fail: tests/test_old.py::test_g: boom"
    )


def test_nothing_usable_is_failed():
    assert decide(changed=[]).outcome is MissionOutcome.FAILED
    assert decide(MissionOutcome.SUCCESS, changed=[], reason="").reason.startswith("the agents")
    assert decide(last=None).outcome is MissionOutcome.FAILED
    timed_out = TestReport(errors=1, timed_out=True, failures=(failure("(test run)"),))
    assert decide(last=timed_out).outcome is MissionOutcome.FAILED
    nothing_passes = failing(
        failure("tests/test_solution.py::test_f"),
        failure("tests/test_solution.py::test_f_docstring_examples"),
        passed=0,
    )
    assert decide(last=nothing_passes).reason.startswith("no test passes: tests/test_solution.py")
    only_tests = failing(failure("tests/test_solution.py::test_f"))
    verdict = decide(changed=["tests/test_solution.py"], last=only_tests)
    assert verdict.outcome is MissionOutcome.FAILED


def test_only_model_tests_failing_with_none_passing_is_inconclusive():
    # A model's test alone (no docstring example fails) never vetoes the change.
    last = failing(failure("tests/test_solution.py::test_f", "assert 15 == 24"), passed=0)
    verdict = decide(last=last)
    assert verdict.outcome is MissionOutcome.UNVERIFIED
    assert verdict.reason == (
        "tests written by CODITECT disagree with the code: "
        "tests/test_solution.py::test_f: assert 15 == 24"
    )


def test_other_statuses_pass_through():
    verdict = decide(MissionOutcome.CANCELLED, reason="cancelled")
    assert (verdict.outcome, verdict.reason) == (MissionOutcome.CANCELLED, "cancelled")
    ok = decide(MissionOutcome.SUCCESS, last=None, reason="")
    assert ok.outcome is MissionOutcome.SUCCESS and ok.evidence == ("no test run was planned",)


def test_written_by_us_matches_files_not_prefixes():
    assert written_by_us(failure("tests/test_solution.py::test_f"), OURS) == OURS[0]
    assert written_by_us(failure("tests/test_solution_extra.py::test_f"), OURS) == ""


def test_a_method_of_a_test_class_the_mission_added_is_the_missions():
    # tlru-decorator: the mission added the class TestUnboundTTLCacheInit to the project's
    # tests/test_func.py; its failing test_init was counted as a regression of the project's.
    names = {"tests/test_func.py": frozenset({"TestInit", "test_new"})}
    ours = ["tests/test_func.py"]
    mine = failure("tests/test_func.py::TestInit::test_init")
    assert written_by_us(mine, ours, names) == "tests/test_func.py"
    theirs = failure("tests/test_func.py::TTLDecoratorTest::test_decorator[1]")
    assert written_by_us(theirs, ours, names) == ""
    member = failure("tests/test_func.py::TTLDecoratorTest::test_new")
    assert written_by_us(member, ours, names) == "tests/test_func.py"


def test_repair_goes_to_the_coder_first_then_to_our_tests():
    failed = TaskSpec(id="t4", intent=Intent.RUN_TESTS, description="run", depends_on=("t3",))
    report = failing(failure("tests/test_solution.py::test_f"))
    first, _ = repair_tasks(
        request="r", failed=failed, report=report, tests_written=OURS, round_no=1
    )
    second, _ = repair_tasks(
        request="r", failed=failed, report=report, tests_written=OURS, round_no=2
    )
    assert first.intent is Intent.WRITE_CODE
    assert second.intent is Intent.WRITE_TESTS and second.target_files == OURS
    examples = failing(failure("tests/test_solution.py::test_f_docstring_examples"))
    third, _ = repair_tasks(
        request="r", failed=failed, report=examples, tests_written=OURS, round_no=2
    )
    assert third.intent is Intent.WRITE_CODE


def test_test_ids_rooted_at_the_test_folder_still_match():
    assert written_by_us(failure("test_solution.py::test_f"), OURS) == OURS[0]
    assert written_by_us(failure("other/test_solution.py::test_f"), OURS) == ""


def test_tests_alone_are_no_answer_to_a_request_for_code():
    """Tests rewritten until they pass on the unchanged code are not a fix (nor a feature)."""
    tests_only = ["tests/test_solution.py"]
    kwargs = dict(
        reason="", changed=tests_only, tests_written=OURS, last_tests=TestReport(passed=5)
    )
    verdict = decide_outcome(status=MissionOutcome.SUCCESS, code_expected=True, **kwargs)
    assert verdict.outcome is MissionOutcome.FAILED
    assert verdict.reason == (
        "no source file changed: the request asks for a code change, but only tests were "
        "changed (tests/test_solution.py); they pass on the unchanged code"
    )
    # A request for tests is answered by tests.
    assert decide_outcome(status=MissionOutcome.SUCCESS, **kwargs).outcome is MissionOutcome.SUCCESS
    # With code changed too, the tests decide as before.
    both = {**kwargs, "changed": CHANGED}
    assert decide_outcome(status=MissionOutcome.SUCCESS, code_expected=True, **both).outcome is (
        MissionOutcome.SUCCESS
    )


def test_a_change_no_new_test_checks_is_unverified_never_success():
    verdict = decide_outcome(
        status=MissionOutcome.SUCCESS,
        reason="",
        changed=["solution.py"],
        tests_written=(),
        last_tests=TestReport(passed=7),
        untested=("task tests: the model gave no usable code for tests/test_solution.py",),
    )
    assert verdict.outcome is MissionOutcome.UNVERIFIED
    assert verdict.reason == (
        "no test checks the change: the tests for it could not be written (task tests: the "
        "model gave no usable code for tests/test_solution.py); the 7 tests that ran pass, but "
        "none of them was written for it"
    )
    # a regression still fails it
    broken = failing(failure("tests/test_other.py::test_x"))
    assert (
        decide_outcome(
            status=MissionOutcome.FAILED,
            reason="tests failed",
            changed=["solution.py"],
            tests_written=(),
            last_tests=broken,
            untested=("task tests: no usable tests",),
        ).outcome
        is MissionOutcome.FAILED
    )


def test_a_bug_fix_whose_report_was_not_reproduced_is_unverified():
    note = (
        "not reproduced: the tests in tests/test_tz.py pass on the current code, so they do "
        "not capture the report; the fix is made from the request alone"
    )
    verdict = decide_outcome(
        status=MissionOutcome.SUCCESS,
        reason="",
        changed=["tz.py", "tests/test_tz.py"],
        tests_written=("tests/test_tz.py",),
        last_tests=TestReport(passed=9),
        unreproduced=(note,),
    )
    assert verdict.outcome is MissionOutcome.UNVERIFIED
    assert verdict.reason == (
        f"the bug was not reproduced ({note}); the 9 tests that ran pass, but none of them "
        "failed before the change"
    )


def test_a_project_test_in_a_file_the_mission_extended_is_not_ours():
    # The mission appended test_leap to the project's tests/test_solution.py; the project's own
    # test_add in that file now fails: a regression, never a disagreement with our tests.
    names = {"tests/test_solution.py": frozenset({"test_leap"})}
    theirs = failure("tests/test_solution.py::test_add[P1Y-P2Y]", "TypeError: bad operand")
    mine = failure("tests/test_solution.py::TestLeap::test_leap", "assert 28 == 29")
    assert written_by_us(theirs, OURS, names) == ""
    assert written_by_us(mine, OURS, names) == "tests/test_solution.py"
    assert written_by_us(theirs, OURS, {"tests/test_solution.py": None}) == "tests/test_solution.py"
    verdict = decide_outcome(
        status=MissionOutcome.FAILED,
        reason="tests failed",
        changed=CHANGED,
        tests_written=OURS,
        last_tests=failing(theirs, mine),
        test_names=names,
    )
    assert verdict.outcome is MissionOutcome.FAILED
    assert verdict.reason.startswith("tests that CODITECT did not write fail: tests/test_solution")
    # and the repair round does not rewrite the project's test to make it pass
    fix, _ = repair_tasks(
        request="r",
        failed=TaskSpec(id="t", intent=Intent.RUN_TESTS, description="run"),
        report=failing(theirs),
        tests_written=OURS,
        round_no=2,
        test_names=names,
    )
    assert fix.intent is Intent.WRITE_CODE


def test_tests_written_into_a_module_that_never_imported_leave_the_change_unverified():
    # tests/test_solution.py could not be imported before the mission either (a dependency the
    # machine lacks); the tests the mission wrote into it never ran: inconclusive, not FAILED.
    names = {"tests/test_solution.py": frozenset({"test_new"})}
    stuck = TestFailure(
        test_id="tests/test_solution.py",
        category=FailureCategory.COLLECTION,
        message="collection failure",
        detail="tests/test_solution.py:1: in <module>\nE   ModuleNotFoundError: No module named 'x'",
    )
    last = TestReport(passed=2, errors=1, failures=(stuck,))

    def verdict(report: TestReport):
        return decide_outcome(
            status=MissionOutcome.FAILED,
            reason="tests failed",
            changed=CHANGED,
            tests_written=OURS,
            last_tests=report,
            test_names=names,
        )

    # An import error the change itself caused is a regression of the project's tests there.
    assert verdict(last).outcome is MissionOutcome.FAILED
    got = verdict(last.model_copy(update={"unimportable_before": ("tests/test_solution.py",)}))
    assert got.outcome is MissionOutcome.UNVERIFIED
    assert got.reason == (
        "the tests CODITECT wrote did not run: their module could not be imported before the "
        "change either: tests/test_solution.py: ModuleNotFoundError: No module named 'x'"
    )


def test_note_tests_keeps_what_the_mission_wrote():
    from coditect.domain.results import CodeChange, FileEdit
    from coditect.orchestrator.coordinator import _note_tests

    names: dict = {}
    _note_tests(
        names,
        CodeChange(
            edits=(
                FileEdit(
                    path="t/a.py", before_sha256="1", after_sha256="2", added_symbols=("T.test_x",)
                ),
                FileEdit(
                    path="t/new.py", before_sha256="", after_sha256="3", added_symbols=("test_n",)
                ),
            )
        ),
    )
    _note_tests(
        names,
        CodeChange(
            edits=(
                FileEdit(
                    path="t/a.py",
                    before_sha256="2",
                    after_sha256="4",
                    replaced_symbols=("test_x", "test_project"),
                ),
            )
        ),
    )
    assert names == {"t/a.py": frozenset({"test_x"}), "t/new.py": None}


def test_tests_removed_with_the_code_they_tested_are_named():
    edits = (
        FileEdit(path="pkg/m.py", after_sha256="a", deleted_symbols=("old",)),
        FileEdit(path="tests/test_m.py", after_sha256="b", deleted_symbols=("test_old", "old")),
    )
    assert retired_notes(edits) == [
        "removed from tests/test_m.py with the code they tested: test_old, old"
    ]
