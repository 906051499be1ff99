import ast
import hashlib
from pathlib import Path

import pytest

from coditect.agents.base import AgentContext, Upstream
from coditect.agents.coder import CoderAgent
from coditect.domain.actions import Action, ActionKind
from coditect.domain.events import AgentAct, AgentLearn, AgentThink
from coditect.domain.results import CodeChange, FailureCategory, FileEdit, TestFailure, TestReport
from coditect.domain.tasks import Intent, TaskSpec
from coditect.errors import AgentError
from coditect.llm.base import ModelResponse, Usage
from coditect.llm.testing import FunctionModel, ScriptedModel
from coditect.sandbox.subprocess import SubprocessSandbox

FIB = (
    '```python\ndef fibonacci(n):\n    """Return the nth Fibonacci number."""\n'
    "    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n```"
)


def make_ctx(
    ws: Path,
    model,
    *,
    intent=Intent.WRITE_CODE,
    request="Add fibonacci",
    write=("calculator/arithmetic.py",),
    upstream=None,
    feedback="",
):
    events = []

    async def emit(event):
        events.append(event)

    ctx = AgentContext(
        mission_id="m",
        request=request,
        task=TaskSpec(id="t", intent=intent, description=request, feedback=feedback),
        action=Action(
            intent=intent,
            kind=ActionKind.WRITE_FILES,
            write_files=write,
            read_files=("calculator/arithmetic.py", "calculator/stats.py"),
        ),
        workspace=ws,
        model=model,
        sandbox=SubprocessSandbox(),
        upstream=upstream or Upstream(),
        emit=emit,  # type: ignore[arg-type]
    )
    return ctx, events


async def test_adds_a_new_function_and_reports_the_edit(calc):
    before = (calc / "calculator/arithmetic.py").read_bytes()
    model = ScriptedModel([FIB])
    ctx, events = make_ctx(calc, model)
    change = await CoderAgent().execute(ctx)
    text = (calc / "calculator/arithmetic.py").read_text()
    assert text.startswith(before.decode()) and "def fibonacci(n):" in text
    [edit] = change.edits
    assert edit.added_symbols == ("fibonacci",) and edit.replaced_symbols == ()
    assert edit.before_sha256 == hashlib.sha256(before).hexdigest()
    assert edit.after_sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert change.generations == 1
    assert any(isinstance(e, AgentThink) for e in events)
    assert any(isinstance(e, AgentAct) and e.action == "write_file" for e in events)
    [gen] = [e for e in events if isinstance(e, AgentAct) and e.action == "generate"]
    assert gen.ok and gen.output_tokens > 0 and "added fibonacci" in gen.detail
    # The prompt carried the request and the current file.
    user = model.calls[0][0][1].content
    assert "Add fibonacci" in user and "def divide(a, b):" in user


async def test_replaces_an_existing_function_in_place(calc):
    fixed = (
        '```python\ndef median(values):\n    """Median."""\n    ordered = sorted(values)\n'
        "    mid = len(ordered) // 2\n    if len(ordered) % 2:\n        return ordered[mid]\n"
        "    return (ordered[mid - 1] + ordered[mid]) / 2\n```"
    )
    ctx, _ = make_ctx(
        calc, ScriptedModel([fixed]), request="Fix median", write=("calculator/stats.py",)
    )
    change = await CoderAgent().execute(ctx)
    assert change.edits[0].replaced_symbols == ("median",)
    text = (calc / "calculator/stats.py").read_text()
    assert text.index("def mean") < text.index("def median") < text.index("def value_range")
    assert "(ordered[mid - 1] + ordered[mid]) / 2" in text


async def test_repair_round_after_invalid_code(calc):
    model = ScriptedModel(["```python\ndef fibonacci(n:\n    return n\n```", FIB])
    ctx, events = make_ctx(calc, model)
    change = await CoderAgent().execute(ctx)
    assert change.generations == 2
    repair = model.calls[1][0]
    assert repair[-2].role == "assistant" and "does not parse" in repair[-1].content
    assert any(isinstance(e, AgentAct) and not e.ok for e in events)
    assert any(isinstance(e, AgentLearn) for e in events)


async def test_unresolved_import_is_rejected(calc):
    bad = "```python\nimport numpyy_not_installed\n\ndef f():\n    return numpyy_not_installed\n```"
    model = ScriptedModel([bad, FIB])
    ctx, _ = make_ctx(calc, model)
    change = await CoderAgent().execute(ctx)
    assert change.generations == 2
    assert "numpyy_not_installed" in model.calls[1][0][-1].content
    assert "numpyy" not in (calc / "calculator/arithmetic.py").read_text()


async def test_import_of_a_name_the_project_module_lacks_is_rejected(calc):
    bad = "```python\nfrom calculator.stats import nothing_here\n\ndef f():\n    return nothing_here\n```"
    model = ScriptedModel([bad] * 3)
    ctx, _ = make_ctx(calc, model)
    with pytest.raises(AgentError) as info:
        await CoderAgent().execute(ctx)
    assert "'nothing_here' is not defined in calculator/stats.py" in str(info.value)


