"""The distributed port without servers: an in-memory task queue and bus stand in for them.

The same port on the real servers is covered by tests/contracts/test_mission_contract.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from coditect.bus.memory import MemoryBus
from coditect.distributed.messages import MissionCheckpoint, TaskBody
from coditect.distributed.port import DistributedPort
from coditect.distributed.repos import RepoCache
from coditect.distributed.taskqueue import _step_error
from coditect.domain import MissionReport
from coditect.domain.events import TaskState
from coditect.domain.graph import TaskGraph
from coditect.domain.results import AnalysisReport
from coditect.domain.tasks import GoalState, Intent, TaskSpec
from coditect.domain.taskstate import StoredTaskView, TaskStateRecord
from coditect.llm.testing import ScriptedModel
from coditect.llm.usage import UsageCounter
from coditect.orchestrator.goals import GoalManager
from coditect.orchestrator.port import JournalStep, MissionRun, TaskFinished, TaskStarted
from coditect.orchestrator.step import StepOutcome, TaskOrder
from coditect.taskqueue.queue import TaskQueue

MID = "m-1"
T1 = TaskSpec(id="t1", intent=Intent.ANALYZE, description="look")


class FakeTaskQueue:
    """The task queue service's client, in memory."""

    def __init__(self) -> None:
        self.views: dict[str, StoredTaskView] = {}
        self.enqueued: list[str] = []
        self.cancelled: list[str] = []
        self.checkpoint = ""

    def set(self, state: GoalState, outcome: StepOutcome | None = None, error: str = "") -> None:
        rec = TaskStateRecord(mission_id=MID, task_id="t1", state=state, worker="w1", error=error)
        self.views["t1"] = StoredTaskView(rec, outcome.model_dump_json() if outcome else "")

    async def enqueue(self, mission_id: str, task: TaskSpec, body_json: str, attempt: int) -> str:
        TaskBody.model_validate_json(body_json)
        self.enqueued.append(task.id)
        return "id"

    async def get_tasks(self, mission_id: str) -> list[StoredTaskView]:
        return list(self.views.values())

    async def cancel_tasks(self, mission_id: str, reason: str = "") -> None:
        self.cancelled.append(reason)

    async def put_checkpoint(self, mission_id: str, state_json: str) -> None:
        self.checkpoint = state_json

    async def get_checkpoint(self, mission_id: str) -> str:
        return self.checkpoint


def _run() -> MissionRun:
    graph = TaskGraph([T1])
    run = MissionRun(
        report=MissionReport(mission_id=MID, request="r", repo="/r"),
        request="r",
        goals=GoalManager(graph),
        queue=TaskQueue(),
        plan=graph,
        counter=UsageCounter(ScriptedModel([])),
    )
    run.queue.push_graph(graph)
    return run


def _port(tq: FakeTaskQueue, tmp_path: Path, *, resumed: bool = False, check_s: float = 60.0):
    port = DistributedPort(tasks=tq, repos=RepoCache(tmp_path), settle_check_s=check_s)
    port.attach(MID, repo="/r", branch="b", base="abc", clone=tmp_path, resumed=resumed)
    return port


def _order() -> TaskOrder:
    return TaskOrder(mission_id=MID, request="r", task=T1)


async def _next(run: MissionRun):
    return await asyncio.wait_for(run.inbox.get(), 5)


async def test_notifications_push_the_start_and_the_outcome(tmp_path: Path) -> None:
    tq, run = FakeTaskQueue(), _run()
    port = _port(tq, tmp_path)
    await port.submit(run, _order())
    assert tq.enqueued == ["t1"]
    await port.notify(TaskState(mission_id="other", task_id="t1", state=GoalState.RUNNING))
    await port.notify(TaskState(mission_id=MID, task_id="t1", agent="w1", state=GoalState.RUNNING))
    await port.notify(TaskState(mission_id=MID, task_id="t1", agent="w1", state=GoalState.RUNNING))
    outcome = StepOutcome(result=AnalysisReport(summary="s"), agent="analyzer@w1")
    tq.set(GoalState.COMPLETE, outcome)
    await port.notify(TaskState(mission_id=MID, task_id="t1", state=GoalState.COMPLETE))
    await port.notify(TaskState(mission_id=MID, task_id="t1", state=GoalState.COMPLETE))
    assert await _next(run) == TaskStarted(task_id="t1", agent="w1")
    assert await _next(run) == TaskFinished(task_id="t1", outcome=outcome)
    assert run.inbox.empty()  # one start, one end, whatever was notified twice
    await port.close(run)


