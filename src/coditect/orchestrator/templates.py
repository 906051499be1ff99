"""Template plans, one per request kind.

A template is the plan when the repository index already determines it, and the fallback when
the model's plan is invalid twice.

The request kind is read from the request's leading verb phrase (generic English, nothing about
any project). Every template ends with a test run that depends on every task that writes
something, so no mission can succeed without tests passing.
"""

from __future__ import annotations

import re
from enum import StrEnum

from coditect.agents.prompts import asks_removal
from coditect.domain.graph import TaskGraph
from coditect.domain.tasks import REPRODUCE_INSTRUCTION, Intent, TaskSpec

__all__ = ["RequestKind", "classify_request", "template_plan"]


class RequestKind(StrEnum):
    """Broad kinds of request, each with its own template plan."""

    ADD_FEATURE = "add_feature"
    FIX_BUG = "fix_bug"
    ADD_TESTS = "add_tests"
    REFACTOR = "refactor"
    DOCUMENT = "document"
    REMOVE = "remove"


_RULES: tuple[tuple[RequestKind, re.Pattern[str]], ...] = (
    (
        RequestKind.ADD_TESTS,
        # Tests are the object of the leading verb ("Add unit tests for ..."), not a later part
        # of a feature request ("Add parse_x and a test for it").
        re.compile(
            r"^\W*(?:please\s+)?(?:add|write|create)\s+(?:(?:a|an|some|more|unit|new|pytest|"
            r"regression)\s+)*tests?\b",
            re.I,
        ),
    ),
    (
        RequestKind.FIX_BUG,
        # A bug report names a defect or describes a symptom: what the code does "instead of"
        # what was expected, an exception or traceback it gives, what no longer or does not work
        # (generic English and Python's exception naming, no project words).
        re.compile(
            r"\b(fix|bug|broken|wrong|incorrect|crash(?:es|ed)?|make .* raise|instead of|"
            r"traceback|regression|but (?:it )?(?:returns|gives|raises|prints))\b",
            re.I,
        ),
    ),
    (
        RequestKind.FIX_BUG,
        # Symptoms that a request for new code can mention too ("Add a check that raises
        # ValueError") count only when the request does not open with such a verb.
        re.compile(
            r"^(?!\W*(?:please\s+)?(?:add|implement|create|write|support|introduce|provide)\b)"
            r".*?\b(i expect(?:ed)?|expected|no longer|does(?: not|n't) work|"
            r"[A-Z]\w*(?-i:Error|Exception))\b",
            re.I | re.S,
        ),
    ),
    (
        RequestKind.DOCUMENT,
        # "Implement f so that it does what its docstring says" asks for code, not documentation.
        re.compile(
            r"^(?!\W*(?:please\s+)?implement\b).*?\b(docstring|document|documentation|comment)s?\b",
            re.I | re.S,
        ),
    ),
    (
        RequestKind.REFACTOR,
        re.compile(r"\b(refactor|simplify|clean ?up|rename|restructure)\b", re.I),
    ),
)


def classify_request(request: str) -> RequestKind:
    """The kind of ``request``; ADD_FEATURE unless the words say otherwise."""
    if asks_removal(request):  # no test is written for code that is gone
        return RequestKind.REMOVE
    for kind, pattern in _RULES:
        if pattern.search(request):
            return kind
    return RequestKind.ADD_FEATURE


def template_plan(
    request: str, *, has_tests: bool = True, targets: tuple[str, ...] = ()
) -> TaskGraph:
    """A safe plan for ``request``.

    Args:
        request: The user's request.
        has_tests: Whether the repository already has tests; without any, a task writes them.
        targets: Files the code task is expected to change (from the repository index).
    """
    kind = classify_request(request)
    analyze = TaskSpec(
        id="analyze",
        intent=Intent.ANALYZE,
        description="Inspect the repository: modules, functions, tests and test command.",
        priority=10,
    )
    if kind is RequestKind.FIX_BUG:
        return _bug_plan(request, analyze, targets)
    tasks = [analyze]
    write_ids: list[str] = []
    if kind is not RequestKind.ADD_TESTS:
        tasks.append(
            TaskSpec(
                id="code",
                intent=Intent.WRITE_CODE,
                description=request,
                depends_on=("analyze",),
                target_files=targets,
            )
        )
        write_ids.append("code")
    if kind in (RequestKind.ADD_FEATURE, RequestKind.ADD_TESTS) or not has_tests:
        desc = (
            request
            if kind is RequestKind.ADD_TESTS
            else f"Write pytest tests that check this change: {request}"
        )
        tasks.append(
            TaskSpec(
                id="tests",
                intent=Intent.WRITE_TESTS,
                description=desc,
                depends_on=tuple(write_ids) or ("analyze",),
            )
        )
        write_ids.append("tests")
    tasks.append(
        TaskSpec(
            id="run_tests",
            intent=Intent.RUN_TESTS,
            description="Run the test suite and check that every test passes.",
            depends_on=tuple(write_ids),
        )
    )
    return TaskGraph(tasks)


#: The reproduction task's instruction (the request itself is in the prompt already).
REPRODUCE = REPRODUCE_INSTRUCTION


def _bug_plan(request: str, analyze: TaskSpec, targets: tuple[str, ...]) -> TaskGraph:
    """A bug fix the careful way: a test that reproduces the report first, then the fix.

    The code task runs the reproduction test on the unchanged code before it asks for the fix
    (:mod:`coditect.agents.reproduce`), then the whole selection runs after it.
    """
    return TaskGraph(
        [
            analyze,
            TaskSpec(
                id="reproduce",
                intent=Intent.WRITE_TESTS,
                description=REPRODUCE,
                depends_on=("analyze",),
                target_files=targets,
            ),
            TaskSpec(
                id="code",
                intent=Intent.WRITE_CODE,
                description=request,
                depends_on=("reproduce",),
                target_files=targets,
            ),
            TaskSpec(
                id="run_tests",
                intent=Intent.RUN_TESTS,
                description="Run the test suite and check that every test passes.",
                depends_on=("reproduce", "code"),
            ),
        ]
    )
