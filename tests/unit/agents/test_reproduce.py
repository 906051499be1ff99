"""The reproduction run before a fix: real pytest runs in the subprocess sandbox."""

from pathlib import Path

import pytest

from coditect.agents.base import AgentContext
from coditect.agents.baseline import BASELINE_PATH, Baseline, Reproduction
from coditect.agents.reproduce import judge_report, reproduce
from coditect.domain.actions import Action, ActionKind
from coditect.domain.agents import Upstream
from coditect.domain.events import AgentThink
from coditect.domain.results import FailureCategory, TestFailure, TestReport
from coditect.domain.tasks import Intent, TaskSpec
from coditect.errors import SandboxError
from coditect.sandbox.subprocess import SubprocessSandbox

CMD = ("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml=.coditect/junit.xml")
CODE = "def slug(text):\n    return text.lower().replace(' ', '--')\n"


def _ctx(root: Path, selection=("tests/test_repro.py",), *, feedback="", events=None):
    async def emit(event):
        if events is not None:
            events.append(event)

    return AgentContext(
        mission_id="m",
        request="slug('A B') returns 'a--b' instead of 'a-b'",
        task=TaskSpec(id="code", intent=Intent.WRITE_CODE, description="fix", feedback=feedback),
        action=Action(
            intent=Intent.WRITE_CODE,
            kind=ActionKind.WRITE_FILES,
            write_files=("slugs.py",),
            command=(*CMD, *selection) if selection else (),
            test_selection=selection,
            timeout_s=120.0,
        ),
        workspace=root,
        model=None,  # type: ignore[arg-type]
        sandbox=SubprocessSandbox(),
        emit=emit,
    )


def _project(root: Path, test: str) -> Path:
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "slugs.py").write_text(CODE)
    (root / "tests").mkdir()
    (root / "tests" / "test_repro.py").write_text(test)
    return root


async def test_a_failing_reproduction_becomes_the_failures_to_fix(tmp_path):
    root = _project(
        tmp_path,
        "from slugs import slug\n\ndef test_space():\n    assert slug('A B') == 'a-b'\n",
    )
    events: list = []
    ctx, note = await reproduce(_ctx(root, events=events), agent="coder")
    assert note.startswith("bug reproduced: ") and "test_space failed on the unchanged code" in note
    report = ctx.upstream.tests
    assert report is not None and report.failed == 1
    assert "'a--b' == 'a-b'" in report.failures[0].message
    assert any(isinstance(e, AgentThink) and e.text == note for e in events)
    assert not (root / ".coditect" / "junit.xml").exists()


async def test_a_passing_reproduction_says_the_report_was_not_understood(tmp_path):
    root = _project(
        tmp_path, "from slugs import slug\n\ndef test_lower():\n    assert slug('AB') == 'ab'\n"
    )
    before = _ctx(root)
    ctx, note = await reproduce(before, agent="coder")
    assert ctx is before and note.startswith("not reproduced")


async def test_a_test_file_that_does_not_load_is_not_used(tmp_path):
    root = _project(tmp_path, "from slugs import nothing_here\n\ndef test_x():\n    pass\n")
    before = _ctx(root)
    ctx, note = await reproduce(before, agent="coder")
    assert ctx is before and "do not run" in note


async def test_a_test_file_that_breaks_tests_that_passed_before_is_not_used(tmp_path):
    # Found on parse: `from parse import parse` added to a file that calls parse.parse(): every
    # existing test of the file failed, and that counted as "bug reproduced".
    old = "import slugs\n\ndef test_old():\n    assert slugs.slug('A') == 'a'\n"
    root = _project(tmp_path, old + "\nfrom slugs import slug as slugs\n")
    (root / ".coditect").mkdir()
    (root / BASELINE_PATH).write_text(
        Baseline(outcomes={"tests.test_repro::test_old": "passed"}).to_json()
    )
    before = _ctx(root)
    ctx, note = await reproduce(before, agent="coder")
    assert ctx is before
    assert "make 1 test(s) that passed before fail" in note and "test_old" in note


