"""What several layers know about agents: their status and the results a task builds on.

The task queue's world model keeps agents' statuses and the parametrizer reads upstream
results; both live here so that neither imports the agent layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from coditect.domain.results import AnalysisReport, CodeChange, TaskResult, TestReport

__all__ = ["AgentLifecycle", "AgentStatus", "Upstream"]


class AgentLifecycle(StrEnum):
    """Where an agent is in its lifecycle."""

    IDLE = "idle"
    BUSY = "busy"
    STOPPED = "stopped"


class AgentStatus(BaseModel):
    """What :meth:`Agent.report_status` returns (also stored in the world model)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    capabilities: tuple[str, ...]
    state: AgentLifecycle
    current_task: str = ""
    tasks_done: int = 0
    tasks_failed: int = 0
    load: int = 0


@dataclass(frozen=True)
class Upstream:
    """Results of the tasks this task depends on (transitively), newest last."""

    analysis: AnalysisReport | None = None
    code: tuple[CodeChange, ...] = ()
    tests: TestReport | None = None

    @classmethod
    def from_results(cls, results: list[TaskResult]) -> Upstream:
        """Sort a list of results into their typed slots (later results win)."""
        analysis: AnalysisReport | None = None
        tests: TestReport | None = None
        code: list[CodeChange] = []
        for r in results:
            if isinstance(r, AnalysisReport):
                analysis = r
            elif isinstance(r, CodeChange):
                code.append(r)
            else:
                tests = r
        return cls(analysis=analysis, code=tuple(code), tests=tests)
