import pytest

from coditect.agents.prompts import asks_removal, code_prompt, failures_block, rejected_prompt
from coditect.agents.prompts import tests_prompt as make_tests_prompt


def test_code_prompt_shape():
    text = code_prompt(request="Add f", description="Add f", path="p/m.py", source="X = 1\n")
    assert (
        text
        == "Request: Add f\nFile p/m.py:\n```python\nX = 1\n```\nWrite only the new or changed code for p/m.py."
    )
    with_task = code_prompt(request="Add f", description="Other", path="p/m.py", source="")
    assert "Task: Other\n" in with_task and "# (new file)" in with_task


def test_tests_prompt_shape():
    text = make_tests_prompt(
        request="Add f",
        description="Write tests",
        path="tests/test_m.py",
        source="",
        subject="def f():\n    ...",
        import_line="from p.m import f",
        names=("f",),
        failures=failures_block([("t::a", "assert 1 == 2")]),
    )
    assert "Import it with: from p.m import f" in text and text.endswith(
        "Write new pytest tests for f."
    )
    assert "- t::a: assert 1 == 2" in text and "Fix the tests so that they pass." in text


def test_failures_block_limits():
    many = [(f"t{i}", "x" * 1000) for i in range(9)]
    block = failures_block(many, feedback="see above")
    assert block.count("\n- ") == 6 and "x" * 301 not in block and block.endswith("pass.\n")
    assert failures_block([]) == ""
    assert "Your answer was rejected: bad" in rejected_prompt("bad")


@pytest.mark.parametrize(
    ("request_text", "removal"),
    [
        ("Remove the deprecated `old_api` function", True),
        ("Get rid of the unused LIMIT constant", True),
        ("Delete MRUCache", True),
        ("Deleting a key leaves it in the index", False),
        ("Remove the crash in parse_row() on empty input", False),
        ("Delete the cache entry when it expires", False),
        ("Add a removal hook", False),
        ("Add `power(a, b)` and remove nothing", False),
        ("Removable drives are listed twice", False),
    ],
)
def test_a_request_to_remove_gets_told_how_to_delete(request_text, removal):
    prompt = code_prompt(request=request_text, description="", path="m.py", source="x = 1\n")
    assert asks_removal(request_text) is removal
    assert ("`del NAME`" in prompt) is removal