async def test_a_test_that_calls_code_that_does_not_exist_did_not_reproduce_the_report(tmp_path):
    # Found on tabulate: a report about the CLI's --output option got a test calling
    # tabulate(..., output_file=...); its TypeError counted as "bug reproduced" and the fix
    # that followed added the invented keyword instead of fixing the option.
    root = _project(
        tmp_path, "from slugs import slug\n\ndef test_sep():\n    assert slug('A B', sep='-')\n"
    )
    before = _ctx(root)
    ctx, note = await reproduce(before, agent="coder")
    assert ctx is before
    assert "call code that does not exist" in note and "unexpected keyword argument 'sep'" in note


@pytest.mark.parametrize(
    ("code", "request_text"),
    [
        # The request names the keyword: a test of it is a reproduction.
        ("def slug(text):\n    return text\n", "slug('A B', spaces=1) should work"),
        # The TypeError is raised inside the project's code: that is behaviour.
        (
            "def _low(text):\n    return text.lower()\n\n"
            "def slug(text, spaces=0):\n    return _low(text, spaces=spaces)\n",
            "slug() crashes",
        ),
    ],
)
async def test_an_interface_the_request_names_or_an_error_inside_the_code_reproduces(
    tmp_path, code, request_text
):
    root = _project(
        tmp_path, "from slugs import slug\n\ndef test_a():\n    assert slug('A B', spaces=1)\n"
    )
    (root / "slugs.py").write_text(code)
    ctx = AgentContext(**{**_ctx(root).__dict__, "request": request_text})
    _, note = await reproduce(ctx, agent="coder")
    assert note.startswith("bug reproduced: ")


@pytest.mark.parametrize("selection, feedback", [((), ""), (("tests/test_repro.py",), "again")])
async def test_nothing_runs_without_new_tests_or_in_a_repair(tmp_path, selection, feedback):
    before = _ctx(tmp_path, selection, feedback=feedback)
    assert await reproduce(before, agent="coder") == (before, "")


async def test_a_task_with_test_results_already_is_left_alone(tmp_path):
    before = _ctx(tmp_path)
    ctx = AgentContext(**{**before.__dict__, "upstream": Upstream(tests=TestReport(passed=1))})
    assert await reproduce(ctx, agent="coder") == (ctx, "")


def test_judge_report():
    fail = TestFailure(test_id="t::a", category=FailureCategory.ASSERTION, message="x")
    broken = TestFailure(test_id="t", category=FailureCategory.COLLECTION, message="import")
    assert judge_report(TestReport(failed=1, failures=(fail,))) is Reproduction.REPRODUCED
    assert judge_report(TestReport(passed=2)) is Reproduction.NOT_REPRODUCED
    assert judge_report(TestReport(errors=1, failures=(broken,))) is Reproduction.BROKEN
    assert judge_report(TestReport(timed_out=True)) is Reproduction.BROKEN
    assert judge_report(TestReport()) is Reproduction.NO_TEST
    assert judge_report(TestReport(failed=1, failures=(fail,)), {"t::a"}) is Reproduction.BROKEN
    misuse = TestFailure(
        test_id="t::b",
        category=FailureCategory.EXCEPTION,
        message="AttributeError: module 'slugs' has no attribute 'slugify'",
        detail="E   AttributeError: ...\n\ntests/test_repro.py:3: AttributeError",
    )
    report = TestReport(failed=1, failures=(misuse,))
    assert judge_report(report, (), "slugs gives 'a--b'") is Reproduction.BROKEN
    assert judge_report(report, (), "add slugify() to slugs") is Reproduction.REPRODUCED
    assert judge_report(report) is Reproduction.REPRODUCED  # no request: no judgement
    both = TestReport(failed=2, failures=(misuse, fail))
    assert judge_report(both, (), "slugs gives 'a--b'") is Reproduction.REPRODUCED


class _DeadSandbox(SubprocessSandbox):
    async def run(self, request):
        raise SandboxError("no sandbox backend can start here")


async def test_a_sandbox_that_cannot_run_gives_no_evidence(tmp_path):
    before = _ctx(tmp_path)
    before = AgentContext(**{**before.__dict__, "sandbox": _DeadSandbox()})
    ctx, note = await reproduce(before, agent="coder")
    assert ctx is before and "could not run" in note


