from pathlib import Path

import pytest

from coditect.agents.base import AgentContext
from coditect.agents.tester import TesterAgent, junit_path_of, report_from_run
from coditect.domain.actions import Action, ActionKind
from coditect.domain.agents import Upstream
from coditect.domain.events import AgentAct
from coditect.domain.results import CodeChange, FileEdit
from coditect.domain.results import FailureCategory as C
from coditect.domain.tasks import Intent, TaskSpec
from coditect.errors import SandboxError
from coditect.sandbox.base import Sandbox, SandboxResult
from coditect.sandbox.subprocess import SubprocessSandbox

CMD = ("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml=.coditect/junit.xml")


def project(root: Path, files: dict[str, str]) -> Path:
    (root / "pytest.ini").write_text("[pytest]\n")
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


async def run(
    root: Path,
    *,
    command=CMD,
    timeout_s=60.0,
    sandbox: Sandbox | None = None,
    selection=(),
    upstream: Upstream | None = None,
):
    events = []

    async def emit(event):
        events.append(event)

    ctx = AgentContext(
        mission_id="m",
        request="r",
        task=TaskSpec(id="run_tests", intent=Intent.RUN_TESTS, description="run"),
        action=Action(
            intent=Intent.RUN_TESTS,
            kind=ActionKind.RUN_COMMAND,
            command=(*command, *selection),
            test_selection=selection,
            timeout_s=timeout_s,
        ),
        workspace=root,
        model=None,
        sandbox=sandbox or SubprocessSandbox(),  # type: ignore[arg-type]
        emit=emit,
        upstream=upstream or Upstream(),
    )
    report = await TesterAgent().execute(ctx)
    return report, events


async def test_all_pass_and_junit_file_is_removed(tmp_path):
    root = project(
        tmp_path, {"tests/test_ok.py": "def test_a():\n    assert 1\n\ndef test_b():\n    pass\n"}
    )
    report, events = await run(root)
    assert report.ok and report.passed == 2 and report.failures == ()
    assert not (root / ".coditect" / "junit.xml").exists()
    assert any(isinstance(e, AgentAct) and e.ok for e in events)


async def test_assertion_failure_is_a_normal_result(tmp_path):
    root = project(
        tmp_path,
        {"tests/test_x.py": "def test_a():\n    assert 1 == 2\n\ndef test_b():\n    pass\n"},
    )
    report, _ = await run(root)
    assert not report.ok and (report.passed, report.failed) == (1, 1)
    [failure] = report.failures
    assert failure.category is C.ASSERTION and failure.test_id == "tests/test_x.py::test_a"
    assert "assert 1 == 2" in failure.message


async def test_exception_in_test(tmp_path):
    root = project(tmp_path, {"tests/test_x.py": "def test_a():\n    raise KeyError('k')\n"})
    report, _ = await run(root)
    assert report.failed == 1 and report.failures[0].category is C.EXCEPTION
    assert "KeyError" in report.failures[0].message


async def test_collection_import_error(tmp_path):
    root = project(
        tmp_path, {"tests/test_x.py": "import no_such_module_xyz\n\ndef test_a():\n    pass\n"}
    )
    report, _ = await run(root)
    assert report.errors == 1 and report.passed == 0
    assert report.failures[0].category is C.COLLECTION


async def test_syntax_error_in_imported_module(tmp_path):
    root = project(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/mod.py": "def f(:\n    pass\n",
            "tests/test_x.py": "from pkg.mod import f\n\ndef test_a():\n    assert f\n",
        },
    )
    report, _ = await run(root)
    assert report.errors == 1 and report.failures[0].category is C.SYNTAX


async def test_timeout(tmp_path):
    root = project(
        tmp_path, {"tests/test_x.py": "import time\n\ndef test_a():\n    time.sleep(30)\n"}
    )
    report, _ = await run(root, timeout_s=2.0)
    assert report.timed_out and not report.ok
    assert [f.category for f in report.failures] == [C.TIMEOUT]


async def test_no_tests_collected(tmp_path):
    root = project(tmp_path, {"tests/test_x.py": "X = 1\n"})
    report, _ = await run(root)
    assert report.passed == 0 and report.errors == 0 and not report.ok


async def test_missing_junit_path_is_added_to_the_command(tmp_path):
    root = project(tmp_path, {"tests/test_x.py": "def test_a():\n    pass\n"})
    report, _ = await run(root, command=("python", "-m", "pytest", "-q", "-p", "no:cacheprovider"))
    assert report.ok and "--junitxml=.coditect/junit.xml" in report.command


async def test_crash_without_junit_file(tmp_path):
    root = project(tmp_path, {})
    report, _ = await run(root, command=("python", "-c", "raise SystemExit(3)"))
    assert report.errors == 1 and not report.ok
    assert "no JUnit report (exit code 3)" in report.failures[0].message


async def test_sandbox_errors_propagate(tmp_path):
    class Broken(Sandbox):
        async def run(self, request):
            raise SandboxError("no sandbox here")

    with pytest.raises(SandboxError):
        await run(project(tmp_path, {}), sandbox=Broken())


def test_junit_path_forms():
    assert junit_path_of(("pytest", "--junitxml=a/b.xml")) == "a/b.xml"
    assert junit_path_of(("pytest", "--junit-xml", "c.xml")) == "c.xml"
    assert junit_path_of(("pytest",)) is None


