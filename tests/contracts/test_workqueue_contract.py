"""One contract for the WorkQueue: the in-memory fake (coditect.bus.memory) and NATS JetStream.

Leasing per capability, de-duplication, redelivery after the ack wait, nak, max deliveries and
dead letters: a test of the distributed code that uses the fake can trust it to behave like
production. JetStream runs on the session's private nats-server (tests/infra).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest

from coditect.bus.base import Lease, TaskMessage, WorkQueue
from coditect.bus.memory import MemoryWorkQueue
from coditect.errors import BusError

WAIT_S = 5.0
ACK_WAIT_S = 1.0
MAX_DELIVERIES = 3


async def _memory(request: pytest.FixtureRequest, name: str) -> WorkQueue:
    # One process: every "worker" shares the one queue object.
    queue = request.node.stash.setdefault(_SHARED, {})
    if name not in queue:
        queue[name] = MemoryWorkQueue(
            ack_wait_s=ACK_WAIT_S, max_deliveries=MAX_DELIVERIES, nak_delay_s=0.0
        )
    return queue[name]  # type: ignore[no-any-return]


async def _jetstream(request: pytest.FixtureRequest, name: str) -> WorkQueue:
    from coditect.bus.jetstream import PublishPolicy
    from coditect.bus.workqueue import JetStreamWorkQueue, WorkQueueConfig

    config = WorkQueueConfig(
        stream=f"{name.upper()}_TASKS",
        subject_prefix=f"{name}.tasks",
        dlq_stream=f"{name.upper()}_DLQ",
        dlq_prefix=f"{name}.dlq",
        ack_wait_s=ACK_WAIT_S,
        heartbeat_interval_s=0.25,
        max_deliveries=MAX_DELIVERIES,
        nak_delay_s=0.0,
        storage="memory",
        publish=PublishPolicy(timeout_s=1.0, attempts=3, backoff_initial_s=0.01),
    )
    url = request.getfixturevalue("nats_url")
    return await JetStreamWorkQueue.connect(url, config=config, max_wait_s=5)


_SHARED = pytest.StashKey[dict[str, WorkQueue]]()
BACKENDS = {"memory": _memory, "jetstream": _jetstream}


@pytest.fixture(params=sorted(BACKENDS))
async def connect(request: pytest.FixtureRequest) -> AsyncIterator[object]:
    """Opens a worker's handle on one queue (a new connection for JetStream)."""
    name = f"c{uuid.uuid4().hex[:10]}"
    opened: list[WorkQueue] = []

    async def open_queue() -> WorkQueue:
        q = await BACKENDS[request.param](request, name)
        opened.append(q)
        return q

    yield open_queue
    for q in opened:
        await q.close()


@pytest.fixture
async def queue(connect) -> WorkQueue:
    return await connect()


def task(task_id: str, capability: str = "code", **kw: str) -> TaskMessage:
    return TaskMessage(mission_id="m1", task_id=task_id, capability=capability, **kw)


async def lease_n(q: WorkQueue, capability: str, n: int) -> list[Lease]:
    """Lease ``n`` messages; raises TimeoutError unless all of them arrive within WAIT_S."""
    leases: list[Lease] = []
    async with asyncio.timeout(WAIT_S):
        while len(leases) < n:
            leases += await q.fetch(capability, batch=n - len(leases), timeout_s=0.5)
    return leases


async def nothing(q: WorkQueue, capability: str = "code") -> Sequence[Lease]:
    return await q.fetch(capability, timeout_s=0.3)


async def test_enqueued_tasks_are_all_leased_once(queue: WorkQueue) -> None:
    sent = [task(f"t{i}", body=f'{{"n": {i}}}') for i in range(10)]
    for msg in sent:
        await queue.enqueue(msg, headers={"traceparent": "00-abc-def-01"})
    leases = await lease_n(queue, "code", 10)
    assert {lease.message for lease in leases} == set(sent)
    for lease in leases:
        assert lease.num_delivered == 1 and not lease.done
        assert lease.headers.get("traceparent") == "00-abc-def-01"
        await lease.ack()
        assert lease.done and lease.outcome == "acked"
    assert await nothing(queue) == []


async def test_capabilities_are_separate_queues(queue: WorkQueue) -> None:
    await queue.enqueue(task("c", "code"))
    await queue.enqueue(task("t", "test"))
    [test_lease] = await lease_n(queue, "test", 1)
    [code_lease] = await lease_n(queue, "code", 1)
    assert (test_lease.message.task_id, code_lease.message.task_id) == ("t", "c")
    await test_lease.ack()
    await code_lease.ack()


