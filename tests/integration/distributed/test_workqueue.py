"""JetStreamWorkQueue on a real nats-server: what goes beyond the WorkQueue contract.

Leasing, de-duplication, redelivery and dead letters as every WorkQueue does them are in
tests/contracts/test_workqueue_contract.py (run on JetStream too); here are the JetStream
work queue's own parts: process(), the lease iterator, a dead connection, malformed messages.
"""

from __future__ import annotations

import asyncio

import nats
import pytest

from coditect.bus.base import LeaseOutcome, TaskMessage
from coditect.bus.jetstream import BusError
from coditect.bus.workqueue import JetStreamWorkQueue, WorkQueueConfig
from coditect.errors import AgentError, CoditectError

WAIT_S = 5.0  # every wait below raises if the expected delivery has not come by then


@pytest.fixture
async def queue(nats_url: str, queue_config: WorkQueueConfig):
    q = await JetStreamWorkQueue.connect(nats_url, config=queue_config, max_wait_s=5)
    try:
        yield q
    finally:
        await q.close()


@pytest.fixture
async def other_worker(nats_url: str, queue_config: WorkQueueConfig):
    q = await JetStreamWorkQueue.connect(nats_url, config=queue_config, max_wait_s=5)
    try:
        yield q
    finally:
        await q.close()


def task(task_id: str, capability: str = "code", **kw) -> TaskMessage:
    return TaskMessage(mission_id="m1", task_id=task_id, capability=capability, **kw)


async def lease_n(q: JetStreamWorkQueue, capability: str, n: int, timeout_s: float = WAIT_S):
    """Lease ``n`` messages; raises TimeoutError unless all of them arrive within ``timeout_s``."""
    leases = []
    async with asyncio.timeout(timeout_s):
        while len(leases) < n:
            leases += await q.fetch(capability, batch=n - len(leases), timeout_s=0.5)
    return leases


async def test_lease_iterator_hands_out_tasks_to_competing_workers(
    queue: JetStreamWorkQueue, other_worker: JetStreamWorkQueue
) -> None:
    for i in range(10):
        await queue.enqueue(task(f"t{i}"))
    seen: list[str] = []
    done = asyncio.Event()

    async def worker(q: JetStreamWorkQueue) -> None:
        async for lease in q.lease("code", poll_s=0.2):
            seen.append(lease.message.task_id)
            await lease.ack()
            if len(seen) == 10:
                done.set()

    workers = [asyncio.create_task(worker(q)) for q in (queue, other_worker)]
    try:
        async with asyncio.timeout(WAIT_S):
            await done.wait()
    finally:
        for w in workers:
            w.cancel()
        await asyncio.wait(workers)
    assert sorted(seen) == sorted(f"t{i}" for i in range(10))  # each exactly once


async def test_task_of_a_dead_worker_is_redelivered_to_another(
    nats_url: str, queue_config: WorkQueueConfig, queue: JetStreamWorkQueue
) -> None:
    await queue.enqueue(task("orphan"))
    doomed = await JetStreamWorkQueue.connect(nats_url, config=queue_config, max_wait_s=5)
    [lease] = await lease_n(doomed, "code", 1)
    assert lease.num_delivered == 1
    await doomed.close()  # dies without acking
    [again] = await lease_n(queue, "code", 1)  # after ack_wait (1 s)
    assert again.message == lease.message
    assert again.num_delivered == 2
    await again.ack()


async def test_process_acks_on_success(queue: JetStreamWorkQueue) -> None:
    await queue.enqueue(task("ok"))
    [lease] = await lease_n(queue, "code", 1)
    handled = []

    async def handler(msg: TaskMessage) -> None:
        handled.append(msg.task_id)

    assert await queue.process(lease, handler) is LeaseOutcome.ACKED
    assert handled == ["ok"]
    assert await queue.fetch("code", timeout_s=0.3) == []


async def test_process_retries_retryable_errors(queue: JetStreamWorkQueue) -> None:
    await queue.enqueue(task("flaky"))

    async def flaky(msg: TaskMessage) -> None:
        raise CoditectError("transient", retryable=True)

    [lease] = await lease_n(queue, "code", 1)
    assert await queue.process(lease, flaky) is LeaseOutcome.RETRY
    [again] = await lease_n(queue, "code", 1)
    assert again.num_delivered == 2
    await again.ack()


