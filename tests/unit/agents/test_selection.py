import pytest

from coditect.agents.selection import Check, select

EX = [Check("ex1", example=True), Check("ex2", example=True)]
GEN = [Check("t1"), Check("t2"), Check("t3")]


def test_docstring_examples_beat_a_majority_of_agreeing_wrong_candidates():
    # Three wrong candidates agree and pass a weak test; one right candidate passes the examples.
    results = [
        [False, True, True, True, True],
        [False, True, True, True, True],
        [False, True, True, True, True],
        [True, True, True, True, False],
    ]
    chosen = select(results, EX + GEN)
    assert chosen.index == 3
    assert chosen.failed_examples == ()
    assert chosen.suspect_tests == ("t3",)
    assert not chosen.verified


def test_codet_dual_agreement_among_generated_tests():
    # Without examples: the consensus set size times the tests it passes decides.
    results = [
        [True, False, False],  # alone, passes 1
        [False, True, True],  # two agree, each passes 2 -> score 4
        [False, True, True],
        [True, True, True],  # passes all 3 alone -> score 3
    ]
    chosen = select(results, GEN)
    assert chosen.index == 1 and chosen.consensus == (1, 2)
    assert chosen.score == 4
    assert chosen.suspect_tests == ("t1",)


def test_a_test_every_candidate_fails_changes_nothing():
    results = [[True, False], [False, False]]
    chosen = select(results, [Check("ok"), Check("wrong")])
    assert chosen.index == 0 and chosen.suspect_tests == ("wrong",)


def test_ties_go_to_the_earliest_candidate():
    chosen = select([[True], [True]], [Check("t")])
    assert chosen.index == 0 and chosen.consensus == (0, 1) and chosen.verified


def test_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        select([], GEN)
    with pytest.raises(ValueError, match="one result per check"):
        select([[True]], GEN)


def test_the_projects_tests_count_with_the_examples():
    from coditect.agents.selection import Check, select

    checks = [Check("tests/test_x.py::test_a", existing=True), Check("g1"), Check("g2")]
    # Two agreeing candidates pass the generated checks but break the project's test.
    chosen = select([[False, True, True], [False, True, True], [True, False, False]], checks)
    assert chosen.index == 2 and chosen.broken_tests == ()
    worse = select([[False, True, True]], checks)
    assert worse.broken_tests == ("tests/test_x.py::test_a",) and not worse.verified
    assert worse.suspect_tests == () and worse.failed_examples == ()


def test_a_failure_that_says_why_is_a_failure_and_its_text_is_kept():
    from coditect.agents.selection import Check, select

    checks = [Check("f(1) == 2", example=True), Check("g1")]
    chosen = select([["AssertionError: gave 3", True], [False, False]], checks)
    assert chosen.index == 0 and chosen.failed_examples == ("f(1) == 2",)
    assert chosen.why == (("f(1) == 2", "AssertionError: gave 3"),)
