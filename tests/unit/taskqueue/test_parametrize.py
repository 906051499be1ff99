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
    choose_module,
    is_test_path,
    module_for_test,
    parse_imports,
    target_test_file,
)
from coditect.taskqueue.world_model import WorldModel

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "calculator"
REQUESTS = [
    line.strip()
    for line in (ROOT / "examples" / "requests.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]

# The module each request of examples/requests.txt should change, and the rule expected to pick it.
EXPECTED = {
    "Add a function to calculate the nth Fibonacci number": "arithmetic",
    "Add a function that returns the factorial of a non-negative integer": "arithmetic",
    "Add a function is_prime(n) that tells whether n is a prime number": "arithmetic",
    "Fix the bug in median: for an even number of values it must return the mean of the two "
    "middle values": "stats",
    "Add a test for the value_range function in calculator/stats.py": "stats",
    "Add a power(base, exponent) function to calculator/arithmetic.py": "arithmetic",
    "Add a docstring to the value_range function": "stats",
    "Refactor value_range in calculator/stats.py to return max(values) - min(values) directly": "stats",
    "Add a function gcd(a, b) that returns the greatest common divisor of two integers": "arithmetic",
    "Add a function to reverse a string": "text",
    "Add a function clamp(value, low, high) that limits a value to a range": "arithmetic",
    "Make parse_number raise ValueError with a clear message when the text is not a number": "text",
}


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


def test_every_example_request_has_an_expectation() -> None:
    assert sorted(REQUESTS) == sorted(EXPECTED)


@pytest.mark.parametrize("request_text", REQUESTS)
def test_write_code_module_for_example_requests(calc: WorldModel, request_text: str) -> None:
    action = Parametrizer().parametrize(
        task(Intent.WRITE_CODE, request_text), calc, Upstream(), request_text
    )
    module = f"calculator/{EXPECTED[request_text]}.py"
    assert action.kind is ActionKind.WRITE_FILES
    assert action.write_files == (module,)
    assert action.read_files == (module, "calculator/__init__.py")


@pytest.mark.parametrize("request_text", REQUESTS)
def test_write_tests_file_for_example_requests(calc: WorldModel, request_text: str) -> None:
    action = Parametrizer().parametrize(
        task(Intent.WRITE_TESTS, request_text), calc, Upstream(), request_text
    )
    name = EXPECTED[request_text]
    test = f"tests/test_{name}.py"
    assert action.write_files == (test,)
    expected_reads = (f"calculator/{name}.py",) + ((test,) if test in calc else ())
    assert action.read_files == expected_reads


def test_choose_module_rules() -> None:
    files = [
        "pkg/__init__.py",
        "pkg/core.py",
        "pkg/text.py",
        "pkg/geo/__init__.py",
        "pkg/geo/shapes.py",
        "tests/test_core.py",
        "pyproject.toml",
    ]
    symbols = {
        "pkg/core.py": ("add", "area_of"),
        "pkg/text.py": ("shout",),
        "pkg/geo/shapes.py": ("Circle",),
    }
    sizes = {"pkg/core.py": 10, "pkg/text.py": 500, "pkg/geo/shapes.py": 900}

    def pick(text: str, **kw) -> tuple[str, str]:
        c = choose_module(text, files, symbols, sizes=sizes, **kw)
        return c.path, c.rule

    assert pick("anything", targets=("pkg/text.py",)) == ("pkg/text.py", "target")
    assert pick("anything", targets=("tests/test_core.py", "pkg/new.py")) == ("pkg/new.py", "new")
    assert pick("x", targets=("elsewhere/new.py",))[1] != "new"  # not inside a package
    assert pick("Update ./pkg/geo/shapes.py please") == ("pkg/geo/shapes.py", "path")
    assert pick("Update shapes.py please") == ("pkg/geo/shapes.py", "path")
    assert pick("Update pkg.text please") == ("pkg/text.py", "path")
    assert pick("Create pkg/geo/lines.py with a Line") == ("pkg/geo/lines.py", "new")
    assert pick("Make area_of accept floats") == ("pkg/core.py", "symbol")
    assert pick("Give `Circle` a radius") == ("pkg/geo/shapes.py", "symbol")
    assert pick("shout(text) should strip first") == ("pkg/text.py", "symbol")
    assert pick("Add a function to capitalize each word in a string") == ("pkg/text.py", "words")
    # add is a function here, but "Add" is just the verb of the request.
    assert pick("Add a function returning the answer") == ("pkg/core.py", "fallback")
    # the user's words outrank the planner's guess, and __init__.py guesses are ignored
    assert pick("Make area_of accept floats", targets=("pkg/text.py",)) == ("pkg/core.py", "symbol")
    assert pick("Add a function returning the answer", targets=("pkg/__init__.py",)) == (
        "pkg/core.py",
        "fallback",
    )


def test_fallback_prefers_general_modules_then_size() -> None:
    files = ["app/__init__.py", "app/small.py", "app/big.py"]
    c = choose_module("zzz", files, sizes={"app/small.py": 1, "app/big.py": 99})
    assert (c.path, c.rule) == ("app/big.py", "fallback")
    assert choose_module("zzz", []).path == "core.py"
    assert choose_module("zzz", ["pkg/__init__.py"]).path == "pkg/core.py"


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


def test_analysis_symbols_are_used(calc: WorldModel) -> None:
    analysis = AnalysisReport(
        modules=(ModuleInfo(path="calculator/text.py", functions=("brand_new_name",)),)
    )
    action = Parametrizer().parametrize(
        task(Intent.WRITE_CODE, "Speed up brand_new_name"), calc, Upstream(analysis=analysis), ""
    )
    assert action.write_files == ("calculator/text.py",)


def test_write_tests_follows_upstream_code(calc: WorldModel) -> None:
    up = Upstream(code=(code("calculator/text.py"),))
    req = "Add a function to calculate the nth Fibonacci number"
    action = Parametrizer().parametrize(task(Intent.WRITE_TESTS, req), calc, up, req)
    assert action.write_files == ("tests/test_text.py",)
    assert action.read_files == ("calculator/text.py",)


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


@pytest.mark.parametrize(
    ("request_text", "module"),
    [
        ("Add a function to compute the variance of a list of numbers", "stats"),
        ("Add a function that counts the vowels in a word", "text"),
        ("Add a percentile function", "stats"),
        ("Add a function to check if a string is a palindrome", "text"),
        ("Add a function that returns the absolute value of a number", "arithmetic"),
        ("Add a function to format a number as a percentage", "text"),
        ("Add a function lcm(a, b) that returns the least common multiple", "arithmetic"),
        ("Add a mode function that returns the most common value", "stats"),
        ("Add a square root function", "arithmetic"),
        ("Add a function to convert text to uppercase", "text"),
        ("Add a function standard_deviation(values)", "stats"),
        ("Add input validation so that divide raises TypeError for strings", "arithmetic"),
        ("Add a function that returns the maximum of a list of numbers", "stats"),
        ("Add exponentiation", "arithmetic"),
    ],
)
def test_more_requests(calc: WorldModel, request_text: str, module: str) -> None:
    t = task(Intent.WRITE_CODE, request_text)
    assert Parametrizer().choose(t, calc, Upstream(), request_text).path == (
        f"calculator/{module}.py"
    )
