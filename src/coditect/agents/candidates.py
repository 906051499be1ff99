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
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from coditect.agents.doctests import Example, examples_of, is_examples_test, request_examples
from coditect.agents.selection import Check, Selection
from coditect.domain.paths import is_test_path
from coditect.domain.results import TestReport
from coditect.index.symbols import references
from coditect.sandbox.base import Sandbox, SandboxLimits, SandboxRequest

__all__ = [
    "DEFAULT_CANDIDATES",
    "DEFAULT_CANDIDATE_TEMPERATURE",
    "CandidateSettings",
    "CheckCode",
    "callers_of",
    "checks_for",
    "existing_test_checks",
    "run_checks",
    "selection_note",
    "test_files_of",
]

#: Default number of candidates (see docs/report.md for the measurement behind it).
DEFAULT_CANDIDATES = 4
#: Default temperature of the extra candidates (CodeT and AgentCoder sample at 0.8).
DEFAULT_CANDIDATE_TEMPERATURE = 0.8
_MARKER = "@@CODITECT-CHECKS@@"
# A candidate may take this many times as long as the project's own code on a check it passes
# (and at least the check timeout): a loop or a far slower algorithm is stopped as a failure.
_REFERENCE_FACTOR = 10.0
_MAX_TEST_CHECKS = 12

