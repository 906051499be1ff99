"""The project's declared dependencies that CODITECT's environment lacks, installed for its tests.

A real project's tests import its dependencies (glom imports ``face``, ``boltons`` and
``attrs``; humanize's tests import ``freezegun``). The sandbox runs the tests with CODITECT's
own interpreter, so a dependency it does not have makes every test module fail to import, and
no change can be verified. An engineer's first step on such a project is installing what it
declares; this module does the same, without touching CODITECT's environment:

* :func:`declared_requirements` reads what the project declares: ``[project] dependencies``
  and the test extras (``[project.optional-dependencies]`` and ``[dependency-groups]`` named
  ``test``, ``tests`` or ``testing``) of ``pyproject.toml``, ``install_requires`` and the test
  ``extras_require`` of ``setup.cfg`` and of a literal ``setup(...)`` call in ``setup.py``;
  the ``deps`` of tox's ``[testenv]`` in ``tox.ini`` as test requirements (natsort declares
  hypothesis only there); only when these declare nothing (an application rather than a
  package), ``requirements.txt`` and, as test requirements, the requirements files at the root
  whose name says they are for tests (a package's ``requirements.txt`` is usually its
  developers' pinned tool chain: glom's pins tox);
* :func:`missing_requirements` keeps the runtime requirements, the test requirements that
  the tests import (a test extra or group also names the tools that drive the tests: semver's
  names tox) and the pytest plugins among them (``pytest-mock``: tests use its ``mocker``
  fixture without importing it), that are not installed here at all (a different version
  installed here is left alone: replacing it could break the test runner itself); never pytest
  or what pytest itself imports (the runner stays CODITECT's), never requirements given by URL;
  it evaluates environment markers;
* :func:`install_requirements` installs them with pip into :data:`DEPS_DIR` inside the
  workspace (``.coditect/`` is never committed), **wheels only** (``--only-binary :all:``), so
  no code of the project or of its dependencies runs outside the sandbox while installing.
  The sandbox sees the directory because it is inside the project; the test command puts it
  on ``sys.path`` (``-o pythonpath=...``, :mod:`coditect.taskqueue.testsetup`). pip needs the
  package index; offline, or for a dependency without a wheel, that one fails (the others are
  installed one by one when installing them together fails), the reason is returned for the
  mission's report, and the tests run as they can. pytest loads the plugins installed there
  (:func:`plugins`); one the suite cannot run with is put aside (:func:`unload_plugins`, by
  :func:`coditect.taskqueue.testsetup.record_baseline`).
"""

from __future__ import annotations

import ast
import asyncio
import configparser
import functools
import hashlib
import json
import os
import re
import shutil
import sys
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from importlib.metadata import PackageNotFoundError, distributions, version
from pathlib import Path, PurePosixPath

from packaging.markers import UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from coditect.taskqueue.metadata import project_field

__all__ = [
    "DEPS_DIR",
    "Declared",
    "DepsInstall",
    "declared_requirements",
    "install_requirements",
    "installed_here",
    "missing_requirements",
    "plugins",
    "project_name",
    "reload_plugins",
    "unload_plugins",
]

#: Where the missing dependencies are installed, relative to the workspace.
DEPS_DIR = ".coditect/deps"
_STAMP = ".coditect-requirements.json"
_ENTRY_POINTS_OFF = "entry_points.txt.off"
_TEST_EXTRAS = frozenset({"test", "tests", "testing"})
# What runs the tests is CODITECT's: pytest and what pytest itself imports are never shadowed.
_RUNNER = frozenset({"pytest", "pluggy", "iniconfig", "packaging", "pygments", "colorama"})
_PIP_TIMEOUT_S = 300.0
# Requirement sets pip could not install in this process, and why.
_FAILED: dict[tuple[str, ...], DepsInstall] = {}


@dataclass(frozen=True)
class Declared:
    """What a project declares: to run it, and (extras, dependency groups) to test it."""

    runtime: tuple[str, ...] = ()
    tests: tuple[str, ...] = ()