async def test_gives_up_after_three_bad_answers_without_writing(calc):
    before = (calc / "calculator/arithmetic.py").read_text()
    model = ScriptedModel(["Sorry, I cannot.", "still no code", "```python\nprint(1)\n```"])
    ctx, _ = make_ctx(calc, model)
    with pytest.raises(AgentError) as info:
        await CoderAgent().execute(ctx)
    assert len(model.calls) == 3 and info.value.retryable is False
    assert "different approach" not in model.calls[2][0][-1].content
    assert "3 generation(s)" in str(info.value) and "no Python code" in str(info.value)
    assert (calc / "calculator/arithmetic.py").read_text() == before


async def test_answer_that_only_repeats_the_file_is_rejected(calc):
    same = '```python\ndef add(a, b):\n    """Return the sum of a and b."""\n    return a + b\n```'
    model = ScriptedModel([same, FIB])
    change = await CoderAgent().execute(make_ctx(calc, model)[0])
    assert change.generations == 2 and "same as the current add" in model.calls[1][0][-1].content


async def test_answer_that_differs_only_in_its_copy_of_the_docstring_is_rejected(calc):
    # The user's docstring is put back into every answer, so an echo of the function whose
    # docstring lost some white space changes nothing either.
    echo = (
        '```python\ndef add(a, b):\n    """Return the sum  of a and b. """\n    return a + b\n```'
    )
    model = ScriptedModel([echo, FIB])
    change = await CoderAgent().execute(make_ctx(calc, model)[0])
    assert change.generations == 2 and "same as the current add" in model.calls[1][0][-1].content


async def test_truncated_code_answer_is_rejected(calc):
    cut = ModelResponse(
        text="```python\ndef fibonacci(n):\n    a = 1\n",
        usage=Usage(),
        model_name="x",
        finish_reason="length",
    )
    model = ScriptedModel([cut, FIB])
    change = await CoderAgent().execute(make_ctx(calc, model)[0])
    assert change.generations == 2 and "cut off" in model.calls[1][0][-1].content
    # Not shown its cut answer (it would continue it): the task again, with the reason.
    assert [m.role for m in model.calls[1][0]] == ["system", "user"]
    # The model needed more room than it was given: the next answer gets twice as much.
    first, second = (settings.max_tokens for _, settings in model.calls)
    assert second == 2 * first


ACC = "\n\nclass Acc:\n    def add(self, x):\n        return x\n\n    def sub(self, x):\n        return -x\n"


async def test_a_cut_off_class_keeps_its_complete_methods(calc):
    path = calc / "calculator/arithmetic.py"
    path.write_text(path.read_text() + ACC)
    cut = ModelResponse(
        text="```python\nclass Acc:\n    def add(self, x):\n        return x + 1\n\n"
        '    def sub(self, x):\n        """Subtract."""\n',
        usage=Usage(),
        model_name="x",
        finish_reason="length",
    )
    ctx, _ = make_ctx(calc, ScriptedModel([cut]), request="Make Acc.add add one")
    change = await CoderAgent().execute(ctx)
    assert change.generations == 1
    text = path.read_text()
    assert "return x + 1" in text and "return -x" in text  # sub, which was cut, is untouched


async def test_a_cut_off_answer_that_changes_nothing_is_told_it_was_cut_off(calc):
    path = calc / "calculator/arithmetic.py"
    path.write_text(path.read_text() + ACC)
    cut = ModelResponse(
        text="```python\nclass Acc:\n    def add(self, x):\n        return x\n\n"
        "    def sub(self, x):\n        return -x + 1\n",
        usage=Usage(),
        model_name="x",
        finish_reason="length",
    )
    good = "```python\nclass Acc:\n    def sub(self, x):\n        return 1 - x\n```"
    model = ScriptedModel([cut, good])
    ctx, _ = make_ctx(calc, model, request="Make Acc.sub add one")
    change = await CoderAgent().execute(ctx)
    told = model.calls[1][0][-1].content
    assert change.generations == 2 and "repeated the current code until it was cut off" in told
    assert "return 1 - x" in path.read_text()
    # More room would only buy a longer echo of the file.
    first, second = (settings.max_tokens for _, settings in model.calls)
    assert second == first


def upstream_with_fib():
    edit = FileEdit(path="calculator/arithmetic.py", after_sha256="x", added_symbols=("fibonacci",))
    return Upstream(code=(CodeChange(edits=(edit,)),))


