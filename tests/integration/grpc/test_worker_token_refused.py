"""Issue 12: a worker with refused credentials takes no work, and gives back a task it holds.

Real task queue service (token required), JetStream and Redis; the worker runs in this
process. The same worker as a command (`coditect worker --token WRONG`) is in
tests/e2e/test_distributed.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from coditect.api.clients import ClientOptions, TaskQueueClient
from coditect.distributed.settings import DistributedSettings
from coditect.domain.tasks import Intent, TaskSpec
from coditect.errors import AuthenticationError
from coditect.llm.demo import fibonacci_model
from coditect.runtime.distributed import build_worker, start_taskqueue

TOKEN = "tok"
TASK = TaskSpec(id="t1", intent=Intent.ANALYZE, description="look")


@pytest.fixture
async def taskqueue(service_settings: dict[str, Any]):
    svc = await start_taskqueue(DistributedSettings(**service_settings, listen="127.0.0.1:0"))
    opts = ClientOptions(address=f"127.0.0.1:{svc.port}", token=TOKEN, retries=0)
    async with TaskQueueClient(opts) as good:
        await good.enqueue("m-cred", TASK, "{}", 1)
        yield svc, good
    await svc.stop()


@pytest.fixture
async def bad_worker(taskqueue, service_settings: dict[str, Any]):
    """A worker built against the task queue with a token the service refuses."""
    svc, _ = taskqueue
    cfg = DistributedSettings(
        **{**service_settings, "token": "WRONG"}, taskqueue=f"127.0.0.1:{svc.port}", worker_id="bad"
    )
    worker, closers = await build_worker(cfg, model=fibonacci_model())
    yield worker
    for close in reversed(closers):
        await close()


async def test_a_worker_with_a_wrong_token_exits_before_taking_work(taskqueue, bad_worker) -> None:
    with pytest.raises(AuthenticationError, match="refused .* takes no work.*UNAUTHENTICATED"):
        await bad_worker.run(burst=True)
    leased = await taskqueue[1].lease(["analyze"], "w-good", wait_s=3)
    assert leased.found and leased.delivery == 1  # nobody took it before


async def test_a_task_held_when_the_token_is_refused_goes_back_not_to_the_dead_letters(
    taskqueue, bad_worker
) -> None:
    # As if the token had been rotated after the start-up check: the task is held already.
    [lease] = await bad_worker.workqueue.fetch("analyze", timeout_s=3)
    await bad_worker.process(lease)  # the Heartbeat call is refused
    assert lease.outcome == "retry" and bad_worker.tasks_released == 1
    assert await bad_worker.workqueue.dead_letters() == []
    good = taskqueue[1]
    leased = await good.lease(["analyze"], "w-good", wait_s=3)  # another worker takes it
    assert leased.found and leased.task_id == "t1" and leased.delivery == 2
    [stored] = await good.get_tasks("m-cred")
    assert stored.record.state != "failed"
