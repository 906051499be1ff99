"""The resource allocator: a capability registry and least-loaded agent choice."""

from __future__ import annotations

from collections.abc import Iterable

from coditect.agents.base import Agent, AgentLifecycle, AgentStatus
from coditect.errors import AgentError

__all__ = ["ResourceAllocator"]


class ResourceAllocator:
    """Keeps the registered agents and picks one for each task.

    The choice filters by capability, skips stopped agents, then takes the least-loaded agent,
    breaking ties by fewest tasks done so far (so work spreads across equal agents).
    """

    def __init__(self, agents: Iterable[Agent] = ()) -> None:
        self._agents: dict[str, Agent] = {}
        for agent in agents:
            self.register(agent)

    def register(self, agent: Agent) -> None:
        """Add an agent; its name must be unique."""
        if agent.name in self._agents:
            raise ValueError(f"an agent named {agent.name!r} is already registered")
        self._agents[agent.name] = agent

    def unregister(self, name: str) -> None:
        """Remove an agent (e.g. a worker that went away)."""
        self._agents.pop(name, None)

    def capabilities(self) -> set[str]:
        """Every capability some registered agent has."""
        return {c for a in self._agents.values() for c in a.capabilities}

    def candidates(self, capability: str) -> list[Agent]:
        """Agents able to serve ``capability`` and not stopped."""
        return [
            a
            for a in self._agents.values()
            if capability in a.capabilities
            and a.report_status().state is not AgentLifecycle.STOPPED
        ]

    def allocate(self, capability: str) -> Agent:
        """The least-loaded agent with ``capability``.

        Raises:
            AgentError: No registered agent has the capability (not retryable).
        """
        candidates = self.candidates(capability)
        if not candidates:
            have = ", ".join(sorted(self.capabilities())) or "none"
            raise AgentError(
                f"no agent can do {capability!r} (registered capabilities: {have})",
                hint="start a worker with that capability",
            )
        return min(candidates, key=lambda a: (a.report_status().load, a.report_status().tasks_done))

    def statuses(self) -> list[AgentStatus]:
        """The status of every registered agent."""
        return [a.report_status() for a in self._agents.values()]