async def test_write_tests_prompt_and_merge(calc):
    (calc / "calculator/arithmetic.py").write_text(
        (calc / "calculator/arithmetic.py").read_text()
        + '\n\ndef fibonacci(n):\n    """Return the nth Fibonacci number."""\n    return n\n'
    )
    answer = (
        "```python\nfrom calculator.arithmetic import fibonacci\n\n"
        "def test_fibonacci():\n    assert fibonacci(1) == 1\n```"
    )
    model = ScriptedModel([answer])
    ctx, _ = make_ctx(
        calc,
        model,
        intent=Intent.WRITE_TESTS,
        write=("tests/test_arithmetic.py",),
        upstream=upstream_with_fib(),
    )
    change = await CoderAgent().execute(ctx)
    assert change.edits[0].added_symbols == ("test_fibonacci",)
    text = (calc / "tests/test_arithmetic.py").read_text()
    assert "from calculator.arithmetic import add, divide, fibonacci, multiply, subtract" in text
    user = model.calls[0][0][1].content
    assert "from calculator.arithmetic import fibonacci" in user
    assert '"""Return the nth Fibonacci number."""\n    return n' in user  # short: shown whole


async def test_write_tests_adds_forgotten_import_and_caps_runaway_asserts(calc):
    (calc / "calculator/arithmetic.py").write_text(
        (calc / "calculator/arithmetic.py").read_text() + "\n\ndef fibonacci(n):\n    return n\n"
    )
    asserts = "".join(f"    assert fibonacci({i}) == {i}\n" for i in range(40))
    cut = ModelResponse(
        text=f"```python\ndef test_fib():\n{asserts}    assert fibonacci(4",
        usage=Usage(),
        model_name="x",
        finish_reason="length",
    )
    ctx, _ = make_ctx(
        calc,
        ScriptedModel([cut]),
        intent=Intent.WRITE_TESTS,
        write=("tests/test_new.py",),
        upstream=upstream_with_fib(),
    )
    await CoderAgent().execute(ctx)
    text = (calc / "tests/test_new.py").read_text()
    assert text.startswith("from calculator.arithmetic import fibonacci\n")
    assert text.count("assert ") == 5
    ast.parse(text)


@pytest.mark.parametrize(
    ("answer", "told"),
    [
        (  # a mistake in an import line
            "import pytest\nfrom calculator.arithmetic import fib.__init__\n\n"
            "def test_fib():\n    assert fibonacci(1) == 1\n\ndef test_more():\n    assert fib(",
            "invalid syntax (line 2: from calculator.arithmetic import",
        ),
        (  # a mistake in the only assert: what parses before it checks nothing
            "from calculator.arithmetic import fibonacci\n\n"
            "def test_fib():\n    result = fibonacci(3)\n    assert result == 2:0, 'no'\n\n"
            "def test_more():\n    assert fibonacci(",
            "invalid syntax (line 5: assert result == 2:0, 'no')",
        ),
    ],
)
async def test_a_cut_off_test_answer_with_a_mistake_is_told_the_mistake(calc, answer, told):
    (calc / "calculator/arithmetic.py").write_text(
        (calc / "calculator/arithmetic.py").read_text() + "\n\ndef fibonacci(n):\n    return n\n"
    )
    cut = ModelResponse(
        text=f"```python\n{answer}", usage=Usage(), model_name="x", finish_reason="length"
    )
    good = "```python\ndef test_fib():\n    assert fibonacci(1) == 1\n```"
    model = ScriptedModel([cut, good])
    ctx, _ = make_ctx(
        calc,
        model,
        intent=Intent.WRITE_TESTS,
        write=("tests/test_new.py",),
        upstream=upstream_with_fib(),
    )
    change = await CoderAgent().execute(ctx)
    assert change.generations == 2
    assert f"not valid Python: {told}" in model.calls[1][0][-1].content
    assert model.calls[1][1].temperature > 0 and model.calls[0][1].temperature == 0


async def test_a_test_answer_may_not_delete_the_projects_tests(calc):
    answer = "```python\ndel test_add\n\ndef test_fib_one():\n    assert fibonacci(1) == 1\n```"
    ctx, _ = make_ctx(
        calc,
        ScriptedModel([answer] * 3),
        intent=Intent.WRITE_TESTS,
        write=("tests/test_arithmetic.py",),
        upstream=upstream_with_fib(),
    )
    with pytest.raises(AgentError, match="deletes test_add: the project's tests are kept"):
        await CoderAgent().execute(ctx)
    assert "def test_add" in (calc / "tests/test_arithmetic.py").read_text()


async def test_an_answer_deletes_only_when_the_request_asks_for_a_removal(calc):
    answer = "```python\ndel subtract\n```"
    ctx, _ = make_ctx(calc, ScriptedModel([answer] * 3), write=("calculator/arithmetic.py",))
    with pytest.raises(AgentError, match="the request does not ask to remove anything"):
        await CoderAgent().execute(ctx)
    assert "def subtract" in (calc / "calculator/arithmetic.py").read_text()


async def test_a_deletion_that_leaves_users_of_the_name_is_told_to_change_them(calc):
    path = calc / "calculator/arithmetic.py"
    path.write_text(path.read_text() + "\n\ndef twice(a):\n    return add(a, a)\n")
    model = ScriptedModel(["```python\ndel add\n```"] * 3)
    ctx, _ = make_ctx(calc, model, request="Remove the `add` function")
    with pytest.raises(AgentError, match="twice still uses add, which the answer deletes"):
        await CoderAgent().execute(ctx)