# --- the reproduction task checks its own tests (coder, real pytest runs) -----------------------
PASSING = (
    "```python\nfrom slugs import slug\n\ndef test_lower():\n    assert slug('AB') == 'ab'\n```"
)
FAILING = (
    "```python\nfrom slugs import slug\n\ndef test_space():\n    assert slug('A B') == 'a-b'\n```"
)


def _repro_ctx(root: Path, model, events: list):
    from coditect.domain.tasks import REPRODUCE_INSTRUCTION

    async def emit(event):
        events.append(event)

    test = "tests/test_slugs.py"
    return AgentContext(
        mission_id="m",
        request="slug('A B') returns 'a--b' instead of 'a-b'",
        task=TaskSpec(id="reproduce", intent=Intent.WRITE_TESTS, description=REPRODUCE_INSTRUCTION),
        action=Action(
            intent=Intent.WRITE_TESTS,
            kind=ActionKind.WRITE_FILES,
            read_files=("slugs.py",),
            write_files=(test,),
            command=(*CMD, test),
            test_selection=(test,),
            timeout_s=120.0,
        ),
        workspace=root,
        model=model,
        sandbox=SubprocessSandbox(),
        emit=emit,
    )


def _slug_project(root: Path) -> Path:
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "slugs.py").write_text(CODE)
    (root / "tests").mkdir()
    return root


async def test_reproduction_tests_that_pass_on_the_bug_are_asked_for_again(tmp_path):
    from coditect.agents.coder import CoderAgent
    from coditect.llm.testing import ScriptedModel

    root, events = _slug_project(tmp_path), []
    model = ScriptedModel([PASSING, FAILING])
    change = await CoderAgent().execute(_repro_ctx(root, model, events))
    text = (root / "tests" / "test_slugs.py").read_text()
    assert "def test_space" in text and "test_lower" not in text  # the first answer is gone
    assert change.generations == 2
    again = model.calls[1][0][-1].content
    assert again.startswith("These tests pass on the current code") and "must fail" in again
    assert any(isinstance(e, AgentThink) and "do not reproduce" in e.text for e in events)


async def test_the_first_tests_are_kept_when_no_later_answer_is_usable(tmp_path):
    from coditect.agents.coder import CoderAgent
    from coditect.llm.testing import ScriptedModel

    root = _slug_project(tmp_path)
    model = ScriptedModel([PASSING, "no code here", "still none"])
    change = await CoderAgent().execute(_repro_ctx(root, model, []))
    assert "def test_lower" in (root / "tests" / "test_slugs.py").read_text()
    assert change.generations == 3 and len(model.calls) == 3


async def test_reproducing_tests_are_written_at_once(tmp_path):
    from coditect.agents.coder import CoderAgent
    from coditect.llm.testing import ScriptedModel

    root = _slug_project(tmp_path)
    model = ScriptedModel([FAILING])
    change = await CoderAgent().execute(_repro_ctx(root, model, []))
    assert change.generations == 1 and len(model.calls) == 1
    assert "def test_space" in (root / "tests" / "test_slugs.py").read_text()


MISFIRING = (
    "```python\nfrom slugs import slug\n\ndef test_sep():\n    assert slug('A B', sep='-')\n```"
)


@pytest.mark.parametrize(
    ("answers", "kept"),
    [
        ((MISFIRING, FAILING), "def test_space"),
        ((MISFIRING, MISFIRING), None),
        ((MISFIRING, "no code here", "still none"), None),
    ],
)
async def test_reproduction_tests_that_call_code_that_does_not_exist_are_not_kept(
    tmp_path, answers, kept
):
    from coditect.agents.coder import CoderAgent
    from coditect.llm.testing import ScriptedModel

    root, events = _slug_project(tmp_path), []
    model = ScriptedModel(list(answers))
    change = await CoderAgent().execute(_repro_ctx(root, model, events))
    again = model.calls[1][0][-1].content
    assert again.startswith("These tests fail only because they call code that does not exist")
    assert "unexpected keyword argument 'sep'" in again
    test_file = root / "tests" / "test_slugs.py"
    if kept is None:
        assert not test_file.exists() and not change.edits
        assert any("no reproduction test kept" in getattr(e, "text", "") for e in events)
    else:
        assert kept in test_file.read_text() and "test_sep" not in test_file.read_text()
