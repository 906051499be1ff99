"""The Tester agent: runs the test command in the sandbox and reads the JUnit XML it writes.

Counts come from the XML (never from scraping the console output). A failing test run is a
normal result (a :class:`~coditect.domain.results.TestReport` whose ``ok`` is False); only a
sandbox that cannot run at all raises (:class:`~coditect.errors.SandboxError`).

The baseline rule (docs/realrepo.md): when the workspace holds a baseline (the project's suite
run once before any edit, :func:`coditect.taskqueue.testsetup.record_baseline`), a test that
was already failing then is reported in ``already_failing`` and not blamed on the change (not
a test module that could not be imported then and that the mission wrote tests into). When
the command ran a selection of related tests, they pass, and the baseline says the whole suite
takes at most :data:`WHOLE_SUITE_MAX_S`, the whole suite runs too, so a change that breaks a
test elsewhere is caught; not when the selection already ran every test the baseline knows (a
small project whose related tests are its whole suite): that run would repeat this one.
"""

from __future__ import annotations

import math
import time
from pathlib import Path, PurePosixPath

from coditect.agents.base import Agent, AgentContext, RetryPolicy
from coditect.agents.baseline import BASELINE_PATH, Baseline
from coditect.agents.junit import categorize, parse_junit, parse_outcomes
from coditect.domain.events import AgentAct, AgentThink
from coditect.domain.results import FailureCategory, TestFailure, TestReport
from coditect.errors import AgentError
from coditect.sandbox.base import SandboxLimits, SandboxRequest, SandboxResult

__all__ = [
    "DEFAULT_JUNIT_PATH",
    "WHOLE_SUITE_MAX_S",
    "TesterAgent",
    "junit_path_of",
    "load_baseline",
    "report_from_run",
    "run_test_command",
    "test_command",
]

DEFAULT_JUNIT_PATH = ".coditect/junit.xml"
#: The whole suite also runs after a passing selection when its baseline run took at most this.
WHOLE_SUITE_MAX_S = 60.0
_NO_TESTS_COLLECTED = 5
_TAIL_CHARS = 2000


def junit_path_of(argv: tuple[str, ...]) -> str | None:
    """The ``--junitxml`` (or ``--junit-xml``) path in a pytest command, None if absent."""
    for i, arg in enumerate(argv):
        for flag in ("--junitxml", "--junit-xml"):
            if arg.startswith(flag + "="):
                return arg.split("=", 1)[1]
            if arg == flag and i + 1 < len(argv):
                return argv[i + 1]
    return None


def test_command(ctx: AgentContext) -> tuple[tuple[str, ...], str]:
    """The test command of ``ctx.action`` (pytest by default) and its JUnit path.

    Raises:
        AgentError: The command's JUnit path points outside the workspace.
    """
    argv = ctx.action.command or (
        "python",
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        *ctx.action.test_selection,
    )
    junit = junit_path_of(argv)
    if junit is None:
        junit = DEFAULT_JUNIT_PATH
        argv = (*argv, f"--junitxml={junit}")
    if PurePosixPath(junit).is_absolute() or ".." in PurePosixPath(junit).parts:
        raise AgentError(f"the JUnit path must be relative and inside the workspace: {junit!r}")
    return argv, junit


def _tail(result: SandboxResult) -> str:
    text = (result.stdout + ("\n" + result.stderr if result.stderr.strip() else "")).strip()
    return text[-_TAIL_CHARS:]


def load_baseline(workspace: Path) -> Baseline | None:
    """The baseline recorded in ``workspace`` before any edit, None if there is none."""
    path = workspace / BASELINE_PATH
    try:
        return Baseline.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def report_from_run(
    argv: tuple[str, ...],
    result: SandboxResult,
    junit_xml: str | None,
    *,
    excused: frozenset[str] = frozenset(),
) -> TestReport:
    """Build the report of one test run from the sandbox result and the JUnit XML (if written).

    ``excused`` holds the keys of tests that failed before the change (the baseline).
    """
    tail = _tail(result)
    base = TestReport(command=argv, duration_s=result.duration_s, output_tail=tail)
    if result.timed_out or result.killed_by in ("timeout", "cpu"):
        why = "its CPU time limit" if result.killed_by == "cpu" else "its time limit"
        failure = TestFailure(
            test_id="(test run)",
            category=FailureCategory.TIMEOUT,
            message=f"the test run was stopped at {why} after {result.duration_s:.1f}s",
            detail=tail[-500:],
        )
        return base.model_copy(update={"errors": 1, "failures": (failure,), "timed_out": True})
    counts = None
    if junit_xml is not None:
        try:
            counts = parse_junit(junit_xml, excused=excused)
        except ValueError:
            counts = None
    if counts is not None:
        return base.model_copy(
            update={
                "passed": counts.passed,
                "failed": counts.failed,
                "errors": counts.errors,
                "skipped": counts.skipped,
                "failures": counts.failures,
                "already_failing": counts.already_failing,
            }
        )
    if result.exit_code == _NO_TESTS_COLLECTED:
        return base
    last = tail.strip().splitlines()[-1] if tail.strip() else f"exit code {result.exit_code}"
    failure = TestFailure(
        test_id="(test run)",
        category=categorize(last, tail, is_error=True),
        message=f"no JUnit report (exit code {result.exit_code}): {last}"[:500],
        detail=tail[-500:],
    )
    return base.model_copy(update={"errors": 1, "failures": (failure,)})


