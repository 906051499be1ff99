"""Prompt context at the level of symbols, within a token budget (pure, no I/O).

A small file is shown whole. A large one is shown as an excerpt: its imports, the definitions to
change in full (a method inside its class header), and, as far as the budget allows, the
signatures and first docstring lines of the definitions related to them: what they use, the
other members of their class, what the localization ranked. Omitted code is marked with ``...``.
When even that does not fit, the excerpt is narrowed (fewer outlines, then fewer definitions in
full, then the next definitions in focus without a first one that is too large); when no
definition to change fits, :class:`ContextOverflowError` is raised so that no prompt over the
window is ever sent.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from coditect.errors import InputError
from coditect.index.symbols import references

__all__ = ["ContextOverflowError", "FileContext", "TokenCounter", "definitions", "file_context"]

TokenCounter = Callable[[str], int]
"""Counts the tokens of a text with the model's tokenizer (or an estimate)."""

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_ELLIPSIS = "..."


class ContextOverflowError(InputError):
    """The code that must be shown to the model does not fit its context window."""


@dataclass(frozen=True, slots=True)
class FileContext:
    """What of one file goes into a prompt.

    Attributes:
        text: The file, or an excerpt with ``...`` where code was left out.
        whole: True when ``text`` is the whole file.
        full: Qualnames shown in full (empty when the file is whole).
        outlined: Qualnames shown by signature only.
        tokens: Tokens of ``text``.
    """

    text: str
    whole: bool
    full: tuple[str, ...] = ()
    outlined: tuple[str, ...] = ()
    tokens: int = 0


@dataclass(frozen=True, slots=True)
class _Piece:
    """A line range of the file, whole or as a signature stub."""

    first: int  # 1-based
    last: int
    qualname: str
    indent: str = ""


def _span(node: ast.stmt) -> tuple[int, int]:
    first = node.lineno
    for d in getattr(node, "decorator_list", ()):
        first = min(first, d.lineno)
    return first, node.end_lineno or node.lineno


def _stub(lines: Sequence[str], node: ast.stmt, *, doc: bool) -> list[str]:
    """The header (decorators, def/class lines), maybe the docstring's first line, and ``...``."""
    first, _ = _span(node)
    body = getattr(node, "body", None)
    if not body:
        return list(lines[first - 1 : (node.end_lineno or node.lineno)])
    head = list(lines[first - 1 : body[0].lineno - 1])
    indent = " " * body[0].col_offset
    if doc and isinstance(node, _DEFS):
        text = ast.get_docstring(node) or ""
        if text.strip():
            line = text.strip().splitlines()[0].replace('"""', "'''")
            head.append(f'{indent}"""{line}"""')
    head.append(f"{indent}{_ELLIPSIS}")
    return head


