"""Several candidate implementations, checked in one sandboxed process, chosen by agreement.

The coder's first answer (temperature 0) is checked against the evidence a mission has: the
examples in the user's docstrings (:mod:`coditect.agents.doctests`) and, in a repair round, the
tests written earlier in the mission. When it passes everything, nothing more is asked (the cost
of one candidate). Otherwise up to ``n - 1`` more answers are sampled at ``temperature`` with
different seeds, from the same messages: llama.cpp keeps the processed prompt of the previous call
and reuses its longest common prefix, so a further candidate costs its output tokens, not the
prompt again. Every candidate runs every check in ONE sandboxed process
(:func:`run_checks`), and :func:`~coditect.agents.selection.select` picks by agreement.

In a repair round the current code is a candidate too (first, so it wins ties): a model that
answers with the code unchanged is defending it, and if the other candidates agree with the
current code rather than with the failing test, the test is the suspect, not the code.
"""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from coditect.agents.doctests import Example, examples_of, is_examples_test, request_examples
from coditect.agents.selection import Check, Selection
from coditect.domain.paths import is_test_path
from coditect.domain.results import TestReport
from coditect.sandbox.base import Sandbox, SandboxLimits, SandboxRequest

__all__ = [
    "DEFAULT_CANDIDATES",
    "DEFAULT_CANDIDATE_TEMPERATURE",
    "CandidateSettings",
    "CheckCode",
    "checks_for",
    "run_checks",
    "selection_note",
    "test_files_of",
]

#: Default number of candidates (see docs/report.md for the measurement behind it).
DEFAULT_CANDIDATES = 4
#: Default temperature of the extra candidates (CodeT and AgentCoder sample at 0.8).
DEFAULT_CANDIDATE_TEMPERATURE = 0.8
_MARKER = "@@CODITECT-CHECKS@@"
_MAX_TEST_CHECKS = 12

# Runs inside the sandbox: stdin holds {"module", "path", "candidates", "checks", "timeout_s"}.
# Each candidate's source becomes the module (sys.modules), then each check runs in a fresh
# namespace; passing = no exception. A per-check alarm stops an endless loop where signals exist.
_RUNNER = r"""
import contextlib, io, json, os, signal, sys, types
p = json.loads(sys.stdin.read())
sys.path.insert(0, os.getcwd())
alarm = hasattr(signal, "setitimer")
class _Stop(Exception):
    pass
def _raise(*_):
    raise _Stop()
if alarm:
    signal.signal(signal.SIGALRM, _raise)
def timed(code, ns):
    if alarm:
        signal.setitimer(signal.ITIMER_REAL, p["timeout_s"])
    try:
        exec(compile(code, ns.get("__file__", "<check>"), "exec"), ns)
        return True
    except BaseException:
        return False
    finally:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
rows, sink = [], io.StringIO()
for source in p["candidates"]:
    mod = types.ModuleType(p["module"])
    mod.__file__ = os.path.join(os.getcwd(), p["path"])
    mod.__package__ = p["module"].rpartition(".")[0]
    sys.modules[p["module"]] = mod
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        ok = timed(source, mod.__dict__)
        rows.append([ok and timed(c, {"__name__": "__check__"}) for c in p["checks"]])
    sink.seek(0)
    sink.truncate()
print(__MARKER__ + json.dumps(rows))
""".replace("__MARKER__", repr(_MARKER))


@dataclass(frozen=True)
class CandidateSettings:
    """How many candidates the coder may sample, and how.

    Attributes:
        n: Candidates at most, the greedy one included; 1 turns sampling off.
        temperature: Sampling temperature of the extra candidates.
        check_timeout_s: Time limit of one check of one candidate.
    """

    n: int = DEFAULT_CANDIDATES
    temperature: float = DEFAULT_CANDIDATE_TEMPERATURE
    check_timeout_s: float = 2.0


@dataclass(frozen=True)
class CheckCode:
    """A check with the code that runs it (passing = the code raises nothing)."""

    check: Check
    code: str


def _example_checks(
    module: str, found: Mapping[str, tuple[Example, ...]], seen: set[str] | None = None
) -> list[CheckCode]:
    out = []
    seen = set() if seen is None else seen
    for name, examples in found.items():
        for example in examples:
            assertion = example.assertion()
            helper = ""
            if "_close(" in assertion:
                helper = (
                    "def _close(got, want):\n"
                    "    if isinstance(want, (list, tuple)):\n"
                    "        return len(got) == len(want) and all(map(_close, got, want))\n"
                    "    return abs(got - want) <= 1e-6 * max(1.0, abs(want))\n"
                )
            code = f"from {module} import {name}\n{helper}{assertion}\n"
            text = assertion.removeprefix("assert ")
            if text not in seen:
                seen.add(text)
                out.append(CheckCode(Check(name=text, example=True), code))
    return out


