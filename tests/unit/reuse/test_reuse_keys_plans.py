"""Task keys, request normalisation and plan reuse (with a tiny fake embedder)."""

from __future__ import annotations

from coditect.agents.base import Upstream
from coditect.domain.actions import Action, ActionKind
from coditect.domain.graph import TaskGraph
from coditect.domain.results import CodeChange, FileEdit
from coditect.domain.tasks import Intent, TaskSpec
from coditect.reuse.estimate import estimate_plan
from coditect.reuse.keys import task_key
from coditect.reuse.normalize import normalize_request
from coditect.reuse.plans import PlanReuse
from coditect.reuse.store import MemoryReuseStore
from coditect.reuse.tasks import StoredTask, TaskReuse, apply_files
from coditect.taskqueue.world_model import WorldModel

TASK = TaskSpec(id="t2", intent=Intent.WRITE_CODE, description="Add fib", depends_on=("t1",))
ACTION = Action(
    intent=Intent.WRITE_CODE,
    kind=ActionKind.WRITE_FILES,
    read_files=("pkg/a.py",),
    write_files=("pkg/a.py",),
)


def key(**kw):
    args = {
        "task": TASK,
        "action": ACTION,
        "request": "Add fib",
        "model": "m",
        "upstream": Upstream(),
        "hashes": {"pkg/a.py": "h1"},
    }
    return task_key(**(args | kw))


def test_task_key_depends_on_every_input_but_the_task_id():
    base = key()
    assert base.startswith("task:") and base == key(task=TASK.model_copy(update={"id": "x9"}))
    assert base != key(hashes={"pkg/a.py": "h2"})
    assert base != key(request="Add fibonacci")
    assert base != key(model="other")
    assert base != key(task=TASK.model_copy(update={"feedback": "1 failed"}))


def test_normalize_folds_wording_but_keeps_identifiers():
    a = normalize_request("Add a function to calculate the nth Fibonacci number")
    b = normalize_request("add a function that calculates the Nth fibonacci number!")
    assert a == b
    assert "value_range" in normalize_request("Add a docstring to the value_range function")
    assert normalize_request("Add gcd(a, b)") != normalize_request("Add lcm(a, b)")


def plan():
    return TaskGraph(
        [
            TaskSpec(id="t1", intent=Intent.ANALYZE, description="look"),
            TaskSpec(
                id="t2",
                intent=Intent.WRITE_CODE,
                description="code",
                depends_on=("t1",),
                target_files=("pkg/a.py",),
            ),
            TaskSpec(id="t3", intent=Intent.RUN_TESTS, description="test", depends_on=("t2",)),
        ]
    )


class FakeEmbedder:
    def embed(self, texts):
        return [[1.0, 0.0] if "fib" in t.lower() else [0.0, 1.0] for t in texts]


def world(tmp_path, *files):
    for f in files:
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text("x = 1\n")
    w = WorldModel(tmp_path)
    w.scan()
    return w


async def test_plan_reuse_normalised_semantic_and_validated(tmp_path):
    reuse = PlanReuse(MemoryReuseStore(), embedder=lambda: FakeEmbedder())
    w = world(tmp_path, "pkg/a.py")
    assert await reuse.lookup("Add fib", w) is None
    await reuse.remember("Add fib", plan())
    hit = await reuse.lookup("add FIB.", w)
    assert hit is not None and hit.match == "normalized" and hit.request == "Add fib"
    hit = await reuse.lookup("Write the Fibonacci thing", w)
    assert hit is not None and hit.match == "semantic"
    assert await reuse.lookup("Something else entirely", w) is None
    (tmp_path / "pkg" / "a.py").unlink()
    w.scan()
    assert await reuse.lookup("Add fib", w) is None  # its target file is gone


async def test_task_reuse_round_trip_reapplies_files(tmp_path):
    import hashlib

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("def fib(): ...\n")
    sha = hashlib.sha256(b"def fib(): ...\n").hexdigest()
    change = CodeChange(edits=(FileEdit(path="pkg/a.py", after_sha256=sha),))
    tasks = TaskReuse(MemoryReuseStore(), model="m")
    w = world(tmp_path / "other")
    k = tasks.key(TASK, ACTION, w, Upstream(), "Add fib")
    assert k is not None
    await tasks.remember(k, change, tmp_path, tokens=42, usd=0.0)
    entry = await tasks.lookup(k)
    assert isinstance(entry, StoredTask) and entry.tokens == 42 and entry.result == change
    target = tmp_path / "fresh"
    assert apply_files(entry, target)
    assert (target / "pkg" / "a.py").read_text() == "def fib(): ...\n"
    run_tests = TaskSpec(id="t4", intent=Intent.RUN_TESTS, description="test")
    assert tasks.key(run_tests, ACTION, w, Upstream(), "Add fib") is None


def test_estimate_counts_only_llm_tasks():
    est = estimate_plan(plan(), "anthropic:claude-sonnet-4-5")
    assert est.llm_tasks == 1 and est.tokens > 0 and est.usd > 0
    assert estimate_plan(plan(), "local:qwen").usd == 0
    assert estimate_plan(plan(), "x", skip=frozenset({"t2"})).tokens == 0
