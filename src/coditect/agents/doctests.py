"""Examples in a docstring or in the request, turned into checks (pure functions, no I/O).

A docstring's examples are the strongest evidence of what a function should do that a mission
has: the user wrote them. So are the examples in the user's request (``foreign_key("Message")
== "message_id"``), read by :func:`request_examples` with one restriction: a request describes
the current, wrong behaviour as often as the wanted one ("``humanize("user_id")`` returns
'Userentifier'"), so only ``==``, ``should return/be/give`` and ``must return/be`` count there, and
a statement that goes on to say it fails, or what happens instead, is skipped. In a docstring,
these conventions are read:

* doctest blocks: ``>>> f(x)`` (with ``...`` continuation lines) followed by the expected output;
* examples in prose: a call of the function followed by one of the usual separators
  (``==``, ``==>``, ``=>``, ``->``, an arrow, ``returns``, ``should return``, ``should be``,
  ``is``) and a value; a doctest line with no output that compares a call with a value
  (``>>> f(x) == y``) is read the same way;
* examples that name the arguments instead of writing the call, when the function's parameters
  are known: ``Input: xs = [1, 2], k = 1`` (or one ``name : value`` per line, or just the
  values) followed by ``Output: [2]``, and ``For xs = [1, 2], k = 1 the output should be [2]``.
  Every name must be a parameter and every parameter without a default must get a value.

An example is kept only when it can be checked without guessing: the call parses as a Python
expression whose only names are the function itself and builtins, and the expected value is a
Python literal (or, after a doctest, the printed text of a ``print`` call). Anything else is
skipped rather than turned into a check that might be wrong.
"""

from __future__ import annotations

import ast
import builtins
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from coditect.agents.codemerge import MergeResult, merge_source
from coditect.index.symbols import docstring_node

__all__ = [
    "EXAMPLES_TEST_SUFFIX",
    "REQUEST_EXAMPLES_TEST_SUFFIX",
    "Example",
    "Params",
    "examples_of",
    "examples_test_source",
    "extract_examples",
    "is_examples_test",
    "keep_docstrings",
    "request_examples",
    "with_examples_tests",
]

#: Name suffix of the generated test that checks a function's docstring examples.
EXAMPLES_TEST_SUFFIX = "_docstring_examples"
#: Name suffix of the generated test that checks the request's examples of a function.
REQUEST_EXAMPLES_TEST_SUFFIX = "_request_examples"

_SEPARATOR = re.compile(
    r"\s*(?:#\s*)?(==>|==|=>|->|\u279e|\u2192|=|should\s+return|returns?|should\s+be|is|gives?)"
    r"\s*:?\s*",
    re.I,
)
# In a request, only separators that say what the result must be (see the module docstring).
_CLAIM = re.compile(r"\s*(==|should\s+(?:return|be|give)|must\s+(?:return|be))\s*:?\s*", re.I)
_DOUBT = re.compile(
    r"\b(?:fail\w*|instead|rather|false|not|n't|wrong|incorrect|raises?|error|bug)\b", re.I
)
_CLAUSE_CHARS = 60
_BUILTINS = frozenset(dir(builtins))
_OPEN = {"(": ")", "[": "]", "{": "}"}
_MAX_EXAMPLES = 12
_OPERATORS = frozenset("+-*/%<>=&|^@")


@dataclass(frozen=True)
class Example:
    """One checkable example of a function's behaviour.

    Attributes:
        call: A Python expression calling the function, e.g. ``add([4, 2, 6, 7])``.
        expected: The expected value as Python source (a literal), or the printed text when
            ``printed`` is set.
        printed: The doctest showed ``print(call)`` output: compare ``str(result)``.
        origin: ``"doctest"`` or ``"prose"``.
    """

    call: str
    expected: str
    printed: bool = False
    origin: str = "doctest"

    def assertion(self) -> str:
        """One ``assert`` statement that checks this example."""
        if self.printed:
            if "\n" not in self.expected:
                return f"assert str({self.call}).rstrip() == {self.expected!r}"
            # Printed lines, compared as a docstring holds them (no trailing spaces).
            lines = f"[line.rstrip() for line in str({self.call}).splitlines()]"
            return f"assert {lines} == {self.expected.splitlines()!r}"
        value = ast.literal_eval(self.expected)
        if _is_float_like(value):
            return f"assert _close({self.call}, {self.expected})"
        # ``f(2) == 4`` with output ``True`` must not become the chain ``f(2) == 4 == True``.
        call = self.call if _is_call(self.call) else f"({self.call})"
        return f"assert {call} == {self.expected}"


