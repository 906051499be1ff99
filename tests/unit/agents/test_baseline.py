"""The baseline rule (pure): regressions, still failing, newly passing; reproduction verdicts."""

from __future__ import annotations

import pytest

from coditect.agents.baseline import Baseline, Comparison, Reproduction, compare, judge_reproduction
from coditect.agents.junit import outcome_key, parse_junit, parse_outcomes

BEFORE = {"t::a": "passed", "t::b": "failed", "t::c": "error", "t::d": "passed", "t::s": "skipped"}


def test_compare_full_run():
    after = {
        "t::a": "failed",
        "t::b": "failed",
        "t::c": "passed",
        "t::new": "error",
        "t::s": "passed",
    }
    got = compare(BEFORE, after)
    assert got == Comparison(
        regressions=("t::a", "t::d"),
        still_failing=("t::b",),
        newly_passing=("t::c",),
        new_failing=("t::new",),
        missing=("t::d",),
    )
    assert not got.ok


def test_compare_selection_run_ignores_tests_it_did_not_run():
    got = compare(BEFORE, {"t::b": "failed", "t::a": "passed"}, full_run=False)
    assert got.ok and got.still_failing == ("t::b",) and got.missing == ()


def test_cases_numbered_differently_by_the_two_runs_are_the_same_tests():
    # isodate: parametrized from a set holding None; on Python < 3.12 its order changes per run.
    before = {
        "t::f[4-1985-expected12-%Y]": "passed",
        "t::f[6-+0019-expected1-%C]": "passed",
        "t::f[4-1-W1-1-None-%YW%W%w]": "passed",
        "t::g[x-expected3]": "failed",
    }
    after = {
        "t::f[4-1985-expected13-%Y]": "passed",
        "t::f[6-+0019-expected2-%C]": "failed",
        "t::f[4-1-W1-1-None-%YW%W%w]": "passed",
        "t::g[x-expected4]": "failed",
    }
    got = compare(before, after)
    assert got.regressions == ("t::f[6-+0019-expected2-%C]",)
    assert got.still_failing == ("t::g[x-expected4]",)
    assert got.missing == () and got.new_failing == ()


def test_a_removed_case_is_still_missing():
    before = {"t::f[a-expected1]": "passed", "t::f[b-expected2]": "passed"}
    got = compare(before, {"t::f[a-expected1]": "passed", "t::f[c-expected3]": "passed"})
    assert got.regressions == ("t::f[b-expected2]",)


def test_only_already_failing_tests_fail_is_ok():
    assert compare(BEFORE, {**BEFORE}).ok


def test_baseline_json_round_trip_and_failing():
    b = Baseline(
        outcomes=BEFORE,
        duration_s=1.23456,
        command=("python", "-m", "pytest"),
        plugins_off=("pytest-old",),
    )
    back = Baseline.from_json(b.to_json())
    assert back.outcomes == BEFORE and back.duration_s == pytest.approx(1.235)
    assert back.command == ("python", "-m", "pytest") and back.plugins_off == ("pytest-old",)
    assert back.failing == {"t::b", "t::c"}


def test_a_module_the_mission_changed_is_not_excused_for_failing_to_import():
    b = Baseline(
        outcomes={
            "tests.test_time": "error",  # could not be collected
            "tests.test_time::test_old": "failed",
            "test_other": "error",
            "tests.test_ok::test_a": "passed",
        }
    )
    assert b.excused() == b.failing
    changed = ["tests/test_time.py", "src/pkg/time.py", "README.md"]
    assert b.excused(changed) == {"tests.test_time::test_old", "test_other"}
    # pytest's root directory below the project: the module's path is shorter than the file's
    assert b.excused(["sub/tests/test_time.py"]) == {"tests.test_time::test_old", "test_other"}
    assert b.excused(["other/test_time.py"]) == b.failing
    failures = ["tests/test_time.py", "tests/test_time.py::test_old", "tests/test_ok.py"]
    assert b.unimportable(failures) == ("tests/test_time.py",)


@pytest.mark.parametrize("text", ["not json", "[]", '{"no": 1}'])
def test_baseline_from_bad_json(text):
    with pytest.raises(ValueError, match="not a baseline"):
        Baseline.from_json(text)


def test_judge_reproduction():
    new = {"t::repro"}
    assert judge_reproduction({"t::repro": "failed"}, new) is Reproduction.REPRODUCED
    assert judge_reproduction({"t::repro": "error"}, new) is Reproduction.REPRODUCED
    assert judge_reproduction({"t::repro": "passed"}, new) is Reproduction.NOT_REPRODUCED
    assert judge_reproduction({"t::other": "failed"}, new) is Reproduction.NO_TEST
    assert judge_reproduction({"t::repro": "failed"}, new, broken=True) is Reproduction.BROKEN


XML = """<testsuites><testsuite name="pytest" tests="5">
<testcase classname="tests.test_a" name="test_ok"/>
<testcase classname="tests.test_a" name="test_old_bug"><failure message="assert 0">E</failure></testcase>
<testcase classname="tests.test_a" name="test_new_bug"><failure message="assert 1">E</failure></testcase>
<testcase classname="tests.test_a" name="test_skip"><skipped message="s"/></testcase>
<testcase classname="tests.test_a" name="test_td"/>
<testcase classname="tests.test_a" name="test_td"><error message="teardown">E</error></testcase>
<testcase classname="" name="tests.test_b"><error message="collection failure">E</error></testcase>
</testsuite></testsuites>"""


def test_parse_outcomes_keeps_the_worst_outcome_per_case():
    assert parse_outcomes(XML) == {
        "tests.test_a::test_ok": "passed",
        "tests.test_a::test_old_bug": "failed",
        "tests.test_a::test_new_bug": "failed",
        "tests.test_a::test_skip": "skipped",
        "tests.test_a::test_td": "error",
        "tests.test_b": "error",
    }
    with pytest.raises(ValueError, match="malformed"):
        parse_outcomes("<testsuite")


def test_parse_junit_excuses_tests_that_failed_before():
    excused = frozenset({outcome_key("tests.test_a", "test_old_bug")})
    counts = parse_junit(XML, excused=excused)
    assert counts.already_failing == ("tests/test_a.py::test_old_bug",)
    assert counts.failed == 1 and counts.errors == 2
    assert [f.test_id for f in counts.failures][0] == "tests/test_a.py::test_new_bug"