def declared_requirements(files: Iterable[str], read: Callable[[str], str]) -> Declared:
    """The requirement strings the project declares for running and for testing it (in order)."""
    names = set(files)
    runtime: list[str] = []
    tests: list[str] = []
    for name, parse in (("pyproject.toml", _pyproject), ("setup.cfg", _setup_cfg)):
        if name in names:
            run, test = parse(read(name))
            runtime += run
            tests += test
    if "setup.py" in names:
        run, test = _setup_py(read("setup.py"))
        runtime += run
        tests += test
    if "tox.ini" in names:
        tests += _tox_deps(read("tox.ini"))
    if not runtime and not tests:  # no packaging metadata: the requirements files say it
        for path in sorted(names):
            if _test_requirements_file(path):
                # A file named for tests pins what the tests need and the tools that drive them
                # (wcwidth's pins pylint): those the tests import are kept, like a test extra.
                found = _requirements_txt(read(path))
                (tests if "test" in PurePosixPath(path).name else runtime).extend(found)
    return Declared(_unique(runtime), _unique(tests))


def _tox_deps(text: str) -> list[str]:
    """The plain requirement lines of tox's ``[testenv] deps`` (what its tests are run with).

    Lines for some environments only (``py38: mock``), substitutions (``{env:X}``) and
    options (``-r requirements.txt``) are left out.
    """
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error:
        return []
    deps = parser.get("testenv", "deps", fallback="")
    return [
        line
        for line in _requirements_txt(deps)
        if "{" not in line and not re.match(r"^[\w,.-]+\s*:", line)
    ]


def _unique(reqs: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(r.strip() for r in reqs if r.strip()))


