"""How a project runs its own tests, detected from its files, and the baseline run before any edit.

Detection reads what pytest itself reads, in pytest's order of precedence: ``pytest.toml`` and
``.pytest.toml`` (``[pytest]``, pytest >= 9), ``pytest.ini`` and ``.pytest.ini`` (``[pytest]``;
these four win even when empty), ``pyproject.toml`` (``[tool.pytest.ini_options]``, or the native
``[tool.pytest]`` of pytest >= 9), ``tox.ini`` (``[pytest]``) and ``setup.cfg``
(``[tool:pytest]``). From it and from the tree it derives:

* ``testpaths``: the configured ones, else the directories that hold test files;
* ``pythonpath``: directories to put on ``sys.path`` so the package imports without being
  installed. A ``src/`` layout is found from the tree, not from the name: a top-level directory
  that is not itself a package, holds a package, and that package is imported by a test file.
  It is passed as ``-o pythonpath=...`` (pytest >= 7), which works the same in every sandbox
  backend (wasm, process, subprocess) because it is an argument, not an environment variable;
* ``python_files``: extra file patterns when the project's test files do not match pytest's
  defaults (``tests.py`` in a unittest-only project, for example);
* ``blocked_plugins``: pytest plugins installed in the interpreter that runs the tests (CODITECT's
  own environment) which the project does not declare anywhere (packaging, tox, requirements
  files, conftest). They are switched off with ``-p no:NAME``: a plugin the project never asked
  for can break its run (pytest-asyncio warns at start-up, and a project configured with
  ``filterwarnings = error`` then stops with an internal error before running a single test).

The command always runs ``python -m pytest`` (pytest collects ``unittest.TestCase`` classes too)
and writes JUnit XML, which is what the Tester reads.

The baseline (:func:`record_baseline`) is one run of the whole suite on the project as it was
before the mission edited anything. It is written to :data:`BASELINE_PATH` inside the workspace
(``.coditect/`` is never committed) and read by the Tester, so that a test that was already
failing is not blamed on the change.
"""

from __future__ import annotations

import ast
import asyncio
import configparser
import dataclasses
import fnmatch
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path, PurePosixPath

from coditect.agents.baseline import BASELINE_PATH, Baseline
from coditect.agents.junit import parse_outcomes
from coditect.errors import CoditectError
from coditect.sandbox.base import Sandbox, SandboxLimits, SandboxRequest, SandboxResult
from coditect.taskqueue.deps import (
    DEPS_DIR,
    DepsInstall,
    declared_requirements,
    install_requirements,
    installed_here,
    missing_requirements,
    plugins,
    project_name,
    reload_plugins,
    unload_plugins,
)
from coditect.taskqueue.metadata import META_DIR, needs_metadata, project_version, write_metadata

__all__ = [
    "BASELINE_PATH",
    "CONFIG_FILES",
    "DEFAULT_PYTHON_FILES",
    "JUNIT_PATH",
    "TestSetup",
    "detect",
    "detect_dir",
    "install_missing_dependencies",
    "installed_plugins",
    "record_baseline",
    "related_tests",
]

#: Files pytest reads its configuration from, in its order of precedence.
CONFIG_FILES: tuple[str, ...] = (
    "pytest.toml",
    ".pytest.toml",
    "pytest.ini",
    ".pytest.ini",
    "pyproject.toml",
    "tox.ini",
    "setup.cfg",
)
#: Configuration files that pytest takes even when they hold no pytest section.
_DEDICATED = frozenset({"pytest.toml", ".pytest.toml", "pytest.ini", ".pytest.ini"})
#: pytest's default ``python_files`` patterns.
DEFAULT_PYTHON_FILES: tuple[str, ...] = ("test_*.py", "*_test.py")
#: Where a test run writes its JUnit XML (inside the ignored ``.coditect/`` directory).
JUNIT_PATH = ".coditect/junit.xml"
_BASELINE_JUNIT = ".coditect/baseline-junit.xml"
_SKIP_DIRS = frozenset({".git", ".coditect", ".venv", "venv", "node_modules", "__pycache__"})


