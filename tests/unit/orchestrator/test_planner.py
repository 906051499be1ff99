import json

import pytest

from coditect.domain import Intent
from coditect.errors import InputError, ModelUnavailableError, PlanError
from coditect.index import UnsupportedProjectError
from coditect.llm.base import DEFAULT_CONTEXT_WINDOW, Message, Model, ModelResponse, Usage
from coditect.orchestrator.planner import Planner, parse_plan, validate_plan


class Answers(Model):
    """Answers from a list; raises a given error instead when the item is an exception."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls: list[list[Message]] = []

    @property
    def name(self):
        return "test:answers"

    async def request(self, messages, settings=None):
        self.calls.append(list(messages))
        item = self.answers.pop(0)
        if isinstance(item, Exception):
            raise item
        return ModelResponse(
            text=item, usage=Usage(input_tokens=10, output_tokens=5), model_name=self.name
        )


GOOD = {
    "tasks": [
        {"id": "a", "intent": "analyze", "description": "look", "depends_on": []},
        {
            "id": "c",
            "intent": "write_code",
            "description": "fib",
            "depends_on": ["a"],
            "target_files": ["calculator/arithmetic.py"],
        },
        {"id": "w", "intent": "write_tests", "description": "test fib", "depends_on": ["c"]},
        {"id": "r", "intent": "run_tests", "description": "run", "depends_on": ["w"]},
    ]
}
CYCLIC = {
    "tasks": [
        {"id": "a", "intent": "analyze", "description": "look", "depends_on": ["r"]},
        {"id": "c", "intent": "write_code", "description": "x", "depends_on": ["a"]},
        {"id": "r", "intent": "run_tests", "description": "run", "depends_on": ["c"]},
    ]
}


async def test_valid_plan_from_the_model():
    model = Answers("```json\n" + json.dumps(GOOD) + "\n```")
    out = await Planner(model).plan("Add fib", ["calculator/arithmetic.py"], has_tests=True)
    assert out.source == "model"
    assert out.graph.order == ("a", "c", "w", "r")
    assert out.graph["c"].target_files == ("calculator/arithmetic.py",)
    assert out.usage.input_tokens == 10
    assert "calculator/arithmetic.py" in model.calls[0][-1].content


async def test_cyclic_plan_is_sent_back_with_the_error_then_accepted():
    model = Answers(json.dumps(CYCLIC), json.dumps(GOOD))
    out = await Planner(model).plan("Add fib", [], has_tests=True)
    assert out.source == "model-repaired"
    assert "cycle" in out.errors[0]
    repair = model.calls[1][-1].content
    assert "cycle" in repair and "invalid" in repair
    assert out.usage.input_tokens == 20


async def test_two_bad_answers_fall_back_to_the_template():
    model = Answers("I think you should write code", "{not json")
    out = await Planner(model).plan("Add a function to reverse a string", [], has_tests=False)
    assert out.source == "template"
    assert len(out.errors) == 2
    assert out.graph[out.graph.order[-1]].intent is Intent.RUN_TESTS


async def test_model_down_before_any_answer_is_an_error_not_a_silent_template():
    with pytest.raises(ModelUnavailableError):
        await Planner(Answers(ModelUnavailableError("down"))).plan("x", [], has_tests=True)


async def test_retryable_model_failure_falls_back():
    model = Answers(ModelUnavailableError("busy", retryable=True))
    out = await Planner(model).plan("Add x", [], has_tests=True)
    assert out.source == "template"


def test_planner_truncates_long_file_lists():
    msgs = Planner(Answers(), max_files_listed=3).messages("r", [f"f{i}.py" for i in range(10)])
    assert "and 7 more" in msgs[-1].content


@pytest.mark.parametrize(
    "text, message",
    [
        ("no json here", "intent 'json'"),
        ("", "no task"),
        ("t1 analyze\n???", "cannot read the line"),
        ('{"tasks": []}', "non-empty"),
        ('{"tasks": [1]}', "not an object"),
        ('{"tasks": [{"id": "a", "intent": "dance", "description": "x"}]}', "intent"),
        ('{"tasks": [{"id": "a", "intent": "analyze"', "not valid JSON"),
        ('{"tasks": [{"id": "a b", "intent": "analyze"}]}', "field id"),
    ],
)
def test_parse_errors_are_explained(text, message):
    with pytest.raises(PlanError, match=message):
        parse_plan(text)


def spec_list(*tasks):
    return parse_plan(json.dumps({"tasks": list(tasks)}))


@pytest.mark.parametrize(
    "tasks, message",
    [
        (
            [
                {"id": "c", "intent": "write_code", "description": "x", "depends_on": []},
                {"id": "r", "intent": "run_tests", "description": "x", "depends_on": ["c"]},
            ],
            "no analyze",
        ),
        (
            [
                {"id": "a", "intent": "analyze", "description": "x", "depends_on": []},
                {"id": "c", "intent": "write_code", "description": "x", "depends_on": ["a"]},
            ],
            "no run_tests",
        ),
        (
            [
                {"id": "a", "intent": "analyze", "description": "x", "depends_on": []},
                {"id": "r", "intent": "run_tests", "description": "x", "depends_on": ["a"]},
            ],
            "no write_code",
        ),
        (
            [
                {"id": "a", "intent": "analyze", "description": "x", "depends_on": []},
                {"id": "c", "intent": "write_code", "description": "x", "depends_on": []},
                {"id": "r", "intent": "run_tests", "description": "x", "depends_on": ["c", "a"]},
            ],
            "must depend on the analyze",
        ),
        (
            [
                {"id": "a", "intent": "analyze", "description": "x", "depends_on": []},
                {"id": "c", "intent": "write_code", "description": "x", "depends_on": ["a"]},
                {"id": "r", "intent": "run_tests", "description": "x", "depends_on": ["a"]},
            ],
            "every write task",
        ),
        (
            [
                {"id": f"a{i}", "intent": "analyze", "description": "x", "depends_on": []}
                for i in range(9)
            ],
            "at most",
        ),
    ],
)
def test_semantic_validation(tasks, message):
    with pytest.raises(PlanError, match=message):
        validate_plan(spec_list(*tasks))


LINES = """t1 analyze
t2 write_code after t1 file calculator/arithmetic.py
t3 write_tests after t2 file tests/test_arithmetic.py
t4 run_tests after t3, t2"""


async def test_line_format_plan():
    out = await Planner(Answers(LINES)).plan("Add fib", [], has_tests=True)
    g = out.graph
    assert out.source == "model" and g.order == ("t1", "t2", "t3", "t4")
    assert g["t2"].target_files == ("calculator/arithmetic.py",)
    assert g["t2"].description == "Add fib"
    assert "Add fib" in g["t3"].description
    assert g["t4"].depends_on == ("t3", "t2")


def test_outline_lists_top_level_names(tmp_path):
    from coditect.orchestrator.outline import outline

    (tmp_path / "a.py").write_text("def f():\n    pass\nclass C:\n    pass\n")
    (tmp_path / "bad.py").write_text("def (:\n")
    (tmp_path / "r.md").write_text("x")
    assert outline(tmp_path, ["r.md", "a.py", "bad.py"]) == [
        "a.py: f, C",
        "bad.py: (does not parse)",
        "r.md",
    ]


async def test_validation_checks_structure_only_never_the_request_wording():
    model = Answers(LINES)
    out = await Planner(model).plan("Add a test for the value_range function", [], has_tests=True)
    assert out.source == "model"
    assert Intent.WRITE_CODE in [t.intent for t in out.graph]


def _project(tmp_path, files):
    from coditect.orchestrator.outline import outline

    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return outline(tmp_path, sorted(files))


CODE = {
    "ledgerkit/__init__.py": "from ledgerkit.books import post_entry\n",
    "ledgerkit/books.py": "def post_entry(book, amount):\n    book.append(amount)\n",
    "ledgerkit/report.py": "def render_totals(book):\n    return str(sum(book))\n",
    "tests/test_books.py": "from ledgerkit import post_entry\n",
}


async def test_the_index_decides_the_plan_when_the_request_names_existing_code(tmp_path):
    files = _project(tmp_path, CODE)
    model = Answers()
    out = await Planner(model).plan("Fix `post_entry` for negative amounts", files, has_tests=True)
    assert out.source == "index" and model.calls == []
    code = next(t for t in out.graph if t.intent is Intent.WRITE_CODE)
    assert code.target_files == ("ledgerkit/books.py",)


async def test_the_model_sees_a_ranked_outline_that_fits(tmp_path):
    files = _project(tmp_path, CODE)
    model = Answers(LINES)
    out = await Planner(model).plan("Show the totals as text", files, has_tests=True)
    assert out.source == "model"
    listing = model.calls[0][-1].content.split("Files:\n", 1)[1]
    assert listing.splitlines()[0].startswith("ledgerkit/report.py: render_totals")
    small = Planner(Answers(), max_tokens=DEFAULT_CONTEXT_WINDOW - 260)
    assert len(small.messages("x", files)[-1].content) < len(
        Planner(Answers()).messages("x", files)[-1].content
    )


async def test_a_request_naming_absent_code_fails_with_the_closest_names(tmp_path):
    files = _project(tmp_path, CODE)
    with pytest.raises(InputError, match=r"post_entries \(closest: post_entry\)"):
        await Planner(Answers()).plan("Fix `post_entries` for zero", files, has_tests=True)
    # A feature request may name the code it wants created.
    out = await Planner(Answers(LINES)).plan(
        "Add `post_entries(book, items)`", files, has_tests=True
    )
    code = next(t for t in out.graph if t.intent is Intent.WRITE_CODE)
    assert code.target_files == ("ledgerkit/books.py",)  # beside post_entry, clearly


async def test_words_before_a_parenthesis_in_prose_are_not_code(tmp_path):
    # "the default (None when not given)" names no function: the plan goes on.
    files = _project(tmp_path, CODE)
    out = await Planner(Answers(LINES)).plan(
        "Looking up a missing account raises KeyError; it should return the default "
        "(None when not given) instead",
        files,
        has_tests=True,
    )
    assert out.graph


async def test_a_project_without_python_is_unsupported(tmp_path):
    files = _project(
        tmp_path, {"README.md": "hello", "tests/test_x.py": "def test_x():\n    pass\n"}
    )
    with pytest.raises(UnsupportedProjectError, match="unsupported project"):
        await Planner(Answers()).plan("Add a feature", files, has_tests=True)


async def test_a_module_that_leads_clearly_decides_a_features_plan(tmp_path):
    # Two request words lead to report.py and nothing else comes close: the change goes there
    # whatever a planner would pick (choose_module), so no model is asked for the plan.
    files = _project(tmp_path, CODE)
    model = Answers()
    out = await Planner(model).plan(
        "Add a function that renders the totals with a currency sign", files, has_tests=True
    )
    assert out.source == "index" and model.calls == []
    code = next(t for t in out.graph if t.intent is Intent.WRITE_CODE)
    assert code.target_files == ("ledgerkit/report.py",)
