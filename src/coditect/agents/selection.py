"""Choosing among candidate implementations by agreement with checks (pure, no I/O).

The rule is CodeT's dual execution agreement (Chen et al., 2022) with one change. Candidates that
pass exactly the same checks form a consensus set; CodeT scores a set by
``|candidates in it| x |checks it passes|`` so that a solution many samples agree on, passing the
tests many samples agree with, wins, and a test that most agreeing candidates fail loses its vote.
Here the checks carry weights and are of two kinds:

* **examples** taken from the user's docstring (:mod:`coditect.agents.doctests`): the user wrote
  them, so a set that passes more of them always wins (compared first);
* **the project's tests** of the code being changed (tests that were in the repository before
  the mission): they count with the examples, since a change that breaks them is never accepted
  (a candidate that breaks one would only end the mission in a failed test run);
* **generated** checks (tests a model wrote): among sets that pass equally many examples, the
  CodeT score over the generated checks decides, so a generated test is one vote, never a veto.

Why examples come first rather than as a heavier weight in the product: with a product, three
wrong samples that agree (a small model often repeats the same mistake) outvote one right sample
that passes every example; the user's own examples should not be outvoted by the model's
consistency. A check every candidate fails carries no information and changes no ranking, so a
wrong example (rare, but docstrings do contain them) costs nothing in the choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Check", "Selection", "select"]


@dataclass(frozen=True)
class Check:
    """One check that a candidate passes or fails.

    Attributes:
        name: What it is, for the report (e.g. ``add([4, 2, 6, 7]) == 2`` or a test id).
        example: True for a docstring example (the user's evidence), False for a generated test.
        weight: Its weight within its kind.
        existing: True for the project's own tests (as authoritative as an example).
    """

    name: str
    example: bool = False
    weight: float = 1.0
    existing: bool = False

    @property
    def authoritative(self) -> bool:
        """Whether passing it outweighs any number of generated checks."""
        return self.example or self.existing


@dataclass(frozen=True)
class Selection:
    """The outcome of :func:`select`.

    Attributes:
        index: The chosen candidate (the first of the winning consensus set).
        consensus: Indices of the candidates that pass exactly the same checks as the chosen one.
        passed: Names of the checks the chosen candidate passes.
        failed_examples: Docstring examples the chosen candidate fails.
        suspect_tests: Generated checks the chosen candidate fails: the candidates that agree
            with each other disagree with these tests, so the tests are suspect.
        score: The winning set's CodeT score over the generated checks.
        broken_tests: The project's own tests the chosen candidate fails.
        why: ``(check name, why it failed)`` for the checks the chosen candidate fails, where
            the check run said why (an example: what the call gave).
    """

    index: int
    consensus: tuple[int, ...]
    passed: tuple[str, ...]
    failed_examples: tuple[str, ...]
    suspect_tests: tuple[str, ...]
    score: float
    broken_tests: tuple[str, ...] = ()
    why: tuple[tuple[str, str], ...] = ()

    @property
    def verified(self) -> bool:
        """The chosen candidate passes every check."""
        return not (self.failed_examples or self.suspect_tests or self.broken_tests)


def select(results: Sequence[Sequence[bool | str]], checks: Sequence[Check]) -> Selection:
    """Pick a candidate from ``results[candidate][check]`` (True = passed).

    A failed check is False or a text saying why it failed (kept in :attr:`Selection.why`).

    Ties go to the set holding the earliest candidate: callers put the candidate they would use
    without any evidence first (the current code in a repair, the greedy answer otherwise).

    Raises:
        ValueError: No candidates, or a row whose length differs from ``checks``.
    """
    if not results:
        raise ValueError("select() needs at least one candidate")
    if any(len(row) != len(checks) for row in results):
        raise ValueError("every candidate needs one result per check")
    groups: dict[tuple[bool, ...], list[int]] = {}
    for i, row in enumerate(results):
        groups.setdefault(tuple(x is True for x in row), []).append(i)

    def key(item: tuple[tuple[bool, ...], list[int]]) -> tuple[float, float, int]:
        row, members = item
        examples = sum(
            c.weight for c, ok in zip(checks, row, strict=True) if ok and c.authoritative
        )
        generated = sum(
            c.weight for c, ok in zip(checks, row, strict=True) if ok and not c.authoritative
        )
        return examples, len(members) * generated, -members[0]

    row, members = max(groups.items(), key=key)
    return Selection(
        index=members[0],
        consensus=tuple(members),
        passed=tuple(c.name for c, ok in zip(checks, row, strict=True) if ok),
        failed_examples=tuple(
            c.name for c, ok in zip(checks, row, strict=True) if not ok and c.example
        ),
        suspect_tests=tuple(
            c.name for c, ok in zip(checks, row, strict=True) if not ok and not c.authoritative
        ),
        score=key((row, members))[1],
        broken_tests=tuple(
            c.name for c, ok in zip(checks, row, strict=True) if not ok and c.existing
        ),
        why=tuple(
            (c.name, x)
            for c, x in zip(checks, results[members[0]], strict=True)
            if isinstance(x, str) and x
        ),
    )