# Runs inside the sandbox: stdin holds {"module", "path", "root", "candidates", "checks",
# "timeout_s", "timeouts", "reference"} (a check's own time limit, or None for timeout_s;
# "reference": the last candidate is the code as the project has it; it runs first, and a check
# it passes gets at most _REFERENCE_FACTOR times its time there, and at least timeout_s, as
# its limit for the others: a looping candidate then costs seconds, not a test run's minute).
# Each candidate's source becomes the module (sys.modules), then each check runs in a fresh
# namespace; passing = no exception (the row holds true), else the row holds why it failed (a
# short text). A per-check time limit stops an endless loop: an alarm where signals exist; in
# a WebAssembly guest (WASI has no signals) the backward jumps of the candidate's code are
# watched instead (sys.monitoring, Python 3.12+), which stops a loop in any of its functions,
# changed or not (a changed popitem that frees nothing makes the unchanged eviction loop
# endless).
_RUNNER = r"""
import contextlib, io, json, os, signal, sys, time, types
p = json.loads(sys.stdin.read())
sys.path.insert(0, os.getcwd())
if p["root"]:
    sys.path.insert(0, os.path.join(os.getcwd(), p["root"]))
alarm = hasattr(signal, "setitimer")
class _Stop(BaseException):  # not an Exception: the looping code's own handlers let it pass
    pass
end, watcher = [float("inf")], None
def _raise(*_):
    if end[0] == float("inf"):  # the check has ended
        return
    signal.setitimer(signal.ITIMER_REAL, 0.1)  # and every later loop of the check
    raise _Stop()
if alarm:
    signal.signal(signal.SIGALRM, _raise)
if not alarm and hasattr(sys, "monitoring"):
    M = sys.monitoring
    for tool in (4, 3, 2):
        try:
            M.use_tool_id(tool, "coditect-check-limit")
        except ValueError:
            continue
        watcher = tool
        break
    def _jump(code, offset, target):
        if target <= offset and time.monotonic() > end[0]:
            raise _Stop()
    if watcher is not None:
        M.register_callback(watcher, M.events.JUMP, _jump)
def _watch(code):
    M.set_local_events(watcher, code, M.events.JUMP)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _watch(const)
def timed(code, ns, limit=None, watch=False):
    try:
        return _timed(code, ns, limit or p["timeout_s"], watch)
    except BaseException:  # a stop between the check's end and its clean-up
        end[0] = float("inf")
        return "stopped"
def _why(exc):
    if isinstance(exc, _Stop):
        return "timed out"
    text = str(exc)[:200]
    return type(exc).__name__ + (": " + text if text else "")
def _timed(code, ns, limit, watch):
    try:
        compiled = compile(code, ns.get("__file__", "<check>"), "exec")
        if watch and watcher is not None:
            _watch(compiled)
        end[0] = time.monotonic() + limit
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, limit)
        exec(compiled, ns)
        return True
    except BaseException as exc:
        return _why(exc)
    finally:
        end[0] = float("inf")
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
parent_name, _, leaf = p["module"].rpartition(".")
parent, original, rebind = None, None, []
if parent_name:
    # The real package first: its __init__ may import the module a candidate replaces, which
    # would then be found half-initialized (the candidate, mid-exec) and fail to import.
    try:
        import importlib
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            parent = importlib.import_module(parent_name)
            original = sys.modules.get(p["module"])
    except BaseException:
        parent = None
    # Names the package re-exports from the module ("from .more import *"): the project's
    # tests reach the code through them, so they are bound to each candidate's definitions.
    _missing = object()
    if parent is not None and original is not None:
        rebind = [
            k for k, v in vars(parent).items()
            if not k.startswith("__") and getattr(original, k, _missing) is v
        ]
n = len(p["candidates"])
order = [n - 1, *range(n - 1)] if p["reference"] and n else list(range(n))
limits = [t or p["timeout_s"] for t in p["timeouts"]]
rows, sink = [None] * n, io.StringIO()
for i in order:
    source = p["candidates"][i]
    mod = types.ModuleType(p["module"])
    mod.__file__ = os.path.join(os.getcwd(), p["path"])
    mod.__package__ = p["module"].rpartition(".")[0]
    if os.path.basename(p["path"]) == "__init__.py":  # a package: its relative imports work
        mod.__path__ = [os.path.dirname(mod.__file__)]
        mod.__package__ = p["module"]
    sys.modules[p["module"]] = mod
    if parent is not None:
        setattr(parent, leaf, mod)
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        ok = timed(source, mod.__dict__, watch=True)
        for k in rebind:
            setattr(parent, k, getattr(mod, k, getattr(original, k)))
        row = []
        for j, c in enumerate(p["checks"]):
            started = time.monotonic()
            if ok is True:
                row.append(timed(c, {"__name__": "__check__"}, limits[j]))
            else:
                row.append("the module does not load: " + ok)
            if row[-1] is True and p["reference"] and i == n - 1:
                took = time.monotonic() - started
                limits[j] = min(limits[j], max(p["timeout_s"], __FACTOR__ * took))
        rows[i] = row
    sink.seek(0)
    sink.truncate()
print(__MARKER__ + json.dumps(rows))
""".replace("__MARKER__", repr(_MARKER)).replace("__FACTOR__", repr(_REFERENCE_FACTOR))


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
    """A check with the code that runs it (passing = the code raises nothing).

    Attributes:
        timeout_s: The check's own time limit (a test run takes longer than an example).
    """

    check: Check
    code: str
    timeout_s: float | None = None


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
            # The call runs once; a failed check says what it gave (the feedback of a
            # further sampling round, docs/report.md).
            shown = replace(example, call="_got").assertion()
            code = (
                f"from {module} import {name}\n{helper}_got = {example.call}\n"
                f"{shown}, 'gave ' + repr(_got)[:200]\n"
            )
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


#: A check that runs some of the project's tests with pytest, in the checks' process. Test
#: modules (and conftest files) imported by an earlier run are forgotten first, so that each run
#: imports the candidate afresh.
_PYTEST_CHECK = """\
import os, sys, pytest
_purge = set(__FILES__)
for _k, _m in list(sys.modules.items()):
    _f = getattr(_m, "__file__", None)
    if _f and _k != __MODULE__:
        _r = os.path.relpath(os.path.realpath(_f), os.getcwd()).replace(os.sep, "/")
        if _r in _purge or (_r.endswith("conftest.py") and not _r.startswith("..")):
            del sys.modules[_k]
_rc = pytest.main(__IDS__ + ["-x", "-s", "-p", "no:faulthandler", "-p", "no:logging"] + __OPTIONS__)
assert _rc == 0, _rc
"""
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_MAX_TEST_FILES = 2
_MAX_IDS_PER_FILE = 24
_TEST_RUN_TIMEOUT_S = 60.0


