"""The parametrization engine: turns a task's intent into a concrete action.

Rules, by intent:

- ``ANALYZE`` -> ``READ_FILES``: every ``.py`` file plus the test/packaging configuration files
  (``pyproject.toml``, ``setup.cfg``, ``pytest.ini``, ``tox.ini``) that exist.
- ``WRITE_CODE`` -> ``WRITE_FILES`` of the source module chosen by
  :func:`~coditect.taskqueue.targets.choose_module` from the repository index and up to two
  further modules the change needs (the request names code in them, or the planner listed
  them; a repair task, one with ``feedback``, keeps to the modules the earlier code task
  wrote), plus the package
  ``__init__.py`` when it re-exports every public function and class of that module (a new
  public one is then exported there too). It reads the module and the ``__init__.py``. For a
  request that asks for a removal, the ``__init__.py`` and the project's test files that import
  the modules may change too (what still names a removed definition goes with it:
  :mod:`coditect.agents.retire`).
- ``WRITE_TESTS`` -> ``WRITE_FILES`` of the test file of one module: a test file named in
  ``target_files``, else the module the upstream code task wrote, else :func:`choose_module`'s.
  The test file is the existing ``test_<module>.py`` (or ``<module>_test.py``), else a new
  ``test_<module>.py`` in the directory that holds most test files (``tests/`` if none).
- ``RUN_TESTS`` -> ``RUN_COMMAND`` ``python -m pytest -q -p no:cacheprovider
  --junitxml=.coditect/junit.xml [selection]``, plus the options the project's own test set-up
  needs (:mod:`coditect.taskqueue.testsetup`: ``-o pythonpath=src`` for a src layout, ...).
  The selection is the test files written by upstream
  code tasks plus every test file that imports a module they changed (or its package, which may
  re-export it). When no upstream code change is known, or nothing matches, the selection is
  empty: the whole suite runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from coditect.agents.baseline import BASELINE_PATH, Baseline
from coditect.agents.prompts import asks_removal
from coditect.domain.actions import Action, ActionKind, FileRecord
from coditect.domain.agents import Upstream
from coditect.domain.tasks import Intent, TaskSpec, is_reproduction
from coditect.index import RepoIndex, SymbolKind, localize, module_name
from coditect.taskqueue.targets import (
    MAX_EXTRA_MODULES,
    ModuleChoice,
    beside_test_file,
    choose_module,
    dotted_names,
    imports_any,
    is_test_path,
    module_for_test,
    parse_imports,
    target_test_file,
)
from coditect.taskqueue.testsetup import CONFIG_FILES
from coditect.taskqueue.testsetup import detect as detect_setup
from coditect.taskqueue.world_model import WorldModel

__all__ = [
    "CONFIG_FILES",
    "JUNIT_PATH",
    "ModuleChoice",
    "Parametrizer",
    "choose_module",
    "is_test_path",
    "pytest_command",
    "target_test_file",
]

#: Where the test run writes its JUnit XML (inside the ignored ``.coditect/`` directory).
JUNIT_PATH = ".coditect/junit.xml"
#: Test files a code task lists for its candidate checks at most.
_MAX_PROJECT_TESTS = 300


def pytest_command(selection: Sequence[str] = ()) -> tuple[str, ...]:
    """The sandboxed test command, running ``selection`` (or the whole suite when empty)."""
    return (
        "python",
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--continue-on-collection-errors",
        f"--junitxml={JUNIT_PATH}",
        *selection,
    )


# --- the engine ----------------------------------------------------------------------------------


def _unimportable(world: WorldModel, test: str) -> bool:
    """Whether the project's suite, before the mission, could not import the test module."""
    try:
        baseline = Baseline.from_json((world.root / BASELINE_PATH).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(baseline.unimportable([test]))


class Parametrizer:
    """Maps a task's intent to a concrete :class:`Action` using the world model.

    Args:
        timeout_s: Time limit of read and write actions.
        test_timeout_s: Time limit of test runs.
    """

    def __init__(self, *, timeout_s: float = 120.0, test_timeout_s: float = 300.0) -> None:
        self.timeout_s = timeout_s
        self.test_timeout_s = test_timeout_s
        self._imports: dict[str, frozenset[str]] = {}  # sha256 -> imports
        self.index = RepoIndex()

    def refresh_index(self, world: WorldModel) -> RepoIndex:
        """The repository index, brought up to date with ``world`` (changed modules only)."""
        self.index.update(world.snapshot(), world.read_text)
        return self.index

    def parametrize(
        self, task: TaskSpec, world: WorldModel, upstream: Upstream, request: str
    ) -> Action:
        """The concrete action for ``task`` (see the module docstring for the rules)."""
        if task.intent is Intent.ANALYZE:
            return self._analyze(task, world)
        if task.intent is Intent.WRITE_CODE:
            choice = self.choose(task, world, upstream, request)
            module = choice.path
            files = set(world.files())
            init = f"{module.rpartition('/')[0]}/__init__.py".lstrip("/")
            reads = [p for p in (module, init, *choice.also) if p in files]
            writes = [module, *choice.also]
            removal = asks_removal(request) or asks_removal(task.description)
            if init != module and init in files and (removal or self._reexports(init, module)):
                writes.append(init)
            # Tests written before the code (a bug's reproduction) run on the unchanged code
            # first (agents/reproduce.py); a repair round has its failures already.
            repro = () if task.feedback else self._tests_written(world, upstream)
            setup = detect_setup(world.files(), lambda path: _read(world, path))
            project_tests = sorted(
                p for p in files if p.endswith(".py") and is_test_path(p) and setup.is_test_file(p)
            )
            if removal:  # the tests of what goes may go with it (agents/retire.py)
                writes += self._importers(world, [module, *choice.also], project_tests)
            return Action(
                intent=task.intent,
                kind=ActionKind.WRITE_FILES,
                read_files=tuple(reads),
                write_files=tuple(writes),
                command=setup.command(repro, junit=JUNIT_PATH) if repro else (),
                test_selection=repro,
                timeout_s=self.timeout_s,
                project_tests=tuple(project_tests[:_MAX_PROJECT_TESTS]),
                test_options=setup.options(),
            )
        if task.intent is Intent.WRITE_TESTS:
            return self._write_tests(task, world, upstream, request)
        return self._run_tests(task, world, upstream)

    def choose(
        self, task: TaskSpec, world: WorldModel, upstream: Upstream, request: str
    ) -> ModuleChoice:
        """The module a WRITE_CODE task changes (see :func:`choose_module`).

        A repair task (one with ``feedback``) keeps to the module the latest code task wrote.
        """
        files = world.files()
        if task.feedback and not task.target_files:
            for change in reversed(upstream.code):
                paths = [
                    p
                    for p in change.paths
                    if p.endswith(".py") and not is_test_path(p) and p in world
                ]
                if paths:
                    also = tuple(p for p in paths[1:] if not p.endswith("__init__.py"))
                    return ModuleChoice(paths[0], "upstream", also=also[:MAX_EXTRA_MODULES])
        index = self.refresh_index(world)
        text = (
            request
            if task.description.strip() == request.strip()
            else (f"{task.description}\n{request}")
        )
        loc = localize(index, text)
        return choose_module(text, index, targets=task.target_files, files=files, loc=loc)

    def _importers(
        self, world: WorldModel, modules: Sequence[str], tests: Sequence[str]
    ) -> list[str]:
        """The test files among ``tests`` that import one of ``modules`` (or its package)."""
        index = self.refresh_index(world)
        targets = set().union(*(dotted_names(m) for m in modules))
        return [t for t in tests if (entry := index.get(t)) and imports_any(entry.imports, targets)]

    def _reexports(self, init: str, module: str) -> bool:
        """True when ``init`` re-exports every public function and class of ``module``.

        Only then is a new public name of the module exported there too: a package that
        re-exports a curated subset decides itself what joins it.
        """
        entry, mod = self.index.get(init), self.index.get(module)
        if entry is None or mod is None:
            return False
        name = module_name(module)
        imported = {i[len(name) + 1 :] for i in entry.imports if i.startswith(name + ".")}
        public = {
            s.name
            for s in mod.symbols
            if s.kind in (SymbolKind.FUNCTION, SymbolKind.CLASS) and not s.name.startswith("_")
        }
        return bool(public) and public <= imported

    def _analyze(self, task: TaskSpec, world: WorldModel) -> Action:
        files = world.files()
        reads = [p for p in files if p.endswith(".py")] + [c for c in CONFIG_FILES if c in world]
        return Action(
            intent=task.intent,
            kind=ActionKind.READ_FILES,
            read_files=tuple(reads),
            timeout_s=self.timeout_s,
        )

    def _write_tests(
        self, task: TaskSpec, world: WorldModel, upstream: Upstream, request: str
    ) -> Action:
        files = world.files()
        modules = [p for p in files if p.endswith(".py") and not is_test_path(p)]
        test: str | None = next(
            (t for t in task.target_files if t.endswith(".py") and is_test_path(t)), None
        )
        module: str | None = module_for_test(test, modules) if test else None
        if test is None:
            if not task.target_files:
                module = next(
                    (
                        p
                        for change in reversed(upstream.code)
                        for p in change.paths
                        if p.endswith(".py") and not is_test_path(p) and p in world
                    ),
                    None,
                )
            if module is None:
                module = self.choose(task, world, upstream, request).path
            test = target_test_file(module, files)
        if test in world and _unimportable(world, test):
            # Tests written into it would never run: they go into a new file beside it, written
            # without it in view (a model copies the imports it sees, and one of them fails).
            test = beside_test_file(test, files)
        reads = [p for p in (module, test) if p is not None and p in world]
        # A bug's reproduction test is run on the unchanged code once written (agents/coder.py).
        check = (test,) if is_reproduction(task) else ()
        return Action(
            intent=task.intent,
            kind=ActionKind.WRITE_FILES,
            read_files=tuple(reads),
            write_files=(test,),
            command=self._test_command(world, check) if check else (),
            test_selection=check,
            timeout_s=self.timeout_s,
        )

    def _run_tests(self, task: TaskSpec, world: WorldModel, upstream: Upstream) -> Action:
        selection = self.test_selection(world, upstream)
        return Action(
            intent=task.intent,
            kind=ActionKind.RUN_COMMAND,
            command=self._test_command(world, selection),
            test_selection=selection,
            timeout_s=self.test_timeout_s,
        )

    @staticmethod
    def _test_command(world: WorldModel, selection: tuple[str, ...]) -> tuple[str, ...]:
        # The project's own test set-up (src/ layout, test file patterns): docs/realrepo.md.
        setup = detect_setup(world.files(), lambda path: _read(world, path))
        return setup.command(selection, junit=JUNIT_PATH)

    @staticmethod
    def _tests_written(world: WorldModel, upstream: Upstream) -> tuple[str, ...]:
        """Test files the mission wrote upstream of a task (that still exist)."""
        found = (
            p
            for change in upstream.code
            for p in change.paths
            if p.endswith(".py")
            and is_test_path(p)
            and p in world
            and p.rpartition("/")[2] != "conftest.py"
        )
        return tuple(dict.fromkeys(found))

    def test_selection(self, world: WorldModel, upstream: Upstream) -> tuple[str, ...]:
        """Test files to run after the upstream code changes (empty: the whole suite)."""
        written: list[str] = []
        changed: set[str] = set()
        for change in upstream.code:
            for p in change.paths:
                if not p.endswith(".py") or p not in world:
                    continue
                if is_test_path(p):
                    written.append(p)
                else:
                    changed |= dotted_names(p)
        selected = dict.fromkeys(p for p in written if p.rpartition("/")[2] != "conftest.py")
        if changed:
            analysis = upstream.analysis
            known = {m.path: m.imports for m in analysis.modules} if analysis else {}
            for path, rec in _py_records(world):
                name = path.rpartition("/")[2]
                if not is_test_path(path) or name == "conftest.py" or path in selected:
                    continue
                if not (name.startswith("test_") or name.endswith("_test.py")):
                    continue
                imports: Iterable[str] = self._imports_of(world, path, rec.sha256)
                if path in known:
                    imports = {*imports, *known[path]}
                if imports_any(imports, changed):
                    selected[path] = None
        return tuple(sorted(selected))

    def _imports_of(self, world: WorldModel, path: str, sha: str) -> frozenset[str]:
        cached = self._imports.get(sha)
        if cached is None:
            cached = frozenset(parse_imports(_read(world, path)))
            self._imports[sha] = cached
        return cached


def _py_records(world: WorldModel) -> list[tuple[str, FileRecord]]:
    return [(r.path, r) for r in world.glob("**/*.py")]


def _read(world: WorldModel, path: str) -> str:
    try:
        return world.read_text(path)
    except OSError:
        return ""