async def test_process_dead_letters_non_retryable_errors(queue: JetStreamWorkQueue) -> None:
    await queue.enqueue(task("broken"))

    async def broken(msg: TaskMessage) -> None:
        raise AgentError("cannot do this task", retryable=False)

    [lease] = await lease_n(queue, "code", 1)
    assert await queue.process(lease, broken) is LeaseOutcome.DEAD_LETTERED
    assert await queue.fetch("code", timeout_s=0.3) == []
    [dead] = await queue.dead_letters()
    assert dead.message is not None and dead.message.task_id == "broken"
    assert dead.reason == "AgentError: cannot do this task"


async def test_heartbeats_keep_a_long_task_from_being_redelivered(
    queue: JetStreamWorkQueue, other_worker: JetStreamWorkQueue
) -> None:
    await queue.enqueue(task("long"))
    [lease] = await lease_n(queue, "code", 1)
    stolen = []

    async def long_task(msg: TaskMessage) -> None:
        # Runs for 2.5 x ack_wait while another worker keeps asking for work.
        stolen.extend(await other_worker.fetch("code", timeout_s=2.5))

    assert await queue.process(lease, long_task) is LeaseOutcome.ACKED
    assert stolen == []


async def test_malformed_message_goes_to_the_dead_letter_stream(
    nats_url: str, queue: JetStreamWorkQueue
) -> None:
    nc = await nats.connect(nats_url)
    await nc.jetstream().publish(queue.subject_for("code"), b"not json")
    await nc.close()
    assert await queue.fetch("code", timeout_s=1.0) == []
    [dead] = await queue.dead_letters("code")
    assert dead.message is None and dead.data == b"not json"
    assert "malformed" in dead.reason


async def test_closed_queue_ends_lease_iterator(queue: JetStreamWorkQueue) -> None:
    async def drain() -> list:
        return [lease async for lease in queue.lease("code", poll_s=0.1)]

    waiter = asyncio.create_task(drain())
    await asyncio.sleep(0.2)
    await queue.close()
    async with asyncio.timeout(WAIT_S):
        assert await waiter == []


def test_capability_must_be_one_subject_token() -> None:
    with pytest.raises(ValueError):
        TaskMessage(mission_id="m", task_id="t", capability="code.review")


def test_nak_delay_backs_off_up_to_a_bound() -> None:
    cfg = WorkQueueConfig(nak_delay_s=1.0, nak_delay_max_s=5.0)
    q = JetStreamWorkQueue.__new__(JetStreamWorkQueue)
    q.config = cfg
    assert [q.nak_delay_s(n) for n in (1, 2, 3, 4, 10)] == [1.0, 2.0, 4.0, 5.0, 5.0]


async def test_settling_a_lease_on_a_closed_connection_is_a_bus_error(
    queue: JetStreamWorkQueue, other_worker: JetStreamWorkQueue
) -> None:
    await queue.enqueue(task("late"))
    [lease] = await lease_n(other_worker, "code", 1)
    await other_worker.close()
    with pytest.raises(BusError, match="ack of task late"):
        await lease.ack()


async def test_dead_letters_keep_the_trace_context_of_the_message(
    queue: JetStreamWorkQueue,
) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    trace = {"traceparent": traceparent, "tracestate": "k=v"}
    await queue.enqueue(task("given-up"), headers=trace)
    [lease] = await lease_n(queue, "code", 1)
    assert lease.headers["traceparent"] == traceparent
    await lease.term("bad task")
    # Past max_deliveries too (the message is dead-lettered when leased once too often).
    await queue.enqueue(task("poison"), headers=trace)
    for _ in range(queue.config.max_deliveries):
        [lease] = await lease_n(queue, "code", 1)
        await lease.nak(delay_s=0)
    assert await queue.fetch("code", timeout_s=0.5) == []
    letters = {d.message.task_id: d for d in await queue.dead_letters("code") if d.message}
    assert set(letters) == {"given-up", "poison"}
    for letter in letters.values():
        assert letter.headers == trace  # no Nats-* or Coditect-* headers among them
    assert letters["given-up"].reason == "bad task"
