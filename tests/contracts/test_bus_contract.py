"""The same EventBus tests on every backend: the in-memory bus and NATS JetStream.

A backend module that is not there yet (or a server binary that is missing) skips its cases.
"""

from __future__ import annotations

import asyncio
import importlib
import uuid
from collections.abc import AsyncIterator

import pytest

from coditect.bus.base import EventBus
from coditect.domain.events import AgentAct, AgentLearn, AgentThink, Event, MissionState, TaskState
from coditect.domain.tasks import GoalState

TIMEOUT_S = 5.0


async def _memory_bus(request: pytest.FixtureRequest) -> EventBus:
    try:
        module = importlib.import_module("coditect.bus.memory")
    except ImportError:
        pytest.skip("coditect.bus.memory is not available")
    return module.MemoryBus()  # type: ignore[no-any-return]


async def _jetstream_bus(request: pytest.FixtureRequest) -> EventBus:
    from coditect.bus.jetstream import JetStreamBus, JetStreamConfig

    try:
        url = request.getfixturevalue("nats_url")
    except pytest.FixtureLookupError:
        pytest.skip(
            'no nats_url fixture: add pytest_plugins = ["infra.servers"] to tests/conftest.py'
        )
    name = f"c{uuid.uuid4().hex[:10]}"
    config = JetStreamConfig(stream=name.upper(), subject_prefix=f"{name}.events", storage="memory")
    return await JetStreamBus.connect(url, config=config, max_wait_s=5)


BACKENDS = {"memory": _memory_bus, "jetstream": _jetstream_bus}


@pytest.fixture(params=sorted(BACKENDS))
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[EventBus]:
    b = await BACKENDS[request.param](request)
    try:
        yield b
    finally:
        await b.close()


async def take(it: AsyncIterator[Event], n: int) -> list[Event]:
    """The next ``n`` events; raises TimeoutError if they do not all arrive within TIMEOUT_S."""
    out: list[Event] = []
    async with asyncio.timeout(TIMEOUT_S):
        while len(out) < n:
            out.append(await anext(it))
    return out


def one_of_each(mission_id: str = "m1") -> list[Event]:
    return [
        AgentThink(mission_id=mission_id, task_id="t1", agent="coder", text="plan"),
        AgentAct(
            mission_id=mission_id, task_id="t1", agent="coder", action="write", detail="calc.py",
            input_tokens=10, output_tokens=20, duration_s=0.5,
        ),
        AgentLearn(mission_id=mission_id, agent="tester", lesson="import first"),
        TaskState(mission_id=mission_id, task_id="t1", state=GoalState.RUNNING, attempt=1),
        MissionState(mission_id=mission_id, state=GoalState.COMPLETE, reason="done"),
    ]  # fmt: skip


async def test_typed_events_round_trip(bus: EventBus) -> None:
    sub = bus.subscribe(">")
    sent = one_of_each()
    for event in sent:
        await bus.publish(event)
    got = await take(sub, len(sent))
    assert got == sent
    assert [type(e) for e in got] == [type(e) for e in sent]


async def test_subscribe_filters_by_pattern(bus: EventBus) -> None:
    agent = bus.subscribe("agent.*")
    task_state = bus.subscribe("task.state")
    everything = bus.subscribe(">")
    sent = one_of_each()
    for event in sent:
        await bus.publish(event)
    # A sentinel per subscription proves that nothing unexpected came before it.
    end_agent = AgentThink(mission_id="m1", text="end")
    end_task = TaskState(mission_id="m1", task_id="end", state=GoalState.COMPLETE)
    await bus.publish(end_agent)
    await bus.publish(end_task)
    assert await take(agent, 4) == [*sent[:3], end_agent]
    assert await take(task_state, 2) == [sent[3], end_task]
    assert await take(everything, 7) == [*sent, end_agent, end_task]


async def test_events_of_one_subject_arrive_in_publish_order(bus: EventBus) -> None:
    sub = bus.subscribe("agent.think")
    sent = [AgentThink(mission_id="m1", text=str(i)) for i in range(50)]
    for event in sent:
        await bus.publish(event)
    assert [e.text for e in await take(sub, 50)] == [str(i) for i in range(50)]  # type: ignore[union-attr]


async def test_every_subscriber_gets_every_event(bus: EventBus) -> None:
    subs = [bus.subscribe("agent.>") for _ in range(3)]
    sent = [AgentThink(mission_id="m1", text=str(i)) for i in range(5)]
    for event in sent:
        await bus.publish(event)
    for sub in subs:
        assert await take(sub, 5) == sent


async def test_subscriber_sees_only_events_published_after_it_subscribed(bus: EventBus) -> None:
    before = AgentThink(mission_id="m1", text="before")
    await bus.publish(before)
    sub = bus.subscribe(">")
    after = AgentThink(mission_id="m1", text="after")
    await bus.publish(after)
    assert await take(sub, 1) == [after]


async def test_close_ends_subscriptions(bus: EventBus) -> None:
    sub = bus.subscribe(">")
    await bus.publish(AgentThink(mission_id="m1", text="x"))
    assert len(await take(sub, 1)) == 1

    async def drain() -> list[Event]:
        return [e async for e in sub]

    waiter = asyncio.ensure_future(drain())
    await asyncio.sleep(0)
    await bus.close()
    async with asyncio.timeout(TIMEOUT_S):
        assert await waiter == []


async def test_subscription_not_yet_iterated_ends_on_close(bus: EventBus) -> None:
    sub = bus.subscribe(">")
    await bus.close()
    async with asyncio.timeout(TIMEOUT_S):
        assert [e async for e in sub] == []
