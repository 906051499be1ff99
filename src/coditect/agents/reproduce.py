"""Reproduce a bug before fixing it: run the mission's new tests on the unchanged code.

A bug fix starts the way careful engineers start one (docs/realrepo.md): a test that reproduces
the report is written first (the plan's ``write_tests`` task before its ``write_code`` task), and
before the coder asks the model for the fix, that test runs on the current code in the sandbox:

* it fails by an assertion or an exception: **reproduced**. The coder is then given the failure
  (the failing line and message, e.g. ``assert 'Userentifier' == 'User identifier'``) as the
  evidence to fix, and the test becomes a check that every candidate fix is weighed against;
* it passes: **not reproduced**: the test did not capture the report, the coder works from the
  request alone and the report says so;
* it does not even load (syntax, import or collection error), times out, or makes a test that
  passed before fail (the code is unchanged, so the new test file broke it: an import that
  shadows a name the file uses, a replaced fixture): **broken**, ignored the same way;
* it fails only where the test itself calls code that does not exist, a name the request does
  not mention (``tabulate() got an unexpected keyword argument 'output_file'`` raised in the
  test, for a report about the ``--output`` option of the command line): **misfired**. A bug
  report is about code that exists; such a failure is not the reported symptom, and a fix
  made to pass it would add the interface the test invented. Treated as broken.

The parametrizer gives a code task the command for this run (``Action.test_selection``: the test
files written upstream in the mission) only when its upstream wrote tests and it is not a repair.
The reproduction task itself gets the command for its own test file: the coder runs the tests it
has just written on the unchanged code and, when they pass (or do not load), asks the model once
more, saying so, before the fix is attempted.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection

from coditect.agents.base import AgentContext
from coditect.agents.baseline import Reproduction
from coditect.agents.junit import key_test_id
from coditect.agents.tester import load_baseline, run_test_command, test_command
from coditect.domain.events import AgentThink
from coditect.domain.paths import is_test_path
from coditect.domain.results import FailureCategory, TestFailure, TestReport
from coditect.domain.tasks import Intent
from coditect.errors import CoditectError

__all__ = [
    "MAX_REPRODUCTION_S",
    "broke_existing",
    "judge_report",
    "misfires",
    "not_reproduced_notes",
    "passing_before",
    "reproduce",
    "reproduction_notes",
    "run_reproduction",
]

#: Time limit of the reproduction run (a test that hangs must not eat the code task's time).
MAX_REPRODUCTION_S = 60.0
_NOT_LOADED = frozenset(
    {FailureCategory.COLLECTION, FailureCategory.SYNTAX, FailureCategory.TIMEOUT}
)


# Python's words for a call of code that is not there: the name is the group that matched.
_MISUSE = re.compile(
    r"got an unexpected keyword argument '(\w+)'"
    r"|(?:module|type object) '[\w.]+' has no attribute '(\w+)'"
    r"|name '(\w+)' is not defined"
    r"|(\w+)\(\) (?:takes \d+ positional arguments? but \d+ (?:was|were) given"
    r"|missing \d+ required (?:positional|keyword-only) arguments?)"
)
# The last frame of a pytest traceback: ``test/test_x.py:12: TypeError``.
_RAISED_AT = re.compile(r"^([^\s:]+\.py):\d+: (\w+)\s*$", re.M)


def misfires(report: TestReport, request: str) -> list[TestFailure]:
    """Failures raised in a test file by a call of code that does not exist.

    The test passed an unknown keyword, a wrong number of arguments, or used a module's or
    class's attribute or a name that is not there, and the request names neither that name
    nor the exception: the test invented an interface, it did not reproduce a symptom.
    """
    out: list[TestFailure] = []
    for f in report.failures:
        misuse = _MISUSE.search(f.message)
        frames = _RAISED_AT.findall(f.detail)
        if misuse is None or not frames or not is_test_path(frames[-1][0]):
            continue
        name = next(g for g in misuse.groups() if g)
        exc = frames[-1][1]
        if not re.search(rf"\b{re.escape(name)}\b", request) and exc not in request:
            out.append(f)
    return out


def judge_report(
    report: TestReport, passed_before: Collection[str] = (), request: str | None = None
) -> Reproduction:
    """What a run of the reproduction tests on the unchanged code says about the bug report.

    ``passed_before``: ids of the tests that passed in the baseline (:func:`passing_before`).
    ``request``: the bug report; given, failures that are all :func:`misfires` are broken.
    """
    if report.timed_out or any(f.category in _NOT_LOADED for f in report.failures):
        return Reproduction.BROKEN
    if broke_existing(report, passed_before):
        return Reproduction.BROKEN
    if report.failures and request is not None:
        if len(misfires(report, request)) == len(report.failures):
            return Reproduction.BROKEN
    if report.failures:
        return Reproduction.REPRODUCED
    return Reproduction.NOT_REPRODUCED if report.passed else Reproduction.NO_TEST


def broke_existing(report: TestReport, passed_before: Collection[str]) -> list[str]:
    """Failing tests of ``report`` that passed in the baseline, on the same (unchanged) code."""
    before = set(passed_before)
    return [f.test_id for f in report.failures if f.test_id in before]


def passing_before(ctx: AgentContext) -> frozenset[str]:
    """Ids of the tests that passed in the workspace's baseline (empty without one)."""
    baseline = load_baseline(ctx.workspace)
    if baseline is None:
        return frozenset()
    return frozenset(key_test_id(k) for k, v in baseline.outcomes.items() if v == "passed")