def _is_call(source: str) -> bool:
    try:
        return isinstance(ast.parse(source, mode="eval").body, ast.Call)
    except SyntaxError:
        return False


def _is_float_like(value: object) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, (list, tuple)):
        return any(isinstance(v, float) for v in value) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        )
    return False


def _call_ok(source: str, name: str) -> bool:
    """``source`` is an expression calling ``name`` that uses no other non-builtin name."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError:
        return False
    calls = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name
    ]
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    return bool(calls) and names <= _BUILTINS | {name}


def _literal(source: str) -> str | None:
    """``source`` (or its longest word prefix) as a normalised Python literal, or None."""
    words = source.strip().rstrip(".,;").split(" ")
    for end in range(len(words), 0, -1):
        if end < len(words) and words[end][:1] in _OPERATORS:
            continue  # "1 + 9 = 10": the value is an expression, not its first term
        text = " ".join(words[:end]).strip().rstrip(".,;:")
        if not text:
            continue
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        return repr(value)
    return None


def _doctest_examples(doc: str, name: str) -> list[Example]:
    lines = doc.splitlines()
    out: list[Example] = []
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if not line.startswith(">>>"):
            i += 1
            continue
        indent = len(lines[i]) - len(lines[i].lstrip())
        source = [line[3:].strip()]
        i += 1
        while i < len(lines) and lines[i].strip().startswith("..."):
            source.append(lines[i].strip()[3:].strip())
            i += 1
        want: list[str] = []
        shown: list[str] = []  # the output as printed: lines kept, indentation relative to >>>
        while i < len(lines) and lines[i].strip() and not lines[i].strip().startswith(">>>"):
            want.append(lines[i].strip())
            raw = lines[i].rstrip()
            shown.append(
                ""
                if raw.strip() == "<BLANKLINE>"
                else raw[indent:]
                if raw[:indent].isspace() or not indent
                else raw.strip()
            )
            i += 1
        found = _doctest_example(" ".join(source), " ".join(want), name, "\n".join(shown))
        if not found and len(want) > 1:
            # Prose right under the output (no blank line between): the first line is the value.
            found = _doctest_example(" ".join(source), want[0], name)
        out.extend(found)
    return out


def _code_only(source: str) -> str:
    """``source`` as the expression Python reads (a trailing ``# comment`` dropped)."""
    try:
        return ast.unparse(ast.parse(source.strip(), mode="eval").body)
    except SyntaxError:
        return source


def _doctest_example(call: str, want: str, name: str, shown: str = "") -> list[Example]:
    """The example of one doctest: ``want`` is its output on one line, ``shown`` as printed."""
    call = _code_only(call)
    printed = False
    if call.startswith("print(") and call.endswith(")"):
        call, printed = call[len("print(") : -1], True
    if not want and not printed:
        return _compared(call, name)
    if not want or not _call_ok(call, name):
        return []
    if printed:
        return [Example(call=call, expected=shown or want, printed=True)]
    # A doctest's whole output must be the value (no trimming of trailing words, unlike prose).
    try:
        expected = repr(ast.literal_eval(want))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return []
    return [Example(call=call, expected=expected)]


def _compared(source: str, name: str) -> list[Example]:
    """``f(x) == y`` written as a doctest line without output: the user asserts it holds."""
    try:
        tree = ast.parse(source, mode="eval").body
    except SyntaxError:
        return []
    if not (
        isinstance(tree, ast.Compare)
        and len(tree.ops) == 1
        and isinstance(tree.ops[0], ast.Eq)
        and _call_ok(ast.unparse(tree.left), name)
    ):
        return []
    try:
        value = ast.literal_eval(tree.comparators[0])
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return []
    return [Example(call=ast.unparse(tree.left), expected=repr(value))]


def _balanced_end(text: str, start: int) -> int:
    """Index just after the bracket group opening at ``text[start]``, or -1."""
    stack: list[str] = []
    quote = ""
    i = start
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in _OPEN:
            stack.append(_OPEN[ch])
        elif stack and ch == stack[-1]:
            stack.pop()
            if not stack:
                return i + 1
        elif ch in ")]}":
            return -1
        i += 1
    return -1


def _value_text(text: str, start: int) -> str:
    """The text of the expected value starting at ``start``: a bracket group or the line."""
    if start < len(text) and text[start] in _OPEN:
        end = _balanced_end(text, start)
        if end > 0:
            return text[start:end]
    stop = text.find("\n", start)
    return text[start : stop if stop >= 0 else len(text)]


def _prose_examples(doc: str, name: str, *, claims_only: bool = False) -> list[Example]:
    out: list[Example] = []
    separator = _CLAIM if claims_only else _SEPARATOR
    for match in re.finditer(rf"(?<![\w.]){re.escape(name)}\s*\(", doc):
        end = _balanced_end(doc, match.end() - 1)
        if end < 0:
            continue
        start, end = _unwrapped(doc, match.start(), end)
        call = " ".join(doc[start:end].split())
        sep = separator.match(doc, end)
        if sep is None or "\n" in doc[end : sep.end()].strip(" \t"):
            continue
        if not _call_ok(call, name):
            continue
        value = _value_text(doc, sep.end())
        if claims_only and _DOUBT.search(_clause(doc, sep.end())):
            continue
        expected = _literal(" ".join(value.split()))
        if expected is not None:
            out.append(Example(call=_code_only(call), expected=expected, origin="prose"))
    return out


#: What may wrap a call in an example: a name (``list(``, ``len(``; only builtins pass
#: :func:`_call_ok`) or a string's ``join`` (``''.join(``), right before the call.
_WRAPPER = re.compile(r"(?:(?<![\w.])[A-Za-z_]\w*|(['\"])[^'\"\n]*\1\.join)\(\s*$")
_WRAPPER_WINDOW = 40
_WRAPPER_CLOSE = re.compile(r"\s*\)")


def _unwrapped(doc: str, start: int, end: int) -> tuple[int, int]:
    """The span of the example around the call ``doc[start:end]``.

    A generator's example wraps the call: ``''.join(f(x)) == 'ing'``, ``list(f(x)) == [1]``;
    the example is the whole wrapped expression (up to two wrappers).
    """
    for _ in range(2):
        before = _WRAPPER.search(doc[max(0, start - _WRAPPER_WINDOW) : start])
        after = _WRAPPER_CLOSE.match(doc, end)
        if before is None or after is None:
            break
        start, end = start - len(before.group(0)), after.end()
    return start, end


def _clause(text: str, start: int) -> str:
    """The words after a claim's separator that may qualify it ("... instead of ..", "fails")."""
    window = text[start : start + _CLAUSE_CHARS]
    stop = re.compile(r"[.;](?:\s|$)|\n").search(window)
    return window[: stop.start()] if stop else window


def request_examples(request: str, names: Sequence[str]) -> dict[str, tuple[Example, ...]]:
    """The examples the request gives of each function in ``names`` (see the module docstring).

    Only calls of a function by its bare name are read (``f(1) == 2``, not ``mod.f(1)``), with
    literal arguments and a literal result; functions without one are left out.
    """
    out: dict[str, tuple[Example, ...]] = {}
    for name in dict.fromkeys(names):
        found: dict[str, Example] = {}
        for example in _prose_examples(request, name, claims_only=True):
            found.setdefault(example.call, replace(example, origin="request"))
        if found:
            out[name] = tuple(found.values())[:_MAX_EXAMPLES]
    return out


_INPUT = re.compile(r"^[ \t]*(?:[-*][ \t]*)?input[ \t]*:", re.I | re.M)
_OUTPUT = re.compile(r"^[ \t]*(?:[-*][ \t]*)?output[ \t]*:[ \t]*", re.I | re.M)
_FOR = re.compile(r"^[ \t]*(?:[-*][ \t]*)?for[ \t]+", re.I | re.M)
_RESULT = re.compile(
    r"\b(?:output|result|answer|return\s+value)\s+(?:should\s+be|will\s+be|must\s+be|is)\s*:?\s*",
    re.I,
)
_ASSIGN = re.compile(r"[ \t]*(?:and[ \t]+)?([A-Za-z_]\w*)[ \t]*(?:=(?!=)|:)[ \t]*")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_MAX_INPUT_CHARS = 1000

#: A function's parameters that can be passed by position: (name, has a default), in order.
Params = Sequence[tuple[str, bool]]


def _item_end(text: str, start: int) -> int:
    """End of the value starting at ``start`` (a comma, semicolon or space outside brackets)."""
    i = start
    while i < len(text):
        ch = text[i]
        if ch in _OPEN:
            end = _balanced_end(text, i)
            if end < 0:
                return len(text)
            i = end
            continue
        if ch in "'\"":
            close = text.find(ch, i + 1)
            if close < 0:
                return len(text)
            i = close + 1
            continue
        if ch in ",;" or ch.isspace():
            return i
        i += 1
    return len(text)


def _positional(values: dict[str, str], params: Params) -> list[str] | None:
    """``values`` (by parameter name) as positional arguments, or None when that is not exact."""
    args: list[str] = []
    for index, (param, has_default) in enumerate(params):
        if param in values:
            if len(args) != index:
                return None  # an earlier parameter was left to its default
            args.append(values[param])
        elif not has_default:
            return None
    return args if args and len(args) == len(values) else None


def _bound_arguments(text: str, params: Params) -> list[str] | None:
    """The arguments ``text`` assigns by name (``a = 1, b = [2]`` or one ``a : 1`` per line)."""
    names = {param for param, _ in params}
    values: dict[str, str] = {}
    pos = 0
    while True:
        match = _ASSIGN.match(text, pos)
        if match is None:
            break
        if match.group(1) not in names or match.group(1) in values:
            return None  # the example names something else: not an example of this call
        end = _item_end(text, match.end())
        value = _literal(" ".join(text[match.end() : end].split()))
        if value is None:
            return None
        values[match.group(1)] = value
        pos = end + 1 if end < len(text) else end
    return _positional(values, params)


def _listed_arguments(text: str, params: Params) -> list[str] | None:
    """Arguments written as bare values (``Input: [1, 2], 3``), one per parameter in order."""
    try:
        call = ast.parse(f"f({' '.join(text.split())})", mode="eval").body
        assert isinstance(call, ast.Call)
        if call.keywords:
            return None
        values = [repr(ast.literal_eval(arg)) for arg in call.args]
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
        return None
    required = sum(1 for _, has_default in params if not has_default)
    return values if values and required <= len(values) <= len(params) else None


def _bound_example(name: str, args: list[str] | None, value_at: int, doc: str) -> list[Example]:
    if args is None:
        return []
    call = f"{name}({', '.join(args)})"
    expected = _literal(" ".join(_value_text(doc, value_at).split()))
    if expected is None or not _call_ok(call, name):
        return []
    return [Example(call=call, expected=expected, origin="prose")]


def _input_output_examples(doc: str, name: str, params: Params) -> list[Example]:
    out: list[Example] = []
    starts = [m.end() for m in _INPUT.finditer(doc)]
    for index, start in enumerate(starts):
        output = _OUTPUT.search(doc, start)
        limit = starts[index + 1] if index + 1 < len(starts) else len(doc)
        if output is None or output.start() > limit or output.start() - start > _MAX_INPUT_CHARS:
            continue
        text = doc[start : output.start()].strip()
        args = _bound_arguments(text, params) or _listed_arguments(text, params)
        out.extend(_bound_example(name, args, output.end(), doc))
    return out


def _for_examples(doc: str, name: str, params: Params) -> list[Example]:
    out: list[Example] = []
    for match in _FOR.finditer(doc):
        blank = _BLANK_LINE.search(doc, match.end())
        stop = blank.start() if blank else len(doc)
        nxt = _FOR.search(doc, match.end())
        stop = min(stop, nxt.start() if nxt else stop)
        result = _RESULT.search(doc, match.end(), stop)
        if result is None:
            continue
        args = _bound_arguments(doc[match.end() : result.start()], params)
        out.extend(_bound_example(name, args, result.end(), doc))
    return out


def extract_examples(doc: str, name: str, params: Params | None = None) -> tuple[Example, ...]:
    """The checkable examples of function ``name`` in docstring ``doc`` (doctest ones first).

    Args:
        doc: The function's docstring.
        name: The function's name; only examples that call it are kept.
        params: The function's positional parameters, (name, has a default) in order; without
            them, examples that name the arguments (``Input: x = 1`` / ``Output: 2``) are not read.
    """
    found = _doctest_examples(doc, name)
    seen = {e.call for e in found}
    without_doctests = "\n".join(ln for ln in doc.splitlines() if not ln.strip().startswith(">>>"))
    prose = _prose_examples(without_doctests, name)
    if params:
        prose += _input_output_examples(without_doctests, name, params)
        prose += _for_examples(without_doctests, name, params)
    for example in prose:
        if example.call not in seen:
            seen.add(example.call)
            found.append(example)
    return tuple(found[:_MAX_EXAMPLES])


def examples_of(
    source: str, names: tuple[str, ...] | None = None
) -> dict[str, tuple[Example, ...]]:
    """Top-level functions of ``source`` (or only ``names``) with their docstring examples.

    Functions without a checkable example are left out; a source that does not parse gives {}.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    out: dict[str, tuple[Example, ...]] = {}
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if names is not None and node.name not in names:
            continue
        if isinstance(node, ast.AsyncFunctionDef):
            continue  # an awaited call is not an expression we can check the same way
        doc = ast.get_docstring(node)
        examples = extract_examples(doc, node.name, _params(node.args)) if doc else ()
        if examples:
            out[node.name] = examples
    return out


def _params(args: ast.arguments) -> Params | None:
    """The positional parameters of a signature, or None when a call needs more than those."""
    if args.vararg or any(d is None for d in args.kw_defaults):
        return None  # *args, or a keyword-only parameter without a default
    names = [a.arg for a in (*args.posonlyargs, *args.args)]
    first_default = len(names) - len(args.defaults)
    return tuple((n, i >= first_default) for i, n in enumerate(names))


_CLOSE_HELPER = """\
    def _close(got, want):
        if isinstance(want, (list, tuple)):
            return len(got) == len(want) and all(_close(g, w) for g, w in zip(got, want))
        return abs(got - want) <= 1e-6 * max(1.0, abs(want))
"""


def examples_test_source(
    module: str, name: str, examples: tuple[Example, ...], *, request: bool = False
) -> str:
    """A pytest function checking ``examples`` of ``module.name`` (imports inside, self-contained).

    ``request``: the examples come from the request, not from the docstring.
    """
    asserts = [f"    {e.assertion()}" for e in examples]
    helper = _CLOSE_HELPER if any("_close(" in a for a in asserts) else ""
    suffix = REQUEST_EXAMPLES_TEST_SUFFIX if request else EXAMPLES_TEST_SUFFIX
    where = "the request" if request else f"the docstring of {name}"
    return (
        f"def test_{name}{suffix}():\n"
        f'    """The examples of {name} in {where} (extracted, not written by a model)."""\n'
        f"    from {module} import {name}\n\n"
        f"{helper}" + "\n".join(asserts) + "\n"
    )


def is_examples_test(test_id: str) -> bool:
    """Whether ``test_id`` names a generated test of the user's examples (docstring or request)."""
    return EXAMPLES_TEST_SUFFIX in test_id or REQUEST_EXAMPLES_TEST_SUFFIX in test_id


def with_examples_tests(
    merged: MergeResult,
    *,
    subject_source: str,
    subject_module: str,
    names: Sequence[str],
    self_module: str = "",
    request: str = "",
    request_names: Sequence[str] = (),
) -> MergeResult:
    """``merged`` (a test file) plus one examples test per function in ``names`` that has some.

    Also one per function in ``request_names`` that ``request`` gives examples of
    (:func:`request_examples`), new functions included. The examples tests are written here,
    never by the model, and replace any earlier version (a test-repair answer cannot weaken
    them).

    Raises:
        MergeError: The merge of the generated tests failed (should not happen).
    """
    found = examples_of(subject_source, tuple(names))
    asked = request_examples(request, request_names) if request else {}
    if not found and not asked:
        return merged
    code = "\n\n".join(
        [
            *(examples_test_source(subject_module, n, ex) for n, ex in found.items()),
            *(examples_test_source(subject_module, n, ex, request=True) for n, ex in asked.items()),
        ]
    )
    extra = merge_source(merged.source, code, self_module=self_module)
    return replace(
        merged,
        source=extra.source,
        added=merged.added + tuple(n for n in extra.added if n not in merged.added),
        replaced=merged.replaced + tuple(n for n in extra.replaced if n not in merged.added),
    )


def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef)
    return {n.name: n for n in tree.body if isinstance(n, kinds)}


