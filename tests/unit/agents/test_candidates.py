"""Candidates checked in a real sandbox process, chosen by agreement (scripted models)."""

from dataclasses import replace
from pathlib import Path

import pytest

from coditect.agents.base import AgentContext, Clock, Upstream
from coditect.agents.candidates import (
    CandidateSettings,
    CheckCode,
    checks_for,
    selection_note,
    test_files_of,
)
from coditect.agents.candidates import (
    run_checks as run_checks_why,
)
from coditect.agents.coder import CoderAgent
from coditect.agents.selection import Check
from coditect.domain.actions import Action, ActionKind
from coditect.domain.results import CodeChange, FailureCategory, FileEdit, TestFailure, TestReport
from coditect.domain.tasks import Intent, TaskSpec
from coditect.errors import AgentError
from coditect.llm.base import ModelResponse, Usage
from coditect.llm.testing import ScriptedModel
from coditect.sandbox.subprocess import SubprocessSandbox
from coditect.sandbox.wasm import WasmSandbox

STUB = '''def add_even(lst):
    """Sum the even elements of lst.

    >>> add_even([1, 2, 3, 4])
    6
    add_even([]) == 0
    """
    pass
'''
RIGHT = "def add_even(lst):\n    return sum(x for x in lst if x % 2 == 0)\n"
WRONG = "def add_even(lst):\n    return sum(lst)\n"  # passes add_even([]) == 0 only
LOOP = "def add_even(lst):\n    while True:\n        pass\n"
REQUEST = "Implement the function `add_even` in solution.py so that it does what its docstring says"


async def run_checks(*args, **kwargs):
    """:func:`run_checks_why` as passed (True) or not (False)."""
    rows = await run_checks_why(*args, **kwargs)
    return None if rows is None else [[x is True for x in row] for row in rows]


def fenced(code: str) -> str:
    return f"```python\n{code}```"


def workspace(tmp_path: Path, source: str = STUB) -> Path:
    (tmp_path / "solution.py").write_text(source)
    return tmp_path


def make_ctx(ws: Path, model, *, upstream=None, feedback=""):
    return AgentContext(
        mission_id="m",
        request=REQUEST,
        task=TaskSpec(id="code", intent=Intent.WRITE_CODE, description=REQUEST, feedback=feedback),
        action=Action(
            intent=Intent.WRITE_CODE,
            kind=ActionKind.WRITE_FILES,
            write_files=("solution.py",),
            read_files=("solution.py",),
        ),
        workspace=ws,
        model=model,
        sandbox=SubprocessSandbox(),
        upstream=upstream or Upstream(),
    )


async def test_every_candidate_runs_every_check_in_one_process(tmp_path):
    ws = workspace(tmp_path)
    checks = checks_for(module="solution", source=STUB, names=["add_even"])
    assert [c.check.name for c in checks] == ["add_even([1, 2, 3, 4]) == 6", "add_even([]) == 0"]
    results = await run_checks(
        SubprocessSandbox(),
        ws,
        module="solution",
        path="solution.py",
        candidates=[RIGHT, WRONG, LOOP, "def add_even(:\n"],
        checks=checks,
        check_timeout_s=0.5,
    )
    assert results == [[True, True], [False, True], [False, False], [False, False]]


@pytest.mark.skipif(not WasmSandbox.available(), reason="wasmtime not installed")
async def test_an_endless_loop_stops_at_its_check_limit_in_the_webassembly_sandbox(tmp_path):
    # WASI has no signals, so no alarm: a looping candidate held the whole batch until the
    # task timed out (cachetools: a changed popitem that frees nothing made the unchanged
    # eviction loop endless). Its loops are watched instead; the batch ends with evidence.
    evict = (
        "class Cache:\n    def __init__(self):\n        self.items = [1, 2, 3]\n"
        "    def shrink(self):\n        while len(self.items) > 1:\n            self.pop()\n"
        "        return self\n"
    )
    right = evict + "    def pop(self):\n        self.items.pop()\n"
    frees_nothing = evict + "    def pop(self):\n        try:\n            x = 1 / 0\n"
    frees_nothing += "        except BaseException:\n            pass\n"
    ws = workspace(tmp_path, source=right)
    check = CheckCode(
        Check(name="shrinks"), "from solution import Cache\nassert Cache().shrink().items == [1]\n"
    )
    results = await run_checks(
        WasmSandbox(),
        ws,
        module="solution",
        path="solution.py",
        candidates=[frees_nothing, right, LOOP],
        checks=[check],
        check_timeout_s=1.0,
    )
    assert results == [[False], [True], [False]]  # LOOP defines no Cache


def sandbox_of(backend: str):
    if backend == "subprocess":
        return SubprocessSandbox()
    if not WasmSandbox.available():
        pytest.skip("wasmtime not installed")
    return WasmSandbox()