@dataclass
class _Plan:
    lines: Sequence[str]
    tree: ast.Module
    full: list[str]
    outlined: list[str]
    doc: bool = True

    def render(self) -> str:
        out: list[str] = []
        last_shown = 0

        def gap(first: int) -> None:
            self._gap(out, last_shown, first, "")

        # Leading imports and the module docstring's first line stay: names the code uses.
        for node in self.tree.body:
            first, last = _span(node)
            if node is self.tree.body[0] and isinstance(node, ast.Expr):
                doc = ast.get_docstring(self.tree) or ""
                if doc.strip():
                    out.append(f'"""{doc.strip().splitlines()[0]}"""')
                last_shown = last
                continue
            if isinstance(node, ast.Import | ast.ImportFrom):
                gap(first)
                out.extend(self.lines[first - 1 : last])
                last_shown = last
                continue
            if isinstance(node, ast.ClassDef):
                shown = self._class(node, out, gap_from=last_shown)
                if shown:
                    last_shown = last
                continue
            names = _names(node)
            if any(n in self.full for n in names):
                gap(first)
                out.extend(self.lines[first - 1 : last])
                last_shown = last
            elif any(n in self.outlined for n in names):
                gap(first)
                out.extend(
                    _stub(self.lines, node, doc=self.doc)
                    if isinstance(node, _DEFS)
                    else self.lines[first - 1 : first]
                )
                last_shown = last
        self._gap(out, last_shown, len(self.lines) + 1, "")
        return "\n".join(out) + "\n"

    def _gap(self, out: list[str], shown: int, first: int, indent: str) -> None:
        """Mark code left out between line ``shown`` and line ``first`` (blank lines are not)."""
        skipped = self.lines[shown : max(first - 1, shown)]
        if any(line.strip() for line in skipped) and out and out[-1].strip() != _ELLIPSIS:
            out.append(f"{indent}{_ELLIPSIS}")

    def _class(self, node: ast.ClassDef, out: list[str], *, gap_from: int) -> bool:
        first, last = _span(node)
        name = node.name
        members = [m for m in node.body if _names(m, name)]
        if name in self.full:
            self._gap(out, gap_from, first, "")
            out.extend(self.lines[first - 1 : last])
            return True
        wanted = [
            m for m in members if any(n in self.full or n in self.outlined for n in _names(m, name))
        ]
        if not wanted and name not in self.outlined:
            return False
        self._gap(out, gap_from, first, "")
        body0 = node.body[0]
        out.extend(self.lines[first - 1 : body0.lineno - 1])  # decorators + class line
        indent = " " * body0.col_offset
        doc = ast.get_docstring(node) or ""
        if doc.strip() and self.doc:
            out.append(f'{indent}"""{doc.strip().splitlines()[0]}"""')
        prev = body0.lineno - 1
        for m in wanted:
            m_first, m_last = _span(m)
            self._gap(out, prev, m_first, indent)
            if any(n in self.full for n in _names(m, name)):
                out.extend(self.lines[m_first - 1 : m_last])
            elif isinstance(m, _DEFS):
                out.extend(_stub(self.lines, m, doc=self.doc))
            else:
                out.extend(self.lines[m_first - 1 : m_first])
            prev = m_last
        self._gap(out, prev, last + 1, indent)
        return True


