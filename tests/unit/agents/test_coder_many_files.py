"""A code task that may change several files: each is asked for in turn, exports follow."""

from __future__ import annotations

from pathlib import Path

from coditect.agents.base import AgentContext, Upstream
from coditect.agents.coder import CoderAgent
from coditect.domain.actions import Action, ActionKind
from coditect.domain.tasks import Intent, TaskSpec
from coditect.llm.testing import FunctionModel

POWER = '```python\ndef power(a, b):\n    """a to the b."""\n    return a**b\n```'


def ctx_for(ws: Path, model, write: tuple[str, ...], request: str) -> AgentContext:
    async def emit(event):
        return None

    return AgentContext(
        mission_id="m",
        request=request,
        task=TaskSpec(id="t", intent=Intent.WRITE_CODE, description=request),
        action=Action(intent=Intent.WRITE_CODE, kind=ActionKind.WRITE_FILES, write_files=write),
        workspace=ws,
        model=model,
        sandbox=None,
        upstream=Upstream(),
        emit=emit,  # type: ignore[arg-type]
    )


async def test_new_function_is_exported_and_a_second_file_may_stay_as_it_is(calc):
    stats = (calc / "calculator/stats.py").read_text()
    prompts: list[str] = []

    def answer(messages, settings):
        prompts.append(messages[-1].content)
        if "File calculator/arithmetic.py" in messages[-1].content:
            return POWER
        return "```python\n" + stats + "```"  # the same code: nothing to change there

    write = ("calculator/arithmetic.py", "calculator/stats.py", "calculator/__init__.py")
    ctx = ctx_for(calc, FunctionModel(answer), write, "Add `power(a, b)` next to `mean`")
    change = await CoderAgent().execute(ctx)
    assert [e.path for e in change.edits] == ["calculator/arithmetic.py", "calculator/__init__.py"]
    init = (calc / "calculator/__init__.py").read_text()
    assert "from calculator.arithmetic import add, divide, multiply, power, subtract" in init
    assert '"power"' in init
    assert (calc / "calculator/stats.py").read_text() == stats
    assert "Already changed for this request: calculator/arithmetic.py" in prompts[1]


async def test_both_files_change_when_both_answers_change_them(calc):
    def answer(messages, settings):
        if "File calculator/arithmetic.py" in messages[-1].content:
            return POWER
        return '```python\ndef mean(values):\n    """Mean."""\n    return sum(values) / len(values)\n```'

    write = ("calculator/arithmetic.py", "calculator/stats.py")
    ctx = ctx_for(calc, FunctionModel(answer), write, "Add `power` and simplify `mean`")
    change = await CoderAgent().execute(ctx)
    assert [e.path for e in change.edits] == ["calculator/arithmetic.py", "calculator/stats.py"]
    assert change.generations == 2 and change.edits[1].replaced_symbols == ("mean",)


async def test_a_new_public_function_joins_the_modules_own_all(calc):
    # `from .arithmetic import *` in a package exports only what __all__ lists: a new public
    # function must be listed there, and the rest of the file stays as it was.
    path = calc / "calculator/arithmetic.py"
    before = '__all__ = [\n    "add",\n    "subtract",  # keep\n]\n\n\n' + path.read_text()
    path.write_text(before)
    ctx = ctx_for(
        calc, FunctionModel(lambda m, s: POWER), ("calculator/arithmetic.py",), "Add power"
    )
    await CoderAgent().execute(ctx)
    after = path.read_text()
    assert after.startswith('__all__ = [\n    "add",\n    "power",\n    "subtract",  # keep\n]\n')
    assert after.replace('    "power",\n', "", 1).startswith(before.rstrip("\n"))


async def test_a_removal_deletes_the_function_and_its_export_and_the_prompt_says_how(calc):
    prompts: list[str] = []

    def answer(messages, settings):
        prompts.append(messages[-1].content)
        if "File calculator/arithmetic.py" in messages[-1].content:
            return "```python\ndel subtract\n```"
        return (
            '```python\ndel subtract\n__all__ = ["add", "divide", "mean", "median", '
            '"multiply"]\n```'
        )

    # What the parametrizer declares for a removal: the module, its package, the tests of it.
    write = ("calculator/arithmetic.py", "calculator/__init__.py", "tests/test_arithmetic.py")
    request = "Remove the function `subtract` from the package"
    ctx = ctx_for(calc, FunctionModel(answer), write, request)
    change = await CoderAgent().execute(ctx)
    # The package's export and the project's test of it go with it, without asking the model.
    assert [(e.path, e.deleted_symbols) for e in change.edits] == [
        ("calculator/arithmetic.py", ("subtract",)),
        ("calculator/__init__.py", ("subtract",)),
        ("tests/test_arithmetic.py", ("test_subtract", "subtract")),
    ]
    assert "deleted subtract" in change.summary
    assert "removed test_subtract, subtract from tests/test_arithmetic.py" in change.summary
    tests = (calc / "tests/test_arithmetic.py").read_text()
    assert "subtract" not in tests and "def test_add" in tests
    assert "def subtract" not in (calc / "calculator/arithmetic.py").read_text()
    init = (calc / "calculator/__init__.py").read_text()
    assert "from calculator.arithmetic import add, divide, multiply\n" in init
    assert '"subtract"' not in init
    assert all("write `del NAME`" in p for p in prompts)
    assert len(prompts) == 1  # the package's exports and the tests are not asked for


async def test_a_removal_changes_no_file_the_task_did_not_declare(calc):
    answer = "```python\ndel subtract\n```"
    write = ("calculator/arithmetic.py",)
    ctx = ctx_for(calc, FunctionModel(lambda m, s: answer), write, "Remove `subtract`")
    change = await CoderAgent().execute(ctx)
    assert [e.path for e in change.edits] == ["calculator/arithmetic.py"]
    assert "subtract" in (calc / "tests/test_arithmetic.py").read_text()


async def test_a_del_of_a_name_another_file_of_the_task_defines_is_done_there(calc):
    # Asked for arithmetic.py, the model deletes `median` too, which stats.py defines: it goes
    # from stats.py (and from the package and the tests), and stats.py is not asked for.
    prompts: list[str] = []

    def answer(messages, settings):
        prompts.append(messages[-1].content)
        return "```python\ndel subtract\ndel median\n```"

    write = (
        "calculator/arithmetic.py",
        "calculator/stats.py",
        "calculator/__init__.py",
        "tests/test_arithmetic.py",
        "tests/test_stats.py",
    )
    ctx = ctx_for(calc, FunctionModel(answer), write, "Remove `subtract` and `median`")
    change = await CoderAgent().execute(ctx)
    assert len(prompts) == 1
    paths = [e.path for e in change.edits]
    assert paths[:2] == ["calculator/arithmetic.py", "calculator/stats.py"]
    assert set(paths) == set(write)
    assert "def median" not in (calc / "calculator/stats.py").read_text()
    assert "median" not in (calc / "calculator/__init__.py").read_text()
    assert "median" not in (calc / "tests/test_stats.py").read_text()
    assert "removed median from calculator/stats.py" in change.summary
