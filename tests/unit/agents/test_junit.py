import pytest

from coditect.agents.junit import categorize, key_test_id, parse_junit
from coditect.domain.results import FailureCategory as C

XML = """<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">
<testsuite name="pytest" errors="1" failures="2" skipped="1" tests="5" time="0.25">
<testcase classname="tests.test_a" name="test_ok" time="0.001"/>
<testcase classname="tests.test_a" name="test_assert" time="0.001">
<failure message="assert 1 == 2">E   assert 1 == 2</failure></testcase>
<testcase classname="tests.test_a" name="test_exc" time="0.001">
<failure message="ValueError: bad value">E   ValueError: bad value</failure></testcase>
<testcase classname="tests.test_a" name="test_fix" time="0.001">
<error message="failed on setup with &quot;RuntimeError: boom&quot;">E   RuntimeError: boom</error></testcase>
<testcase classname="tests.test_a" name="test_skip" time="0.0">
<skipped type="pytest.skip" message="x">x</skipped></testcase>
</testsuite></testsuites>"""


def test_counts_and_categories_from_pytest_xml():
    counts = parse_junit(XML)
    assert (counts.passed, counts.failed, counts.errors, counts.skipped) == (1, 2, 1, 1)
    cats = {f.test_id: f.category for f in counts.failures}
    assert cats == {
        "tests/test_a.py::test_assert": C.ASSERTION,
        "tests/test_a.py::test_exc": C.EXCEPTION,
        "tests/test_a.py::test_fix": C.EXCEPTION,
    }
    assert counts.duration_s == pytest.approx(0.25)


def test_a_test_method_is_named_by_its_file_and_class():
    # unittest-style suites (cachetools, more-itertools): the class is not a directory.
    xml = """<testsuite name="pytest" tests="1">
    <testcase classname="tests.test_func.TTLDecoratorTest" name="test_unbound" time="0">
    <failure message="TypeError: no">E   TypeError: no</failure></testcase></testsuite>"""
    ids = [f.test_id for f in parse_junit(xml).failures]
    assert ids == ["tests/test_func.py::TTLDecoratorTest::test_unbound"]
    assert key_test_id("tests.test_func.TTLDecoratorTest::test_unbound") == ids[0]
    assert key_test_id("test_x::test_y") == "test_x.py::test_y"


def test_collection_errors_and_syntax_errors():
    xml = """<testsuite name="pytest" tests="2">
    <testcase classname="" name="tests.test_b" time="0"><error message="collection failure">
    E   ModuleNotFoundError: No module named 'nope'</error></testcase>
    <testcase classname="" name="tests.test_c" time="0"><error message="collection failure">
    E   SyntaxError: invalid syntax</error></testcase></testsuite>"""
    counts = parse_junit(xml)
    assert counts.errors == 2 and counts.passed == 0
    assert [(f.test_id, f.category) for f in counts.failures] == [
        ("tests/test_b.py", C.COLLECTION),
        ("tests/test_c.py", C.SYNTAX),
    ]


def test_categorize_rules():
    assert categorize("AssertionError: nope", "", is_error=False) is C.ASSERTION
    assert categorize("KeyError: 'x'", "", is_error=False) is C.EXCEPTION
    assert categorize("x", "IndentationError: unexpected indent", is_error=False) is C.SYNTAX
    assert categorize("ImportError: cannot import name 'f'", "", is_error=True) is C.COLLECTION


def test_malformed_xml_raises_value_error():
    with pytest.raises(ValueError, match="malformed"):
        parse_junit("<testsuite")