_NOTE_STARTS = ("bug reproduced:", "not reproduced:", "the reproduction tests", "no reproduction")


def reproduction_notes(summary: str) -> list[str]:
    """The reproduction verdicts in a code change's summary (for the report's evidence)."""
    return [part for part in summary.split("; ") if part.startswith(_NOTE_STARTS)]


def not_reproduced_notes(summary: str) -> list[str]:
    """The verdicts in a code change's summary saying its reproduction tests did not fail."""
    return [n for n in reproduction_notes(summary) if n.startswith("not reproduced:")]


def _note(
    verdict: Reproduction, files: str, report: TestReport, broken: list[str], request: str
) -> str:
    if verdict is Reproduction.REPRODUCED:
        failing = ", ".join(f.test_id for f in report.failures[:3])
        more = f" and {len(report.failures) - 3} more" if len(report.failures) > 3 else ""
        return f"bug reproduced: {failing}{more} failed on the unchanged code"
    if verdict is Reproduction.NOT_REPRODUCED:
        return (
            f"not reproduced: the tests in {files} pass on the current code, so they do not "
            "capture the report; the fix is made from the request alone"
        )
    if broken:
        return (
            f"the reproduction tests in {files} make {len(broken)} test(s) that passed before "
            f"fail on the unchanged code (e.g. {broken[0]}); not used"
        )
    misfired = misfires(report, request) if verdict is Reproduction.BROKEN else []
    if misfired:
        return (
            f"the reproduction tests in {files} call code that does not exist "
            f"({misfired[0].message[:160]}), which the request does not name; not used"
        )
    if verdict is Reproduction.BROKEN:
        return f"the reproduction tests in {files} do not run ({_first(report)}); not used"
    return f"no reproduction test ran from {files}"


def _first(report: TestReport) -> str:
    return report.failures[0].message[:160] if report.failures else "no result"


async def run_reproduction(ctx: AgentContext, *, agent: str) -> TestReport:
    """Run ``ctx.action``'s test command (the reproduction tests) on the workspace as it is.

    Raises:
        CoditectError: The sandbox could not run the command.
    """
    argv, junit = test_command(ctx)
    baseline = load_baseline(ctx.workspace)
    changed = {e.path for c in ctx.upstream.code for e in c.edits}
    excused = baseline.excused(changed) if baseline is not None else frozenset()
    timeout_s = min(MAX_REPRODUCTION_S, ctx.action.timeout_s / 3)
    report, _ = await run_test_command(ctx, argv, junit, excused, timeout_s, agent=agent)
    return report


async def reproduce(ctx: AgentContext, *, agent: str) -> tuple[AgentContext, str]:
    """Run the reproduction tests before a fix; the context to fix with, and a note.

    When the tests reproduce the report, the returned context carries their run as
    ``upstream.tests`` (the failures the coder must fix). Otherwise ``ctx`` comes back unchanged.
    The note is "" when there was nothing to reproduce.
    """
    selection = ctx.action.test_selection
    if (
        ctx.task.intent is not Intent.WRITE_CODE
        or not selection
        or ctx.task.feedback
        or ctx.upstream.tests is not None
    ):
        return ctx, ""
    try:
        report = await run_reproduction(ctx, agent=agent)
    except CoditectError as exc:  # the sandbox could not run it: no evidence either way
        note = f"the reproduction tests could not run: {exc}"
        await ctx.emit(
            AgentThink(mission_id=ctx.mission_id, task_id=ctx.task.id, agent=agent, text=note)
        )
        return ctx, note
    passed = passing_before(ctx)
    verdict = judge_report(report, passed, ctx.request)
    broken = broke_existing(report, passed)
    note = _note(verdict, ", ".join(selection), report, broken, ctx.request)
    await ctx.emit(
        AgentThink(mission_id=ctx.mission_id, task_id=ctx.task.id, agent=agent, text=note)
    )
    if verdict is not Reproduction.REPRODUCED:
        return ctx, note
    upstream = dataclasses.replace(ctx.upstream, tests=report)
    return dataclasses.replace(ctx, upstream=upstream), note
