"""A worker whose credentials the task queue refuses takes no work and never dead-letters one.

Runs the worker on the in-memory fakes (work queue, mission values, locks) with a sink that
refuses calls as the gRPC client does (an AuthenticationError); the same on real servers is in
tests/integration/grpc/test_worker_token_refused.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from coditect.bus.base import TaskMessage
from coditect.bus.memory import MemoryWorkQueue
from coditect.distributed.worker import Worker, WorkerSettings
from coditect.errors import AuthenticationError, CoditectError
from coditect.orchestrator.step import TaskStep
from coditect.state.memory import MemoryLocks, MemoryMissionValueStore


class Sink:
    """Records calls; ``refuse`` names the calls answered with a refused token."""

    def __init__(self, *refuse: str, down: int = 0) -> None:
        self.refuse = set(refuse)
        self.down = down  # check_access calls answered "unreachable" first
        self.calls: list[str] = []

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name in self.refuse:
            raise AuthenticationError(f"{name}: UNAUTHENTICATED: missing or invalid bearer token")

    async def check_access(self) -> None:
        if self.down:
            self.down -= 1
            raise CoditectError("UNAVAILABLE", retryable=True)
        self._call("check_access")

    async def heartbeat(self, mission_id: str, task_id: str, *, worker: str) -> None:
        self._call("heartbeat")

    async def complete(self, mission_id: str, task_id: str, **kw: object) -> None:
        self._call("complete")

    async def fail(self, mission_id: str, task_id: str, **kw: object) -> None:
        self._call("fail")


def make_worker(tmp_path: Path, queue: MemoryWorkQueue, sink: Sink) -> Worker:
    locks = MemoryLocks()
    return Worker(
        settings=WorkerSettings(
            capabilities=("code",),
            cache_dir=tmp_path,
            worker_id="w1",
            poll_s=0.1,
            connect_wait_s=2.0,
        ),  # fmt: skip
        workqueue=queue,
        sink=sink,
        values=MemoryMissionValueStore(),
        # Never reached: the refusals below come before the step runs.
        step=TaskStep(model=None, sandbox=None, allocator=None),  # type: ignore[arg-type]
        locks=lambda name: locks.lock(name),
    )


@pytest.fixture
async def queue() -> MemoryWorkQueue:
    q = MemoryWorkQueue(ack_wait_s=5.0, max_deliveries=2, nak_delay_s=0.0)
    await q.enqueue(TaskMessage(mission_id="m1", task_id="t1", capability="code"))
    return q


async def test_refused_credentials_stop_the_worker_before_it_takes_work(
    tmp_path: Path, queue: MemoryWorkQueue
) -> None:
    sink = Sink("check_access")
    worker = make_worker(tmp_path, queue, sink)
    ready: list[bool] = []
    with pytest.raises(AuthenticationError, match="worker w1 was refused .* takes no work"):
        await worker.run(burst=True, on_ready=lambda: ready.append(True))
    assert ready == [] and sink.calls == ["check_access"]
    [lease] = await queue.fetch("code", timeout_s=0.1)
    assert lease.num_delivered == 1  # untouched


async def test_an_unreachable_service_is_waited_for_then_checked(
    tmp_path: Path, queue: MemoryWorkQueue
) -> None:
    sink = Sink(down=2)
    worker = make_worker(tmp_path, queue, sink)
    await worker.check_access()
    assert sink.calls == ["check_access"]


@pytest.mark.parametrize("refused", ["heartbeat", "fail"])
async def test_a_refusal_while_holding_a_task_gives_it_back_never_to_the_dead_letters(
    tmp_path: Path, queue: MemoryWorkQueue, refused: str
) -> None:
    # "fail": the heartbeat passes, the body is malformed, and the report of that is refused.
    if refused == "fail":
        await queue.enqueue(TaskMessage(mission_id="m1", task_id="t2", capability="code"))
        [first] = await queue.fetch("code", timeout_s=0.1)
        await first.ack()  # leave only t2, whose body "{}" is not a TaskBody
    sink = Sink(refused)
    worker = make_worker(tmp_path, queue, sink)
    with pytest.raises(AuthenticationError, match="given back to the queue"):
        await worker.run()  # not burst: the refusal itself ends the loop
    assert worker.tasks_released == 1 and worker.tasks_done == 0
    [again] = await queue.fetch("code", timeout_s=1.0)  # at once, for another worker
    assert again.num_delivered == 2
    assert await queue.dead_letters() == []