@pytest.mark.parametrize("backend", ["subprocess", "wasm"])
async def test_every_loop_of_a_check_past_its_limit_stops(tmp_path, backend):
    # A project-test check runs many tests: pytest catches the first stop as a failure and
    # goes on to the next test, whose loop must stop too.
    sandbox = sandbox_of(backend)
    ws = workspace(tmp_path)
    code = (
        "from solution import add_even\n"
        "for _ in range(3):\n"
        "    try:\n        add_even([])\n    except BaseException:\n        pass\n"
    )
    results = await run_checks(
        sandbox,
        ws,
        module="solution",
        path="solution.py",
        candidates=[LOOP, RIGHT],
        checks=[CheckCode(Check(name="three tests"), code)],
        check_timeout_s=0.5,
    )
    assert results == [[True], [True]]  # the check swallowed the stops: it ended, in time


@pytest.mark.parametrize("backend", ["subprocess", "wasm"])
async def test_a_check_the_projects_code_passes_at_once_is_limited_by_its_time(tmp_path, backend):
    # A project test's check may take a minute; when the project's own code (the last
    # candidate) passes it at once, a candidate that spins for 3 s on it is stopped long before.
    sandbox = sandbox_of(backend)
    ws = workspace(tmp_path)
    spins = (
        "import time\n\n\ndef add_even(lst):\n    end = time.monotonic() + 3\n"
        "    while time.monotonic() < end:\n        pass\n"
        "    return sum(x for x in lst if x % 2 == 0)\n"
    )
    check = CheckCode(
        Check(name="tests/test_x.py::test_add_even", existing=True),
        "from solution import add_even\nassert add_even([2, 3]) == 2\n",
        timeout_s=60.0,
    )
    runs = {
        reference: await run_checks(
            sandbox,
            ws,
            module="solution",
            path="solution.py",
            candidates=[spins, RIGHT],
            checks=[check],
            check_timeout_s=1.0,
            reference=reference,
        )
        for reference in (True, False)
    }
    assert runs == {True: [[False], [True]], False: [[True], [True]]}


async def test_candidates_of_a_package_in_a_src_layout_import_their_siblings(tmp_path):
    # A package's __init__ with relative imports, under src/: every check failed before
    # (the candidate itself could not be imported), so no evidence told candidates apart.
    from coditect.agents.candidates import CheckCode
    from coditect.agents.selection import Check

    pkg = tmp_path / "src" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "helpers.py").write_text("def twice(x):\n    return 2 * x\n")
    (pkg / "consts.py").write_text("N = 2\n")
    init = "from .helpers import twice\n\n\ndef quad(x):\n    return twice(twice(x))\n"
    (pkg / "__init__.py").write_text(init)
    check = CheckCode(Check(name="quad(1) == 4"), "from pkg import quad\nassert quad(1) == 4\n")
    results = await run_checks(
        SubprocessSandbox(),
        tmp_path,
        module="pkg",
        path="src/pkg/__init__.py",
        candidates=[init, init.replace("twice(twice(x))", "twice(x)")],
        checks=[check],
    )
    assert results == [[True], [False]]
    sibling = CheckCode(
        Check(name="twice(2) == 4"), "from pkg.helpers import twice\nassert twice(2) == 4\n"
    )
    results = await run_checks(
        SubprocessSandbox(),
        tmp_path,
        module="pkg.helpers",
        path="src/pkg/helpers.py",
        # The package's __init__ imports this very module: the real one is imported first.
        candidates=["from .consts import N\n\n\ndef twice(x):\n    return N * x\n"],
        checks=[sibling],
    )
    assert results == [[True]]


async def test_a_wrong_first_answer_that_fails_docstring_examples_is_not_chosen(tmp_path):
    ws = workspace(tmp_path)
    model = ScriptedModel([fenced(WRONG), fenced(WRONG), fenced(RIGHT), fenced(WRONG)])
    coder = CoderAgent(candidates=CandidateSettings(n=4, temperature=0.7))
    change = await coder.execute(make_ctx(ws, model))
    assert "return sum(x for x in lst if x % 2 == 0)" in (ws / "solution.py").read_text()
    assert "candidate 3 of 4 chosen" in change.summary
    # Same prompt for every sample (llama.cpp reuses its processed prefix), distinct seeds.
    first_messages = model.calls[0][0]
    assert all(call[0] == first_messages for call in model.calls)
    samples = [call[1] for call in model.calls[1:]]
    assert {s.temperature for s in samples} == {0.7}
    assert len({s.seed for s in samples}) == 3
    assert model.calls[0][1].temperature == 0.0


async def test_a_first_answer_that_passes_the_examples_costs_one_call(tmp_path):
    ws = workspace(tmp_path)
    model = ScriptedModel([fenced(RIGHT)])
    change = await CoderAgent(candidates=CandidateSettings(n=4)).execute(make_ctx(ws, model))
    assert len(model.calls) == 1
    assert "candidate 1 of 1 chosen (agreed by 1, passes 2/2 checks)" in change.summary