def test_report_from_unreadable_xml_falls_back_to_output():
    result = SandboxResult(exit_code=1, stdout="E   SyntaxError: bad\n")
    report = report_from_run(("pytest",), result, "<broken")
    assert report.errors == 1 and report.failures[0].category is C.SYNTAX


def test_cpu_limit_kill_counts_as_timeout():
    result = SandboxResult(exit_code=-9, killed_by="cpu", duration_s=3.0)
    report = report_from_run(("pytest",), result, None)
    assert report.timed_out and report.failures[0].category is C.TIMEOUT
    assert "CPU time limit" in report.failures[0].message


# --- the baseline rule ---------------------------------------------------------------------------


def _with_baseline(root: Path, outcomes: dict[str, str], duration_s: float = 1.0) -> None:
    from coditect.agents.baseline import BASELINE_PATH, Baseline

    path = root / BASELINE_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(Baseline(outcomes=outcomes, duration_s=duration_s).to_json())


BASELINE_FILES = {
    "tests/test_a.py": "def test_ok():\n    pass\n\ndef test_old():\n    assert 0\n",
    "tests/test_b.py": "def test_elsewhere():\n    assert 0\n",
}


async def test_tests_failing_before_the_change_are_not_blamed(tmp_path):
    root = project(tmp_path, BASELINE_FILES)
    _with_baseline(
        root,
        {"tests.test_a::test_ok": "passed", "tests.test_a::test_old": "failed"},
    )
    report, events = await run(root, command=(*CMD, "tests/test_a.py"))
    assert report.ok and report.passed == 1 and report.failed == 0
    assert report.already_failing == ("tests/test_a.py::test_old",)
    assert any("not blamed" in getattr(e, "detail", "") for e in events)


async def test_a_module_that_never_imported_hides_no_test_the_mission_wrote_into_it(tmp_path):
    # tests/test_a.py could not be imported before the change (a dependency the machine lacks);
    # the mission wrote its tests into it: they never ran, which is not the project's old error.
    files = {"tests/test_a.py": "import no_such_module_xyz\n\ndef test_new():\n    pass\n"}
    root = project(tmp_path, files)
    _with_baseline(root, {"tests.test_a": "error"})
    report, _ = await run(root, command=(*CMD, "tests/test_a.py"))
    assert report.errors == 0 and report.already_failing == ("tests/test_a.py",)
    wrote = CodeChange(edits=(FileEdit(path="tests/test_a.py", after_sha256="x"),))
    report, _ = await run(root, command=(*CMD, "tests/test_a.py"), upstream=Upstream(code=(wrote,)))
    assert not report.ok and report.errors == 1 and report.already_failing == ()
    assert report.unimportable_before == ("tests/test_a.py",)
    assert report.failures[0].category is C.COLLECTION
    assert "no_such_module_xyz" in report.failures[0].detail


async def test_whole_suite_runs_after_a_passing_selection(tmp_path):
    root = project(tmp_path, BASELINE_FILES)
    _with_baseline(
        root,
        {
            "tests.test_a::test_ok": "passed",
            "tests.test_a::test_old": "failed",
            "tests.test_b::test_elsewhere": "passed",  # passed before: now a regression
        },
    )
    report, _ = await run(root, selection=("tests/test_a.py",))
    assert not report.ok
    assert [f.test_id for f in report.failures] == ["tests/test_b.py::test_elsewhere"]
    # a slow suite (by its baseline) is not run in full after the selection
    _with_baseline(root, {"tests.test_a::test_old": "failed"}, duration_s=10_000)
    report, _ = await run(root, selection=("tests/test_a.py",))
    assert report.ok


async def test_a_selection_that_ran_every_test_of_the_suite_is_not_repeated(tmp_path):
    root = project(tmp_path, BASELINE_FILES)
    outcomes = {"tests.test_a::test_ok": "passed", "tests.test_a::test_old": "failed"}
    _with_baseline(root, outcomes)
    (root / "tests/test_b.py").unlink()  # the selection is now the whole suite
    report, events = await run(root, selection=("tests/test_a.py",))
    assert report.ok and report.passed == 1
    runs = [e for e in events if isinstance(e, AgentAct) and e.action == "run_tests"]
    assert len(runs) == 1
    assert any("not run again" in getattr(e, "text", "") for e in events)
    # a test the selection did not run (test_b, known to the baseline) makes it run in full
    project(root, {"tests/test_b.py": BASELINE_FILES["tests/test_b.py"]})
    _with_baseline(root, {**outcomes, "tests.test_b::test_elsewhere": "passed"})
    report, events = await run(root, selection=("tests/test_a.py",))
    assert not report.ok
    assert len([e for e in events if isinstance(e, AgentAct) and e.action == "run_tests"]) == 2


async def test_a_broken_baseline_file_is_ignored(tmp_path):
    from coditect.agents.baseline import BASELINE_PATH
    from coditect.agents.tester import load_baseline

    root = project(tmp_path, BASELINE_FILES)
    (root / ".coditect").mkdir()
    (root / BASELINE_PATH).write_text("{broken")
    assert load_baseline(root) is None
    report, _ = await run(root, command=(*CMD, "tests/test_a.py"))
    assert report.failed == 1 and report.already_failing == ()