@dataclass(frozen=True)
class TestSetup:
    """How one project runs its tests.

    Attributes:
        config_file: The file pytest takes its configuration from (None: no configuration).
        testpaths: Directories (or files) holding the tests, relative to the project root.
        pythonpath: Directories to put on ``sys.path`` (e.g. ``("src",)`` for a src layout).
        pythonpath_configured: The project's own configuration already sets ``pythonpath``.
        python_files: Extra test file patterns beyond pytest's defaults (or configured ones).
        conftests: The ``conftest.py`` files of the project.
        unittest_only: No test file uses pytest; the tests are ``unittest.TestCase`` classes.
        blocked_plugins: Entry-point names of installed pytest plugins the project does not use.
        base_python_files: The test file patterns pytest uses (configured, or its defaults).
        missing_requirements: Dependencies the project declares that are not installed here;
            they are installed into :data:`~coditect.taskqueue.deps.DEPS_DIR`
            (:func:`install_missing_dependencies`), which the command puts on ``sys.path``.
        metadata: The project's name and version, when its code reads its own distribution
            metadata and it is not installed here: written into
            :data:`~coditect.taskqueue.metadata.META_DIR` (:func:`install_missing_dependencies`),
            which the command puts on ``sys.path``; ``()`` otherwise.
    """

    __test__ = False  # not a pytest test class

    config_file: str | None = None
    testpaths: tuple[str, ...] = ()
    pythonpath: tuple[str, ...] = ()
    pythonpath_configured: bool = False
    python_files: tuple[str, ...] = ()
    conftests: tuple[str, ...] = ()
    unittest_only: bool = False
    blocked_plugins: tuple[str, ...] = ()
    base_python_files: tuple[str, ...] = DEFAULT_PYTHON_FILES
    missing_requirements: tuple[str, ...] = ()
    metadata: tuple[str, ...] = ()

    def command(self, selection: Sequence[str] = (), *, junit: str = JUNIT_PATH) -> tuple[str, ...]:
        """The sandboxed pytest command running ``selection`` (the whole suite when empty)."""
        return ("python", "-m", "pytest", "-q", *self.options(), f"--junitxml={junit}", *selection)

    def options(self) -> tuple[str, ...]:
        """The pytest options of :meth:`command` (plugins, ``sys.path``, test file patterns).

        ``--continue-on-collection-errors``: a test module that cannot be imported (a test-only
        dependency that is not installed, such as freezegun) is reported as an error of its
        own, and the rest of the suite still runs; pytest's default stops the whole session
        before running a single test.
        """
        argv = ["-p", "no:cacheprovider", "--continue-on-collection-errors"]
        for name in self.blocked_plugins:
            argv += ["-p", f"no:{name}"]
        # An override replaces the configured value: it repeats it when it adds the deps.
        paths = () if self.pythonpath_configured else self.pythonpath
        extra: tuple[str, ...] = (DEPS_DIR,) if self.missing_requirements else ()
        extra += (META_DIR,) if self.metadata else ()
        if extra:
            paths = (*self.pythonpath, *extra)
        if paths:
            argv += ["-o", "pythonpath=" + " ".join(paths)]
        if self.python_files:
            argv += [
                "-o",
                "python_files=" + " ".join((*self.base_python_files, *self.python_files)),
            ]
        return tuple(argv)

    def is_test_file(self, path: str) -> bool:
        """Whether pytest (run by :meth:`command`) collects ``path`` as a test file."""
        name = PurePosixPath(path).name
        patterns = (*self.base_python_files, *self.python_files)
        return any(fnmatch.fnmatchcase(name, p) for p in patterns)


# --- configuration -------------------------------------------------------------------------------


def _ini_section(text: str, section: str) -> dict[str, str] | None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error:
        return None
    if not parser.has_section(section):
        return None
    return dict(parser.items(section))