async def test_a_removal_that_names_what_goes_keeps_what_it_does_not_name(calc):
    model = ScriptedModel(["```python\ndel add\ndel subtract\n```"] * 3)
    ctx, _ = make_ctx(calc, model, request="Remove the `subtract` function")
    with pytest.raises(AgentError, match="asks to remove subtract, not add: keep add"):
        await CoderAgent().execute(ctx)
    # An identifier names what goes; a plain word ("add") that the request uses otherwise
    # does not.
    model = ScriptedModel(["```python\ndel add\ndel subtract\n```"] * 3)
    request = "Remove the `subtract` function: callers add a negative number instead"
    ctx, _ = make_ctx(calc, model, request=request)
    with pytest.raises(AgentError, match="asks to remove subtract, not add"):
        await CoderAgent().execute(ctx)


async def test_deleting_an_import_that_is_still_used_or_not_what_was_named_is_refused(calc):
    path = calc / "calculator/arithmetic.py"
    path.write_text(
        "import math\n\n\n" + path.read_text() + "\n\ndef root(a):\n    return math.sqrt(a)\n"
    )
    model = ScriptedModel(["```python\ndel math\n```"] * 3)
    ctx, _ = make_ctx(calc, model, request="Remove the `add` function")
    with pytest.raises(AgentError, match="asks to remove add: write `del add`"):
        await CoderAgent().execute(ctx)
    model = ScriptedModel(["```python\ndel math\n```"] * 3)
    ctx, _ = make_ctx(calc, model, request="Remove the unused imports")
    with pytest.raises(AgentError, match="root still uses math: keep its import"):
        await CoderAgent().execute(ctx)


async def test_write_tests_requires_a_test_function(calc):
    helper = "```python\ndef helper():\n    return 1\n```"
    model = ScriptedModel([helper] * 3)
    ctx, _ = make_ctx(
        calc,
        model,
        intent=Intent.WRITE_TESTS,
        write=("tests/test_arithmetic.py",),
        upstream=upstream_with_fib(),
    )
    with pytest.raises(AgentError, match="no test function"):
        await CoderAgent().execute(ctx)


async def test_a_unittest_style_test_class_counts_as_tests(calc):
    (calc / "calculator/arithmetic.py").write_text(
        (calc / "calculator/arithmetic.py").read_text() + "\n\ndef fibonacci(n):\n    return n\n"
    )
    answer = (
        "```python\nimport unittest\nfrom calculator.arithmetic import fibonacci\n\n"
        "class FibonacciTest(unittest.TestCase):\n    def test_one(self):\n"
        "        self.assertEqual(fibonacci(1), 1)\n```"
    )
    ctx, _ = make_ctx(
        calc,
        ScriptedModel([answer]),
        intent=Intent.WRITE_TESTS,
        write=("tests/test_arithmetic.py",),
        upstream=upstream_with_fib(),
    )
    change = await CoderAgent().execute(ctx)
    assert change.generations == 1
    assert (
        "class FibonacciTest(unittest.TestCase):" in (calc / "tests/test_arithmetic.py").read_text()
    )


async def test_the_projects_existing_tests_are_never_rewritten(calc):
    # inflection-parameterize-case: the model "adapted" an existing test to a wrong idea of the
    # new behaviour; the project's test then failed as a regression of a right change.
    (calc / "calculator/arithmetic.py").write_text(
        (calc / "calculator/arithmetic.py").read_text() + "\n\ndef fibonacci(n):\n    return n\n"
    )
    answer = (
        "```python\nfrom calculator.arithmetic import add, fibonacci\n\n"
        "def test_add():\n    assert add(2, 3) == 6\n\n"
        "def test_fibonacci():\n    assert fibonacci(1) == 1\n```"
    )
    only_rewrites = "```python\ndef test_add():\n    assert add(2, 3) == 6\n```"
    model = ScriptedModel([only_rewrites, answer])
    ctx, _ = make_ctx(
        calc,
        model,
        intent=Intent.WRITE_TESTS,
        write=("tests/test_arithmetic.py",),
        upstream=upstream_with_fib(),
    )
    change = await CoderAgent().execute(ctx)
    told = model.calls[1][0][-1].content
    assert "only rewrites tests the project already has (test_add)" in told
    assert change.edits[0].added_symbols == ("test_fibonacci",)
    assert change.edits[0].replaced_symbols == ()
    text = (calc / "tests/test_arithmetic.py").read_text()
    assert "assert add(2, 3) == 5" in text and "== 6" not in text


async def test_repair_task_prompt_carries_failing_tests(calc):
    failing = TestReport(
        failed=1,
        failures=(
            TestFailure(
                test_id="tests/test_stats.py::test_median_even",
                category=FailureCategory.ASSERTION,
                message="assert 2 == 2.5",
                detail="    def test_median_even():\n>       assert median([1, 2, 3, 4]) == 2.5\nE   assert 2 == 2.5",
            ),
        ),
    )
    seen = []

    def answer(messages, settings):
        seen.append(messages[-1].content)
        return "```python\ndef median(values):\n    return 2.5\n```"

    ctx, _ = make_ctx(
        calc,
        FunctionModel(answer),
        request="Fix median",
        write=("calculator/stats.py",),
        upstream=Upstream(tests=failing),
        feedback="median([1, 2, 3, 4]) is wrong",
    )
    await CoderAgent().execute(ctx)
    assert "test_median_even: `assert median([1, 2, 3, 4]) == 2.5` -> assert 2 == 2.5" in seen[0]
    assert "median([1, 2, 3, 4]) is wrong" in seen[0]