async def test_one_candidate_setting_never_samples(tmp_path):
    ws = workspace(tmp_path)
    model = ScriptedModel([fenced(WRONG)])
    change = await CoderAgent(candidates=CandidateSettings(n=1)).execute(make_ctx(ws, model))
    assert len(model.calls) == 1
    assert "fails the user's examples" in change.summary


async def test_sampling_stops_when_the_model_repeats_itself(tmp_path):
    # Greedy sampling (or a model sure of its answer) gives the same answer again and again:
    # after two repeats in a row no more are asked for (in each round: the round told which
    # examples fail stops the same way).
    ws = workspace(tmp_path)
    model = ScriptedModel([fenced(WRONG)] * 8)
    change = await CoderAgent(candidates=CandidateSettings(n=6)).execute(make_ctx(ws, model))
    assert len(model.calls) == 5  # the first answer and two repeats of it, then two more
    assert "fails the user's examples" in change.summary


async def test_a_new_answer_after_a_repeat_keeps_sampling(tmp_path):
    ws = workspace(tmp_path)
    other = "def add_even(lst):\n    return 0\n"
    model = ScriptedModel([fenced(WRONG), fenced(WRONG), fenced(other), fenced(RIGHT)])
    change = await CoderAgent(candidates=CandidateSettings(n=4)).execute(make_ctx(ws, model))
    assert len(model.calls) == 4
    assert (ws / "solution.py").read_text().count("x % 2 == 0") == 1
    assert "candidate 4 of 4 chosen" in change.summary


WRONG_TEST = (
    "from solution import add_even\n\n\n"
    "def test_add_even():\n    assert add_even([2, 2]) == 5\n\n\n"
    "def test_add_even_empty():\n    assert add_even([]) == 0\n"
)


def failure_at(test_id: str) -> TestFailure:
    return TestFailure(test_id=test_id, category=FailureCategory.ASSERTION, message="x")


def failing_report() -> TestReport:
    return TestReport(
        passed=1,
        failed=1,
        failures=(
            TestFailure(
                test_id="tests/test_solution.py::test_add_even",
                category=FailureCategory.ASSERTION,
                message="assert 4 == 5",
            ),
        ),
    )


def written(path: str) -> CodeChange:
    """An earlier task of the mission changed ``path``."""
    return CodeChange(edits=(FileEdit(path=path, after_sha256="x"),))


async def test_the_projects_own_code_is_never_kept_against_a_reproduction(tmp_path):
    # The first code task of a bug fix: the reproduction test fails on the code as the project
    # has it. An answer that repeats it is no fix, and the old code is no candidate, even when
    # every answer fails the (here wrong) test.
    buggy = STUB.replace("    pass\n", "    return sum(lst)\n")
    ws = workspace(tmp_path, buggy)
    (ws / "tests").mkdir()
    (ws / "tests/test_solution.py").write_text(WRONG_TEST)
    other = "def add_even(lst):\n    return sum(x for x in lst if not x % 2)\n"
    model = ScriptedModel([fenced(buggy), fenced(RIGHT), *[fenced(other)] * 3])
    upstream = Upstream(code=(written("tests/test_solution.py"),), tests=failing_report())
    change = await CoderAgent(candidates=CandidateSettings(n=4)).execute(
        make_ctx(ws, model, upstream=upstream)
    )
    assert "same as the current add_even" in model.calls[1][0][-1].content
    assert change.edits and "the current code is kept" not in change.summary
    assert "return sum(lst)" not in (ws / "solution.py").read_text()


async def test_repair_keeps_the_right_code_when_the_model_defends_it(tmp_path):
    ws = workspace(
        tmp_path, STUB.replace("    pass\n", "    return sum(x for x in lst if x % 2 == 0)\n")
    )
    (ws / "tests").mkdir()
    (ws / "tests/test_solution.py").write_text(WRONG_TEST)
    before = (ws / "solution.py").read_text()
    # The model answers with the code unchanged; the samples that "fix" it to pass the wrong
    # test break the docstring example instead.
    defended = fenced(before)
    bent = "def add_even(lst):\n    return sum(lst) + 1\n"
    model = ScriptedModel([defended, fenced(bent), defended, defended])
    upstream = Upstream(code=(written("solution.py"),), tests=failing_report())
    change = await CoderAgent(candidates=CandidateSettings(n=4)).execute(
        make_ctx(ws, model, upstream=upstream, feedback="1 failed")
    )
    assert change.edits == ()
    assert "the current code is kept" in change.summary
    assert "suspect tests: tests/test_solution.py::test_add_even" in change.summary
    assert (ws / "solution.py").read_text() == before


