from pathlib import Path

import pytest

from coditect.domain import (
    Action,
    ActionKind,
    AnalysisReport,
    CodeChange,
    FailureCategory,
    FileEdit,
    Intent,
    TaskSpec,
    TestFailure,
    TestReport,
    ViolationKind,
)
from coditect.taskqueue.consistency import ConsistencyChecker, syntax_error
from coditect.taskqueue.world_model import WorldModel


def write(root: Path, rel: str, text: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


@pytest.fixture
def world(tmp_path: Path) -> WorldModel:
    write(tmp_path, "pkg/__init__.py", "")
    write(tmp_path, "pkg/m.py", "def f():\n    return 1\n")
    write(
        tmp_path, "tests/test_m.py", "from pkg.m import f\n\ndef test_f():\n    assert f() == 1\n"
    )
    w = WorldModel(tmp_path)
    w.scan()
    return w


TASK = TaskSpec(id="t1", intent=Intent.WRITE_CODE, description="change f")
WRITE = Action(intent=Intent.WRITE_CODE, kind=ActionKind.WRITE_FILES, write_files=("pkg/m.py",))
READ = Action(intent=Intent.ANALYZE, kind=ActionKind.READ_FILES, read_files=("pkg/m.py",))
RUN = Action(intent=Intent.RUN_TESTS, kind=ActionKind.RUN_COMMAND, command=("pytest",))


def kinds(violations) -> list[tuple[ViolationKind, str]]:
    return [(v.kind, v.path) for v in violations]


def test_allowed_write_is_clean(world: WorldModel) -> None:
    checker = ConsistencyChecker()
    exp = checker.expect(TASK, WRITE, world)
    write(world.root, "pkg/m.py", "def f():\n    return 2\n")
    world.scan()
    edit = FileEdit(path="pkg/m.py", before_sha256="a", after_sha256="b")
    assert checker.check(exp, world, CodeChange(edits=(edit,))) == []


def test_unexpected_change_added_and_deleted(world: WorldModel) -> None:
    checker = ConsistencyChecker()
    exp = checker.expect(TASK, WRITE, world)
    write(world.root, "pkg/m.py", "def f():\n    return 2\n")
    write(world.root, "pkg/other.py", "X = 1\n")
    (world.root / "tests/test_m.py").unlink()
    world.scan()
    out = checker.check(exp, world, CodeChange())
    assert kinds(out) == [
        (ViolationKind.UNEXPECTED_CHANGE, "pkg/other.py"),
        (ViolationKind.UNEXPECTED_CHANGE, "tests/test_m.py"),
    ]
    assert "added" in out[0].message and "deleted" in out[1].message
    assert all(v.task_id == "t1" for v in out)


def test_globs_in_write_files(world: WorldModel) -> None:
    checker = ConsistencyChecker()
    action = Action(
        intent=Intent.WRITE_CODE, kind=ActionKind.WRITE_FILES, write_files=("pkg/*.py",)
    )
    exp = checker.expect(TASK, action, world)
    assert exp.must_exist == ()
    write(world.root, "pkg/new.py", "Y = 2\n")
    write(world.root, "pkg/sub/deep.py", "Z = 3\n")
    world.scan()
    assert kinds(checker.check(exp, world, None)) == [
        (ViolationKind.UNEXPECTED_CHANGE, "pkg/sub/deep.py")
    ]


def test_analysis_and_test_runs_must_change_nothing(world: WorldModel) -> None:
    checker = ConsistencyChecker()
    for action in (READ, RUN):
        exp = checker.expect(TASK, action, world)
        write(world.root, ".coditect/junit.xml", "<testsuite/>")  # ignored path: fine
        write(world.root, "pkg/__pycache__/m.cpython-311.pyc", "x")
        world.scan()
        assert checker.check(exp, world, AnalysisReport()) == []
    exp = checker.expect(TASK, RUN, world)
    write(world.root, "pkg/m.py", "def f():\n    return 3\n")
    world.scan()
    out = checker.check(exp, world, TestReport(passed=1))
    assert kinds(out) == [(ViolationKind.UNEXPECTED_CHANGE, "pkg/m.py")]
    assert "must not change files" in out[0].message


def test_syntax_error_reports_line(world: WorldModel) -> None:
    checker = ConsistencyChecker()
    exp = checker.expect(TASK, WRITE, world)
    write(world.root, "pkg/m.py", "def f():\n    return 1\n\ndef g(:\n    pass\n")
    world.scan()
    out = checker.check(exp, world, CodeChange())
    assert kinds(out) == [(ViolationKind.SYNTAX_ERROR, "pkg/m.py")]
    assert out[0].message.startswith("pkg/m.py:4:")


def test_unchanged_broken_file_is_not_reported(world: WorldModel) -> None:
    write(world.root, "pkg/broken.py", "def (\n")
    world.scan()
    checker = ConsistencyChecker()
    exp = checker.expect(TASK, WRITE, world)
    write(world.root, "pkg/m.py", "def f():\n    return 5\n")
    world.scan()
    assert checker.check(exp, world, CodeChange()) == []


def test_syntax_warning_is_not_an_error() -> None:
    assert syntax_error('import re\nR = re.compile("\\d+")\n') is None
    assert syntax_error("x = (\n") is not None
    assert syntax_error("x = 1\x00") is not None


def test_missing_file(world: WorldModel) -> None:
    checker = ConsistencyChecker()
    action = Action(
        intent=Intent.WRITE_TESTS, kind=ActionKind.WRITE_FILES, write_files=("tests/test_new.py",)
    )
    exp = checker.expect(TASK, action, world)
    assert exp.must_exist == ("tests/test_new.py",)
    world.scan()
    out = checker.check(exp, world, CodeChange())
    assert kinds(out) == [(ViolationKind.MISSING_FILE, "tests/test_new.py")]


def test_claimed_edit_missing(world: WorldModel) -> None:
    checker = ConsistencyChecker()
    exp = checker.expect(TASK, WRITE, world)
    write(world.root, "pkg/m.py", "def f():\n    return 9\n")
    world.scan()
    claimed = CodeChange(edits=(FileEdit(path="pkg/ghost.py", after_sha256="x"),))
    out = checker.check(exp, world, claimed)
    assert kinds(out) == [(ViolationKind.MISSING_FILE, "pkg/ghost.py")]


def test_test_failures_one_per_failing_test(world: WorldModel) -> None:
    checker = ConsistencyChecker()
    exp = checker.expect(TASK, RUN, world)
    report = TestReport(
        passed=1,
        failed=1,
        errors=1,
        failures=(
            TestFailure(
                test_id="tests/test_m.py::test_f",
                category=FailureCategory.ASSERTION,
                message="assert 2 == 1",
            ),
            TestFailure(test_id="tests/test_x.py", category=FailureCategory.COLLECTION),
        ),
    )
    out = checker.check(exp, world, report)
    assert kinds(out) == [
        (ViolationKind.TEST_FAILURE, "tests/test_m.py"),
        (ViolationKind.TEST_FAILURE, "tests/test_x.py"),
    ]
    assert out[0].message == "tests/test_m.py::test_f [assertion]: assert 2 == 1"
    assert out[1].message == "tests/test_x.py [collection]"


@pytest.mark.parametrize(
    ("report", "text"),
    [
        (TestReport(timed_out=True), "timed out"),
        (TestReport(), "no test ran"),
        (TestReport(passed=2, failed=1), "1 failed"),
    ],
)
def test_test_failure_without_details(world: WorldModel, report: TestReport, text: str) -> None:
    checker = ConsistencyChecker()
    exp = checker.expect(TASK, RUN, world)
    out = checker.check(exp, world, report)
    assert [v.kind for v in out] == [ViolationKind.TEST_FAILURE]
    assert text in out[0].message


def test_expectation_is_frozen(world: WorldModel) -> None:
    exp = ConsistencyChecker().expect(TASK, WRITE, world)
    with pytest.raises(AttributeError):
        exp.task_id = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        exp.before["pkg/m.py"] = "x"  # type: ignore[index]
    assert exp.allows("pkg/m.py") and not exp.allows("pkg/__init__.py")