async def test_tests_dropped_from_a_code_answer(calc):
    answer = FIB + "\n```python\ndef test_fibonacci():\n    assert fibonacci(1) == 1\n```"
    await CoderAgent().execute(make_ctx(calc, ScriptedModel([answer]))[0])
    assert "test_fibonacci" not in (calc / "calculator/arithmetic.py").read_text()


async def test_refuses_other_intents(calc):
    ctx, _ = make_ctx(calc, ScriptedModel([]), intent=Intent.RUN_TESTS)
    with pytest.raises(AgentError, match="cannot do a run_tests task"):
        await CoderAgent().execute(ctx)


def test_signature_and_doc_of_a_long_function():
    from coditect.agents.codejob import signature_and_doc

    body = "".join(f"    x{i} = {i}\n" for i in range(20))
    src = f'@cache\ndef big(a,\n        b):\n    """Doc."""\n{body}    return a\n'
    assert (
        signature_and_doc(src, "big", whole_up_to=15)
        == '@cache\ndef big(a,\n        b):\n    """Doc."""\n    ...'
    )
    assert signature_and_doc(src, "big", whole_up_to=50) == src.rstrip("\n")
    assert signature_and_doc(src, "missing") == ""


async def test_analyzer_findings_about_the_named_function_reach_the_prompt(calc):
    from coditect.agents.analyzer import analyze_project

    analysis = analyze_project(calc)
    model = ScriptedModel(["```python\ndef median(values):\n    return 0\n```"])
    ctx, _ = make_ctx(
        calc,
        model,
        request="Fix the bug in median",
        write=("calculator/stats.py",),
        upstream=Upstream(analysis=analysis),
    )
    await CoderAgent().execute(ctx)
    prompt = model.calls[0][0][1].content
    assert "Note: calculator/stats.py:17: the if in median()" in prompt
    assert "value_range has no docstring" not in prompt


async def test_a_repeated_bad_answer_is_called_out(calc):
    model = ScriptedModel(["no code"] * 3)
    with pytest.raises(AgentError):
        await CoderAgent().execute(make_ctx(calc, model)[0])
    assert "rejected twice" not in model.calls[1][0][-1].content
    third = model.calls[2][0]
    # The repeated answer is not shown again (a small model copies it): a fresh start.
    assert [m.role for m in third] == ["system", "user"]
    assert "A previous answer was rejected twice: " in third[-1].content
    assert third[-1].content.startswith(model.calls[0][0][1].content)


def test_unshadow_imports():
    from coditect.agents.fixups import unshadow_imports

    code = 'from math import gcd, pi\n\ndef gcd(a, b):\n    """G."""\n    return gcd(a, b)\n'
    fixed = unshadow_imports(code)
    assert (
        fixed
        == 'import math\nfrom math import pi\n\ndef gcd(a, b):\n    """G."""\n    return math.gcd(a, b)\n'
    )
    assert unshadow_imports("def f():\n    return 1\n") == "def f():\n    return 1\n"
    # Imported but not called: the import is just dropped.
    assert (
        unshadow_imports("from m import f\n\ndef f():\n    return 1\n")
        == "def f():\n    return 1\n"
    )


async def test_wrapper_that_would_call_itself_is_fixed(calc):
    answer = (
        '```python\nfrom math import gcd\n\ndef gcd(a, b):\n    """G."""\n    return gcd(a, b)\n```'
    )
    change = await CoderAgent().execute(
        make_ctx(calc, ScriptedModel([answer]), request="Add gcd")[0]
    )
    assert change.generations == 1
    text = (calc / "calculator/arithmetic.py").read_text()
    assert "return math.gcd(a, b)" in text and text.startswith(
        '"""Basic arithmetic operations."""\n\nimport math\n'
    )


async def test_copies_of_existing_tests_do_not_count_against_the_cap(calc):
    existing = (calc / "tests/test_arithmetic.py").read_text()
    body = existing.split("\n\n\n", 1)[1]  # the five existing tests, verbatim
    answer = f"```python\n{body}\n\ndef test_new():\n    assert add(1, 1) == 2\n```"
    ctx, _ = make_ctx(
        calc,
        ScriptedModel([answer]),
        intent=Intent.WRITE_TESTS,
        write=("tests/test_arithmetic.py",),
        upstream=upstream_with_fib(),
    )
    change = await CoderAgent().execute(ctx)
    assert change.edits[0].added_symbols == ("test_new",)