def _uses(refs: frozenset[str], name: str) -> bool:
    """Whether code with ``refs`` uses ``name`` (``func``, or ``Class.method``)."""
    cls, _, member = name.rpartition(".")
    if not cls:
        return name in refs
    if member.startswith("__") and member.endswith("__"):
        return cls in refs  # a dunder is used through its class
    return cls in refs and member in refs


def _among(test_id: str, ids: Collection[str]) -> bool:
    """Whether ``test_id`` is one of ``ids``; a run's root may differ (``tests/`` or not)."""
    return any(i == test_id or test_id.endswith("/" + i) or i.endswith("/" + test_id) for i in ids)


def callers_of(source: str, names: Sequence[str]) -> list[str]:
    """Top-level definitions of ``source`` that use one of ``names`` (and are not one of them).

    ``names`` are ``func`` or ``Class.method``; a method counts as used where its class is (a
    method's own name, ``get``, says too little). A caller is named as a test would name it:
    a function, or a class.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    own = {n.partition(".")[0] for n in names}
    return [
        node.name
        for node in tree.body
        if isinstance(node, _DEFS) and node.name not in own and references(node) & own
    ]


def _tests_in(
    node: ast.stmt, rel: str, skip: Collection[str], broken: Collection[str]
) -> list[tuple[str, frozenset[str]]]:
    """The tests a top-level statement of a test file defines, with the names each uses.

    A test class comes first as a whole, with the names its own body uses (``DECORATOR =
    ttl_cache`` for test methods it inherits from a mixin), then its test methods.
    """
    out: list[tuple[str, frozenset[str]]] = []
    if isinstance(node, ast.ClassDef):
        own = frozenset().union(
            *(references(b) for b in (*node.bases, *node.keywords)),
            *(references(m) for m in node.body if not isinstance(m, _DEFS)),
        )
        if node.name not in skip:  # a class this mission wrote is not the project's test
            out.append((f"{rel}::{node.name}", own))
        members = [m for m in node.body if isinstance(m, ast.FunctionDef | ast.AsyncFunctionDef)]
        tests = [
            (f"{rel}::{node.name}::{m.name}", m)
            for m in members
            if f"{node.name}.{m.name}" not in skip  # a method the mission added to the class
        ]
    elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        tests = [(f"{rel}::{node.name}", node)]
    else:
        return []
    return out + [
        (test_id, references(fn))
        for test_id, fn in tests
        if fn.name.startswith("test") and fn.name not in skip and not _among(test_id, broken)
    ]


def _module_constants(tree: ast.Module) -> dict[str, frozenset[str]]:
    """The names each module-level assignment of a test file uses (its parametrize tables)."""
    out: dict[str, frozenset[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    out[target.id] = references(node.value)
    return out


def _through(refs: frozenset[str], tables: Mapping[str, frozenset[str]]) -> frozenset[str]:
    """``refs`` with the names the module constants among them use, transitively.

    ``@pytest.mark.parametrize("start, duration", CASES)`` over a table of ``Duration(...)``
    values tests ``Duration`` though the test's own body never names it.
    """
    out, todo = set(refs), [r for r in refs if r in tables]
    while todo:
        for name in tables[todo.pop()]:
            if name not in out:
                out.add(name)
                if name in tables:
                    todo.append(name)
    return frozenset(out)


def existing_test_checks(
    workspace: Path,
    test_paths: Sequence[str],
    names: Sequence[str],
    *,
    module: str,
    skip: Collection[str] = (),
    options: Sequence[str] = (),
    callers: Sequence[str] = (),
    failing: Collection[str] = (),
    every_file: bool = False,
) -> list[CheckCode]:
    """Checks that run the project's own tests of ``names`` with pytest (one per test file).

    Args:
        workspace: The project.
        test_paths: The project's test files (relative paths) as they were before the mission.
        names: The definitions the candidates change (``func`` or ``Class.method``).
        module: Dotted name of the module the candidates replace (never forgotten between runs).
        skip: Tests this mission wrote, not run: functions, classes and ``Class.method``.
        options: The pytest options of the project's test set-up.
        callers: Definitions that use ``names`` (:func:`callers_of`): their tests exercise the
            change too, and run after the tests of ``names`` themselves.
        failing: Test ids that failed before the change (the baseline): not run, they say
            nothing about a candidate.
        every_file: Run every related test of every test file (a fast suite), not only those
            of the two files with the most, at most 24 each.
    """
    broken = {t.split("[")[0] for t in failing}
    found: list[tuple[str, list[str]]] = []
    for rel in test_paths:
        try:
            tree = ast.parse((workspace / rel).read_text("utf-8"))
        except (OSError, UnicodeDecodeError, SyntaxError):
            continue
        direct: list[str] = []
        indirect: list[str] = []
        tables = _module_constants(tree)
        for node in tree.body:
            for test_id, own in _tests_in(node, rel, skip, broken):
                refs = _through(own, tables)
                if any(_uses(refs, n) for n in names):
                    direct.append(test_id)
                elif any(_uses(refs, n) for n in callers):
                    indirect.append(test_id)
                else:
                    continue
                if isinstance(node, ast.ClassDef) and test_id == f"{rel}::{node.name}":
                    break  # the class runs whole: its methods are in
        ids = direct + indirect
        if ids:
            found.append((rel, ids if every_file else ids[:_MAX_IDS_PER_FILE]))
    found.sort(key=lambda item: -len(item[1]))
    checks = []
    for rel, ids in found if every_file else found[:_MAX_TEST_FILES]:
        code = (
            _PYTEST_CHECK.replace("__FILES__", repr([rel]))
            .replace("__MODULE__", repr(module))
            .replace("__IDS__", repr(ids))
            .replace("__OPTIONS__", repr(["-q", *options]))
        )
        name = f"{rel}::{ids[0].rpartition('::')[2]}" + (
            f" and {len(ids) - 1} more" if len(ids) > 1 else ""
        )
        checks.append(
            CheckCode(Check(name=name, existing=True), code, timeout_s=_TEST_RUN_TIMEOUT_S)
        )
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
    reference: bool = False,
) -> list[list[bool | str]] | None:
    """Run every candidate source against every check in one sandboxed process.

    ``reference``: the last candidate is the code as the project has it; it runs first, and
    each check it passes is then limited, for the others, to ``_REFERENCE_FACTOR`` times what
    it took (at least ``check_timeout_s``, at most the check's own limit).

    Returns:
        ``results[candidate][check]``: True when passed, else why it failed, a short text
        (the exception, "timed out"; an example check says what the call gave:
        ``AssertionError: gave [1, 2]``); None when the batch could not run to its end (then
        there is no evidence either way).
    """
    parts = path.split("/")
    depth = len(module.split(".")) + (parts[-1] == "__init__.py")
    payload = {
        "module": module,
        "path": path,
        # The folder that holds the top-level package (``src`` in a src/ layout).
        "root": "/".join(parts[:-depth]) if module and len(parts) > depth else "",
        "candidates": list(candidates),
        "checks": [c.code for c in checks],
        "timeout_s": check_timeout_s,
        "timeouts": [c.timeout_s for c in checks],
        "reference": reference,
    }
    # Generous: an interpreter start in a WebAssembly sandbox on a busy machine takes many
    # seconds; the per-check alarm, not this limit, is what stops a looping candidate.
    per_candidate = check_timeout_s + sum(c.timeout_s or check_timeout_s for c in checks)
    budget_s = 60.0 + per_candidate * len(candidates)
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
                return [[x if isinstance(x, str) else x is True for x in row] for row in rows]
    return None


def selection_note(selection: Selection | None, pool_size: int) -> str:
    """One line for the report: which candidate won, on what evidence, what disagreed."""
    if selection is None:
        return ""
    passed = len(selection.passed)
    total = (
        passed
        + len(selection.failed_examples)
        + len(selection.suspect_tests)
        + len(selection.broken_tests)
    )
    text = (
        f"candidate {selection.index + 1} of {pool_size} chosen "
        f"(agreed by {len(selection.consensus)}, passes {passed}/{total} checks)"
    )
    if selection.failed_examples:
        text += "; fails the user's examples: " + ", ".join(selection.failed_examples[:3])
    if selection.broken_tests:
        text += "; breaks the project's tests: " + ", ".join(selection.broken_tests[:3])
    if selection.suspect_tests:
        text += "; suspect tests: " + ", ".join(selection.suspect_tests[:3])
    return text
