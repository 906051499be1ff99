"""CODITECT: an autonomous multi-agent coding system; a request becomes a tested change.

The public API. Names are imported lazily, so ``import coditect`` stays cheap::

    from coditect import Settings, build_runtime

    rt = build_runtime(Settings(llm="local"))
    report = await rt.runner.run("Add a function ...", Path("examples/calculator"))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "AgentError": "coditect.errors",
    "BudgetExceededError": "coditect.errors",
    "CoditectError": "coditect.errors",
    "ConfigError": "coditect.errors",
    "CycleError": "coditect.errors",
    "InputError": "coditect.errors",
    "MissionOutcome": "coditect.domain",
    "MissionReport": "coditect.domain",
    "MissionRunner": "coditect.orchestrator.mission",
    "Model": "coditect.llm.base",
    "ModelError": "coditect.errors",
    "PlanError": "coditect.errors",
    "Runtime": "coditect.runtime",
    "Sandbox": "coditect.sandbox.base",
    "SandboxError": "coditect.errors",
    "Settings": "coditect.config",
    "TaskGraph": "coditect.domain",
    "TaskSpec": "coditect.domain",
    "build_runtime": "coditect.runtime",
}

__all__ = [
    "AgentError",
    "BudgetExceededError",
    "CoditectError",
    "ConfigError",
    "CycleError",
    "InputError",
    "MissionOutcome",
    "MissionReport",
    "MissionRunner",
    "Model",
    "ModelError",
    "PlanError",
    "Runtime",
    "Sandbox",
    "SandboxError",
    "Settings",
    "TaskGraph",
    "TaskSpec",
    "__version__",
    "build_runtime",
]

if TYPE_CHECKING:  # pragma: no cover
    from coditect.config import Settings
    from coditect.domain import MissionOutcome, MissionReport, TaskGraph, TaskSpec
    from coditect.errors import (
        AgentError,
        BudgetExceededError,
        CoditectError,
        ConfigError,
        CycleError,
        InputError,
        ModelError,
        PlanError,
        SandboxError,
    )
    from coditect.llm.base import Model
    from coditect.orchestrator.mission import MissionRunner
    from coditect.runtime import Runtime, build_runtime
    from coditect.sandbox.base import Sandbox


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'coditect' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
