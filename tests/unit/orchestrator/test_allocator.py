import pytest

from coditect.agents.base import Agent
from coditect.domain import AnalysisReport
from coditect.errors import AgentError
from coditect.orchestrator.allocator import ResourceAllocator


class Dummy(Agent):
    def __init__(self, name, caps, done=0):
        super().__init__()
        self.name = name
        self.capabilities = frozenset(caps)
        self._done = done

    async def execute(self, ctx):
        return AnalysisReport()


def test_filters_by_capability_and_picks_least_loaded():
    busy = Dummy("busy", {"code"})
    busy._state = busy._state.BUSY
    idle = Dummy("idle", {"code"}, done=5)
    other = Dummy("tester", {"test"})
    alloc = ResourceAllocator([busy, idle, other])
    assert alloc.allocate("code") is idle
    assert alloc.allocate("test") is other
    assert alloc.capabilities() == {"code", "test"}


def test_ties_go_to_the_agent_with_fewer_tasks_done():
    a, b = Dummy("a", {"code"}, done=3), Dummy("b", {"code"}, done=1)
    assert ResourceAllocator([a, b]).allocate("code") is b


def test_stopped_agents_and_missing_capabilities():
    a = Dummy("a", {"code"})
    a.stop()
    alloc = ResourceAllocator([a])
    with pytest.raises(AgentError, match="no agent can do 'code'"):
        alloc.allocate("code")
    with pytest.raises(ValueError):
        alloc.register(Dummy("a", {"x"}))
    alloc.unregister("a")
    assert alloc.statuses() == []