class TesterAgent(Agent):
    """Runs the tests in the sandbox (capability ``test``); uses no model."""

    __test__ = False  # not a pytest test class
    name = "tester"
    capabilities = frozenset({"test"})

    def __init__(self, *, retry: RetryPolicy | None = None) -> None:
        super().__init__(retry=retry)

    async def execute(self, ctx: AgentContext) -> TestReport:
        """Run ``ctx.action.command`` and return the parsed :class:`TestReport`.

        Raises:
            SandboxError: The sandbox could not run the command at all.
            AgentError: The command's JUnit path points outside the workspace.
        """
        argv, junit = test_command(ctx)
        baseline = load_baseline(ctx.workspace)
        changed = {e.path for c in ctx.upstream.code for e in c.edits}
        excused = baseline.excused(changed) if baseline is not None else frozenset()
        timeout_s = ctx.action.timeout_s
        report, xml = await run_test_command(ctx, argv, junit, excused, timeout_s, agent=self.name)
        report = _unimportable_before(report, baseline)
        selection = ctx.action.test_selection
        if (
            report.ok
            and selection
            and baseline is not None
            and baseline.duration_s <= WHOLE_SUITE_MAX_S
            and argv[-len(selection) :] == selection
        ):
            if _ran_every_test(xml, baseline):
                await ctx.emit(
                    AgentThink(
                        mission_id=ctx.mission_id,
                        task_id=ctx.task.id,
                        agent=self.name,
                        text=f"the selection ran all {len(baseline.outcomes)} tests the suite "
                        "had before the change: the whole suite is not run again",
                    )
                )
                return report
            # The related tests pass: now every test that passed before must still pass.
            whole = argv[: -len(selection)]
            report, _ = await run_test_command(
                ctx, whole, junit, excused, timeout_s, agent=self.name
            )
            report = _unimportable_before(report, baseline)
        return report


def _unimportable_before(report: TestReport, baseline: Baseline | None) -> TestReport:
    """``report`` naming the failing modules that could not be imported before the change."""
    if baseline is None or not report.failures:
        return report
    modules = baseline.unimportable(f.test_id for f in report.failures)
    return report.model_copy(update={"unimportable_before": modules}) if modules else report


def _ran_every_test(junit_xml: str | None, baseline: Baseline) -> bool:
    """Whether a run's JUnit report holds every test of the baseline (then it ran the suite)."""
    if junit_xml is None or not baseline.outcomes:
        return False
    try:
        ran = parse_outcomes(junit_xml)
    except ValueError:
        return False
    return all(key in ran for key in baseline.outcomes)


async def run_test_command(
    ctx: AgentContext,
    argv: tuple[str, ...],
    junit: str,
    excused: frozenset[str],
    timeout_s: float,
    *,
    agent: str,
) -> tuple[TestReport, str | None]:
    """Run a test command in the sandbox: its report and JUnit XML (None if it wrote none).

    Events are emitted as ``agent``.

    Raises:
        SandboxError: The sandbox could not run the command at all.
    """
    junit_file = ctx.workspace / junit
    junit_file.parent.mkdir(parents=True, exist_ok=True)
    junit_file.unlink(missing_ok=True)  # never read a stale report
    await ctx.emit(
        AgentThink(
            mission_id=ctx.mission_id,
            task_id=ctx.task.id,
            agent=agent,
            text=f"running {' '.join(argv)} (timeout {timeout_s:g}s)",
        )
    )
    request = SandboxRequest(
        argv=argv,
        workdir=ctx.workspace,
        limits=SandboxLimits(wall_timeout_s=timeout_s, cpu_s=max(1, math.ceil(timeout_s)) + 5),
    )
    started = time.monotonic()
    result = await ctx.sandbox.run(request)
    xml = _read_and_delete(junit_file)
    report = report_from_run(argv, result, xml, excused=excused)
    await ctx.emit(
        AgentAct(
            mission_id=ctx.mission_id,
            task_id=ctx.task.id,
            agent=agent,
            action="run_tests",
            ok=report.ok,
            detail=f"{_describe(report)} (sandbox: {result.backend or ctx.sandbox.name})",
            duration_s=time.monotonic() - started,
        )
    )
    return report, xml


def _read_and_delete(path: Path) -> str | None:
    if not path.is_file():
        return None
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    finally:
        path.unlink(missing_ok=True)


def _describe(report: TestReport) -> str:
    text = (
        f"{report.passed} passed, {report.failed} failed, {report.errors} errors, "
        f"{report.skipped} skipped in {report.duration_s:.1f}s"
    )
    if report.timed_out:
        text += " (timed out)"
    if report.already_failing:
        text += f"; {len(report.already_failing)} failing before the change too (not blamed)"
    for f in report.failures[:3]:
        text += f"; {f.category.value}: {f.test_id}: {f.message[:120]}"
    return text
