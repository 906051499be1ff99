"""A priority queue of tasks with dependency resolution.

Tasks wait until every dependency is complete, then enter a heap ordered by priority (higher
first) and push order (FIFO among equals), so :meth:`TaskQueue.pop_ready` is O(log n).
A failed task blocks all its descendants, which leave the queue.

A pure data structure: no I/O, no locks (the orchestrator drives it from one asyncio loop).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable

from coditect.domain.graph import TaskGraph
from coditect.domain.tasks import TaskSpec

__all__ = ["TaskQueue"]


class TaskQueue:
    """Priority queue of :class:`TaskSpec` that releases a task once its dependencies complete.

    States of a task id: *waiting* (dependencies outstanding), *ready* (in the heap), *running*
    (popped), then *complete*, *failed* or *blocked* (a dependency failed). Dependencies the queue
    has never seen are treated as outstanding until :meth:`complete` is called for them.
    """

    def __init__(self, tasks: Iterable[TaskSpec] = ()) -> None:
        self._seq = itertools.count()
        self._heap: list[tuple[int, int, str]] = []
        self._tasks: dict[str, TaskSpec] = {}
        self._order: dict[str, int] = {}  # task id -> push sequence number (FIFO tie-break)
        self._waiting: dict[str, set[str]] = {}  # task id -> dependencies not yet complete
        self._ready: set[str] = set()
        self._running: dict[str, TaskSpec] = {}
        self._dependents: dict[str, set[str]] = {}  # dependency id -> queued dependents
        self._complete: set[str] = set()
        self._failed: set[str] = set()
        self._blocked: set[str] = set()
        for task in tasks:
            self.push(task)

    # --- adding ---------------------------------------------------------------------------------
    def push(self, task: TaskSpec) -> None:
        """Queue a task. A task whose dependency already failed is blocked at once.

        Raises:
            ValueError: A task with the same id is queued, running or complete.
        """
        tid = task.id
        if tid in self._tasks or tid in self._running or tid in self._complete:
            raise ValueError(f"task {tid!r} is already in the queue")
        self._failed.discard(tid)
        self._blocked.discard(tid)
        if any(d in self._failed or d in self._blocked for d in task.depends_on):
            self._blocked.add(tid)
            return
        self._tasks[tid] = task
        self._order[tid] = next(self._seq)
        outstanding = {d for d in task.depends_on if d not in self._complete}
        if outstanding:
            self._waiting[tid] = outstanding
            for dep in outstanding:
                self._dependents.setdefault(dep, set()).add(tid)
        else:
            self._make_ready(tid)

    def push_graph(self, graph: TaskGraph) -> None:
        """Queue every task of ``graph`` (in its topological order)."""
        for task in graph:
            self.push(task)

    def _make_ready(self, tid: str) -> None:
        self._ready.add(tid)
        heapq.heappush(self._heap, (-self._tasks[tid].priority, self._order[tid], tid))

    # --- taking ---------------------------------------------------------------------------------
    def pop_ready(self) -> TaskSpec | None:
        """The highest-priority task whose dependencies are all complete (now running), or None."""
        while self._heap:
            _, seq, tid = heapq.heappop(self._heap)
            if tid not in self._ready or self._order.get(tid) != seq:
                continue  # removed by fail() or cancel_all() (or re-pushed): skip lazily
            self._ready.discard(tid)
            del self._order[tid]
            task = self._tasks.pop(tid)
            self._running[tid] = task
            return task
        return None

    def peek_ready(self) -> list[TaskSpec]:
        """Ready tasks in the order :meth:`pop_ready` would return them (without popping)."""
        live = sorted(e for e in self._heap if e[2] in self._ready and self._order[e[2]] == e[1])
        return [self._tasks[e[2]] for e in live]

    # --- settling -------------------------------------------------------------------------------
    def complete(self, task_id: str) -> list[TaskSpec]:
        """Mark ``task_id`` complete; return the tasks it made ready (in no particular order).

        Works for an id the queue never saw (an external dependency that is now satisfied).
        """
        self._running.pop(task_id, None)
        if task_id in self._tasks:  # completed without being popped: leave the queue
            self._remove(task_id)
        self._complete.add(task_id)
        released: list[TaskSpec] = []
        for child in sorted(self._dependents.pop(task_id, ())):
            deps = self._waiting.get(child)
            if deps is None:
                continue
            deps.discard(task_id)
            if not deps:
                del self._waiting[child]
                self._make_ready(child)
                released.append(self._tasks[child])
        return released

    def fail(self, task_id: str) -> set[str]:
        """Mark ``task_id`` failed; block and remove every queued descendant.

        Returns:
            The ids of the descendants that are now blocked.
        """
        self._running.pop(task_id, None)
        if task_id in self._tasks:
            self._remove(task_id)
        self._failed.add(task_id)
        blocked: set[str] = set()
        stack = list(self._dependents.pop(task_id, ()))
        while stack:
            tid = stack.pop()
            if tid in blocked or tid not in self._tasks:
                continue
            blocked.add(tid)
            self._remove(tid)
            stack.extend(self._dependents.pop(tid, ()))
        self._blocked |= blocked
        return blocked

    def _remove(self, tid: str) -> None:
        self._tasks.pop(tid)
        self._order.pop(tid, None)
        self._ready.discard(tid)  # its heap entry is skipped lazily
        self._forget_waiting(tid)

    def _forget_waiting(self, tid: str) -> None:
        for dep in self._waiting.pop(tid, ()):
            children = self._dependents.get(dep)
            if children is not None:
                children.discard(tid)
                if not children:
                    del self._dependents[dep]

    def cancel_all(self) -> list[str]:
        """Drop every queued (not running) task; return their ids, sorted."""
        dropped = sorted(self._tasks)
        self._tasks.clear()
        self._order.clear()
        self._waiting.clear()
        self._ready.clear()
        self._heap.clear()
        self._dependents.clear()
        return dropped

    # --- inspection -----------------------------------------------------------------------------
    def pending(self) -> list[TaskSpec]:
        """Queued tasks (ready or waiting), in insertion order."""
        return list(self._tasks.values())

    def running(self) -> list[TaskSpec]:
        """Tasks popped and not yet completed or failed, in pop order."""
        return list(self._running.values())

    def is_ready(self, task_id: str) -> bool:
        """True when ``task_id`` is queued and all its dependencies are complete."""
        return task_id in self._ready

    @property
    def completed(self) -> frozenset[str]:
        """Ids of completed tasks."""
        return frozenset(self._complete)

    @property
    def failed(self) -> frozenset[str]:
        """Ids of failed tasks."""
        return frozenset(self._failed)

    @property
    def blocked(self) -> frozenset[str]:
        """Ids of tasks blocked by a failed dependency."""
        return frozenset(self._blocked)

    def __len__(self) -> int:
        """Number of queued tasks (ready or waiting; running tasks are not counted)."""
        return len(self._tasks)

    def __bool__(self) -> bool:
        return bool(self._tasks)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks or task_id in self._running