def test_test_files_of_failures(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests/test_solution.py").write_text(WRONG_TEST)
    report = failing_report()
    assert test_files_of(report, tmp_path) == ["tests/test_solution.py"]
    assert test_files_of(None, tmp_path) == []
    rooted = TestReport(failed=1, failures=(failure_at("test_solution.py::test_add_even"),))
    assert test_files_of(rooted, tmp_path) == ["tests/test_solution.py"]
    checks = checks_for(
        module="solution",
        source=STUB,
        names=["add_even"],
        test_files=[("tests/test_solution.py", WRONG_TEST)],
    )
    assert [c.check.example for c in checks] == [True, True, False, False]
    assert selection_note(None, 3) == ""


def write_tests_ctx(ws: Path, model, edit: FileEdit) -> AgentContext:
    return AgentContext(
        mission_id="m",
        request=REQUEST,
        task=TaskSpec(id="tests", intent=Intent.WRITE_TESTS, description=REQUEST),
        action=Action(
            intent=Intent.WRITE_TESTS,
            kind=ActionKind.WRITE_FILES,
            write_files=("tests/test_solution.py",),
            read_files=("solution.py",),
        ),
        workspace=ws,
        model=model,
        sandbox=SubprocessSandbox(),
        upstream=Upstream(code=(CodeChange(edits=(edit,)),)),
    )


async def test_the_examples_test_comes_from_the_users_docstrings_only(tmp_path):
    ws = workspace(tmp_path, STUB.replace("    pass\n", "    return 6\n"))
    answer = fenced(
        "from solution import add_even\n\n\ndef test_one():\n    assert add_even([6]) == 6\n"
    )
    replaced = FileEdit(path="solution.py", after_sha256="x", replaced_symbols=("add_even",))
    await CoderAgent().execute(write_tests_ctx(ws, ScriptedModel([answer]), replaced))
    written = (ws / "tests/test_solution.py").read_text()
    assert "def test_add_even_docstring_examples():" in written
    assert "assert add_even([1, 2, 3, 4]) == 6" in written
    # A function this mission added has the model's docstring: its examples are not evidence.
    (ws / "tests/test_solution.py").unlink()
    added = FileEdit(path="solution.py", after_sha256="x", added_symbols=("add_even",))
    await CoderAgent().execute(write_tests_ctx(ws, ScriptedModel([answer]), added))
    assert "docstring_examples" not in (ws / "tests/test_solution.py").read_text()


async def test_a_test_repair_answer_identical_to_the_tests_keeps_them(tmp_path):
    ws = workspace(tmp_path, "def add_even(lst):\n    return 4\n")  # no examples to add
    (ws / "tests").mkdir()
    (ws / "tests/test_solution.py").write_text(WRONG_TEST)
    ctx = AgentContext(
        mission_id="m",
        request=REQUEST,
        task=TaskSpec(
            id="repair2",
            intent=Intent.WRITE_TESTS,
            description="Fix the tests",
            feedback="1 failed",
            target_files=("tests/test_solution.py",),
        ),
        action=Action(
            intent=Intent.WRITE_TESTS,
            kind=ActionKind.WRITE_FILES,
            write_files=("tests/test_solution.py",),
            read_files=("solution.py", "tests/test_solution.py"),
        ),
        workspace=ws,
        model=ScriptedModel([fenced(WRONG_TEST.split("\n\n\n", 1)[1])]),
        sandbox=SubprocessSandbox(),
        upstream=Upstream(code=(written("tests/test_solution.py"),), tests=failing_report()),
    )
    change = await CoderAgent().execute(ctx)
    assert change.edits == () and "keeps these tests" in change.summary
    assert (ws / "tests/test_solution.py").read_text() == WRONG_TEST


async def test_a_new_function_is_chosen_by_the_examples_in_the_request(tmp_path):
    # inflection-foreign-key: the first answer forgets the "id" when the flag is False.
    import dataclasses

    ws = workspace(tmp_path, "def underscore(word):\n    return word.lower()\n")
    wrong = (
        "def foreign_key(name, separate=True):\n"
        "    return underscore(name) + ('_id' if separate else '')\n"
    )
    right = (
        "def foreign_key(name, separate=True):\n"
        "    return underscore(name) + ('_id' if separate else 'id')\n"
    )
    model = ScriptedModel([fenced(wrong), fenced(wrong), fenced(right), fenced(wrong)])
    request = (
        'Add foreign_key(name, separate=True): foreign_key("Message") == "message_id", and '
        'without the underscore foreign_key("Message", False) == "messageid".'
    )
    ctx = dataclasses.replace(make_ctx(ws, model), request=request)
    coder = CoderAgent(candidates=CandidateSettings(n=4, temperature=0.7))
    change = await coder.execute(ctx)
    assert "else 'id')" in (ws / "solution.py").read_text()
    assert "candidate 3 of 4 chosen" in change.summary


CORE = "def double(x):\n    return 2 * x\n"
CORE_TESTS = (
    "from pkg import double\n\n\ndef test_double():\n    assert double(2) == 4\n\n\n"
    "class TestMore:\n    def test_zero(self):\n        assert double(0) == 0\n\n\n"
    "def test_other():\n    assert True\n"
)


def package(tmp_path: Path) -> Path:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg/__init__.py").write_text("from .core import double\n")
    (tmp_path / "pkg/core.py").write_text(CORE)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests/test_core.py").write_text(CORE_TESTS)
    return tmp_path


def package_ctx(ws: Path, model) -> AgentContext:
    """A code task on pkg/core.py whose project lists tests/test_core.py."""
    return AgentContext(
        mission_id="m",
        request="Write double without the literal 2 * x",
        task=TaskSpec(id="code", intent=Intent.WRITE_CODE, description="double"),
        action=Action(
            intent=Intent.WRITE_CODE,
            kind=ActionKind.WRITE_FILES,
            write_files=("pkg/core.py",),
            read_files=("pkg/core.py",),
            project_tests=("tests/test_core.py",),
        ),
        workspace=ws,
        model=model,
        sandbox=SubprocessSandbox(),
        upstream=Upstream(),
    )


async def test_the_projects_tests_of_the_changed_code_are_checks(tmp_path):
    from coditect.agents.candidates import existing_test_checks

    ws = package(tmp_path)
    checks = existing_test_checks(ws, ["tests/test_core.py"], ["double"], module="pkg.core")
    assert [c.check.name for c in checks] == ["tests/test_core.py::test_double and 1 more"]
    assert checks[0].check.existing and checks[0].check.authoritative
    assert existing_test_checks(ws, ["tests/test_core.py"], ["triple"], module="pkg.core") == []
    skipped = existing_test_checks(
        ws, ["tests/test_core.py"], ["double"], module="pkg.core", skip={"test_double"}
    )
    assert [c.check.name for c in skipped] == ["tests/test_core.py::test_zero"]
    # The package re-exports the module's function: the tests reach each candidate through it.
    results = await run_checks(
        SubprocessSandbox(),
        ws,
        module="pkg.core",
        path="pkg/core.py",
        candidates=[CORE, "def double(x):\n    return x\n", CORE],
        checks=checks,
    )
    assert results == [[True], [False], [True]]


async def test_a_candidate_that_breaks_the_projects_tests_is_not_chosen(tmp_path):
    ws = package(tmp_path)
    breaks = "def double(x):\n    return x + x if x else 1\n"
    keeps = "def double(x):\n    return x * 2\n"
    model = ScriptedModel([fenced(breaks), fenced(keeps)])
    ctx = package_ctx(ws, model)
    change = await CoderAgent(candidates=CandidateSettings(n=2)).execute(ctx)
    assert "return x * 2" in (ws / "pkg/core.py").read_text()
    assert "candidate 2 of 2 chosen" in change.summary


def test_the_tests_of_a_changed_helpers_callers_run_after_its_own(tmp_path):
    from coditect.agents.candidates import callers_of, existing_test_checks

    source = (
        "class _Unbound:\n    def __init__(self):\n        self.size = None\n\n\n"
        "def ttl_cache():\n    return _Unbound()\n\n\ndef other():\n    return 1\n"
    )
    assert callers_of(source, ["_Unbound.__init__"]) == ["ttl_cache"]
    assert callers_of(source, ["other"]) == []
    assert callers_of("def broken(:\n", ["x"]) == []
    (tmp_path / "test_x.py").write_text(
        "def test_cache():\n    ttl_cache()\n\n\ndef test_unbound():\n    _Unbound()\n"
    )
    checks = existing_test_checks(
        tmp_path, ["test_x.py"], ["_Unbound.__init__"], module="x", callers=["ttl_cache"]
    )
    assert checks[0].check.name == "test_x.py::test_unbound and 1 more"
    assert "['test_x.py::test_unbound', 'test_x.py::test_cache']" in checks[0].code


def test_a_repair_checks_the_missions_earlier_change_with_the_projects_tests(tmp_path):
    # The code task replaced double; a repair candidate that keeps it as it is changes
    # nothing itself, and must still pass the project's tests of double.
    from coditect.agents.codejob import build_job
    from coditect.agents.coder import _project_test_checks

    ws = package(tmp_path)
    ctx = package_ctx(ws, ScriptedModel([]))
    assert _project_test_checks(ctx, build_job(ctx), [None]) == []
    edit = FileEdit(path="pkg/core.py", after_sha256="x", replaced_symbols=("double",))
    ctx = replace(ctx, upstream=Upstream(code=(CodeChange(edits=(edit,)),)))
    checks = _project_test_checks(ctx, build_job(ctx), [None])
    assert [c.check.name for c in checks] == ["tests/test_core.py::test_double and 1 more"]


def test_a_fast_suite_checks_candidates_with_every_related_test_file(tmp_path):
    from coditect.agents.candidates import existing_test_checks

    files = []
    for i, n in enumerate((2, 3, 30)):
        rel = f"test_{i}.py"
        (tmp_path / rel).write_text(
            "".join(f"def test_{i}_{j}():\n    search()\n\n\n" for j in range(n))
        )
        files.append(rel)
    few = existing_test_checks(tmp_path, files, ["search"], module="m")
    # By default: the two files with the most related tests, 24 tests of each.
    assert [c.check.name.partition("::")[0] for c in few] == ["test_2.py", "test_1.py"]
    assert "test_2_23'" in few[0].code and "test_2_24'" not in few[0].code
    every = existing_test_checks(tmp_path, files, ["search"], module="m", every_file=True)
    assert [c.check.name.partition("::")[0] for c in every] == [
        "test_2.py",
        "test_1.py",
        "test_0.py",
    ]
    assert "test_2_29'" in every[0].code


def test_a_test_parametrized_from_a_table_tests_what_the_table_holds(tmp_path):
    # isodate: @pytest.mark.parametrize("start, duration, expectation", DATE_CALC_TEST_CASES)
    # over rows of Duration(...) values; the test's body only adds them.
    from coditect.agents.candidates import existing_test_checks

    (tmp_path / "test_d.py").write_text(
        "import pytest\n\nROWS = [(1, Duration(2))]\nALL = ROWS + [(2, 3)]\n\n\n"
        "@pytest.mark.parametrize('start, d', ALL)\ndef test_add(start, d):\n"
        "    assert start + d\n\n\n"
        "@pytest.mark.parametrize('a', [1])\ndef test_plain(a):\n    assert a\n"
    )
    checks = existing_test_checks(
        tmp_path, ["test_d.py"], ["days_in"], module="d", callers=["Duration"]
    )
    assert "['test_d.py::test_add']" in checks[0].code


async def test_a_project_test_that_fails_before_the_change_is_no_check(tmp_path):
    ws = package(tmp_path)
    (ws / "tests/test_core.py").write_text(
        CORE_TESTS + "\n\ndef test_broken_already():\n    assert double(1) == 3\n"
    )
    model = ScriptedModel([fenced("def double(x):\n    return x * 2\n")])
    ctx = package_ctx(ws, model)
    change = await CoderAgent(candidates=CandidateSettings(n=4)).execute(ctx)
    # The file's check fails on the unchanged code too: it is left out, so the first answer
    # is not sent back for more samples because of it.
    assert len(model.calls) == 1
    assert "breaks" not in change.summary


def test_tests_failing_in_the_baseline_are_not_run(tmp_path):
    from coditect.agents.candidates import existing_test_checks

    ws = package(tmp_path)
    checks = existing_test_checks(
        ws,
        ["tests/test_core.py"],
        ["double"],
        module="pkg.core",
        failing={"test_core.py::test_double[1]"},  # the run's root was tests/
    )
    assert [c.check.name for c in checks] == ["tests/test_core.py::test_zero"]


async def test_two_repair_rounds_sample_with_different_seeds(tmp_path):
    seeds = []
    for task_id in ("repair1", "repair2"):
        (tmp_path / task_id).mkdir()
        ws = workspace(tmp_path / task_id)
        model = ScriptedModel([fenced(WRONG)] * 5)  # sampled, then told which examples fail
        ctx = make_ctx(ws, model)
        ctx = replace(ctx, task=ctx.task.model_copy(update={"id": task_id}))
        await CoderAgent(candidates=CandidateSettings(n=3)).execute(ctx)
        seeds.append({s.seed for _, s in model.calls[1:]})
    assert seeds[0] and seeds[1] and not seeds[0] & seeds[1]


async def test_a_change_that_breaks_the_projects_tests_is_asked_for_again(tmp_path):
    ws = package(tmp_path)
    breaks = "def double(x):\n    return x + x if x else 1\n"
    keeps = "def double(x):\n    return x * 2\n"
    model = ScriptedModel([fenced(breaks), fenced(keeps)])
    ctx = package_ctx(ws, model)
    change = await CoderAgent(candidates=CandidateSettings(n=1)).execute(ctx)
    told = model.calls[1][0][-1].content
    assert "breaks tests of the project that passed before: tests/test_core.py::test_double" in told
    assert change.generations == 2 and "return x * 2" in (ws / "pkg/core.py").read_text()


def test_a_test_class_that_names_the_code_in_its_body_runs_whole(tmp_path):
    # cachetools: TTLDecoratorTest(DecoratorTestMixin, TestCase) sets DECORATOR = ttl_cache and
    # inherits every test method from the mixin.
    from coditect.agents.candidates import existing_test_checks

    (tmp_path / "test_func.py").write_text(
        "import unittest\n\n\nclass Mixin:\n    def test_decorator(self):\n"
        "        self.DECORATOR()\n\n\n"
        "class TTLTest(Mixin, unittest.TestCase):\n    DECORATOR = staticmethod(ttl_cache)\n\n"
        "    def test_own(self):\n        ttl_cache()\n\n\n"
        "class OtherTest(unittest.TestCase):\n    maxDiff = None\n\n"
        "    def test_other(self):\n        ttl_cache()\n"
    )
    checks = existing_test_checks(tmp_path, ["test_func.py"], ["ttl_cache"], module="func")
    assert "['test_func.py::TTLTest', 'test_func.py::OtherTest::test_other']" in checks[0].code
    # A class this mission added is none of the project's tests; its methods are not either.
    mine = existing_test_checks(
        tmp_path, ["test_func.py"], ["ttl_cache"], module="func", skip={"TTLTest", "test_own"}
    )
    assert "['test_func.py::OtherTest::test_other']" in mine[0].code
    added = existing_test_checks(
        tmp_path, ["test_func.py"], ["ttl_cache"], module="func", skip={"OtherTest.test_other"}
    )
    assert "['test_func.py::TTLTest']" in added[0].code


def slow(text: str, seconds: float) -> ModelResponse:
    """An answer reported as having taken ``seconds``."""
    return ModelResponse(text=text, usage=Usage(), latency_s=seconds, model_name="test:scripted")


async def test_sampling_stops_when_another_answer_would_end_past_the_deadline(tmp_path):
    # The first answer fails an example, so more are sampled; the second took 500 s, and the
    # task has 100 s left: the coder chooses from the two it has instead of being stopped
    # half-way through a third by the task's timeout, which would leave nothing.
    ws = workspace(tmp_path)
    other = "def add_even(lst):\n    return 0\n"
    model = ScriptedModel([slow(fenced(WRONG), 1), slow(fenced(other), 500), fenced(RIGHT)])
    events: list = []

    async def emit(event) -> None:
        events.append(event)

    ctx = replace(make_ctx(ws, model), clock=Clock.within(100), emit=emit)
    change = await CoderAgent(candidates=CandidateSettings(n=4)).execute(ctx)
    assert len(model.calls) == 2
    assert "of 2 chosen" in change.summary
    thoughts = [e.text for e in events if e.type == "agent.think"]
    assert any(
        t.startswith("sampling stopped after 1 of 3 more answers: no time for another answer")
        for t in thoughts
    ), thoughts
    assert ctx.clock.answer_s == 500


async def test_no_time_for_another_generation_ends_the_task_with_why(tmp_path):
    ws = workspace(tmp_path)
    model = ScriptedModel([slow("I would rather not.", 50), fenced(RIGHT)])
    ctx = replace(make_ctx(ws, model), clock=Clock.within(20))
    with pytest.raises(AgentError) as caught:
        await CoderAgent(candidates=CandidateSettings(n=1)).execute(ctx)
    assert len(model.calls) == 1
    message = str(caught.value)
    assert "in 1 generation(s)" in message
    assert "#2: no time for generation 2: " in message and "an answer takes up to 50s" in message
    assert (ws / "solution.py").read_text() == STUB


def test_a_clock_without_a_deadline_always_has_room():
    clock = Clock()
    clock.answered(1e6)
    clock.checked(1e6)
    assert clock.has_room(answers=10) and clock.left_s() == float("inf")
    assert Clock.within(-5).left_s() <= 0 and not Clock.within(-5).has_room()


async def test_answers_that_each_change_one_of_two_functions_are_joined(tmp_path):
    # inflection-spaces: the greedy answer fixes underscore(), a sampled one dasherize(); the
    # request's examples need both.
    import dataclasses

    ws = workspace(
        tmp_path,
        "def dasherize(word):\n    return word.replace('_', '-')\n\n\n"
        "def underscore(word):\n    return word.lower()\n",
    )
    under = "def underscore(word):\n    return word.replace(' ', '_').lower()\n"
    dash = "def dasherize(word):\n    return word.replace('_', '-').replace(' ', '-')\n"
    model = ScriptedModel([fenced(under), fenced(dash), fenced(dash), fenced(dash)])
    request = (
        "dasherize() and underscore() ignore spaces: dasherize('a b') == 'a-b' and "
        "underscore('A B') == 'a_b'."
    )
    events = []

    async def emit(event):
        events.append(event)

    ctx = dataclasses.replace(make_ctx(ws, model), request=request, emit=emit)
    change = await CoderAgent(candidates=CandidateSettings(n=4, temperature=0.7)).execute(ctx)
    text = (ws / "solution.py").read_text()
    assert ".replace(' ', '-')" in text and ".replace(' ', '_')" in text
    # three sampled answers repeat the same dasherize: one joined candidate, the fifth
    assert "candidate 5 of 5 chosen" in change.summary and "passes 2/2" in change.summary
    thoughts = [e.text for e in events if e.type == "agent.think"]
    assert any("candidate 5: candidate 1 with dasherize from candidate 2" in t for t in thoughts)


async def test_no_candidate_passes_the_examples_the_next_round_is_told_what_they_gave(tmp_path):
    # HumanEval/101: four samples split on ", " alone; the round told what that gave on the
    # docstring's example, without the wrong answer in view, is where the right one comes from.
    ws = workspace(tmp_path)
    model = ScriptedModel([fenced(WRONG), fenced(WRONG), fenced(RIGHT)])
    change = await CoderAgent(candidates=CandidateSettings(n=2)).execute(make_ctx(ws, model))
    told = model.calls[2][0]
    assert len(told) == 2 and told[1].content.startswith(model.calls[0][0][1].content)
    assert "add_even([1, 2, 3, 4]) == 6 does not hold: it gave 10" in told[1].content
    assert "sum(lst)" not in told[1].content  # the wrong answer is not shown
    assert "sum(x for x in lst if x % 2 == 0)" in (ws / "solution.py").read_text()
    assert "fails the user's examples" not in change.summary


async def test_no_round_told_what_examples_gave_when_a_candidate_passes_them(tmp_path):
    ws = workspace(tmp_path)
    model = ScriptedModel([fenced(WRONG), fenced(RIGHT)])
    await CoderAgent(candidates=CandidateSettings(n=2)).execute(make_ctx(ws, model))
    assert len(model.calls) == 2


def test_the_examples_feedback_says_what_the_call_gave_or_raised():
    from coditect.agents.prompts import examples_failed_block

    block = examples_failed_block(
        [
            ("f(1) == 2", "AssertionError: gave 3"),
            ("f(0) == 1", "ZeroDivisionError: division by zero"),
            ("f(2) == 4", ""),
        ]
    )
    assert "- f(1) == 2 does not hold: it gave 3\n" in block
    assert "- f(0) == 1 does not hold: it raised ZeroDivisionError: division by zero\n" in block
    assert "- f(2) == 4 does not hold\n" in block
    assert examples_failed_block([]) == ""


async def test_a_repair_round_weighs_the_code_tasks_other_candidates_against_the_new_tests(
    tmp_path,
):
    # HumanEval/119: two samples pass the docstring's examples, the earlier is written; the
    # tests written afterwards agree with the other, but a repair round shows the current code
    # and its answers repeat it. The code task's other candidates are candidates again there.
    positive = "def add_even(lst):\n    return sum(x for x in lst if x % 2 == 0 and x > 0)\n"
    ws = workspace(tmp_path)
    code_model = ScriptedModel([fenced(WRONG), fenced(positive), fenced(RIGHT)])
    code = await CoderAgent(candidates=CandidateSettings(n=3)).execute(make_ctx(ws, code_model))
    assert "x > 0" in (ws / "solution.py").read_text()
    assert [a.code for a in code.alternatives] == [WRONG, RIGHT]
    (ws / "tests").mkdir()
    (ws / "tests/test_solution.py").write_text(
        "from solution import add_even\n\n\ndef test_negative():\n    assert add_even([-2, 1]) == -2\n"
    )
    report = TestReport(
        passed=0, failed=1, failures=(failure_at("tests/test_solution.py::test_negative"),)
    )
    upstream = Upstream(code=(code, written("tests/test_solution.py")), tests=report)
    defended = fenced((ws / "solution.py").read_text())
    repair_model = ScriptedModel([defended])
    change = await CoderAgent(candidates=CandidateSettings(n=3)).execute(
        make_ctx(ws, repair_model, upstream=upstream, feedback="1 failed")
    )
    assert len(repair_model.calls) == 1  # a candidate passes every check: nothing sampled
    assert "x > 0" not in (ws / "solution.py").read_text()
    assert "sum(x for x in lst if x % 2 == 0)" in (ws / "solution.py").read_text()
    assert change.edits and "passes 3/3 checks" in change.summary


async def test_samples_that_gave_the_same_code_are_checked_once_and_count_as_votes(tmp_path):
    ws = workspace(tmp_path)
    other = "def add_even(lst):\n    return 0\n"
    model = ScriptedModel([fenced(WRONG), fenced(other), fenced(other), fenced(RIGHT)])
    events = []

    async def emit(event):
        events.append(event)

    ctx = replace(make_ctx(ws, model), emit=emit)
    change = await CoderAgent(candidates=CandidateSettings(n=4)).execute(ctx)
    runs = [e.detail for e in events if getattr(e, "action", "") == "check_candidates"]
    assert runs[-1].startswith("4 candidate(s) (3 distinct) x 2 check(s)")
    assert "candidate 4 of 4 chosen (agreed by 1, passes 2/2 checks)" in change.summary
