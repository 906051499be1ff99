from pathlib import Path

import pytest

from coditect.agents.base import AgentContext, Upstream
from coditect.agents.codejob import build_job, is_test_path, write_atomic
from coditect.domain.actions import Action, ActionKind
from coditect.domain.results import CodeChange, FileEdit
from coditect.domain.tasks import Intent, TaskSpec
from coditect.errors import AgentError

SOURCES = ("calculator/__init__.py", "calculator/arithmetic.py", "calculator/stats.py")


def ctx(ws: Path, request: str, *, intent=Intent.WRITE_CODE, write=(), read=SOURCES, upstream=None):
    return AgentContext(
        mission_id="m",
        request=request,
        task=TaskSpec(id="t", intent=intent, description=request),
        action=Action(
            intent=intent, kind=ActionKind.WRITE_FILES, read_files=read, write_files=write
        ),
        workspace=ws,
        model=None,  # type: ignore[arg-type]
        sandbox=None,  # type: ignore[arg-type]
        upstream=upstream or Upstream(),
    )


def test_is_test_path():
    assert is_test_path("tests/helpers.py") and is_test_path("pkg/test_x.py")
    assert is_test_path("x_test.py") and is_test_path("conftest.py")
    assert not is_test_path("calculator/stats.py")


@pytest.mark.parametrize(
    ("request_text", "expected"),
    [
        ("Refactor value_range in calculator/stats.py", "calculator/stats.py"),  # a named path
        ("Fix the bug in median", "calculator/stats.py"),  # a function the module defines
        ("Add a function to reverse a string", "calculator/arithmetic.py"),  # first plain module
    ],
)
def test_code_target_without_write_files(calc, request_text, expected):
    job = build_job(ctx(calc, request_text))
    assert job.path == expected and not job.is_tests
    assert job.original == (calc / expected).read_text()


def test_code_target_from_write_files_and_new_file(calc):
    job = build_job(ctx(calc, "Add a module", write=("calculator/geometry.py",)))
    assert job.path == "calculator/geometry.py" and job.original is None
    assert job.self_module == "calculator.geometry"


def test_no_code_target_at_all(tmp_path):
    with pytest.raises(AgentError, match="no source file"):
        build_job(ctx(tmp_path, "Add x", read=()))


def test_tests_job_from_upstream_code_change(calc):
    edit = FileEdit(path="calculator/stats.py", after_sha256="x", replaced_symbols=("median",))
    up = Upstream(code=(CodeChange(edits=(edit,)),))
    job = build_job(ctx(calc, "Fix median", intent=Intent.WRITE_TESTS, upstream=up))
    assert job.path == "tests/test_stats.py" and job.is_tests
    assert job.subject_names == ("median",)
    assert job.import_line == "from calculator.stats import median"
    assert job.subject_text.startswith("def median(values):")


def test_tests_job_from_words_of_the_request(calc):
    job = build_job(
        ctx(
            calc,
            "Add a test for the value_range function",
            intent=Intent.WRITE_TESTS,
            write=("tests/test_stats.py",),
        )
    )
    assert job.subject_path == "calculator/stats.py" and job.subject_names == ("value_range",)


def test_tests_job_from_the_test_file_name(calc):
    job = build_job(
        ctx(calc, "Add more tests", intent=Intent.WRITE_TESTS, write=("tests/test_arithmetic.py",))
    )
    assert job.subject_path == "calculator/arithmetic.py"
    assert job.subject_names == ("add", "subtract", "multiply", "divide")


def test_tests_job_without_anything_to_test(tmp_path):
    with pytest.raises(AgentError, match="no test file"):
        build_job(ctx(tmp_path, "Add tests", intent=Intent.WRITE_TESTS, read=()))


def test_write_atomic_creates_folders_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "a" / "b.py"
    write_atomic(target, "x = 1\n")
    write_atomic(target, "x = 2\n")
    assert target.read_text() == "x = 2\n"
    assert [p.name for p in target.parent.iterdir()] == ["b.py"]


