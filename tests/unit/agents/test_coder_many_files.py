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