async def test_tests_answer_that_is_not_python_is_asked_again_not_a_crash(calc):
    """An answer that does not parse is a rejection and a retry, never a crash."""
    (calc / "calculator/arithmetic.py").write_text(
        (calc / "calculator/arithmetic.py").read_text() + "\n\ndef fibonacci(n):\n    return n\n"
    )
    broken = "```python\ndef test_fib():\n    assert fibonacci(1) == -4:30\n```"
    good = "```python\ndef test_fib():\n    assert fibonacci(1) == 1\n```"
    model = ScriptedModel([broken, good])
    ctx, _ = make_ctx(
        calc,
        model,
        intent=Intent.WRITE_TESTS,
        write=("tests/test_new.py",),
        upstream=upstream_with_fib(),
    )
    change = await CoderAgent().execute(ctx)
    assert change.generations == 2
    assert "not valid Python" in model.calls[1][0][-1].content
    ast.parse((calc / "tests/test_new.py").read_text())


async def test_a_test_name_written_as_words_is_joined_not_asked_again(calc):
    """A small model wrote ``def test_encrypt gf():`` (HumanEval/89, and cachetools'
    ``def test_lru_cache_with Peek():``): the name it meant is plain, no retry is needed."""
    (calc / "calculator/arithmetic.py").write_text(
        (calc / "calculator/arithmetic.py").read_text() + "\n\ndef fibonacci(n):\n    return n\n"
    )
    spaced = "```python\ndef test_fib gf():\n    assert fibonacci(1) == 1\n```"
    model = ScriptedModel([spaced])
    ctx, _ = make_ctx(
        calc,
        model,
        intent=Intent.WRITE_TESTS,
        write=("tests/test_new.py",),
        upstream=upstream_with_fib(),
    )
    change = await CoderAgent().execute(ctx)
    assert change.generations == 1
    assert change.edits[0].added_symbols == ("test_fib_gf",)


async def test_the_answer_limit_grows_with_the_function_to_change(calc):
    body = "".join(f"    total = total + {i} * x  # step {i}\n" for i in range(50))
    (calc / "calculator/arithmetic.py").write_text(
        (calc / "calculator/arithmetic.py").read_text()
        + f"\n\ndef weigh(x):\n    total = 0\n{body}    return total\n"
    )
    fixed = "```python\ndef weigh(x):\n    return x\n```"
    model = ScriptedModel([fixed])
    await CoderAgent().execute(make_ctx(calc, model, request="Fix weigh")[0])
    settings = model.calls[0][1]
    assert 400 < settings.max_tokens <= model.context_window // 3
    small = ScriptedModel([FIB])
    await CoderAgent().execute(make_ctx(calc, small)[0])
    assert small.calls[0][1].max_tokens == 400  # nothing long in focus: the default


async def test_a_giant_docstring_of_the_code_under_test_is_cut_to_fit(calc):
    doc = "".join(
        f"    >>> fibonacci({i})  # example number {i} of many\n    {i}\n" for i in range(900)
    )
    (calc / "calculator/arithmetic.py").write_text(
        (calc / "calculator/arithmetic.py").read_text()
        + f'\n\ndef fibonacci(n):\n    """Return the nth Fibonacci number.\n\n{doc}    """\n'
        + "    for _ in range(2):\n        pass\n" * 10
        + "    return n\n"
    )
    answer = (
        "```python\nfrom calculator.arithmetic import fibonacci\n\n"
        "def test_fibonacci():\n    assert fibonacci(1) == 1\n```"
    )
    model = ScriptedModel([answer])
    ctx, _ = make_ctx(
        calc,
        model,
        intent=Intent.WRITE_TESTS,
        write=("tests/test_arithmetic.py",),
        upstream=upstream_with_fib(),
    )
    change = await CoderAgent().execute(ctx)
    assert change.edits[0].added_symbols == ("test_fibonacci",)
    user = model.calls[0][0][1].content
    assert "def fibonacci(n):" in user and "example number 0 " in user
    assert "example number 899" not in user
    prompt = sum(model.count_tokens(m.content) for m in model.calls[0][0])
    assert prompt + model.calls[0][1].max_tokens <= model.context_window


async def test_a_function_too_long_to_rewrite_does_not_shrink_the_prompt(calc):
    body = "".join(f"    total = total + {i} * x  # step {i}\n" for i in range(150))
    (calc / "calculator/arithmetic.py").write_text(
        (calc / "calculator/arithmetic.py").read_text()
        + f"\n\ndef weigh(x):\n    total = 0\n{body}    return total\n"
    )
    model = ScriptedModel(["```python\ndef weigh(x):\n    return x\n```"])
    await CoderAgent().execute(make_ctx(calc, model, request="Fix weigh")[0])
    assert model.calls[0][1].max_tokens == 400


def test_drop_stand_ins():
    from coditect.agents.fixups import drop_stand_ins

    code = (
        "from cachetools import TTLCache\n\n\n"
        "class TTLCache(TTLCache):\n    def expires(self, key):\n        return 1\n\n\n"
        "def test_expires():\n    assert TTLCache(1, 1).expires\n"
    )
    assert drop_stand_ins(code) == (
        "from cachetools import TTLCache\n\n\n\n\ndef test_expires():\n"
        "    assert TTLCache(1, 1).expires\n"
    )
    kept = "import x\n\ndef helper():\n    pass\n"
    assert drop_stand_ins(kept) == kept