def _pyproject(text: str) -> tuple[list[str], list[str]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return [], []
    project = data.get("project")
    runtime: list[str] = []
    tests: list[str] = []
    if isinstance(project, dict):
        runtime += _strings(project.get("dependencies"))
        extras = project.get("optional-dependencies")
        if isinstance(extras, dict):
            wanted = [k for k in extras if k in _TEST_EXTRAS]
            tests += _extras(extras, wanted, str(project.get("name", "")))
    groups = data.get("dependency-groups")
    if isinstance(groups, dict):  # PEP 735; an {include-group = ...} entry is not a string
        tests += [r for k, v in groups.items() if k in _TEST_EXTRAS for r in _strings(v)]
    return runtime, tests


def _extras(table: dict[str, object], wanted: list[str], project: str) -> list[str]:
    """The requirements of the extras ``wanted``, with the project's own extras they name.

    ``tests = ["attrs[tests-no-zope]", "zope.interface"]`` (attrs) means the requirements of
    the extra ``tests-no-zope`` too, never the project itself.
    """
    own = canonicalize_name(project) if project else ""
    out: list[str] = []
    seen: set[str] = set()
    todo = list(wanted)
    while todo:
        extra = todo.pop(0)
        if extra in seen:
            continue
        seen.add(extra)
        for text in _strings(table.get(extra)):
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            if own and canonicalize_name(req.name) == own:
                todo += sorted(req.extras)
            else:
                out.append(text)
    return out


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _setup_cfg(text: str) -> tuple[list[str], list[str]]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error:
        return [], []
    runtime: list[str] = []
    tests: list[str] = []
    if parser.has_option("options", "install_requires"):
        runtime += _lines(parser.get("options", "install_requires"))
    if parser.has_section("options.extras_require"):
        for key, value in parser.items("options.extras_require"):
            if key in _TEST_EXTRAS:
                tests += _lines(value)
    return runtime, tests


def _lines(value: str) -> list[str]:
    return [line.split("#", 1)[0].strip() for line in value.splitlines()]


def _setup_py(text: str) -> tuple[list[str], list[str]]:
    """``install_requires``, and ``tests_require`` and test extras, of a literal ``setup(...)``.

    A keyword given as a name takes the literal the module assigns to that name.
    """
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return [], []
    runtime: list[str] = []
    tests: list[str] = []
    # ``extras_require=EXTRAS_REQUIRE``: a name assigned a literal at the module's top level.
    names = {
        node.targets[0].id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
    }
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup"):
            continue
        for kw in node.keywords:
            given = names.get(kw.value.id) if isinstance(kw.value, ast.Name) else None
            value = _literal(given if given is not None else kw.value)
            if kw.arg == "install_requires":
                runtime += _strings(value)
            elif kw.arg == "tests_require":
                tests += _strings(value)
            elif kw.arg == "extras_require" and isinstance(value, dict):
                tests += [r for k, v in value.items() if k in _TEST_EXTRAS for r in _strings(v)]
    return runtime, tests


def _literal(node: ast.expr) -> object:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _test_requirements_file(path: str) -> bool:
    """``requirements*.txt`` (or ``requirements/*.txt``) at the root naming tests, or the plain one."""
    parts = PurePosixPath(path).parts
    name = parts[-1]
    if not name.endswith(".txt") or "requirements" not in path:
        return False
    if len(parts) == 1:
        return name == "requirements.txt" or "test" in name
    return len(parts) == 2 and parts[0] == "requirements" and "test" in name


def _requirements_txt(text: str) -> list[str]:
    """Plain requirement lines; options (``-r``, ``-e``, ``--index-url``) and URLs are skipped."""
    out = []
    for line in _lines(text.replace("\\\n", " ")):
        line = re.sub(r"\s--?[a-z].*$", "", line)  # per-requirement options: --hash=...
        if line and not line.startswith("-") and "://" not in line:
            out.append(line)
    return out


@functools.cache
def installed_here(name: str) -> bool:
    """Whether the distribution ``name`` is installed in this interpreter."""
    try:
        version(name)
    except PackageNotFoundError:
        return False
    return True


def missing_requirements(
    declared: Declared,
    *,
    imported: Iterable[str] = (),
    project: str = "",
    installed: Callable[[str], bool] = installed_here,
) -> tuple[str, ...]:
    """The declared requirements to install here (see the module docs).

    Every runtime requirement that is not installed; a test requirement only when the tests
    import it (``imported``): a test extra or group also lists the tools that drive the tests
    (semver's names tox, which would bring its own ``packaging`` and ``platformdirs``).

    Args:
        declared: What the project declares.
        imported: Top-level module names the project's tests import.
        project: The project's own distribution name (a test extra often names it).
        installed: Whether a distribution is installed here (default: in this interpreter).
    """
    modules = {canonicalize_name(m) for m in imported}
    wanted = [
        *declared.runtime,
        *(r for r in declared.tests if _import_name(r) & modules or _is_plugin(r)),
    ]
    own = canonicalize_name(project) if project else ""
    out: list[str] = []
    for text in wanted:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        name = canonicalize_name(req.name)
        if req.url or name == own or name in _RUNNER:
            continue
        try:
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
        except UndefinedEnvironmentName:
            continue
        if not installed(req.name):
            out.append(str(req))
    return tuple(dict.fromkeys(out))


def _is_plugin(text: str) -> bool:
    """Whether a requirement names a pytest plugin (``pytest-mock``): tests use it unimported."""
    try:
        return canonicalize_name(Requirement(text).name).startswith("pytest-")
    except InvalidRequirement:
        return False


def plugins(workspace: Path) -> tuple[str, ...]:
    """The pytest plugins installed into the workspace's :data:`DEPS_DIR` and loaded by pytest.

    pytest (>= 9) puts ``pythonpath`` on ``sys.path`` before it loads the plugins that
    distributions declare (entry points of the group ``pytest11``), so a plugin installed there
    is loaded like one installed in the interpreter.
    """
    found = {
        str(dist.metadata["Name"])
        for dist in distributions(path=[str(workspace / DEPS_DIR)])
        if dist.metadata["Name"] and any(ep.group == "pytest11" for ep in dist.entry_points)
    }
    return tuple(sorted(found))


def unload_plugins(workspace: Path, names: Iterable[str]) -> None:
    """Keep pytest from loading the plugins ``names`` installed in :data:`DEPS_DIR`.

    Their entry points are put aside (``entry_points.txt.off``), their code stays: a test that
    imports a plugin's module still can. Idempotent; :func:`reload_plugins` undoes it.
    """
    for info in _dist_infos(workspace, names):
        if (info / "entry_points.txt").is_file():
            (info / "entry_points.txt").replace(info / _ENTRY_POINTS_OFF)


def reload_plugins(workspace: Path, names: Iterable[str]) -> None:
    """Undo :func:`unload_plugins`."""
    for info in _dist_infos(workspace, names):
        if (info / _ENTRY_POINTS_OFF).is_file():
            (info / _ENTRY_POINTS_OFF).replace(info / "entry_points.txt")


def _dist_infos(workspace: Path, names: Iterable[str]) -> list[Path]:
    wanted = {canonicalize_name(n) for n in names}
    target = workspace / DEPS_DIR
    if not wanted or not target.is_dir():
        return []
    return [
        info
        for info in target.glob("*.dist-info")
        if canonicalize_name(info.name.removesuffix(".dist-info").rsplit("-", 1)[0]) in wanted
    ]


def _import_name(text: str) -> set[str]:
    """The module names a requirement is likely imported as: its name, without ``python-``."""
    try:
        name = canonicalize_name(Requirement(text).name)
    except InvalidRequirement:
        return set()
    return {name, name.removeprefix("python-"), name.removeprefix("py")}


def project_name(files: Iterable[str], read: Callable[[str], str]) -> str:
    """The project's distribution name ("" if unknown; see :func:`project_field`)."""
    return project_field(files, read, "name")


@dataclass(frozen=True)
class DepsInstall:
    """What :func:`install_requirements` did.

    Attributes:
        requirements: The requirements it was asked to install.
        failed: Those that could not be installed (offline, or no wheel for this interpreter).
        reused: They were already in :data:`DEPS_DIR` from an earlier install (nothing ran).
        error: Why the first of ``failed`` failed, from pip's output ("" when none did).
    """

    requirements: tuple[str, ...]
    failed: tuple[str, ...] = ()
    reused: bool = False
    error: str = ""

    @property
    def installed(self) -> tuple[str, ...]:
        """The requirements that are in :data:`DEPS_DIR`."""
        return tuple(r for r in self.requirements if r not in self.failed)

    def note(self) -> str:
        """One line for the mission's report ("" when there was nothing to install)."""
        parts = []
        if self.installed:
            parts.append(
                "the project's dependencies missing here were installed for its tests: "
                + ", ".join(self.installed)
            )
        if self.failed:
            parts.append(
                f"the project's dependencies {', '.join(self.failed)} are not installed here "
                f"and could not be installed ({self.error}); tests that import them cannot run"
            )
        return "; ".join(parts)

    def to_json(self) -> str:
        """The result as a JSON document (kept beside the installed files)."""
        return json.dumps(
            {"requirements": self.requirements, "failed": self.failed, "error": self.error}
        )


async def install_requirements(
    workspace: Path, requirements: Iterable[str], *, timeout_s: float = _PIP_TIMEOUT_S
) -> DepsInstall:
    """Install ``requirements`` (wheels only) into ``workspace / DEPS_DIR`` with pip.

    All at once first; when that fails, one by one, so that one dependency without a wheel
    does not keep the others out. Idempotent: a directory that already holds the result for
    exactly these requirements is kept. The install goes to a temporary directory first, so a
    failed one leaves no half-filled directory. Never raises for a failed install: the result
    says which failed and why.
    """
    wanted = tuple(sorted(set(requirements)))
    if not wanted:
        return DepsInstall(())
    target = workspace / DEPS_DIR
    stamp_file = target / _STAMP
    earlier = _read_stamp(stamp_file)
    if earlier is not None and earlier.requirements == wanted:
        return replace(earlier, reused=True)
    if wanted in _FAILED:  # offline, or no wheel: asking pip again gives the same answer
        return _FAILED[wanted]
    digest = hashlib.sha256("\n".join(wanted).encode()).hexdigest()[:16]
    staging = workspace / f"{DEPS_DIR}.{digest}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    failed: list[str] = []
    first_error = await _run_pip(_pip_argv(staging, wanted), timeout_s)
    error = ""
    if first_error:
        for req in wanted if len(wanted) > 1 else ():
            why = await _run_pip(_pip_argv(staging, (req,)), timeout_s)
            if why:
                failed.append(req)
                error = error or why
        failed = failed if len(wanted) > 1 else list(wanted)
        error = (error or first_error) if failed else ""
    result = DepsInstall(wanted, failed=tuple(failed), error=error)
    if not result.installed:
        shutil.rmtree(staging, ignore_errors=True)
        _FAILED[wanted] = result
        return result
    staging.mkdir(parents=True, exist_ok=True)
    (staging / _STAMP).write_text(result.to_json(), encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return result


def _pip_argv(target: Path, requirements: Iterable[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "--only-binary",
        ":all:",
        "--retries",
        "1",
        "--timeout",
        "15",
        "--target",
        str(target),
        *requirements,
    ]


def _read_stamp(path: Path) -> DepsInstall | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return DepsInstall(
            tuple(str(r) for r in data["requirements"]),
            failed=tuple(str(r) for r in data.get("failed", ())),
            error=str(data.get("error", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


async def _run_pip(argv: list[str], timeout_s: float) -> str:
    """Run pip; "" on success, else the last lines of its error output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
            env=env,
        )
    except OSError as exc:
        return f"pip could not start: {exc}"
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout=timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return f"pip did not finish within {timeout_s:g} s"
    if proc.returncode == 0:
        return ""
    lines = [
        line
        for line in err.decode(errors="replace").splitlines()
        if line.strip() and not line.startswith("WARNING")
    ]
    return re.sub(r"\s+", " ", " ".join(lines[-2:]))[:300] or f"pip exited {proc.returncode}"
