"""Layer 3: the worker agents (analyzer, coder, tester) and their framework."""

from coditect.agents.analyzer import AnalyzerAgent, analyze_project
from coditect.agents.base import (
    Agent,
    AgentContext,
    AgentLifecycle,
    AgentStatus,
    RetryPolicy,
    Upstream,
)
from coditect.agents.coder import CoderAgent
from coditect.agents.tester import TesterAgent

__all__ = [
    "Agent",
    "AgentContext",
    "AgentLifecycle",
    "AgentStatus",
    "AnalyzerAgent",
    "CoderAgent",
    "RetryPolicy",
    "TesterAgent",
    "Upstream",
    "analyze_project",
]
