import ast

from coditect.agents.analyzer import AnalyzerAgent, analyze_project, discover_python_files
from coditect.agents.base import AgentContext
from coditect.agents.patterns import find_issues
from coditect.domain.actions import Action, ActionKind
from coditect.domain.events import AgentAct
from coditect.domain.tasks import Intent, TaskSpec


async def test_analyzer_on_the_calculator_example(calc):
    events = []

    async def emit(event):
        events.append(event)

    files = discover_python_files(calc)
    ctx = AgentContext(
        mission_id="m",
        request="r",
        task=TaskSpec(id="analyze", intent=Intent.ANALYZE, description="look"),
        action=Action(intent=Intent.ANALYZE, kind=ActionKind.READ_FILES, read_files=files),
        workspace=calc,
        model=None,
        sandbox=None,
        emit=emit,  # type: ignore[arg-type]
    )
    report = await AnalyzerAgent().execute(ctx)
    mods = {m.path: m for m in report.modules}
    assert mods["calculator/arithmetic.py"].functions == ("add", "subtract", "multiply", "divide")
    assert mods["calculator/stats.py"].functions == ("mean", "median", "value_range")
    assert (
        mods["tests/test_stats.py"].is_test
        and "calculator.stats" in mods["tests/test_stats.py"].imports
    )
    assert mods["calculator/stats.py"].lines == 24
    assert report.test_files == ("tests/test_arithmetic.py", "tests/test_stats.py")
    assert report.test_command == ("python", "-m", "pytest")
    kinds = {(f.path, f.kind) for f in report.findings}
    assert ("calculator/stats.py", "duplicate_branch") in kinds  # the planted median bug
    assert ("calculator/stats.py", "missing_docstring") in kinds  # value_range
    assert "duplicate_branch" in report.summary and "median" in report.summary
    assert any(isinstance(e, AgentAct) and e.action == "analyze" for e in events)


def test_syntax_error_becomes_a_finding(tmp_path):
    (tmp_path / "good.py").write_text('"""Doc."""\n')
    (tmp_path / "bad.py").write_text("def f(:\n    pass\n")
    report = analyze_project(tmp_path)
    [finding] = report.findings
    assert finding.kind == "syntax_error" and finding.path == "bad.py" and finding.line == 1
    assert report.test_command == () and not report.has_tests


def test_read_files_limit_the_analysis_and_pytest_config_gives_a_command(tmp_path):
    (tmp_path / "a.py").write_text("X = 1\n")
    (tmp_path / "b.py").write_text("Y = 2\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    report = analyze_project(tmp_path, ("a.py", "pyproject.toml"))
    assert [m.path for m in report.modules] == ["a.py"]
    assert report.test_command == ("python", "-m", "pytest")


def test_hidden_and_venv_folders_are_skipped(tmp_path):
    for rel in (".venv/x.py", "venv/y.py", "__pycache__/z.py", "pkg/m.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    assert discover_python_files(tmp_path) == ("pkg/m.py",)


SMELLS = '''
def f(x=[], y={}, z=dict()):
    """Doc."""
    try:
        eval("1")
    except:
        pass
    if x == None or None != y:
        return 1
    if x is None:
        pass
    if y:
        return 2
    else:
        return 2


def documented():
    """Doc."""


def _private():
    pass


class Thing:
    pass
'''


def test_pattern_detection():
    found = find_issues(ast.parse(SMELLS), "m.py")
    kinds = [f.kind for f in found]
    assert kinds.count("mutable_default") == 3
    assert kinds.count("bare_except") == 1 and kinds.count("eval_exec") == 1
    assert kinds.count("none_comparison") == 2  # one per comparison; `is None` is fine
    assert kinds.count("duplicate_branch") == 1
    missing = [f.message for f in found if f.kind == "missing_docstring"]
    assert missing == ["public class Thing has no docstring"]
    assert [
        f.kind for f in find_issues(ast.parse("def test_x():\n    pass\n"), "t.py", is_test=True)
    ] == []


def test_if_that_returns_the_same_as_the_code_after_it():
    code = "def g(a):\n    if a:\n        return a[0]\n    return a[0]\n"
    [finding] = [f for f in find_issues(ast.parse(code), "m.py") if f.kind != "missing_docstring"]
    assert finding.kind == "duplicate_branch" and finding.line == 2 and "g()" in finding.message
    different = "def g(a):\n    if a:\n        return a[0]\n    return a[1]\n"
    assert not [
        f for f in find_issues(ast.parse(different), "m.py") if f.kind == "duplicate_branch"
    ]
