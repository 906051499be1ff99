import shutil
from pathlib import Path

import pytest

from coditect.agents.base import Upstream
from coditect.domain import (
    ActionKind,
    AnalysisReport,
    CodeChange,
    FileEdit,
    Intent,
    ModuleInfo,
    TaskSpec,
)
from coditect.taskqueue.parametrize import Parametrizer, pytest_command
from coditect.taskqueue.targets import (
    is_test_path,
    module_for_test,
    parse_imports,
    target_test_file,
)
from coditect.taskqueue.world_model import WorldModel

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "calculator"


@pytest.fixture
def calc(tmp_path: Path) -> WorldModel:
    repo = tmp_path / "calculator"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    w = WorldModel(repo)
    w.scan()
    return w


def task(intent: Intent, description: str = "do it", **kw) -> TaskSpec:
    return TaskSpec(id="t", intent=intent, description=description, **kw)


def code(*paths: str) -> CodeChange:
    return CodeChange(edits=tuple(FileEdit(path=p, after_sha256="x") for p in paths))


def test_target_test_file_layouts() -> None:
    assert target_test_file("calculator/stats.py", ["tests/test_stats.py"]) == "tests/test_stats.py"
    assert target_test_file("calculator/text.py", ["tests/test_stats.py"]) == "tests/test_text.py"
    assert target_test_file("m.py", []) == "tests/test_m.py"
    assert target_test_file("pkg/m.py", ["test/test_x.py", "test/test_y.py"]) == "test/test_m.py"
    assert target_test_file("pkg/m.py", ["pkg/m_test.py"]) == "pkg/m_test.py"
    assert target_test_file("pkg/__init__.py", []) == "tests/test_pkg.py"


def test_is_test_path() -> None:
    assert is_test_path("tests/helpers.py")
    assert is_test_path("pkg/test_x.py") and is_test_path("x_test.py")
    assert is_test_path("conftest.py")
    assert not is_test_path("pkg/testing.py") and not is_test_path("tests/data.json")


def test_parse_imports() -> None:
    src = "import os, a.b\nfrom c.d import e, f\nfrom . import rel\nfrom g import *\n"
    assert parse_imports(src) == {"os", "a.b", "c.d", "c.d.e", "c.d.f", "g"}
    assert parse_imports("def (") == set()


def test_analyze_reads_python_and_config(calc: WorldModel) -> None:
    (calc.root / "setup.cfg").write_text("[x]\n")
    calc.scan()
    action = Parametrizer().parametrize(task(Intent.ANALYZE), calc, Upstream(), "")
    assert action.kind is ActionKind.READ_FILES
    assert action.read_files == (
        "calculator/__init__.py",
        "calculator/arithmetic.py",
        "calculator/stats.py",
        "calculator/text.py",
        "tests/test_arithmetic.py",
        "tests/test_stats.py",
        "pyproject.toml",
        "setup.cfg",
    )
    assert action.write_files == ()


def test_run_tests_whole_suite_when_nothing_known(calc: WorldModel) -> None:
    action = Parametrizer().parametrize(task(Intent.RUN_TESTS), calc, Upstream(), "")
    assert action.kind is ActionKind.RUN_COMMAND
    assert action.test_selection == ()
    # Installed pytest plugins the project does not use are switched off (-p no:NAME).
    argv = list(action.command)
    while "-p" in argv[6:]:
        at = argv.index("-p", 6)
        assert argv[at + 1].startswith("no:")
        del argv[at : at + 2]
    assert (
        tuple(argv)
        == pytest_command()
        == (
            "python",
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--continue-on-collection-errors",
            "--junitxml=.coditect/junit.xml",
        )
    )


