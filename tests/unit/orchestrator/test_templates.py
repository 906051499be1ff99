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
        ("Refactor value_range to be simpler", RequestKind.REFACTOR),
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
    ],
)
def test_every_template_is_a_valid_plan_ending_in_tests(request_, has_tests):
    graph = template_plan(request_, has_tests=has_tests)
    validate_plan(list(graph))
    assert graph[graph.order[-1]].intent is Intent.RUN_TESTS
    intents = [t.intent for t in graph]
    if not has_tests:
        assert Intent.WRITE_TESTS in intents