def _names(node: ast.stmt, owner: str = "") -> list[str]:
    prefix = f"{owner}." if owner else ""
    if isinstance(node, _DEFS):
        return [prefix + node.name]
    if isinstance(node, ast.Assign):
        return [prefix + t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [prefix + node.target.id]
    return []


def _related(
    tree: ast.Module, full: Sequence[str], others: Sequence[str], prio: Mapping[str, float]
) -> list[str]:
    """The definitions worth outlining beside ``full``, most useful first.

    What the definitions in full use (a helper they call, an attribute of their class), the
    other members of the main definition's class, and what the localization ranked (``prio``
    above 0). The rest of a large module is left out: a page of unrelated signatures costs
    prompt time and gives a small model more code to repeat, not more to go on (Agentless's
    repair prompt likewise shows only the code at the edit locations).
    """
    nodes: dict[str, ast.stmt] = {}
    for node in tree.body:
        for n in _names(node):
            nodes[n] = node
        if isinstance(node, ast.ClassDef):
            for m in node.body:
                for n in _names(m, node.name):
                    nodes[n] = m
    used: set[str] = set()
    for q in full:
        if q in nodes:
            used |= references(nodes[q])
    # The class of the main definition only: a second one in focus is a guess of the ranking.
    owners = {full[0].rpartition(".")[0]} if full and "." in full[0] else set()
    called = [q for q in others if q.rpartition(".")[2] in used]
    members = [q for q in others if q.rpartition(".")[0] in owners]
    ranked = [q for q in others if prio.get(q, 0.0) > 0]
    return list(dict.fromkeys([*called, *members, *ranked]))


def _file_context(
    source: str,
    *,
    focus: Sequence[str],
    budget_tokens: int,
    count: TokenCounter,
    priority: Mapping[str, float] | None = None,
) -> FileContext:
    """:func:`file_context` for one focus list (its first definition always in full)."""
    tokens = count(source)
    if tokens <= budget_tokens:
        return FileContext(text=source, whole=True, tokens=tokens)
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        raise ContextOverflowError(
            f"the file does not parse and is too large to show whole ({tokens} tokens, "
            f"budget {budget_tokens})"
        ) from None
    lines = source.splitlines()
    known = {n for node in tree.body for n in _names(node)} | {
        n
        for node in tree.body
        if isinstance(node, ast.ClassDef)
        for m in node.body
        for n in _names(m, node.name)
    }
    full = [q for q in dict.fromkeys(focus) if q in known]
    prio = priority or {}
    others = sorted(
        (q for q in known if q not in full),
        key=lambda q: (-prio.get(q, 0.0), "." in q, q),
    )
    related = _related(tree, full, others, prio)
    # Widest first, then narrower: the related outlines, a share of them, none; docstrings last.
    for n_full in range(len(full), 0 if full else -1, -1):
        shown = full[: max(n_full, 0)]
        for keep in dict.fromkeys((len(related), len(related) // 2, len(related) // 4, 8, 0)):
            outlined = related[:keep]
            for doc in (True, False):
                plan = _Plan(lines, tree, shown, outlined, doc=doc)
                text = plan.render()
                used = count(text)
                if used <= budget_tokens:
                    return FileContext(
                        text=text,
                        whole=False,
                        full=tuple(shown),
                        outlined=tuple(outlined),
                        tokens=used,
                    )
        if n_full <= 1:
            break
    members = [q for q in others if full and q.startswith(full[0] + ".")]
    if members:
        # A whole class too large to show: its outline (the model answers with the member).
        for keep in (len(members), len(members) // 2, len(members) // 4, 16, 0):
            outlined = [full[0], *members[:keep]]
            text = _Plan(lines, tree, [], outlined, doc=False).render()
            used = count(text)
            if used <= budget_tokens:
                return FileContext(text=text, whole=False, outlined=tuple(outlined), tokens=used)
    first = full[0] if full else "(the file outline)"
    raise ContextOverflowError(
        f"{first} alone does not fit in the {budget_tokens}-token prompt budget",
        hint="use a model with a larger context window",
    )


def file_context(
    source: str,
    *,
    focus: Sequence[str],
    budget_tokens: int,
    count: TokenCounter,
    priority: Mapping[str, float] | None = None,
) -> FileContext:
    """The part of ``source`` to show for changing the ``focus`` definitions.

    Args:
        source: The whole file.
        focus: Qualnames (``func``, ``Class``, ``Class.method``) to show in full, most
            important first.
        budget_tokens: The most tokens the context may take.
        count: The model's token counter.
        priority: Qualname -> rank score of other definitions; higher ones are outlined first.

    Raises:
        ContextOverflowError: No definition in focus fits in ``budget_tokens``.
    """
    focus = tuple(dict.fromkeys(focus))
    try:
        return _file_context(
            source, focus=focus, budget_tokens=budget_tokens, count=count, priority=priority
        )
    except ContextOverflowError as exc:
        if len(focus) <= 1:
            raise
        error = exc
    # The first definition is too large to show whole: the others in focus still can be (the
    # large one is outlined like any other definition).
    try:
        return file_context(
            source, focus=focus[1:], budget_tokens=budget_tokens, count=count, priority=priority
        )
    except ContextOverflowError:
        raise error from None


def definitions(source: str, qualnames: Sequence[str]) -> list[str]:
    """The source text of the functions and methods among ``qualnames`` (``f``, ``C.m``).

    Classes are left out (a change to a class rewrites its methods, not the whole class); a
    file that does not parse gives nothing.
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    funcs = (ast.FunctionDef, ast.AsyncFunctionDef)
    nodes: dict[str, ast.stmt] = {}
    for node in tree.body:
        if isinstance(node, funcs):
            nodes[node.name] = node
        elif isinstance(node, ast.ClassDef):
            for member in node.body:
                if isinstance(member, funcs):
                    nodes[f"{node.name}.{member.name}"] = member
    lines = source.splitlines()
    out = []
    for name in dict.fromkeys(qualnames):
        if name in nodes:
            first, last = _span(nodes[name])
            out.append("\n".join(lines[first - 1 : last]))
    return out
