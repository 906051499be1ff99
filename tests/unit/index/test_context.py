"""Symbol-level context under a token budget."""

from __future__ import annotations

import ast

import pytest

from coditect.index.context import ContextOverflowError, file_context
from coditect.llm.base import estimate_tokens

BIG = "\n".join(
    ['"""Module doc.\n\nMore."""', "import os", "", "LIMIT = 3", ""]
    + [f'def f{i}(x):\n    """Doc {i}."""\n    return x + {i}\n\n' for i in range(200)]
    + [
        "class Box:",
        '    """A box."""',
        "    size = 1",
        "",
        "    def grow(self, n):",
        '        """Grow."""',
        "        self.size += n",
        "        return self.size",
        "",
        "    def shrink(self, n):",
        "        self.size -= n",
        "",
    ]
)


def test_a_small_file_is_shown_whole():
    ctx = file_context("x = 1\n", focus=(), budget_tokens=100, count=estimate_tokens)
    assert ctx.whole and ctx.text == "x = 1\n"


def test_a_large_file_is_an_excerpt_around_the_focus():
    ctx = file_context(BIG, focus=("Box.grow",), budget_tokens=600, count=estimate_tokens)
    assert not ctx.whole and ctx.full == ("Box.grow",) and ctx.tokens <= 600
    text = ctx.text
    assert "import os" in text and '"""Module doc."""' in text
    assert "class Box:" in text and "        self.size += n\n        return self.size" in text
    assert "    def shrink(self, n):\n        ...\n" in text or "shrink" not in text
    assert "return x + 150" not in text  # other bodies are never shown
    ast.parse(text)  # "..." stubs keep it valid Python


def test_neighbours_by_priority_come_first():
    ctx = file_context(
        BIG, focus=("f3",), budget_tokens=300, count=estimate_tokens, priority={"f150": 5.0}
    )
    assert "def f150(x):" in ctx.text and "return x + 3" in ctx.text


def test_only_related_definitions_are_outlined():
    source = BIG + "\n\ndef uses(x):\n    return f7(x) + Box().grow(1)\n"
    ctx = file_context(
        source, focus=("uses",), budget_tokens=3000, count=estimate_tokens, priority={"f9": 1.0}
    )
    # What the focus calls, and what the localization ranked; never the other 197 functions.
    assert set(ctx.outlined) == {"f7", "Box", "Box.grow", "f9"}
    assert "def f7(x):" in ctx.text and "def f9(x):" in ctx.text and "def f8(x):" not in ctx.text
    method = file_context(BIG, focus=("Box.grow",), budget_tokens=3000, count=estimate_tokens)
    assert set(method.outlined) == {"Box.shrink", "Box.size"}  # the rest of its class


def test_what_cannot_fit_is_refused_not_sent():
    with pytest.raises(ContextOverflowError, match="f3 alone does not fit"):
        file_context(BIG, focus=("f3",), budget_tokens=10, count=estimate_tokens)
    with pytest.raises(ContextOverflowError, match="does not parse"):
        file_context("def (:\n" * 100, focus=(), budget_tokens=10, count=estimate_tokens)


def test_a_class_too_large_to_show_whole_is_outlined_with_its_members():
    big_class = "class Huge:\n" + "".join(
        f"    def m{i}(self):\n        return {i} + {i} + {i}\n\n" for i in range(300)
    )
    ctx = file_context(big_class, focus=("Huge",), budget_tokens=3000, count=estimate_tokens)
    assert ctx.full == () and "Huge.m0" in ctx.outlined and ctx.tokens <= 3000
    assert "    def m0(self):\n        ...\n" in ctx.text and "return 0" not in ctx.text


def test_definitions_gives_functions_and_methods_not_classes():
    from coditect.index.context import definitions

    source = (
        "import os\n\n@deco\ndef f(x):\n    return x\n\n"
        "class C:\n    def m(self):\n        return 1\n\n    async def n(self):\n        pass\n"
    )
    assert definitions(source, ["f", "C.m", "C", "missing", "f"]) == [
        "@deco\ndef f(x):\n    return x",
        "    def m(self):\n        return 1",
    ]
    assert definitions("def (:", ["f"]) == []


def test_a_focus_definition_too_large_to_show_gives_way_to_the_next():
    huge = "def huge(x):\n" + "".join(
        f"    x = x + {i}  # a long body line {i}\n" for i in range(400)
    )
    source = f"{huge}    return x\n\n\n{BIG}"
    ctx = file_context(source, focus=("huge", "f3"), budget_tokens=400, count=estimate_tokens)
    assert "return x + 3" in ctx.text and "a long body line 399" not in ctx.text
    assert ctx.full == ("f3",)
    with pytest.raises(ContextOverflowError, match="huge alone does not fit"):
        file_context(source, focus=("huge", "f3"), budget_tokens=10, count=estimate_tokens)
