"""The mission planner: request -> prompt -> LLM -> parsed, validated task DAG.

The planner sees the repository outline ranked for the request (:mod:`coditect.index`). When the
index already determines the plan (the request names existing code, or the localization's best
module leads every other clearly, so the file to change is known), no model is asked: the
template plan for the request's kind targets that file. A
request that names, as code, functions or classes that do not exist (and is not a request for new
code) is refused with the names looked for and the closest ones found; a project without Python
code is refused as unsupported.

An answer that is not a valid plan (bad JSON, unknown intent, a cycle, a plan that writes code but
never runs tests...) is sent back to the model once with the error; if the second answer is still
invalid, the planner falls back to the template plan for the request's kind. Validation checks
the plan's structure only. The outcome says which source the plan came from.

A bug report is always fixed test first (:func:`~coditect.orchestrator.templates.template_plan`):
a model's plan for one only contributes the files it chose for the fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from coditect.domain.graph import TaskGraph
from coditect.domain.tasks import Intent, TaskSpec
from coditect.errors import InputError, ModelError, PlanError
from coditect.index import Localization, RepoIndex, closest_names, localize, outline_lines
from coditect.llm.base import Message, Model, ModelSettings, Usage, prompt_budget
from coditect.orchestrator.templates import RequestKind, classify_request, template_plan
from coditect.taskqueue.targets import clear_leader

__all__ = ["MAX_PLAN_TASKS", "PlanOutcome", "Planner", "parse_plan", "validate_plan"]

MAX_PLAN_TASKS = 8

SYSTEM_PROMPT = """\
You plan work for coding agents. One task per line: ID INTENT [after IDS] [file PATH]
Intents: analyze, write_code, write_tests, run_tests. First analyze; write_code after analyze;
write_tests after write_code; last run_tests after every write task. Only the lines, nothing else."""

# One worked example keeps a small model on the format (and makes it stop after run_tests).
EXAMPLE_USER = """\
Request: Add a function that converts Celsius to Fahrenheit
Files:
conv/__init__.py
conv/units.py: to_kelvin, to_celsius
tests/test_units.py: test_to_kelvin"""
EXAMPLE_ANSWER = """\
t1 analyze
t2 write_code after t1 file conv/units.py
t3 write_tests after t2 file tests/test_units.py
t4 run_tests after t3"""

USER_PROMPT = """\
Request: {request}
Files:
{files}"""

REPAIR_PROMPT = """\
That plan is invalid: {error}
Answer again with the corrected plan lines only."""

_LINE = re.compile(
    r"^\s*(?:[-*]\s*)?(?P<id>[A-Za-z0-9_.-]+)[:.)]?\s+(?P<intent>[a-z_]+)\b(?P<rest>.*)$"
)
_DESCRIPTIONS = {
    Intent.ANALYZE: "Inspect the repository: modules, functions, tests and the test command.",
    Intent.RUN_TESTS: "Run the tests and check that every test passes.",
}


@dataclass(frozen=True)
class PlanOutcome:
    """A plan and how it was obtained.

    Attributes:
        source: ``"model"``, ``"model-repaired"`` (valid after one correction), ``"index"`` (the
            repository index determined it, no model call) or ``"template"``.
        errors: Why earlier answers were rejected.
    """

    graph: TaskGraph
    source: str
    usage: Usage = field(default_factory=Usage)
    errors: tuple[str, ...] = ()


def parse_plan(text: str, request: str = "") -> list[TaskSpec]:
    """Extract the tasks from a model answer: plan lines, or a JSON ``{"tasks": [...]}`` object.

    Raises:
        PlanError: The answer holds no task, or a task is malformed.
    """
    if "{" in text:
        return _parse_json(text, request)
    tasks: list[TaskSpec] = []
    for raw in text.splitlines():
        line = raw.strip().strip("`")
        if not line:
            continue
        match = _LINE.match(line)
        if match is None:
            raise PlanError(
                f"cannot read the line {line[:60]!r}; expected: ID INTENT [after IDS] [file PATH]"
            )
        rest = match.group("rest")
        after = re.search(r"\bafter\s+(.+?)(?=\s+file\b|$)", rest)
        file = re.search(r"\bfile\s+(\S+)", rest)
        deps = re.findall(r"[A-Za-z0-9_.-]+", after.group(1)) if after else []
        tasks.append(
            _task(
                len(tasks) + 1,
                match.group("id"),
                match.group("intent"),
                deps,
                [file.group(1)] if file else [],
                "",
                request,
            )
        )
    if not tasks:
        raise PlanError("the answer contains no task")
    return tasks


def _parse_json(text: str, request: str) -> list[TaskSpec]:
    match = re.search(r"\{.*\}", text, re.S)
    try:
        data = json.loads(match.group(0) if match else text)
    except json.JSONDecodeError as exc:
        raise PlanError(f"the answer is not valid JSON: {exc.msg} at char {exc.pos}") from exc
    raw_tasks = data.get("tasks") if isinstance(data, dict) else None
    if not isinstance(raw_tasks, list) or not raw_tasks:
        raise PlanError('the JSON needs a non-empty "tasks" list')
    tasks: list[TaskSpec] = []
    for i, raw in enumerate(raw_tasks):
        if not isinstance(raw, dict):
            raise PlanError(f"task #{i + 1} is not an object")
        deps = raw.get("depends_on") or raw.get("after") or []
        files = raw.get("target_files") or ([raw["file"]] if raw.get("file") else [])
        tasks.append(
            _task(
                i + 1,
                str(raw.get("id", "")).strip(),
                raw.get("intent"),
                [str(d) for d in deps],
                [str(f) for f in files],
                str(raw.get("description", "")).strip(),
                request,
            )
        )
    return tasks


def _task(
    n: int, tid: str, intent: object, deps: list[str], files: list[str], desc: str, request: str
) -> TaskSpec:
    try:
        kind = Intent(str(intent))
    except ValueError:
        allowed = ", ".join(i.value for i in Intent)
        raise PlanError(f"task #{n} has intent {intent!r}; allowed: {allowed}") from None
    if not desc:
        desc = _DESCRIPTIONS.get(kind) or (
            f"Write pytest tests for: {request}" if kind is Intent.WRITE_TESTS else request
        )
    try:
        return TaskSpec(
            id=tid,
            intent=kind,
            description=desc or kind.value,
            depends_on=tuple(deps),
            target_files=tuple(files),
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise PlanError(f"task #{n} field {loc}: {first['msg']}") from exc


def validate_plan(tasks: Sequence[TaskSpec], request: str = "") -> TaskGraph:
    """Build the DAG and check that it is a plan we can execute safely (structure only).

    Args:
        tasks: The plan's tasks.
        request: Unused; kept so that callers need not change (the request never vetoes a plan).

    Raises:
        PlanError: With a message that can be shown to the model to correct its plan.
    """
    if len(tasks) > MAX_PLAN_TASKS:
        raise PlanError(f"the plan has {len(tasks)} tasks; at most {MAX_PLAN_TASKS} are allowed")
    graph = TaskGraph(tasks)  # duplicate ids, unknown dependencies, cycles
    by_intent = {i: [t for t in graph if t.intent is i] for i in Intent}
    if not by_intent[Intent.ANALYZE]:
        raise PlanError("the plan has no analyze task")
    tests = by_intent[Intent.RUN_TESTS]
    if not tests:
        raise PlanError("the plan has no run_tests task")
    writers = by_intent[Intent.WRITE_CODE] + by_intent[Intent.WRITE_TESTS]
    if not writers:
        raise PlanError("the plan has no write_code or write_tests task")
    analyze_ids = {t.id for t in by_intent[Intent.ANALYZE]}
    for task in writers:
        ancestors = _ancestors(graph, task.id)
        if not ancestors & analyze_ids:
            raise PlanError(f"task {task.id!r} ({task.intent}) must depend on the analyze task")
    final = tests[-1]
    missing = {t.id for t in writers} - _ancestors(graph, final.id)
    if missing:
        raise PlanError(
            f"run_tests task {final.id!r} must depend on every write task; missing: "
            + ", ".join(sorted(missing))
        )
    return graph


def _ancestors(graph: TaskGraph, task_id: str) -> set[str]:
    out: set[str] = set()
    stack = list(graph[task_id].depends_on)
    while stack:
        tid = stack.pop()
        if tid not in out:
            out.add(tid)
            stack.extend(graph[tid].depends_on)
    return out


class Planner:
    """Decomposes a request into a validated task graph with the help of a model."""

    def __init__(self, model: Model, *, max_files_listed: int = 40, max_tokens: int = 160) -> None:
        self.model = model
        self.max_files_listed = max_files_listed
        self.max_tokens = max_tokens

    def messages(
        self, request: str, files: Sequence[str], loc: Localization | None = None
    ) -> list[Message]:
        """The prompt for ``request``; ``files`` may carry an outline (``path: name, name``).

        When ``files`` carries the repository index, the outline is ranked for the request
        (best files first, their best symbols first) and narrowed until it fits the model's
        context window with room for the answer.
        """
        index: RepoIndex | None = getattr(files, "repo_index", None)
        if index is not None and len(index):
            loc = loc if loc is not None else localize(index, request)
            lines = outline_lines(index, loc, max_files=self.max_files_listed)
        else:
            lines = list(files[: self.max_files_listed])
            if len(files) > len(lines):
                lines.append(f"... and {len(files) - len(lines)} more")
        budget = prompt_budget(self.model, self.max_tokens)
        while True:
            msgs = [
                Message(role="system", content=SYSTEM_PROMPT),
                Message(role="user", content=EXAMPLE_USER),
                Message(role="assistant", content=EXAMPLE_ANSWER),
                Message(
                    role="user",
                    content=USER_PROMPT.format(
                        request=request, files="\n".join(lines) or "(empty)"
                    ),
                ),
            ]
            if not lines or self.model.count_tokens(_joined(msgs)) <= budget:
                return msgs
            lines = lines[: len(lines) // 2]

    async def plan(self, request: str, files: Sequence[str], *, has_tests: bool) -> PlanOutcome:
        """Plan ``request``; never raises for a bad model answer (falls back to a template).

        Raises:
            InputError: The project has no Python code, or the request names code that does
                not exist (the message lists the names and the closest ones found).
            ModelError: Only when the model cannot be called at all and is not retryable.
        """
        index: RepoIndex | None = getattr(files, "repo_index", None)
        loc = None
        if index is not None:
            index.require_python()
            loc = localize(index, request)
            decided = _decided(request, loc, index, has_tests=has_tests)
            if decided is not None:
                return PlanOutcome(graph=decided, source="index")
        messages = self.messages(request, files, loc)
        settings = ModelSettings(max_tokens=self.max_tokens, stop=("\n\n",), purpose="plan")
        errors: list[str] = []
        usage = Usage()
        for attempt in range(2):
            try:
                response = await self.model.request(messages, settings)
            except ModelError as exc:
                if not exc.retryable and attempt == 0 and not errors:
                    raise
                errors.append(f"model call failed: {exc}")
                break
            usage = _add(usage, response.usage)
            try:
                graph = validate_plan(parse_plan(response.text, request), request)
            except PlanError as exc:
                errors.append(str(exc))
                messages = [
                    *messages,
                    Message(role="assistant", content=response.text),
                    Message(role="user", content=REPAIR_PROMPT.format(error=exc)),
                ]
                continue
            source = "model" if attempt == 0 else "model-repaired"
            if classify_request(request) in (RequestKind.FIX_BUG, RequestKind.REMOVE):
                # A bug is fixed test first, and a removal gets no new tests, in the files
                # the model chose for the change.
                targets = (
                    f for t in graph if t.intent is Intent.WRITE_CODE for f in t.target_files
                )
                graph = template_plan(
                    request, has_tests=has_tests, targets=tuple(dict.fromkeys(targets))
                )
            return PlanOutcome(graph=graph, source=source, usage=usage, errors=tuple(errors))
        return PlanOutcome(
            graph=template_plan(request, has_tests=has_tests),
            source="template",
            usage=usage,
            errors=tuple(errors),
        )


def _joined(messages: Sequence[Message]) -> str:
    return "\n".join(m.content for m in messages)


def _decided(
    request: str, loc: Localization, index: RepoIndex, *, has_tests: bool
) -> TaskGraph | None:
    """The plan when the index determines it, else None; refuses requests naming absent code.

    Raises:
        InputError: The request names, as code, only definitions that do not exist, and it
            does not ask for new code.
    """
    kind = classify_request(request)
    if loc.missing and not loc.mentioned and kind is not RequestKind.ADD_FEATURE:
        names = sorted(index.names())
        parts = []
        for name in loc.missing:
            close = closest_names(name, names)
            parts.append(f"{name} (closest: {', '.join(close)})" if close else f"{name} (none)")
        raise InputError(
            "the request names code that the project does not define: " + "; ".join(parts),
            hint="check the spelling of the function or class names",
        )
    files = list(loc.mentioned_paths) or list(dict.fromkeys(s.path for s in loc.mentioned))
    if not files:
        plain = {s.path for s in loc.named} if kind is not RequestKind.ADD_FEATURE else set()
        files = sorted(plain)
    if not files:
        # The module the change goes into whatever a planner picks (choose_module, rule 3).
        leader = clear_leader(loc)
        files = [leader] if leader is not None else []
    if len(files) != 1:
        return None
    return template_plan(request, has_tests=has_tests, targets=tuple(files))


def _add(a: Usage, b: Usage) -> Usage:
    return Usage(
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        cached_input_tokens=a.cached_input_tokens + b.cached_input_tokens,
    )
