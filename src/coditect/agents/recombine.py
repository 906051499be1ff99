"""Candidates that join the changes of two answers to different definitions (pure functions).

A request that needs two definitions changed ("dasherize() and underscore() ignore spaces")
often gets answers that each change one of them: the greedy answer fixes ``underscore``, a
sampled one ``dasherize``. Chosen whole, no answer is right. Answers are rewrites of whole
definitions, so they can be joined definition by definition: one candidate's changes plus another
candidate's changes to the definitions the first left as they were. Such a joined candidate is
answer code like any other (:func:`joined_answers` gives its text); the coder merges it into the
file, checks it and weighs it against the same evidence as the answers it came from.

Only a candidate that changes an existing definition the other left alone adds anything: an
answer that merely adds a helper of its own joins nothing a check could tell apart.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass

from coditect.agents.codemerge import MergeResult, member_name, statement_span

__all__ = ["Joined", "changed_names", "definition_code", "joined_answers"]


@dataclass(frozen=True, slots=True)
class Joined:
    """Answer code that joins two candidates' changes.

    Attributes:
        code: The definitions (and the import lines the candidates added) as one answer.
        base: Index of the candidate whose changes it keeps whole.
        other: Index of the candidate it takes further changed definitions from.
        taken: The definitions taken from ``other``.
    """

    code: str
    base: int
    other: int
    taken: tuple[str, ...]


def changed_names(merged: MergeResult) -> tuple[str, ...]:
    """The definitions a merge replaced or added (``f``, ``C``, ``C.m``), in its order."""
    names: list[str] = list(merged.replaced)
    for entry in merged.added:  # members added to one class are recorded as "C.a, C.b"
        names.extend(n.strip() for n in entry.split(","))
    return tuple(dict.fromkeys(n for n in names if n))


def definition_code(source: str, names: Sequence[str]) -> str:
    """The text of ``names`` in ``source`` as answer code ("" when none is found).

    A top-level function, class or constant comes whole; a member ``C.m`` comes under a bare
    ``class C:`` line, members of one class together (how an answer changes a method).

    Raises:
        SyntaxError: ``source`` does not parse.
    """
    tree = ast.parse(source)
    lines = source.splitlines()
    wanted = set(names)
    parts: list[str] = []
    for node in tree.body:
        name = member_name(node)
        if name is None:
            continue
        if name in wanted:
            first, last = statement_span(node)
            parts.append("\n".join(lines[first - 1 : last]))
        elif isinstance(node, ast.ClassDef):
            members = []
            for member in node.body:
                own = member_name(member)
                if own is not None and f"{name}.{own}" in wanted:
                    first, last = statement_span(member)
                    members.append("\n".join(lines[first - 1 : last]))
            if members:
                parts.append(f"class {name}:\n" + "\n\n".join(members))
    return "\n\n\n".join(parts)


def _existing(original: str | None) -> set[str]:
    """Top-level definitions and class members (``C.m``) of ``original``."""
    try:
        tree = ast.parse(original or "")
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in tree.body:
        name = member_name(node)
        if name is None:
            continue
        names.add(name)
        if isinstance(node, ast.ClassDef):
            for member in node.body:
                own = member_name(member)
                if own is not None:
                    names.add(f"{name}.{own}")
    return names


def joined_answers(
    original: str | None,
    pool: Sequence[MergeResult | None],
    *,
    first: int,
    limit: int,
) -> list[Joined]:
    """Up to ``limit`` answers that join two candidates of ``pool`` (None entries are skipped).

    Each keeps one candidate's changes and takes from another the definitions of ``original``
    that it changes and the first left as they were (with the new definitions that other
    candidate added besides, which its changes may use). Candidate ``first`` (the one chosen so
    far) is the base of the first ones. Answers that would repeat another are left out.
    """
    existing = _existing(original)
    order = [first, *(i for i in range(len(pool)) if i != first)]
    out: list[Joined] = []
    seen: set[frozenset[tuple[int, str]]] = set()
    for a in order:
        base = pool[a] if 0 <= a < len(pool) else None
        if base is None:
            continue
        own = set(changed_names(base))
        for b, other in enumerate(pool):
            if other is None or b == a:
                continue
            extra = [n for n in changed_names(other) if n not in own]
            if not any(n in existing for n in extra):
                continue
            # The same definitions from the same candidates: one joined answer, whichever base.
            key = frozenset({*((a, n) for n in own), *((b, n) for n in extra)})
            if key in seen:
                continue
            seen.add(key)
            try:
                code = _joined_code(base, other, own, extra)
            except SyntaxError:
                continue
            if any(j.code == code for j in out):  # repeated candidates join to the same code
                continue
            out.append(Joined(code=code, base=a, other=b, taken=tuple(extra)))
            if len(out) >= limit:
                return out
    return out


def _joined_code(base: MergeResult, other: MergeResult, own: set[str], extra: list[str]) -> str:
    imports = list(dict.fromkeys((*base.imports_added, *other.imports_added)))
    parts = [
        "\n".join(imports),
        definition_code(base.source, sorted(own)),
        definition_code(other.source, extra),
    ]
    return "\n\n\n".join(p for p in parts if p) + "\n"