def _pytest_config(
    files: set[str], read: Callable[[str], str]
) -> tuple[str | None, dict[str, object]]:
    """The pytest configuration (file, options) the way pytest finds it at the project root."""
    for name in CONFIG_FILES:
        if name not in files:
            continue
        text = read(name)
        found: Mapping[str, object] | None
        if name.endswith(".toml"):
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError:
                continue
            found = _toml_options(data, pyproject=name == "pyproject.toml")
        else:
            found = _ini_section(text, "tool:pytest" if name == "setup.cfg" else "pytest")
        if found is not None or name in _DEDICATED:  # these win even when empty
            return name, dict(found or {})
    return None, {}


def _toml_options(data: dict[str, object], *, pyproject: bool) -> dict[str, object] | None:
    """The pytest options of a parsed TOML file (``[pytest]``, or ``[tool.pytest]`` in pyproject)."""
    table: object = data.get("tool") if pyproject else data
    pytest_table = table.get("pytest") if isinstance(table, dict) else None
    if not isinstance(pytest_table, dict):
        return None
    legacy = pytest_table.get("ini_options")
    if pyproject and isinstance(legacy, dict):
        return dict(legacy)
    native = {k: v for k, v in pytest_table.items() if k != "ini_options"}
    return native if native or not pyproject else None


