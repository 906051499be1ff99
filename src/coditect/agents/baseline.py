"""The baseline rule, pure: compare a test run after the change with the run before it.

Every test that passed before the change must still pass (a *regression* otherwise); a test that
was already failing before is *still failing* and not blamed on the change; a test that failed
before and passes now is *newly passing* (what a bug fix does); a test the baseline did not know
(written by the mission) that fails is *new failing*. Nothing here runs anything: the outcomes
come from :func:`coditect.agents.junit.parse_outcomes`.

The same module judges a reproduction test for a bug report: written before the fix, it must
FAIL, and fail by an assertion or an exception in the test, not by a broken test file; a
reproduction that passes means the report was not understood.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import PurePosixPath

__all__ = [
    "BASELINE_PATH",
    "Baseline",
    "Comparison",
    "Reproduction",
    "compare",
    "judge_reproduction",
]

#: Where the baseline of a workspace is kept (``.coditect/`` is never committed).
BASELINE_PATH = ".coditect/baseline.json"
_BAD = frozenset({"failed", "error"})
# pytest names a parameter it cannot print by the argument's name and the case's position
# ("test_format[4-1985-expected12-%Y]"). In a suite parametrized from a set the positions follow
# hash order, and on Python < 3.12 hash(None) is an address: the same case can be numbered
# differently in the run before the change and the run after it.
_POSITION = re.compile(r"(?<=[\[-])([A-Za-z_]+)\d+(?=[-\]])")


@dataclass(frozen=True)
class Baseline:
    """Each test's outcome before any edit, and how long the whole suite took.

    ``backend`` is the sandbox backend that ran it; when the project's tests were moved to it
    from the first choice, ``avoided`` is that first choice and ``note`` says why (both ``""``
    otherwise). ``plugins_off`` are the pytest plugins installed for the project that the
    suite could not run with and that were put aside (``note`` says so too).
    """

    outcomes: Mapping[str, str] = field(default_factory=dict)
    duration_s: float = 0.0
    command: tuple[str, ...] = ()
    backend: str = ""
    note: str = ""
    avoided: str = ""
    plugins_off: tuple[str, ...] = ()

    @property
    def failing(self) -> frozenset[str]:
        """Tests that failed or errored before the change."""
        return frozenset(k for k, v in self.outcomes.items() if v in _BAD)

    def excused(self, changed: Iterable[str] = ()) -> frozenset[str]:
        """The failing tests a run after the change does not blame on it.

        Not a test module that could not be collected before and that the mission changed
        (``changed``: file paths): its error then hides the tests the mission wrote into it,
        which never ran. pytest reports a module it could not collect as one case named by
        the module's dotted path (``tests.test_time``), relative to its root directory.
        """
        modules = [_dotted(p) for p in changed if p.endswith(".py")]
        return frozenset(k for k in self.failing if "::" in k or not _module_in(k, modules))

    def unimportable(self, test_ids: Iterable[str]) -> tuple[str, ...]:
        """Those of ``test_ids`` (failures of a run) that are modules failing before too."""
        keys = [k for k in self.failing if "::" not in k]
        return tuple(
            t
            for t in test_ids
            if "::" not in t
            and t.endswith(".py")
            and any(_module_in(k, [_dotted(t)]) for k in keys)
        )

    def to_json(self) -> str:
        """The baseline as a JSON document."""
        return json.dumps(
            {
                "outcomes": dict(sorted(self.outcomes.items())),
                "duration_s": round(self.duration_s, 3),
                "command": list(self.command),
                "backend": self.backend,
                "note": self.note,
                "avoided": self.avoided,
                "plugins_off": list(self.plugins_off),
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> Baseline:
        """Read a baseline written by :meth:`to_json`.

        Raises:
            ValueError: The text is not such a document.
        """
        try:
            data = json.loads(text)
            outcomes = {str(k): str(v) for k, v in dict(data["outcomes"]).items()}
            return cls(
                outcomes=outcomes,
                duration_s=float(data.get("duration_s", 0.0)),
                command=tuple(str(a) for a in data.get("command", ())),
                backend=str(data.get("backend", "")),
                note=str(data.get("note", "")),
                avoided=str(data.get("avoided", "")),
                plugins_off=tuple(str(n) for n in data.get("plugins_off", ())),
            )
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a baseline document: {exc}") from exc


def _dotted(path: str) -> str:
    """``tests.test_time`` for ``tests/test_time.py``."""
    return PurePosixPath(path).with_suffix("").as_posix().replace("/", ".")


def _module_in(key: str, modules: Iterable[str]) -> bool:
    """Whether the module key ``key`` (relative to pytest's root) is one of ``modules``."""
    return any(m == key or m.endswith("." + key) for m in modules)


@dataclass(frozen=True)
class Comparison:
    """One run after the change, judged against the baseline (each field holds test keys)."""

    regressions: tuple[str, ...] = ()
    still_failing: tuple[str, ...] = ()
    newly_passing: tuple[str, ...] = ()
    new_failing: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """No test that passed before fails now, and no new test fails."""
        return not self.regressions and not self.new_failing


def compare(
    before: Mapping[str, str], after: Mapping[str, str], *, full_run: bool = True
) -> Comparison:
    """Judge the outcomes ``after`` the change against those ``before`` it.

    Args:
        before: Baseline outcomes (test key -> ``passed``/``failed``/``error``/``skipped``).
        after: Outcomes of the run after the change.
        full_run: ``after`` ran the whole suite, so a test that passed before and is absent now
            (deleted, or no longer collected) is a regression. A selection run only judges the
            tests it ran; absent tests are listed in ``missing`` only for a full run.
    """
    regressions: list[str] = []
    still: list[str] = []
    newly: list[str] = []
    new_failing: list[str] = []
    renamed = _renumbered(before, after)
    for key, outcome in sorted(after.items()):
        was = before.get(renamed.get(key, key))
        if outcome in _BAD:
            if was is None:
                new_failing.append(key)
            elif was in _BAD:
                still.append(key)
            else:
                regressions.append(key)
        elif outcome == "passed" and was in _BAD:
            newly.append(key)
    missing: list[str] = []
    if full_run:
        paired = set(renamed.values())
        missing = sorted(
            k for k, v in before.items() if v == "passed" and k not in after and k not in paired
        )
        regressions += missing
    return Comparison(
        regressions=tuple(regressions),
        still_failing=tuple(still),
        newly_passing=tuple(newly),
        new_failing=tuple(new_failing),
        missing=tuple(missing),
    )


def _renumbered(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, str]:
    """Tests of ``after`` that are tests of ``before`` numbered differently (see _POSITION).

    Within one test function, the cases only one of the runs names are paired in sorted order
    when both runs name equally many of them (after key -> before key); nothing else is paired.
    """
    gone: dict[str, list[str]] = {}
    new: dict[str, list[str]] = {}
    for key in before:
        if key not in after and "[" in key:
            gone.setdefault(_POSITION.sub(r"\1#", key), []).append(key)
    for key in after:
        if key not in before and "[" in key:
            new.setdefault(_POSITION.sub(r"\1#", key), []).append(key)
    pairs: dict[str, str] = {}
    for stem, olds in gone.items():
        news = new.get(stem, [])
        if "#" in stem and len(news) == len(olds):
            pairs.update(zip(sorted(news), sorted(olds), strict=True))
    return pairs


class Reproduction(StrEnum):
    """What a reproduction test run (before the fix) says about a bug report."""

    REPRODUCED = "reproduced"  # the new test fails by an assertion or exception: go fix
    NOT_REPRODUCED = "not_reproduced"  # it passes: the report was not understood
    BROKEN = "broken"  # it does not run (syntax, import, collection): rewrite the test
    NO_TEST = "no_test"  # the run holds none of the new tests


def judge_reproduction(
    outcomes: Mapping[str, str], new_tests: set[str], *, broken: bool = False
) -> Reproduction:
    """Judge the run of freshly written reproduction tests, before the fix.

    Args:
        outcomes: The run's outcomes.
        new_tests: Keys of the tests written to reproduce the report.
        broken: The run's failures were syntax or collection errors (the test file did not load).
    """
    if broken:
        return Reproduction.BROKEN
    seen = [outcomes[k] for k in sorted(new_tests) if k in outcomes]
    if not seen:
        return Reproduction.NO_TEST
    if any(o in _BAD for o in seen):
        return Reproduction.REPRODUCED
    return Reproduction.NOT_REPRODUCED