def test_a_method_under_test_is_imported_through_its_class(calc):
    (calc / "calculator/cache.py").write_text(
        "class Cache:\n    def get(self, k):\n        return k\n\n    def peek(self, k):\n"
        "        return k\n"
    )
    edit = FileEdit(
        path="calculator/cache.py", after_sha256="x", added_symbols=("Cache.peek", "Cache.get")
    )
    up = Upstream(code=(CodeChange(edits=(edit,)),))
    job = build_job(ctx(calc, "Add Cache.peek", intent=Intent.WRITE_TESTS, upstream=up))
    assert job.subject_names == ("Cache.peek", "Cache.get")
    assert job.import_line == "from calculator.cache import Cache"


def test_new_names_are_the_missing_names_the_request_calls():
    from coditect.agents.codejob import _new_names

    request = "Add tlru_cache(maxsize=128, ttu=...) like ttl_cache; f(a=1) and f(b=2) hit it."
    assert _new_names(request, ("tlru_cache", "f", "ttu")) == ("tlru_cache",)
    # A method called on an object is not a new top-level name the request asks for.
    assert _new_names("cache.peek_all() should work", ("peek_all",)) == ()
    assert _new_names("add last_true (iterable)", ("last_true",)) == ("last_true",)


MODULE = """class Result:
    def __init__(self, fixed, spans):
        self.fixed = fixed


class Other:
    def __init__(self):
        pass

    def findall(self, s):
        return []


def outer(s):
    return inner(s)


def inner(s):
    return s[0]


def search(s, case_sensitive=False):
    return Result(s, ())


def findall(s, case_sensitive=False):
    return [Result(s, ())]
"""
# pytest's long traceback of a test that calls outer(""), as its JUnit XML holds it.
TRACEBACK = """def test_it():
>       assert outer("") == ""

tests/test_it.py:5:
_ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _
pkg/mod.py:15: in outer
    return inner(s)
_ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _

s = ''

    def inner(s):
>       return s[0]
E       IndexError: string index out of range

pkg/mod.py:19: IndexError"""


def _failing(ws: Path, request: str, *failures):
    from coditect.domain.results import FailureCategory, TestFailure, TestReport

    (ws / "pkg").mkdir()
    (ws / "pkg/__init__.py").write_text("")
    (ws / "pkg/mod.py").write_text(MODULE)
    report = TestReport(
        passed=0,
        failed=len(failures),
        failures=tuple(
            TestFailure(
                test_id=f"tests/test_it.py::t{i}",
                category=FailureCategory.ASSERTION,
                message=m,
                detail=d,
            )
            for i, (m, d) in enumerate(failures)
        ),
    )
    return build_job(
        ctx(
            ws,
            request,
            write=("pkg/mod.py",),
            read=("pkg/mod.py",),
            upstream=Upstream(tests=report),
        )
    )


def test_the_definitions_a_traceback_passes_through_come_first_deepest_first(tmp_path):
    job = _failing(tmp_path, "Fix search", ("IndexError: string index out of range", TRACEBACK))
    assert job.focus[:2] == ("inner", "outer")
    assert "search" in job.focus


def test_names_a_failure_message_mentions_do_not_take_the_focus(tmp_path):
    # the test built a Result wrongly: its message names Result.__init__, which is no evidence
    message = (
        "TypeError: Result.__init__() missing 1 required positional argument: 'spans' "
        "(did you mean Other.findall()?)"
    )
    detail = '>       assert list(findall("X1 x2")) == [Result(1)]\nE       ' + message
    job = _failing(tmp_path, "search() and findall() ignore case_sensitive=True", (message, detail))
    assert set(job.focus[:2]) == {"search", "findall"}
    assert "Other.__init__" not in job.focus and "Other.findall" not in job.focus