def _as_list(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    return ()


# --- the tree ------------------------------------------------------------------------------------


def _imported_roots(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def _looks_like_tests(source: str) -> tuple[bool, bool]:
    """(has tests, written for pytest) for one Python file, from its syntax tree.

    Written for pytest: it imports pytest or has a test function or a test class that is not a
    ``unittest.TestCase`` (unittest itself only runs TestCase classes).
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return False, False
    has, for_pytest = False, "pytest" in _imported_roots(source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
            "test"
        ):
            has = for_pytest = True
        elif isinstance(node, ast.ClassDef):
            case = any(ast.unparse(b).endswith("TestCase") for b in node.bases)
            if case or node.name.startswith("Test"):
                has = True
                for_pytest |= not case
    return has, for_pytest


def _in_test_dir(path: str) -> bool:
    return any(part in ("test", "tests", "testing") for part in PurePosixPath(path).parts[:-1])


def _source_roots(files: set[str], test_imports: set[str]) -> tuple[str, ...]:
    """Top-level non-package directories that hold a package the tests import (src layouts)."""
    roots: set[str] = set()
    for path in files:
        parts = PurePosixPath(path).parts
        if len(parts) != 3 or parts[2] != "__init__.py":
            continue
        top, package = parts[0], parts[1]
        if f"{top}/__init__.py" in files or package not in test_imports:
            continue
        roots.add(top)
    return tuple(sorted(roots))


def installed_plugins() -> dict[str, str]:
    """The pytest plugins installed here: entry-point name -> distribution name."""
    out: dict[str, str] = {}
    for ep in entry_points(group="pytest11"):
        dist = ep.dist.name if ep.dist is not None else ep.name
        out[ep.name] = dist
    return out


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared_text(files: set[str], read: Callable[[str], str]) -> str:
    """Where a project declares what its tests need, as one lower-cased text."""
    chunks: list[str] = []
    for path in sorted(files):
        name = PurePosixPath(path).name
        top = len(PurePosixPath(path).parts) <= 2
        wanted = name in (*CONFIG_FILES, "setup.py", "conftest.py", "Pipfile", "noxfile.py")
        wanted |= top and name.startswith("requirements") and name.endswith((".txt", ".in"))
        wanted |= top and name.endswith(".txt") and "requirements" in path
        if wanted:
            chunks.append(read(path))
    return _norm("\n".join(chunks))


def _blocked(
    files: set[str], read: Callable[[str], str], installed: Mapping[str, str]
) -> tuple[str, ...]:
    if not installed:
        return ()
    text = _declared_text(files, read)
    used = {
        ep
        for ep, dist in installed.items()
        if re.search(rf"(?<![a-z0-9-]){re.escape(_norm(dist))}(?![a-z0-9])", text)
        or re.search(rf"(?<![a-z0-9_]){re.escape(ep.lower())}(?![a-z0-9_])", text)
    }
    return tuple(sorted(set(installed) - used))


def detect(
    files: Iterable[str],
    read: Callable[[str], str],
    *,
    plugins: Mapping[str, str] | None = None,
    installed: Callable[[str], bool] | None = None,
) -> TestSetup:
    """Detect how the project with ``files`` (POSIX paths relative to its root) runs its tests.

    Args:
        files: Every file of the project.
        read: Returns the text of one of ``files``.
        plugins: The pytest plugins of the interpreter that runs the tests (entry-point name ->
            distribution); default: those installed here (:func:`installed_plugins`).
        installed: Whether a distribution is installed in that interpreter; default: here.
    """
    files = {f for f in files if not (set(PurePosixPath(f).parts) & _SKIP_DIRS)}
    config_file, options = _pytest_config(files, read)
    configured_files = _as_list(options.get("python_files")) or DEFAULT_PYTHON_FILES
    configured_paths = _as_list(options.get("testpaths"))
    configured_pythonpath = _as_list(options.get("pythonpath"))

    def matches_default(name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in configured_files)

    test_files: list[str] = []
    extra_patterns: set[str] = set()
    uses_pytest = False
    test_imports: set[str] = set()
    helper_imports: set[str] = set()
    for path in sorted(files):
        if not path.endswith(".py"):
            continue
        name = PurePosixPath(path).name
        named_like_test = matches_default(name) or name.startswith("test") or _in_test_dir(path)
        if not named_like_test or name in ("conftest.py", "__init__.py", "setup.py"):
            continue
        source = read(path)
        has_tests, with_pytest = _looks_like_tests(source)
        if not has_tests:  # a helper module of the tests (tests/base.py): its imports count
            helper_imports |= _imported_roots(source)
            continue
        test_files.append(path)
        uses_pytest |= with_pytest
        test_imports |= _imported_roots(source)
        if not matches_default(name):
            extra_patterns.add(name)  # e.g. tests.py: pytest would not collect it by default
    testpaths = configured_paths or _test_dirs(test_files)
    conftests = tuple(sorted(f for f in files if PurePosixPath(f).name == "conftest.py"))
    pythonpath = configured_pythonpath or _source_roots(files, test_imports)
    name = project_name(files, read)
    is_installed = installed or installed_here
    return TestSetup(
        config_file=config_file,
        testpaths=testpaths,
        pythonpath=pythonpath,
        pythonpath_configured=bool(configured_pythonpath),
        python_files=tuple(sorted(extra_patterns)),
        base_python_files=configured_files,
        conftests=conftests,
        unittest_only=bool(test_files) and not uses_pytest and not conftests,
        blocked_plugins=_blocked(files, read, installed_plugins() if plugins is None else plugins),
        missing_requirements=missing_requirements(
            declared_requirements(files, read),
            imported=test_imports | helper_imports | _conftest_imports(files, read),
            project=name,
            installed=is_installed,
        ),
        metadata=(
            (name, project_version(files, read))
            if name and not is_installed(name) and needs_metadata(files, read)
            else ()
        ),
    )


def _conftest_imports(files: set[str], read: Callable[[str], str]) -> set[str]:
    out: set[str] = set()
    for path in files:
        if PurePosixPath(path).name == "conftest.py":
            out |= _imported_roots(read(path))
    return out


def _test_dirs(test_files: Sequence[str]) -> tuple[str, ...]:
    tops: dict[str, None] = {}
    for path in test_files:
        parts = PurePosixPath(path).parts
        tops[parts[0] if len(parts) > 1 else path] = None
    return tuple(tops)


def detect_dir(root: Path) -> TestSetup:
    """:func:`detect` on a directory on disk (never walking into :data:`_SKIP_DIRS`)."""
    files: list[str] = []
    for top, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        rel = PurePosixPath(Path(top).relative_to(root).as_posix())
        files.extend(
            (rel / n).as_posix() for n in sorted(names) if os.path.isfile(os.path.join(top, n))
        )

    def read(rel: str) -> str:
        return (root / rel).read_text(encoding="utf-8", errors="replace")

    return detect(files, read)


# --- selection -----------------------------------------------------------------------------------


def related_tests(
    tests: Mapping[str, str],
    changed_modules: Iterable[str],
    changed_symbols: Iterable[str] = (),
) -> tuple[str, ...]:
    """Test files related to a change: they import a changed module or name a changed symbol.

    Args:
        tests: Test file path -> its source.
        changed_modules: Dotted names of the changed modules (and their packages, which may
            re-export them), e.g. ``("pkg.core", "pkg")``.
        changed_symbols: Names of the functions, classes or methods that changed.
    """
    modules = set(changed_modules)
    symbols = {s for s in changed_symbols if s}
    picked: list[str] = []
    for path, source in sorted(tests.items()):
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            continue
        imported: set[str] = set()
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module)
                imported |= {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Name):
                names.add(node.id)
            elif isinstance(node, ast.Attribute):
                names.add(node.attr)
        if imported & modules and (not symbols or names & symbols):
            picked.append(path)
    return tuple(picked)


# --- baseline ------------------------------------------------------------------------------------


async def install_missing_dependencies(workspace: Path) -> DepsInstall:
    """Install the dependencies the project in ``workspace`` declares and this interpreter lacks.

    See :mod:`coditect.taskqueue.deps`; never raises for a failed install (the result says why).
    The project's own metadata is written too when its code reads it
    (:mod:`coditect.taskqueue.metadata`).
    """
    setup = await asyncio.to_thread(detect_dir, workspace)
    if setup.metadata:
        write_metadata(workspace, *setup.metadata)
    return await install_requirements(workspace, setup.missing_requirements)


async def record_baseline(
    workspace: Path, sandbox: Sandbox, *, timeout_s: float = 120.0
) -> Baseline | None:
    """Run the whole suite once, before any edit, and keep each test's outcome.

    The result is written to :data:`BASELINE_PATH` in ``workspace`` for the Tester. Best effort:
    a project without tests, a run that times out or writes no JUnit report gives None (the
    Tester then judges every failure as before: nothing is excused).

    When the suite writes no report and pytest plugins were installed for the project
    (:func:`coditect.taskqueue.deps.plugins`: one written for an older pytest can stop pytest
    before it runs a test), it runs again without them; when it then runs, they stay out of
    every later run of the mission (:func:`coditect.taskqueue.deps.unload_plugins`) and the
    note says so.

    When test modules fail to import or tests error or fail in the backend that ran them and
    the sandbox can move the project to another backend (``auto``: the wasm guest has no
    threads, sockets, subprocesses, native extension modules or ``os.dup``, which pytest's
    ``capfd`` needs; the process sandbox runs the project's own interpreter), the suite runs
    there too, and the project stays there when more of its tests pass (the note says so).
    """
    setup = detect_dir(workspace)
    if not setup.testpaths:
        return None
    argv = setup.command(junit=_BASELINE_JUNIT)
    first = await _suite_run(workspace, sandbox, argv, timeout_s)
    if first.baseline is None and not first.timed_out:
        first = await _without_plugins(workspace, sandbox, argv, timeout_s, first)
    baseline = first.baseline
    trouble = _trouble(baseline)
    if (
        trouble
        and not first.timed_out
        and first.backend
        and sandbox.avoid(workspace, first.backend)
    ):
        other = (await _suite_run(workspace, sandbox, argv, timeout_s)).baseline
        if other is not None and (baseline is None or _passed(other) > _passed(baseline)):
            there = (
                trouble
                if baseline is None
                else f"{trouble} ({_passed(baseline)} tests passed there, {_passed(other)} here)"
            )
            note = (
                f"the project's tests run in the {other.backend} sandbox: in the "
                f"{first.backend} sandbox {there}"
            )
            earlier = baseline.note if baseline is not None else ""
            baseline = dataclasses.replace(
                other,
                note="; ".join(n for n in (earlier, note) if n),
                avoided=first.backend,
                plugins_off=baseline.plugins_off if baseline is not None else (),
            )
        else:
            sandbox.allow(workspace)
    if baseline is not None:
        path = workspace / BASELINE_PATH
        path.write_text(baseline.to_json(), encoding="utf-8")
    return baseline


async def _without_plugins(
    workspace: Path, sandbox: Sandbox, argv: tuple[str, ...], timeout_s: float, first: _SuiteRun
) -> _SuiteRun:
    """The suite run again without the plugins installed for it, when they stopped it."""
    names = await asyncio.to_thread(plugins, workspace)
    if not names:
        return first
    unload_plugins(workspace, names)
    again = await _suite_run(workspace, sandbox, argv, timeout_s)
    if again.baseline is None:  # not the plugins' doing
        reload_plugins(workspace, names)
        return first
    why = f": {first.error}" if first.error else ""
    note = (
        f"the pytest plugin(s) {', '.join(names)} the project declares were installed for its "
        f"tests and left out again: with them the suite did not run{why}"
    )
    baseline = dataclasses.replace(again.baseline, note=note, plugins_off=names)
    return dataclasses.replace(again, baseline=baseline)


@dataclass(frozen=True)
class _SuiteRun:
    baseline: Baseline | None  # None: no report (the run failed before writing one)
    backend: str = ""  # "" when the sandbox could not run the command at all
    timed_out: bool = False
    error: str = ""  # the last line of the output of a run that wrote no report


async def _suite_run(
    workspace: Path, sandbox: Sandbox, argv: tuple[str, ...], timeout_s: float
) -> _SuiteRun:
    junit = workspace / _BASELINE_JUNIT
    junit.parent.mkdir(parents=True, exist_ok=True)
    junit.unlink(missing_ok=True)
    limits = SandboxLimits(wall_timeout_s=timeout_s, cpu_s=int(timeout_s) + 5)
    try:
        result = await sandbox.run(SandboxRequest(argv=argv, workdir=workspace, limits=limits))
    except CoditectError:  # a sandbox that cannot run now fails the Tester later, with its reason
        return _SuiteRun(None)
    if result.timed_out or not junit.is_file():
        return _SuiteRun(None, result.backend, result.timed_out, _last_line(result))
    try:
        outcomes = parse_outcomes(junit.read_text(encoding="utf-8", errors="replace"))
    except ValueError:
        return _SuiteRun(None, result.backend)
    finally:
        junit.unlink(missing_ok=True)
    baseline = Baseline(
        outcomes=outcomes, duration_s=result.duration_s, command=argv, backend=result.backend
    )
    return _SuiteRun(baseline, result.backend)


def _last_line(result: SandboxResult) -> str:
    """The last line of a run's output (pytest's error comes last), shortened."""
    lines = [ln.strip() for ln in (result.stdout + "\n" + result.stderr).splitlines()]
    lines = [ln.removeprefix("INTERNALERROR>").strip() for ln in lines if ln.strip()]
    return lines[-1][:200] if lines else ""


def _trouble(baseline: Baseline | None) -> str:
    """What another sandbox backend might fix about a run ("" when nothing)."""
    if baseline is None:
        return "the suite did not run"
    modules = len(_unimportable(baseline))
    errors = sum(1 for k, v in baseline.outcomes.items() if v == "error" and "::" in k)
    failed = sum(1 for v in baseline.outcomes.values() if v == "failed")
    parts = [f"{modules} test module(s) could not be imported"] if modules else []
    parts += [f"{errors} test(s) errored"] if errors else []
    parts += [f"{failed} test(s) failed"] if failed else []
    return ", ".join(parts)


def _unimportable(baseline: Baseline) -> list[str]:
    """Test modules that errored as a whole (collection errors: ids without ``::``)."""
    return [k for k, v in baseline.outcomes.items() if v == "error" and "::" not in k]


def _passed(baseline: Baseline) -> int:
    return sum(1 for v in baseline.outcomes.values() if v == "passed")