async def test_a_lost_notification_is_made_up_by_the_backstop(tmp_path: Path) -> None:
    tq, run = FakeTaskQueue(), _run()
    port = _port(tq, tmp_path, check_s=0.01)
    await port.submit(run, _order())
    tq.set(GoalState.FAILED, error="dead-lettered: delivered 2 times")
    started, finished = await _next(run), await _next(run)
    assert started == TaskStarted(task_id="t1", agent="w1")
    assert isinstance(finished, TaskFinished)
    assert finished.outcome.result is None
    assert finished.outcome.error == "dead-lettered: delivered 2 times"


async def test_a_resumed_missions_task_is_not_enqueued_again(tmp_path: Path) -> None:
    tq, run = FakeTaskQueue(), _run()
    outcome = StepOutcome(result=AnalysisReport(summary="s"), agent="analyzer@w1")
    tq.set(GoalState.COMPLETE, outcome)
    port = _port(tq, tmp_path, resumed=True)
    await port.submit(run, _order())
    assert tq.enqueued == []
    assert isinstance(await _next(run), TaskStarted)
    assert await _next(run) == TaskFinished(task_id="t1", outcome=outcome)


async def test_a_resumed_missions_running_task_is_waited_for(tmp_path: Path) -> None:
    tq, run = FakeTaskQueue(), _run()
    tq.set(GoalState.RUNNING)
    port = _port(tq, tmp_path, resumed=True, check_s=0.01)
    await port.submit(run, _order())
    assert await _next(run) == TaskStarted(task_id="t1", agent="w1")
    tq.set(GoalState.COMPLETE, StepOutcome(result=AnalysisReport(summary="s")))
    assert isinstance(await _next(run), TaskFinished)
    assert tq.enqueued == []


async def test_cancel_and_checkpoint(tmp_path: Path) -> None:
    tq, run = FakeTaskQueue(), _run()
    port = _port(tq, tmp_path)
    await port.submit(run, _order())
    await port.cancel(run, "stop")
    assert tq.cancelled == ["stop"]
    run.journal.append(JournalStep(kind="fail", task_id="t1", error="e"))
    await port.after_step(run)
    cp = MissionCheckpoint.model_validate_json(tq.checkpoint)
    assert cp.base == "abc" and [s.kind for s in cp.steps] == ["fail"]
    assert [t.id for t in cp.plan] == ["t1"]


async def test_follow_turns_bus_events_into_notifications(tmp_path: Path) -> None:
    tq, run, bus = FakeTaskQueue(), _run(), MemoryBus()
    port = _port(tq, tmp_path)
    await port.submit(run, _order())
    follower = asyncio.create_task(port.follow(bus))
    await asyncio.sleep(0.05)
    await bus.publish(TaskState(mission_id=MID, task_id="t1", agent="w1", state=GoalState.RUNNING))
    assert await _next(run) == TaskStarted(task_id="t1", agent="w1")
    await bus.close()
    await asyncio.wait_for(follower, 5)


@pytest.mark.parametrize(
    ("outcome", "error"),
    [
        ('{"result":{"kind":"analysis"}}', None),
        ('{"result":null,"error":"boom"}', "boom"),
        ('{"result":null}', "the task produced no result"),
        ('not json "result":null', None),
        ("{}", None),
    ],
)
def test_the_task_queue_tells_a_failed_step_from_its_outcome(outcome: str, error: str) -> None:
    assert _step_error(outcome) == error


async def test_closing_the_port_stops_its_backstops(tmp_path: Path) -> None:
    class Closed(FakeTaskQueue):
        async def get_tasks(self, mission_id: str) -> list[StoredTaskView]:
            raise RuntimeError("Channel is closed.")

    tq, run = Closed(), _run()
    port = _port(tq, tmp_path, check_s=0.01)
    await port.submit(run, _order())
    await asyncio.sleep(0.05)  # the backstop survives a failing read
    backstops = list(port._backstops.values())
    assert backstops and not backstops[0].done()
    await port.aclose()
    assert backstops[0].cancelled() and not port._backstops
