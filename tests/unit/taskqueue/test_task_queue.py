import pytest

from coditect.domain import Intent, TaskGraph, TaskSpec
from coditect.taskqueue.queue import TaskQueue


def t(tid: str, *deps: str, priority: int = 0) -> TaskSpec:
    return TaskSpec(
        id=tid, intent=Intent.WRITE_CODE, description=tid, depends_on=deps, priority=priority
    )


def drain(q: TaskQueue) -> list[str]:
    out = []
    while (task := q.pop_ready()) is not None:
        out.append(task.id)
        q.complete(task.id)
    return out


def test_priority_then_fifo() -> None:
    q = TaskQueue()
    for task in (t("a"), t("b", priority=5), t("c"), t("d", priority=5), t("e", priority=-1)):
        q.push(task)
    assert len(q) == 5
    assert drain(q) == ["b", "d", "a", "c", "e"]
    assert len(q) == 0 and not q


def test_dependencies_gate_readiness() -> None:
    q = TaskQueue(
        [
            t("analyze", priority=10),
            t("code", "analyze"),
            t("tests", "code"),
            t("run", "code", "tests"),
        ]
    )
    assert [x.id for x in q.peek_ready()] == ["analyze"]
    first = q.pop_ready()
    assert first is not None and first.id == "analyze"
    assert q.pop_ready() is None  # code waits for analyze
    assert [x.id for x in q.running()] == ["analyze"]
    released = q.complete("analyze")
    assert [x.id for x in released] == ["code"]
    assert q.running() == []
    assert drain(q) == ["code", "tests", "run"]
    assert q.completed == {"analyze", "code", "tests", "run"}


def test_push_graph_uses_topological_order() -> None:
    graph = TaskGraph([t("run", "code"), t("code", "analyze"), t("analyze")])
    q = TaskQueue()
    q.push_graph(graph)
    assert drain(q) == ["analyze", "code", "run"]


def test_fail_blocks_descendants_and_removes_them() -> None:
    q = TaskQueue([t("a"), t("b", "a"), t("c", "b"), t("d", "a", "x"), t("e"), t("f", "e")])
    a = q.pop_ready()
    assert a is not None and a.id == "a"
    blocked = q.fail("a")
    assert blocked == {"b", "c", "d"}
    assert q.failed == {"a"} and q.blocked == {"b", "c", "d"}
    assert [x.id for x in q.pending()] == ["e", "f"]
    assert drain(q) == ["e", "f"]
    assert q.pop_ready() is None


def test_fail_a_ready_task_skips_its_heap_entry() -> None:
    q = TaskQueue([t("a", priority=9), t("b")])
    assert q.fail("a") == set()
    popped = q.pop_ready()
    assert popped is not None and popped.id == "b"


def test_push_after_failure_repair_round() -> None:
    # What the orchestrator does: the test run fails, a fix and a re-test are pushed.
    q2 = TaskQueue([t("code"), t("run", "code")])
    q2.pop_ready()
    q2.complete("code")
    run = q2.pop_ready()
    assert run is not None
    assert q2.fail("run") == set()
    q2.push(t("repair1", "code"))
    q2.push(t("retest1", "repair1"))
    assert drain(q2) == ["repair1", "retest1"]


def test_push_depending_on_failed_task_is_blocked() -> None:
    q = TaskQueue([t("a")])
    q.pop_ready()
    q.fail("a")
    q.push(t("b", "a"))
    assert "b" in q.blocked and len(q) == 0


def test_unknown_dependency_waits_until_completed() -> None:
    q = TaskQueue([t("b", "external")])
    assert q.pop_ready() is None
    q.complete("external")
    assert drain(q) == ["b"]


def test_duplicate_push_rejected() -> None:
    q = TaskQueue([t("a")])
    with pytest.raises(ValueError, match="already"):
        q.push(t("a"))
    q.pop_ready()
    with pytest.raises(ValueError):
        q.push(t("a"))


def test_repush_of_removed_task_has_single_live_entry() -> None:
    q = TaskQueue([t("a", priority=1), t("b")])
    q.fail("a")
    q.push(t("a", priority=-5))
    assert drain(q) == ["b", "a"]


def test_cancel_all_keeps_running() -> None:
    q = TaskQueue([t("a"), t("b", "a"), t("c")])
    q.pop_ready()
    assert q.cancel_all() == ["b", "c"]
    assert len(q) == 0 and [x.id for x in q.running()] == ["a"]
    assert "a" in q and "b" not in q
    q.complete("a")
    assert q.pop_ready() is None


def test_complete_unpopped_task_leaves_queue() -> None:
    q = TaskQueue([t("a"), t("b", "a")])
    q.complete("a")
    assert [x.id for x in q.pending()] == ["b"]
    assert q.is_ready("b")
    assert drain(q) == ["b"]


def test_many_tasks_pop_in_priority_order() -> None:
    q = TaskQueue([t(f"t{i}", priority=i % 7) for i in range(500)])
    order = drain(q)
    prios = [int(x[1:]) % 7 for x in order]
    assert prios == sorted(prios, reverse=True)
    assert len(order) == 500
