import asyncio

import pytest

from coditect.bus.base import subject_matches
from coditect.bus.memory import MemoryBus
from coditect.domain import AgentThink, GoalState, TaskState


@pytest.mark.parametrize(
    "pattern, subject, ok",
    [
        (">", "agent.think", True),
        ("agent.>", "agent.think", True),
        ("agent.*", "agent.think", True),
        ("agent.*", "agent.think.more", False),
        ("task.>", "agent.think", False),
        ("agent.think", "agent.think", True),
        ("agent.think.x", "agent.think", False),
        ("agent.>", "agent", False),
    ],
)
def test_subject_matching(pattern, subject, ok):
    assert subject_matches(pattern, subject) is ok


async def test_fan_out_by_pattern_until_close():
    bus = MemoryBus()
    everything, tasks = bus.subscribe(">"), bus.subscribe("task.>")
    think = AgentThink(mission_id="m", text="x")
    state = TaskState(mission_id="m", task_id="t", state=GoalState.RUNNING)
    await bus.publish(think)
    await bus.publish(state)
    await bus.close()
    got_all = [e async for e in everything]
    got_tasks = [e async for e in tasks]
    assert got_all == [think, state] and got_tasks == [state]
    await bus.publish(think)  # after close: dropped, no error


async def test_unsubscribes_when_the_consumer_stops():
    bus = MemoryBus()
    sub = bus.subscribe()
    task = asyncio.ensure_future(sub.__anext__())
    await bus.publish(AgentThink(mission_id="m", text="x"))
    assert (await task).text == "x"
    await sub.aclose()
    assert bus._subs == []