def test_adopt_methods_puts_a_bare_method_back_into_its_class():
    from coditect.agents.codemerge import MergeError, merge_source
    from coditect.agents.fixups import adopt_methods

    original = (
        "class Duration:\n    def __init__(self, days=0):\n        self.days = days\n\n"
        "    def __eq__(self, other):\n        return self.days == other.days\n\n\n"
        "class Other:\n    def run(self):\n        return 1\n\n\n"
        "def helper(x):\n    return x\n"
    )
    answer = "def __bool__(self):\n    return self.days != 0\n"
    fixed = adopt_methods(answer, original, ("Duration.__eq__",))
    assert fixed == "class Duration:\n    def __bool__(self):\n        return self.days != 0\n"
    merged = merge_source(original, fixed, self_module="d")
    assert merged.added == ("Duration.__bool__",)
    # a method the file defines in one class goes there, whatever the focus
    redo = "def run(self):\n    return 2\n"
    assert adopt_methods(redo, original, ("Duration.__eq__",)).startswith("class Other:\n")
    # top-level functions and methods inside their class are left alone
    for same in ("def helper(x):\n    return 2\n", "def helper(self):\n    return 2\n"):
        assert adopt_methods(same, original, ()) == same
    with pytest.raises(MergeError, match="is a method"):
        adopt_methods(answer, original, ("Duration.__eq__", "Other.run"))


def test_a_raised_answer_limit_never_takes_the_prompt_s_room():
    from coditect.agents.codejob import CodeJob
    from coditect.agents.coder import _next_limit
    from coditect.llm.base import Message, prompt_budget

    model = ScriptedModel([], context_window=2048)
    job = CodeJob(path="m.py", is_tests=False, original="")
    cut = ModelResponse(text="", usage=Usage(), model_name="x", finish_reason="length")
    short = [Message(role="system", content="s"), Message(role="user", content="u")]
    assert _next_limit(model, short, cut, job, 400) == 800
    done = ModelResponse(text="", usage=Usage(), model_name="x", finish_reason="stop")
    assert _next_limit(model, short, done, job, 400) == 400  # not cut off: no change
    tests_job = CodeJob(path="test_m.py", is_tests=True, original="")
    assert _next_limit(model, short, cut, tests_job, 400) == 400  # tests are salvaged instead
    long = [short[0], Message(role="user", content="word " * 500)]
    raised = _next_limit(model, long, cut, job, 400)
    assert 400 <= raised < 800
    used = sum(model.count_tokens(m.content) for m in long)
    assert used + 500 <= prompt_budget(model, raised)  # the prompt and a repair echo still fit


async def test_a_new_function_the_request_calls_by_name_is_asked_for_by_name(calc):
    # The request gives the new function's signature; an answer that changes other code
    # instead is asked again, naming what is missing, and the prompts name it from the start.
    other = '```python\ndef add(a, b):\n    """Return the sum of a and b."""\n    return b + a\n```'
    model = ScriptedModel([other, FIB])
    request = "Add fibonacci(n) to the calculator: the nth Fibonacci number."
    ctx, _ = make_ctx(calc, model, request=request)
    change = await CoderAgent().execute(ctx)
    assert change.generations == 2 and change.edits[0].added_symbols == ("fibonacci",)
    first = model.calls[0][0][1].content
    assert first.rstrip().endswith(
        "Write the new fibonacci (not in the project yet) and only the other new or changed "
        "code for calculator/arithmetic.py."
    )
    assert "does not define fibonacci, which the request asks for" in model.calls[1][0][-1].content


async def test_an_echo_of_the_code_is_told_to_write_the_new_function(calc):
    same = '```python\ndef add(a, b):\n    """Return the sum of a and b."""\n    return a + b\n```'
    model = ScriptedModel([same, FIB])
    ctx, _ = make_ctx(calc, model, request="Add fibonacci(n), the nth Fibonacci number.")
    await CoderAgent().execute(ctx)
    assert "nothing changed. Write the new fibonacci to do this:" in model.calls[1][0][-1].content


async def test_a_name_the_project_imports_elsewhere_is_imported_for_the_answer(calc):
    # stats.py imports Fraction from fractions; an answer in arithmetic.py that uses it
    # without the import gets the project's own import line, not a rejection.
    stats = calc / "calculator/stats.py"
    stats.write_text("from fractions import Fraction\n" + stats.read_text())
    answer = '```python\ndef half(x):\n    """Half of x, exact."""\n    return Fraction(x, 2)\n```'
    model = ScriptedModel([answer])
    ctx, _ = make_ctx(calc, model, request="Add half")
    change = await CoderAgent().execute(ctx)
    assert change.generations == 1
    text = (calc / "calculator/arithmetic.py").read_text()
    assert "from fractions import Fraction" in text and "def half(x):" in text


