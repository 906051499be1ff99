"""The task graph: a validated DAG of :class:`TaskSpec` with cycle detection and topological order."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from coditect.domain.tasks import TaskSpec
from coditect.errors import CycleError, PlanError

__all__ = ["TaskGraph"]


class TaskGraph:
    """An immutable, validated directed acyclic graph of tasks.

    Construction fails with :class:`PlanError` on duplicate ids or unknown dependencies and with
    :class:`CycleError` on a cycle, so a ``TaskGraph`` that exists is always a valid DAG.
    """

    __slots__ = ("_dependents", "_order", "_tasks")

    def __init__(self, tasks: Iterable[TaskSpec]) -> None:
        by_id: dict[str, TaskSpec] = {}
        for task in tasks:
            if task.id in by_id:
                raise PlanError(f"duplicate task id {task.id!r}")
            by_id[task.id] = task
        if not by_id:
            raise PlanError("a plan needs at least one task")
        for task in by_id.values():
            for dep in task.depends_on:
                if dep == task.id:
                    raise CycleError([task.id, task.id])
                if dep not in by_id:
                    raise PlanError(f"task {task.id!r} depends on unknown task {dep!r}")
        self._tasks = by_id
        self._dependents: dict[str, list[str]] = {t: [] for t in by_id}
        for task in by_id.values():
            for dep in task.depends_on:
                self._dependents[dep].append(task.id)
        self._order = self._toposort()

    def _toposort(self) -> tuple[str, ...]:
        """Kahn's algorithm; ties broken by priority (high first) then plan order."""
        position = {tid: i for i, tid in enumerate(self._tasks)}
        indegree = {tid: len(t.depends_on) for tid, t in self._tasks.items()}
        ready = [tid for tid, n in indegree.items() if n == 0]
        order: list[str] = []
        while ready:
            ready.sort(key=lambda tid: (-self._tasks[tid].priority, position[tid]))
            tid = ready.pop(0)
            order.append(tid)
            for child in self._dependents[tid]:
                indegree[child] -= 1
                if indegree[child] == 0:
                    ready.append(child)
        if len(order) != len(self._tasks):
            raise CycleError(self._find_cycle({t for t, n in indegree.items() if n > 0}))
        return tuple(order)

    def _find_cycle(self, remaining: set[str]) -> list[str]:
        """Walk dependencies inside the unsorted remainder until a node repeats."""
        start = min(remaining)
        path: list[str] = []
        seen: dict[str, int] = {}
        node = start
        while node not in seen:
            seen[node] = len(path)
            path.append(node)
            node = next(d for d in self._tasks[node].depends_on if d in remaining)
        cycle = path[seen[node] :]
        return [*cycle, node]

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[TaskSpec]:
        return (self._tasks[tid] for tid in self._order)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks

    def __getitem__(self, task_id: str) -> TaskSpec:
        return self._tasks[task_id]

    @property
    def order(self) -> tuple[str, ...]:
        """Task ids in a topological order (dependencies first)."""
        return self._order

    def dependents(self, task_id: str) -> tuple[str, ...]:
        """Ids of tasks that directly depend on ``task_id``."""
        return tuple(self._dependents[task_id])

    def descendants(self, task_id: str) -> set[str]:
        """Ids of every task that depends on ``task_id``, directly or not."""
        out: set[str] = set()
        stack = list(self._dependents[task_id])
        while stack:
            tid = stack.pop()
            if tid not in out:
                out.add(tid)
                stack.extend(self._dependents[tid])
        return out

    def ready(self, complete: set[str], started: set[str]) -> list[TaskSpec]:
        """Tasks not yet started whose dependencies are all in ``complete``."""
        return [t for t in self if t.id not in started and all(d in complete for d in t.depends_on)]

    def extended(self, tasks: Iterable[TaskSpec]) -> TaskGraph:
        """A new graph with ``tasks`` added (validated like any other graph)."""
        return TaskGraph([*self._tasks.values(), *tasks])

    def specs(self) -> list[TaskSpec]:
        """The tasks in plan order (as given to the constructor)."""
        return list(self._tasks.values())
