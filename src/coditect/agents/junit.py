"""Parsing pytest's JUnit XML into counts and categorised failures (pure, ``xml.etree`` only).

Categories, checked in this order for each failing or erroring test case:

* ``SYNTAX``: ``SyntaxError`` / ``IndentationError`` anywhere in the message or trace;
* ``COLLECTION``: an ``<error>`` that pytest reports for a module it could not collect
  (message ``collection failure``, empty ``classname``) or an import error while collecting;
* ``ASSERTION``: a ``<failure>`` whose exception is an ``AssertionError`` (``assert ...``);
* ``EXCEPTION``: any other exception in a test, its setup or teardown.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from coditect.domain.results import FailureCategory, TestFailure

__all__ = [
    "JUnitCounts",
    "categorize",
    "key_test_id",
    "outcome_key",
    "parse_junit",
    "parse_outcomes",
]

_SYNTAX = re.compile(r"\b(SyntaxError|IndentationError|TabError)\b")
_IMPORT = re.compile(r"\b(ImportError|ModuleNotFoundError)\b")
_EXC_NAME = re.compile(
    r"^(?:[A-Za-z_][\w]*\.)*([A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt|Iteration))\b"
)
_MAX_DETAIL = 2000
_SOURCE_LINE = re.compile(r'File "([^"]+)", line (\d+)')
_SYNTAX_LINE = re.compile(r"\b(SyntaxError|IndentationError|TabError): (.*)")


@dataclass(frozen=True)
class JUnitCounts:
    """What a JUnit XML report says.

    ``already_failing`` holds the ids of failing tests that were excused because they failed
    before the change too (see ``excused`` of :func:`parse_junit`); they are not counted in
    ``failed`` or ``errors``.
    """

    passed: int
    failed: int
    errors: int
    skipped: int
    failures: tuple[TestFailure, ...]
    duration_s: float
    already_failing: tuple[str, ...] = ()


def categorize(
    message: str, detail: str, *, is_error: bool, collection: bool = False
) -> FailureCategory:
    """The category of one failing test from its message and trace (see the module docstring)."""
    text = f"{message}\n{detail}"
    if _SYNTAX.search(text):
        return FailureCategory.SYNTAX
    if collection or (is_error and _IMPORT.search(message)):
        return FailureCategory.COLLECTION
    first = message.strip()
    if first.startswith("assert ") or first.startswith("AssertionError"):
        return FailureCategory.ASSERTION
    match = _EXC_NAME.match(first)
    if match is not None or is_error:
        return FailureCategory.EXCEPTION
    return FailureCategory.ASSERTION


def _test_id(case: ET.Element) -> str:
    return _id(case.get("classname", ""), case.get("name", ""))


def _id(classname: str, name: str) -> str:
    """``path/to/test_x.py::TestX::test_y`` (pytest's node id) from a JUnit classname and name.

    pytest writes a test method's class into the classname (``tests.test_x.TestX``): trailing
    segments that start with an upper-case letter are classes (Python modules are lower case by
    convention), so the id names the file the test is in, not ``tests/test_x/TestX.py``.
    """
    if not classname:  # collection errors: name is the dotted module
        return name.replace(".", "/") + ".py" if name else "(collection)"
    parts = classname.split(".")
    classes: list[str] = []
    while len(parts) > 1 and parts[-1][:1].isupper():
        classes.insert(0, parts.pop())
    return "::".join([f"{'/'.join(parts)}.py", *classes, name])


def key_test_id(key: str) -> str:
    """The failure ``test_id`` (as in :class:`TestFailure`) of an :func:`outcome_key`."""
    classname, sep, name = key.partition("::")
    return _id(classname, name) if sep else _id("", key)


def _failure(case: ET.Element, element: ET.Element) -> TestFailure:
    message = element.get("message", "") or ""
    detail = (element.text or "").strip()
    is_error = element.tag == "error"
    collection = is_error and (
        message == "collection failure" or not case.get("classname") or not case.get("name")
    )
    category = categorize(message, detail, is_error=is_error, collection=collection)
    text = message.strip().splitlines()[0][:500] if message.strip() else _last_e_line(detail)
    if category is FailureCategory.SYNTAX:
        text = _syntax_message(f"{message}\n{detail}", _test_id(case)) or text
    return TestFailure(
        test_id=_test_id(case),
        category=category,
        message=text,
        detail=detail[-_MAX_DETAIL:],
    )


def _syntax_message(text: str, test_id: str) -> str:
    """``SyntaxError in FILE line N: WHAT``: the file with the error, not the test that hit it.

    A syntax error in a module that a test imports is reported by pytest against the test
    module; the file and line of the error are in the trace (the last ``File "...", line N``
    before the ``SyntaxError:`` line).
    """
    found = _SYNTAX_LINE.search(text)
    if found is None:
        return ""
    where = list(_SOURCE_LINE.finditer(text, 0, found.start()))
    kind, what = found.group(1), found.group(2).strip()
    if not where:
        return f"{kind}: {what}"[:500]
    path, line = where[-1].group(1), where[-1].group(2)
    origin = test_id.split("::")[0]
    seen_from = f" (while importing {origin})" if not path.endswith(origin) else ""
    return f"{kind} in {path} line {line}: {what}{seen_from}"[:500]


def _last_e_line(detail: str) -> str:
    lines = [ln[1:].strip() for ln in detail.splitlines() if ln.startswith("E ")]
    return (lines[-1] if lines else detail.strip().splitlines()[-1] if detail.strip() else "")[:500]


def parse_junit(xml_text: str, *, excused: frozenset[str] = frozenset()) -> JUnitCounts:
    """Counts and failures from a JUnit XML document (``<testsuites>`` or one ``<testsuite>``).

    Args:
        xml_text: The document.
        excused: Keys (:func:`outcome_key`) of tests that failed before the change; when they
            fail now they go to ``already_failing`` instead of ``failed``/``errors``.

    Raises:
        ValueError: The text is not well-formed XML.
    """
    root = _root(xml_text)
    passed = failed = errors = skipped = 0
    failures: list[TestFailure] = []
    already: list[str] = []
    for case in root.iter("testcase"):
        failure, error = case.find("failure"), case.find("error")
        bad = failure is not None or error is not None
        if bad and outcome_key(case.get("classname", ""), case.get("name", "")) in excused:
            already.append(_test_id(case))
        elif failure is not None:
            failed += 1
            failures.append(_failure(case, failure))
        elif error is not None:
            errors += 1
            failures.append(_failure(case, error))
        elif case.find("skipped") is not None:
            skipped += 1
        else:
            passed += 1
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    duration = sum(float(s.get("time", "0") or 0) for s in suites)
    return JUnitCounts(passed, failed, errors, skipped, tuple(failures), duration, tuple(already))


_OUTCOME_TAGS = (("failure", "failed"), ("error", "error"), ("skipped", "skipped"))


def _root(xml_text: str) -> ET.Element:
    try:
        return ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise ValueError(f"malformed JUnit XML: {exc}") from exc


def outcome_key(classname: str, name: str) -> str:
    """The stable key of one test case in :func:`parse_outcomes` (``classname::name``)."""
    return f"{classname}::{name}" if classname else name


def parse_outcomes(xml_text: str) -> dict[str, str]:
    """Each test case's outcome: ``passed``, ``failed``, ``error`` or ``skipped``.

    Keys come from :func:`outcome_key`, so two runs of the same suite can be compared test by
    test (see :mod:`coditect.agents.baseline`). A case reported twice (a failing call and an
    erroring teardown) keeps its worst outcome.

    Raises:
        ValueError: The text is not well-formed XML.
    """
    rank = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}
    out: dict[str, str] = {}
    for case in _root(xml_text).iter("testcase"):
        outcome = next((o for tag, o in _OUTCOME_TAGS if case.find(tag) is not None), "passed")
        key = outcome_key(case.get("classname", ""), case.get("name", ""))
        if rank[outcome] >= rank[out.get(key, "passed")]:
            out[key] = outcome
    return out