async def test_a_republished_message_id_is_queued_once(queue: WorkQueue) -> None:
    msg = task("once")
    first = await queue.enqueue(msg)
    again = await queue.enqueue(msg)
    assert not first.duplicate
    assert again.duplicate and again.seq == first.seq
    [lease] = await lease_n(queue, "code", 1)
    await lease.ack()
    assert await nothing(queue) == []


async def test_an_abandoned_lease_is_redelivered_to_another_worker(connect) -> None:
    first, other = await connect(), await connect()
    await first.enqueue(task("orphan"))
    [lease] = await lease_n(first, "code", 1)
    assert await nothing(other) == []  # held: nobody else gets it within the ack wait
    [again] = await lease_n(other, "code", 1)  # its worker went silent: after ack_wait
    assert again.message == lease.message and again.num_delivered == 2
    await again.ack()


async def test_a_nak_redelivers_at_once_and_counts_a_delivery(queue: WorkQueue) -> None:
    await queue.enqueue(task("flaky"))
    [lease] = await lease_n(queue, "code", 1)
    await lease.nak(delay_s=0)
    assert lease.outcome == "retry"
    async with asyncio.timeout(ACK_WAIT_S * 0.8):  # well before the ack wait
        [again] = await lease_n(queue, "code", 1)
    assert again.num_delivered == 2
    await again.ack()


async def test_deliveries_beyond_the_maximum_go_to_the_dead_letters(queue: WorkQueue) -> None:
    msg = task("poison")
    await queue.enqueue(msg)
    assert queue.max_deliveries == MAX_DELIVERIES
    for attempt in range(1, MAX_DELIVERIES + 1):
        [lease] = await lease_n(queue, "code", 1)
        assert lease.num_delivered == attempt
        await lease.nak(delay_s=0)
    assert await queue.fetch("code", timeout_s=0.5) == []
    [dead] = await queue.dead_letters("code")
    assert dead.message == msg and dead.deliveries == MAX_DELIVERIES + 1
    assert f"max_deliveries={MAX_DELIVERIES}" in dead.reason
    assert await queue.dead_letters("test") == []


async def test_a_termed_lease_is_a_dead_letter_with_its_reason_and_trace(
    queue: WorkQueue,
) -> None:
    await queue.enqueue(task("broken"), headers={"traceparent": "00-aa-bb-01"})
    [lease] = await lease_n(queue, "code", 1)
    await lease.term("AgentError: cannot do this task")
    assert lease.outcome == "dead_lettered"
    assert await nothing(queue) == []
    [dead] = await queue.dead_letters()
    assert dead.message is not None and dead.message.task_id == "broken"
    assert dead.reason == "AgentError: cannot do this task" and dead.deliveries == 1
    assert dead.headers.get("traceparent") == "00-aa-bb-01"


async def test_followers_see_each_new_dead_letter_once(connect) -> None:
    queue = await connect()
    await queue.enqueue(task("before"))
    [old] = await lease_n(queue, "code", 1)
    await old.term("written before anyone followed")
    follower = queue.follow_dead_letters("settle", poll_s=0.2)
    first = asyncio.ensure_future(anext(follower))
    await asyncio.sleep(0.3)  # the durable position is taken now
    await queue.enqueue(task("after"))
    [lease] = await lease_n(queue, "code", 1)
    await lease.term("gave up")
    async with asyncio.timeout(WAIT_S):
        letter = await first
    assert letter.message is not None and letter.message.task_id == "after"
    assert letter.reason == "gave up"
    await follower.aclose()


async def test_keep_alive_holds_a_long_task_past_the_ack_wait(connect) -> None:
    first, other = await connect(), await connect()
    await first.enqueue(task("long"))
    [lease] = await lease_n(first, "code", 1)
    async with lease.keep_alive(0.25):
        stolen = await other.fetch("code", timeout_s=ACK_WAIT_S * 2.5)
    assert stolen == []
    await lease.ack()


async def test_a_closed_queue_refuses_work(connect) -> None:
    queue = await connect()
    await queue.enqueue(task("late"))
    [lease] = await lease_n(queue, "code", 1)
    await queue.close()
    with pytest.raises(BusError):
        await lease.ack()
    with pytest.raises(BusError):
        await queue.enqueue(task("later"))
