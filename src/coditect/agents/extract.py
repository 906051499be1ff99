"""Getting usable code out of a model's answer (pure functions, no I/O).

:func:`extract_code` finds the fenced block(s) and tolerates prose and missing fences;
:func:`salvage_truncated` rescues an answer cut off by the token limit; :func:`cap_asserts`
trims the long enumerations of cases a small model tends to write in tests.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Collection

from coditect.agents.codemerge import MergeError

__all__ = [
    "cap_asserts",
    "drop_cut_definition",
    "drop_redefinitions",
    "drop_unchecked_last_test",
    "extract_code",
    "join_spaced_names",
    "mid_answer_error",
    "salvage_truncated",
]

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:\n[ \t]*```|\Z)", re.S)
_CODE_START = re.compile(r"^(?:def |async def |class |import |from \S+ import |@)")
_DEF_TYPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
# A definition whose name the model wrote as words: ``def test_lru_cache_with Peek():``.
_SPACED_NAME = re.compile(
    r"^(?P<head>[ \t]*(?:async[ \t]+)?(?:def|class)[ \t]+)"
    r"(?P<name>[A-Za-z_]\w*(?:[ \t]+[A-Za-z_]\w*)+)(?P<tail>[ \t]*[(:])",
    re.M,
)
# The parameter list of a ``def`` on one line, and a parameter in it written as words
# (``def test_get(lru_cache_with Peek):``, the fixture named the same way).
_DEF_PARAMS = re.compile(
    r"^(?P<head>[ \t]*(?:async[ \t]+)?def[ \t]+\w+[ \t]*\()(?P<params>[^()\n]*)\)", re.M
)
_SPACED_PARAM = re.compile(r"^[ \t]*[A-Za-z_]\w*(?:[ \t]+[A-Za-z_]\w*)+[ \t]*$")
# What a cut-off answer's syntax error says: an open bracket, string or block at the end.
_CUT_OFF = re.compile(r"never closed|unterminated|EOF|expected an indented block", re.I)


def extract_code(answer: str) -> str:
    """The Python code in a model answer.

    Fenced blocks (```python ... ```, also unclosed at the end) are joined; without fences, prose
    lines before the first line that looks like code are skipped.

    Raises:
        MergeError: The answer contains no code.
    """
    blocks = [
        body
        for lang, body in _FENCE.findall(answer)
        if lang.lower() in ("", "python", "py", "python3")
    ]
    blocks = [b.strip("\n") for b in blocks if b.strip()]
    if blocks:
        return "\n\n".join(blocks) + "\n"
    lines = answer.strip("\n").splitlines()
    for i, line in enumerate(lines):
        if _CODE_START.match(line):
            return "\n".join(lines[i:]).rstrip() + "\n"
    raise MergeError("the answer contains no Python code block")


def join_spaced_names(code: str) -> str:
    """``code`` with the words of a spaced definition name joined by underscores.

    A small model sometimes writes a test's name as words (``def test_lru_cache_with Peek():``,
    seen in two of three answers for one task), and then a parameter that names such a fixture
    too (``def test_get(lru_cache_with Peek):``); no such line is valid Python, and the name it
    meant is plain. Code that parses is returned unchanged.
    """
    try:
        ast.parse(code)
    except SyntaxError:
        code = _SPACED_NAME.sub(
            lambda m: m["head"] + re.sub(r"[ \t]+", "_", m["name"]) + m["tail"], code
        )
        return _DEF_PARAMS.sub(lambda m: m["head"] + _joined_params(m["params"]) + ")", code)
    return code


def _joined_params(params: str) -> str:
    """``params`` with each parameter written as words joined by underscores."""
    parts = params.split(",")
    return ",".join(
        re.sub(r"(?<=\w)[ \t]+(?=\w)", "_", p) if _SPACED_PARAM.match(p) else p for p in parts
    )


def salvage_truncated(code: str) -> str:
    """Drop trailing lines of an answer cut off mid-statement until the rest parses.

    Raises:
        MergeError: No complete definition is left.
    """
    lines = code.rstrip("\n").splitlines()
    while lines:
        candidate = "\n".join(lines).rstrip() + "\n"
        try:
            tree = ast.parse(candidate)
        except SyntaxError:
            lines.pop()
            continue
        if any(isinstance(n, _DEF_TYPES) for n in tree.body):
            return candidate
        break
    raise MergeError("the answer was cut off before a complete definition (too long)")


def drop_cut_definition(code: str) -> str:
    """The definitions of a salvaged cut-off answer that are surely complete.

    :func:`salvage_truncated` keeps what parses, but the last definition may have lost the end
    of its body and still parse (a method cut after its docstring parses as a method that does
    nothing). So the last definition is dropped: the last method of a class that ends the
    answer (the class itself when no other method is left), else the last function. What is
    left replaces definitions whole, as any answer does.

    Raises:
        MergeError: No complete definition is left.
    """
    tree = ast.parse(code)
    defs = [n for n in tree.body if isinstance(n, _DEF_TYPES)]
    last = defs[-1] if defs else None
    members = (
        [n for n in last.body if isinstance(n, _DEF_TYPES)]
        if isinstance(last, ast.ClassDef)
        else []
    )
    cut = members[-1] if len(members) > 1 else last
    if cut is None or (cut is last and len(defs) == 1):
        raise MergeError("the answer was cut off before a complete definition (too long)")
    first = min([cut.lineno, *(d.lineno for d in cut.decorator_list)])
    lines = code.splitlines()[: first - 1]
    return "\n".join(lines).rstrip() + "\n"


def _checks(node: ast.AST) -> bool:
    """Whether a test checks anything.

    An assert, a ``with`` (``pytest.raises``), a ``self.assert...``/``pytest.fail`` call or a
    ``raise`` counts.
    """
    for sub in ast.walk(node):
        if isinstance(sub, ast.Assert | ast.With | ast.AsyncWith | ast.Raise):
            return True
        if isinstance(sub, ast.Call):
            func = sub.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name.startswith(("assert", "fail")):
                return True
    return False


def drop_unchecked_last_test(code: str) -> str:
    """A salvaged cut-off test answer without its last test when that test checks nothing.

    The answer was cut inside its last test; what parses of it may stop before its first
    assert (``result = parse(text)`` and nothing more), a test that passes whatever the code
    does: for a bug's reproduction it would say "not reproduced" of a report it never checked.

    Raises:
        MergeError: No test is left.
    """
    tree = ast.parse(code)
    tests = [
        n
        for n in tree.body
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name.startswith("test")
    ]
    if not tests or tests[-1] is not tree.body[-1] or _checks(tests[-1]):
        return code
    if len(tests) == 1:
        raise MergeError("the answer was cut off before its test checked anything (too long)")
    last = tests[-1]
    first = min([last.lineno, *(d.lineno for d in last.decorator_list)])
    return "\n".join(code.splitlines()[: first - 1]).rstrip() + "\n"


def drop_redefinitions(
    code: str, original: str | None, keep: Collection[str] = ()
) -> tuple[str, tuple[str, ...]]:
    """``code`` without its definitions of names that ``original`` already defines.

    A test answer that rewrites a project's existing test changes the specification the
    change is checked against (a small model "adapts" a test to its own idea of the new
    behaviour, and the project's test then fails as a regression of a change that was
    right). Existing tests stay as they are: top-level functions and classes of
    ``original``, and methods of its classes, are dropped from the answer, except the names
    in ``keep`` (tests this mission wrote, which a repair round may rewrite). A class of the
    answer that keeps no method is dropped whole.

    Returns:
        The code, and the dropped names (``Class.method`` for methods).
    """
    if not original:
        return code, ()
    try:
        old, tree = ast.parse(original), ast.parse(code)
    except SyntaxError:
        return code, ()
    top: set[str] = set()
    members: dict[str, set[str]] = {}
    for node in old.body:
        if isinstance(node, _DEF_TYPES):
            top.add(node.name)
            if isinstance(node, ast.ClassDef):
                members[node.name] = {m.name for m in node.body if isinstance(m, _DEF_TYPES)}
    spans: list[tuple[int, int]] = []
    dropped: list[str] = []
    for node in tree.body:
        if not isinstance(node, _DEF_TYPES) or node.name not in top or node.name in keep:
            continue
        if isinstance(node, ast.ClassDef) and node.name in members:
            defs = [m for m in node.body if isinstance(m, _DEF_TYPES)]
            gone = [
                m
                for m in defs
                if m.name in members[node.name] and f"{node.name}.{m.name}" not in keep
            ]
            if len(gone) < len(defs):
                spans.extend(_span(m) for m in gone)
                dropped.extend(f"{node.name}.{m.name}" for m in gone)
                continue
        spans.append(_span(node))
        dropped.append(node.name)
    if not spans:
        return code, ()
    lines = code.splitlines()
    for first, last in sorted(spans, reverse=True):
        del lines[first - 1 : last]
    return "\n".join(lines).rstrip() + "\n", tuple(dropped)


def _span(node: ast.stmt) -> tuple[int, int]:
    decorators = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)]), node.end_lineno or node.lineno


def mid_answer_error(code: str) -> str | None:
    """The syntax error of an answer when it is a mistake, not where the answer was cut off.

    A truncated answer fails to parse at its end (an open bracket, string or block); an error
    earlier on, of another kind (``assert f(x) == -4:30``), is the model's, and it is what
    the model must be told, rather than what a salvage of the lines before it lacks.
    """
    try:
        ast.parse(code)
    except SyntaxError as exc:
        last = len(code.rstrip("\n").splitlines())
        if exc.lineno is None or exc.lineno >= last or _CUT_OFF.search(exc.msg):
            return None
        return f"{exc.msg} (line {exc.lineno}: {(exc.text or '').strip()})"
    return None


def cap_asserts(
    code: str, limit: int, *, max_tests: int = 0, unchanged: Collection[str] = ()
) -> str:
    """Keep the first ``limit`` top-level asserts of each ``test_`` function.

    A small model tends to enumerate cases until it runs out of tokens, and its later values are
    the least reliable; the first few carry the test. With ``max_tests``, only that many test
    functions are kept as well, not counting the ``unchanged`` ones (copies of existing tests,
    left alone).
    """
    tree = ast.parse(code)
    tests = [
        n
        for n in tree.body
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        and n.name.startswith("test")
        and n.name not in unchanged
    ]
    keep = tests[:max_tests] if max_tests else tests
    drop: list[tuple[int, int]] = [
        (min([n.lineno, *(d.lineno for d in n.decorator_list)]), n.end_lineno or n.lineno)
        for n in tests[len(keep) :]
    ]
    for node in keep:
        asserts = [s for s in node.body if isinstance(s, ast.Assert)]
        drop.extend((s.lineno, s.end_lineno or s.lineno) for s in asserts[limit:])
    if not drop:
        return code
    lines = code.splitlines()
    for first, last in sorted(drop, reverse=True):
        del lines[first - 1 : last]
    return "\n".join(lines).rstrip() + "\n"