def test_run_tests_selects_importers_and_written_tests(calc: WorldModel) -> None:
    (calc.root / "tests/test_text.py").write_text("from calculator.text import parse_number\n")
    (calc.root / "tests/test_pkg.py").write_text("import calculator\n")
    (calc.root / "tests/test_other.py").write_text("import json\n")
    calc.scan()
    p = Parametrizer()
    up = Upstream(code=(code("calculator/stats.py"),))
    action = p.parametrize(task(Intent.RUN_TESTS), calc, up, "")
    # test_pkg imports the package, which re-exports stats: it is selected too.
    assert action.test_selection == ("tests/test_pkg.py", "tests/test_stats.py")
    assert action.command[-2:] == action.test_selection

    up = Upstream(code=(code("calculator/text.py"), code("tests/test_text.py")))
    assert p.test_selection(calc, up) == ("tests/test_pkg.py", "tests/test_text.py")
    # A written test file alone.
    assert p.test_selection(calc, Upstream(code=(code("tests/test_other.py"),))) == (
        "tests/test_other.py",
    )
    # A changed module no test imports: the whole suite.
    (calc.root / "tests/test_pkg.py").unlink()
    (calc.root / "calculator/lonely.py").write_text("X = 1\n")
    calc.scan()
    assert p.test_selection(calc, Upstream(code=(code("calculator/lonely.py"),))) == ()


def test_run_tests_uses_analysis_imports(calc: WorldModel) -> None:
    (calc.root / "tests/test_dynamic.py").write_text("import importlib\n")
    calc.scan()
    analysis = AnalysisReport(
        modules=(
            ModuleInfo(path="tests/test_dynamic.py", imports=("calculator.text",), is_test=True),
        )
    )
    up = Upstream(analysis=analysis, code=(code("calculator/text.py"),))
    assert Parametrizer().test_selection(calc, up) == ("tests/test_dynamic.py",)


def test_write_tests_follows_upstream_code(calc: WorldModel) -> None:
    up = Upstream(code=(code("calculator/text.py"),))
    req = "Add a function to calculate the nth Fibonacci number"
    action = Parametrizer().parametrize(task(Intent.WRITE_TESTS, req), calc, up, req)
    assert action.write_files == ("tests/test_text.py",)
    assert action.read_files == ("calculator/text.py",)


def test_tests_go_beside_a_test_module_the_project_could_not_import(calc: WorldModel) -> None:
    from coditect.agents.baseline import BASELINE_PATH, Baseline

    # Before the mission, tests/test_stats.py failed to import (a test dependency missing here).
    (calc.root / BASELINE_PATH).parent.mkdir(parents=True, exist_ok=True)
    (calc.root / BASELINE_PATH).write_text(
        Baseline(outcomes={"tests.test_stats": "error"}).to_json()
    )
    up = Upstream(code=(code("calculator/stats.py"),))
    req = "Add a mode function"
    action = Parametrizer().parametrize(task(Intent.WRITE_TESTS, req), calc, up, req)
    assert action.write_files == ("tests/test_stats_2.py",)
    assert action.read_files == ("calculator/stats.py",)
    named = task(Intent.WRITE_TESTS, req, target_files=("tests/test_arithmetic.py",))
    assert Parametrizer().parametrize(named, calc, up, req).write_files == (
        "tests/test_arithmetic.py",
    )


def test_beside_test_file_names() -> None:
    from coditect.taskqueue.targets import beside_test_file

    assert beside_test_file("tests/test_time.py", {"tests/test_time.py"}) == "tests/test_time_2.py"
    taken = {"test_time.py", "test_time_2.py"}
    assert beside_test_file("test_time.py", taken) == "test_time_3.py"
    assert beside_test_file("pkg/time_test.py", set()) == "pkg/time_2_test.py"


def test_a_reproduction_task_gets_the_command_for_its_own_test_file(calc: WorldModel) -> None:
    from coditect.domain.tasks import REPRODUCE_INSTRUCTION

    req = "median([1, 2, 3, 4]) returns 3 instead of 2.5"
    repro = task(Intent.WRITE_TESTS, REPRODUCE_INSTRUCTION, target_files=("calculator/stats.py",))
    action = Parametrizer().parametrize(repro, calc, Upstream(), req)
    assert action.write_files == ("tests/test_stats.py",)
    assert action.test_selection == ("tests/test_stats.py",)
    assert action.command[-1] == "tests/test_stats.py" and "pytest" in action.command
    # Other test tasks write tests for code that works: nothing to run before they are written.
    plain = Parametrizer().parametrize(task(Intent.WRITE_TESTS, req), calc, Upstream(), req)
    assert plain.command == () and plain.test_selection == ()


