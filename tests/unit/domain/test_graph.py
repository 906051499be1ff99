import pytest

from coditect.domain import Intent, TaskGraph, TaskSpec
from coditect.errors import CycleError, PlanError


def t(tid, intent=Intent.ANALYZE, deps=(), prio=0):
    return TaskSpec(id=tid, intent=intent, description=tid, depends_on=deps, priority=prio)


def test_topological_order_puts_dependencies_first():
    g = TaskGraph([t("c", deps=("b",)), t("b", deps=("a",)), t("a")])
    assert g.order == ("a", "b", "c")


def test_priority_breaks_ties_between_ready_tasks():
    g = TaskGraph([t("low"), t("high", prio=5)])
    assert g.order == ("high", "low")


def test_cycle_is_reported_with_its_path():
    with pytest.raises(CycleError) as info:
        TaskGraph([t("a", deps=("c",)), t("b", deps=("a",)), t("c", deps=("b",))])
    cycle = info.value.cycle
    assert cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}


def test_self_dependency_is_a_cycle():
    with pytest.raises(CycleError):
        TaskGraph([t("a", deps=("a",))])


@pytest.mark.parametrize(
    "tasks, message",
    [
        ([t("a"), t("a")], "duplicate"),
        ([t("a", deps=("zz",))], "unknown task"),
        ([], "at least one task"),
    ],
)
def test_invalid_graphs(tasks, message):
    with pytest.raises(PlanError, match=message):
        TaskGraph(tasks)


def test_ready_dependents_descendants_and_extension():
    g = TaskGraph([t("a"), t("b", deps=("a",)), t("c", deps=("b",)), t("d", deps=("a",))])
    assert [x.id for x in g.ready(set(), set())] == ["a"]
    assert {x.id for x in g.ready({"a"}, {"a"})} == {"b", "d"}
    assert set(g.dependents("a")) == {"b", "d"}
    assert g.descendants("a") == {"b", "c", "d"}
    g2 = g.extended([t("e", deps=("c",))])
    assert "e" in g2 and "e" not in g and len(g2) == 5
    assert g2["e"].depends_on == ("c",)
    assert [s.id for s in g.specs()] == ["a", "b", "c", "d"]


def test_taskspec_rejects_bad_ids_and_dedups():
    with pytest.raises(ValueError):
        TaskSpec(id="has space", intent=Intent.ANALYZE, description="x")
    spec = TaskSpec(id="x", intent=Intent.RUN_TESTS, description="d", depends_on=("a", "a"))
    assert spec.depends_on == ("a",) and spec.capability == "test"
