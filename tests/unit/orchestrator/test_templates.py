import pytest

from coditect.domain import Intent
from coditect.orchestrator.planner import validate_plan
from coditect.orchestrator.templates import RequestKind, classify_request, template_plan


@pytest.mark.parametrize(
    "request_, kind",
    [
        ("Add a function to calculate the nth Fibonacci number", RequestKind.ADD_FEATURE),
        ("Fix the bug in median", RequestKind.FIX_BUG),
        ("Add a test for the value_range function", RequestKind.ADD_TESTS),
        ("Write unit tests for the parser", RequestKind.ADD_TESTS),
        ("Add a parse_row function and a test for it", RequestKind.ADD_FEATURE),
        ("Add a docstring to the value_range function", RequestKind.DOCUMENT),
        (
            "Implement the function f in m.py so that it does what its docstring says.",
            RequestKind.ADD_FEATURE,
        ),
        ("Refactor value_range to be simpler", RequestKind.REFACTOR),
        ("Remove the deprecated function old_mean and its export", RequestKind.REMOVE),
        ("Please delete the unused LIMIT constant", RequestKind.REMOVE),
        ("Remove the dasherize function: it is no longer part of the API", RequestKind.REMOVE),
        ("Remove the crash in parse() on empty input", RequestKind.FIX_BUG),
        ("Remove the deprecated MRUCache class", RequestKind.REMOVE),
        ("Delete `old_api`", RequestKind.REMOVE),
        ("Delete the cache entry when it expires", RequestKind.ADD_FEATURE),
        ("Removing a key leaves it in the index", RequestKind.ADD_FEATURE),
    ],
)
def test_classify(request_, kind):
    assert classify_request(request_) is kind


@pytest.mark.parametrize("has_tests", [True, False])
@pytest.mark.parametrize(
    "request_",
    [
        "Add fibonacci",
        "Fix the bug in median",
        "Add a test for mean",
        "Add a docstring to add",
        "Refactor add",
        "Remove add",
    ],
)
def test_every_template_is_a_valid_plan_ending_in_tests(request_, has_tests):
    graph = template_plan(request_, has_tests=has_tests)
    validate_plan(list(graph))
    assert graph[graph.order[-1]].intent is Intent.RUN_TESTS
    intents = [t.intent for t in graph]
    if not has_tests:
        assert Intent.WRITE_TESTS in intents


@pytest.mark.parametrize(
    "request_",
    [
        "slugify('A B') returns 'a--b' instead of 'a-b'",
        "Calling load() on an empty file gives a traceback (IndexError)",
        "total() is documented to ignore None but it raises TypeError",
        "The parser crashes on a trailing comma",
        "load() raises KeyError on an empty file",
        "Since 2.0 the CLI option --quiet no longer works",
        "sorted_keys({'b': 1, 'a': 2}) gives ['b', 'a']; I expect ['a', 'b']",
    ],
)
def test_symptom_reports_are_bugs(request_):
    assert classify_request(request_) is RequestKind.FIX_BUG


@pytest.mark.parametrize(
    "request_",
    ["Add a check to load() that raises ValueError on a negative size", "Add a --quiet option"],
)
def test_requests_for_new_code_mentioning_errors_are_features(request_):
    assert classify_request(request_) is RequestKind.ADD_FEATURE


def test_a_bug_is_reproduced_by_a_test_before_the_fix():
    graph = template_plan("Fix the bug in median", targets=("stats/core.py",))
    validate_plan(list(graph))
    by_intent = {t.intent: t for t in graph}
    repro, code = by_intent[Intent.WRITE_TESTS], by_intent[Intent.WRITE_CODE]
    assert repro.depends_on == ("analyze",) and code.depends_on == (repro.id,)
    assert code.target_files == ("stats/core.py",) and code.description == "Fix the bug in median"
    assert "reproduces" in repro.description and "fails on the current code" in repro.description
    assert set(graph[graph.order[-1]].depends_on) == {repro.id, code.id}


def test_a_removal_writes_no_test_for_what_is_gone():
    graph = template_plan("Remove the helper old_mean", targets=("stats/core.py",))
    assert [t.intent for t in graph] == [Intent.ANALYZE, Intent.WRITE_CODE, Intent.RUN_TESTS]