def test_repair_tasks_keep_their_files(calc: WorldModel) -> None:
    p = Parametrizer()
    req = "Add a function to reverse a string"
    # Repair of the tests: target_files names the test file written before.
    fix_tests = task(
        Intent.WRITE_TESTS,
        "The tests failed. Fix the tests",
        feedback="boom",
        target_files=("tests/test_stats.py",),
    )
    action = p.parametrize(fix_tests, calc, Upstream(), req)
    assert action.write_files == ("tests/test_stats.py",)
    assert action.read_files == ("calculator/stats.py", "tests/test_stats.py")
    # Repair of the code: stays on the module the earlier code task wrote.
    fix_code = task(Intent.WRITE_CODE, f"The tests failed. Fix the code: {req}", feedback="boom")
    up = Upstream(code=(code("calculator/arithmetic.py"), code("tests/test_arithmetic.py")))
    assert p.parametrize(fix_code, calc, up, req).write_files == ("calculator/arithmetic.py",)
    assert p.choose(fix_code, calc, up, req).rule == "upstream"


def test_new_module_from_target_files(calc: WorldModel) -> None:
    t = task(Intent.WRITE_CODE, "Add geometry helpers", target_files=("calculator/geometry.py",))
    action = Parametrizer().parametrize(t, calc, Upstream(), "Add geometry helpers")
    assert action.write_files == ("calculator/geometry.py",)
    assert action.read_files == ("calculator/__init__.py",)


def test_module_for_test() -> None:
    modules = ["pkg/__init__.py", "pkg/stats.py", "other/deep/stats.py", "pkg/text.py"]
    assert module_for_test("tests/test_stats.py", modules) == "pkg/stats.py"
    assert module_for_test("tests/text_test.py", modules) == "pkg/text.py"
    assert module_for_test("tests/test_nothing.py", modules) is None


def test_write_code_declares_the_package_init_that_reexports_the_module(calc: WorldModel) -> None:
    req = "Fix the bug in `divide` for zero"
    action = Parametrizer().parametrize(task(Intent.WRITE_CODE, req), calc, Upstream(), req)
    assert action.write_files == ("calculator/arithmetic.py", "calculator/__init__.py")
    req = "Fix the bug in `median` for lists of even length"  # value_range is not re-exported
    action = Parametrizer().parametrize(task(Intent.WRITE_CODE, req), calc, Upstream(), req)
    assert action.write_files == ("calculator/stats.py",)
    req = "Make `parse_number` strip spaces"  # text.py is not re-exported by the package
    action = Parametrizer().parametrize(task(Intent.WRITE_CODE, req), calc, Upstream(), req)
    assert action.write_files == ("calculator/text.py",)


def test_a_removal_declares_the_package_init_and_the_tests_that_import_the_module(
    calc: WorldModel,
) -> None:
    req = "Remove `parse_number`: it is no longer used"
    action = Parametrizer().parametrize(task(Intent.WRITE_CODE, req), calc, Upstream(), req)
    # text.py is not re-exported, yet its removal may take its import out of the package;
    # no test imports calculator.text (or the package), so no test file may change.
    assert action.write_files == ("calculator/text.py", "calculator/__init__.py")
    req = "Remove the `subtract` function"
    action = Parametrizer().parametrize(task(Intent.WRITE_CODE, req), calc, Upstream(), req)
    assert action.write_files == (
        "calculator/arithmetic.py",
        "calculator/__init__.py",
        "tests/test_arithmetic.py",
    )


def test_write_code_lists_the_projects_tests_for_candidate_checks(calc: WorldModel) -> None:
    req = "Fix the bug in `divide` for zero"
    action = Parametrizer().parametrize(task(Intent.WRITE_CODE, req), calc, Upstream(), req)
    assert action.project_tests == ("tests/test_arithmetic.py", "tests/test_stats.py")
    assert action.test_options[:2] == ("-p", "no:cacheprovider")


def test_index_is_updated_incrementally(calc: WorldModel) -> None:
    p = Parametrizer()
    p.refresh_index(calc)
    first = p.index.parsed  # entries parsed elsewhere in this process are shared, not parsed
    assert len(p.index) == len([f for f in calc.files() if f.endswith(".py")])
    p.refresh_index(calc)
    assert p.index.parsed == first
    (calc.root / "calculator/text.py").write_text("def shout(s):\n    return s.upper()  # 1\n")
    calc.scan()
    p.refresh_index(calc)
    assert p.index.parsed == first + 1
    assert p.index.definitions("shout")[0].path == "calculator/text.py"