def _doc_lines(doc: ast.Expr) -> list[str]:
    text = doc.value.value if isinstance(doc.value, ast.Constant) else ""
    return [line.strip() for line in str(text).splitlines() if line.strip()]


def _extends(old: ast.Expr, new: ast.Expr) -> bool:
    """Whether docstring ``new`` holds every line of ``old`` in order and no new example."""
    before = _doc_lines(old)
    after = _doc_lines(new)
    added = list(after)
    it = iter(after)
    if not all(any(line == other for other in it) for line in before):
        return False
    for line in before:
        added.remove(line)
    return not any(line.startswith(">>>") for line in added)


def keep_docstrings(original: str | None, source: str, names: Sequence[str]) -> str:
    """``source`` with the docstrings of ``original``'s functions ``names`` put back.

    The user's docstring is the specification (and holds the examples that check the code): a
    model that rewrites a function must not drop or rewrite it. It may add to it: a docstring
    that keeps every line of the user's, in order, and adds no example (``>>>``) stays as the
    model wrote it (a command-line tool that prints its function's docstring as its ``--help``
    text documents a new option there). Functions whose indentation differs, or written on one
    line, are left as they are; so is anything that would not parse.
    """
    try:
        old_tree, new_tree = ast.parse(original or ""), ast.parse(source)
    except SyntaxError:
        return source
    old_lines, lines = (original or "").splitlines(), source.splitlines()
    old_defs = _functions(old_tree)
    edits: list[tuple[int, int, list[str]]] = []
    for name, node in _functions(new_tree).items():
        old = old_defs.get(name)
        old_doc = docstring_node(old) if old is not None and name in names else None
        if old_doc is None or node.body[0].lineno == node.lineno:
            continue
        if old_doc.col_offset != node.body[0].col_offset:
            continue
        text = old_lines[old_doc.lineno - 1 : old_doc.end_lineno]
        new_doc = docstring_node(node)
        if new_doc is not None and _extends(old_doc, new_doc):
            continue
        if new_doc is not None:
            edits.append((new_doc.lineno - 1, new_doc.end_lineno or new_doc.lineno, text))
        else:
            edits.append((node.body[0].lineno - 1, node.body[0].lineno - 1, text))
    for start, end, text in sorted(edits, reverse=True):
        lines[start:end] = text
    result = "\n".join(lines) + "\n"
    try:
        ast.parse(result)
    except SyntaxError:
        return source
    return result