async def test_a_name_the_module_imports_under_another_name_is_imported_by_its_own(calc):
    arithmetic = calc / "calculator/arithmetic.py"
    arithmetic.write_text(
        "from itertools import zip_longest as izip_longest\n" + arithmetic.read_text()
    )
    answer = (
        '```python\ndef pairs(a, b):\n    """Pairs of a and b."""\n'
        "    return list(zip_longest(a, b))\n```"
    )
    ctx, _ = make_ctx(calc, ScriptedModel([answer]), request="Add pairs")
    change = await CoderAgent().execute(ctx)
    assert change.generations == 1
    namespace: dict[str, object] = {}
    exec(arithmetic.read_text(), namespace)  # the module's own import line now binds it too
    assert namespace["pairs"]([1], [2, 3]) == [(1, 2), (None, 3)]


def test_a_name_imported_from_two_places_is_not_guessed(tmp_path):
    from coditect.agents.fixups import _project_imports

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg/__init__.py").write_text("")
    (tmp_path / "pkg/a.py").write_text("from json import loads\nfrom .errors import Bad\n")
    (tmp_path / "pkg/b.py").write_text("from ujson import loads\nimport os.path\n")
    (tmp_path / "pkg/errors.py").write_text("class Bad(Exception):\n    pass\n")
    usual = _project_imports(tmp_path)
    assert usual["Bad"] == "pkg.errors"  # a relative import, made absolute
    assert "loads" not in usual and "path" not in usual


def _too_large_to_show_whole(calc: Path) -> Path:
    """arithmetic.py as 150 helpers and ``scale``: a prompt shows an excerpt of it."""
    path = calc / "calculator/arithmetic.py"
    helpers = "".join(
        f'def helper_{i}(x):\n    """Helper number {i}."""\n    return x + {i}  # {"=" * 60}\n\n\n'
        for i in range(150)
    )
    path.write_text(f'{helpers}def scale(x):\n    """Scale x."""\n    return x * 2\n')
    return path


async def test_a_rewrite_of_code_the_prompt_only_outlined_is_dropped(calc):
    # A module too large to show whole: the prompt shows `scale` in full and the rest by
    # signature at most. A rewrite of `helper_7` is a guess at code the model never saw.
    path = _too_large_to_show_whole(calc)
    blind = "def helper_7(x):\n    return 0\n"
    both = f"```python\n{blind}\n\ndef scale(x):\n    return x * 3\n```"
    model = ScriptedModel([both])
    ctx, _ = make_ctx(calc, model, request="Make `scale` triple x instead of doubling it")
    change = await CoderAgent().execute(ctx)
    prompt = model.calls[0][0][-1].content
    assert "return x * 2" in prompt and "return x + 7" not in prompt  # an excerpt
    text = path.read_text()
    assert "return x * 3" in text and "return x + 7" in text and change.generations == 1


async def test_an_answer_that_only_rewrites_outlined_code_gets_that_code_shown_in_full(calc):
    # The model's choice of where the change goes is evidence: shown `scale` in full, it
    # rewrote only `helper_7`, which it saw by signature. Asked afresh with helper_7 in full,
    # its change of helper_7 is a change of code it has seen, and is kept.
    path = _too_large_to_show_whole(calc)
    guess = "```python\ndef helper_7(x):\n    return 0\n```"
    seen = '```python\ndef helper_7(x):\n    """Helper number 7."""\n    return x + 70\n```'
    model = ScriptedModel([guess, seen])
    ctx, _ = make_ctx(calc, model, request="helper 7 should add 70, not 7")
    change = await CoderAgent().execute(ctx)
    again = model.calls[1][0]
    assert len(again) == 2  # a fresh conversation, not the rejected answer echoed
    assert "return x + 7  #" in again[-1].content  # helper_7 in full now
    assert "rewrote helper_7, which you saw only by its signature" in again[-1].content
    assert "return x + 70" in path.read_text() and change.generations == 2


async def test_a_deletion_whose_users_were_outlined_gets_them_shown_in_full(calc):
    # more-itertools: asked to remove zip_equal, the model deleted it, but sort_together,
    # shown by signature only, still called it. Asked afresh with the user in full, the
    # model can change it together with the deletion.
    path = _too_large_to_show_whole(calc)
    path.write_text(
        path.read_text() + '\n\ndef legacy(x):\n    """Old."""\n    return helper_7(x)\n'
    )
    first = "```python\ndel helper_7\n```"
    second = '```python\ndel helper_7\n\ndef legacy(x):\n    """Old."""\n    return x + 7\n```'
    model = ScriptedModel([first, second])
    ctx, _ = make_ctx(calc, model, request="Remove the deprecated helper_7 function")
    change = await CoderAgent().execute(ctx)
    again = model.calls[1][0]
    assert len(again) == 2  # a fresh conversation with the user of helper_7 in full
    assert "return helper_7(x)" in again[-1].content
    assert "deleted helper_7, but legacy still uses it" in again[-1].content
    text = path.read_text()
    assert "def helper_7(" not in text and "return x + 7\n" in text and change.generations == 2