def _test_functions(source: str) -> list[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return [
        n.name
        for n in tree.body
        if isinstance(n, ast.FunctionDef)
        and n.name.startswith("test")
        and not (n.args.args or n.args.kwonlyargs or n.decorator_list)
        and not is_examples_test(n.name)
    ]


def test_files_of(report: TestReport | None, workspace: Path) -> list[str]:
    """The test files (relative paths) of the failing tests in ``report`` that exist."""
    found: list[str] = []
    for failure in report.failures if report else ():
        rel = failure.test_id.split("::")[0]
        if not rel.endswith(".py"):
            continue
        # The id's root depends on where pytest put its rootdir: "test_x.py" or "tests/test_x.py".
        paths = [rel] if (workspace / rel).is_file() else _ending_with(workspace, rel)
        for path in paths:
            if is_test_path(path) and path not in found:
                found.append(path)
    return found


def _ending_with(workspace: Path, rel: str) -> list[str]:
    name = rel.rsplit("/", 1)[-1]
    out = []
    for path in sorted(workspace.rglob(name)):
        text = path.relative_to(workspace).as_posix()
        if text.endswith(rel) and not text.startswith("."):
            out.append(text)
    return out[:1]


test_files_of.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def checks_for(
    *,
    module: str,
    source: str,
    names: Sequence[str],
    test_files: Sequence[tuple[str, str]] = (),
    request: str = "",
    request_names: Sequence[str] = (),
) -> list[CheckCode]:
    """The checks for candidates of ``module``: the user's examples, then generated tests.

    Args:
        module: Dotted name of the module the candidates replace.
        source: The module's current source (its docstrings hold the examples).
        names: The functions the candidates define or change.
        test_files: ``(path, source)`` of test files whose test functions are checks too.
        request: The user's request; its examples of ``request_names`` are checks too
            (:func:`~coditect.agents.doctests.request_examples`).
        request_names: Functions of ``module`` (existing or new) the request may give
            examples of.
    """
    seen: set[str] = set()
    checks = _example_checks(module, examples_of(source, tuple(names)), seen)
    if request and request_names:
        checks += _example_checks(module, request_examples(request, request_names), seen)
    for path, text in test_files:
        for test in _test_functions(text)[:_MAX_TEST_CHECKS]:
            checks.append(CheckCode(Check(name=f"{path}::{test}"), f"{text}\n\n{test}()\n"))
    return checks


async def run_checks(
    sandbox: Sandbox,
    workspace: Path,
    *,
    module: str,
    path: str,
    candidates: Sequence[str],
    checks: Sequence[CheckCode],
    check_timeout_s: float = 2.0,
) -> list[list[bool]] | None:
    """Run every candidate source against every check in one sandboxed process.

    Returns:
        ``results[candidate][check]``, or None when the batch could not run to its end (then
        there is no evidence either way).
    """
    payload = {
        "module": module,
        "path": path,
        "candidates": list(candidates),
        "checks": [c.code for c in checks],
        "timeout_s": check_timeout_s,
    }
    # Generous: an interpreter start in a WebAssembly sandbox on a busy machine takes many
    # seconds; the per-check alarm, not this limit, is what stops a looping candidate.
    budget_s = 60.0 + check_timeout_s * len(candidates) * (len(checks) + 1)
    request = SandboxRequest(
        argv=("python", "-c", _RUNNER),
        workdir=workspace,
        stdin=json.dumps(payload).encode(),
        limits=SandboxLimits(wall_timeout_s=budget_s, cpu_s=math.ceil(budget_s) + 5),
    )
    result = await sandbox.run(request)
    for line in reversed(result.stdout.splitlines()):
        if line.startswith(_MARKER):
            try:
                rows = json.loads(line[len(_MARKER) :])
            except json.JSONDecodeError:
                return None
            if len(rows) == len(candidates):
                return [[bool(x) for x in row] for row in rows]
    return None


def selection_note(selection: Selection | None, pool_size: int) -> str:
    """One line for the report: which candidate won, on what evidence, what disagreed."""
    if selection is None:
        return ""
    passed = len(selection.passed)
    total = passed + len(selection.failed_examples) + len(selection.suspect_tests)
    text = (
        f"candidate {selection.index + 1} of {pool_size} chosen "
        f"(agreed by {len(selection.consensus)}, passes {passed}/{total} checks)"
    )
    if selection.failed_examples:
        text += "; fails the user's examples: " + ", ".join(selection.failed_examples[:3])
    if selection.suspect_tests:
        text += "; suspect tests: " + ", ".join(selection.suspect_tests[:3])
    return text
