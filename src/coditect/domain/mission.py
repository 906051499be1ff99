"""Missions and the report a mission produces (also the ``--json`` output, see docs/report.md)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from coditect.domain.actions import Violation
from coditect.domain.tasks import GoalState, Intent

__all__ = [
    "MissionOutcome",
    "MissionReport",
    "TaskRun",
    "TestTotals",
    "TokenTotals",
    "new_mission_id",
]


def new_mission_id() -> str:
    """A short, sortable, unique mission id such as ``m-20261124-073012-3fa9c1``."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"m-{stamp}-{secrets.token_hex(3)}"


class MissionOutcome(StrEnum):
    """The headline outcome of a mission."""

    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"  # the reviewer rejected the verified change; nothing landed
    #: The process that ran it ended (killed, crashed) while it was RUNNING; shown by
    #: ``coditect status``/``show``, continued with ``coditect resume``.
    INTERRUPTED = "INTERRUPTED"


class TaskRun(BaseModel):
    """How one task of the mission went."""

    model_config = ConfigDict(extra="forbid")

    id: str
    intent: Intent
    description: str = ""
    agent: str = ""
    depends_on: list[str] = Field(default_factory=list)
    status: GoalState = GoalState.PENDING
    attempts: int = 0
    duration_s: float = 0.0
    error: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    superseded_by: str = ""
    reused: bool = False
    saved_tokens: int = 0


class TestTotals(BaseModel):
    """Results of the mission's last test run."""

    __test__ = False
    model_config = ConfigDict(extra="forbid")

    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    written_by_coditect: list[str] = Field(default_factory=list)


class TokenTotals(BaseModel):
    """LLM tokens used by the mission, from the models' own usage figures.

    Attributes:
        input: Fresh prompt tokens (including ``cached``).
        output: Fresh generated tokens.
        cached: Prompt tokens the provider served from its prompt cache.
        usd: What the fresh tokens cost (price table in coditect.llm.pricing).
        saved: Tokens not spent thanks to work reuse (reused task results and cached responses).
        reused_calls: Model calls answered by the exact response cache.
        estimated: The estimate shown with the plan, in tokens.
        estimated_usd: The estimate shown with the plan, in USD.
    """

    model_config = ConfigDict(extra="forbid")

    input: int = 0
    output: int = 0
    cached: int = 0
    usd: float = 0.0
    saved: int = 0
    reused_calls: int = 0
    estimated: int = 0
    estimated_usd: float = 0.0


class MissionReport(BaseModel):
    """Everything a user (or a program, with ``--json``) needs to know about a mission."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = 1
    mission_id: str
    status: MissionOutcome = MissionOutcome.RUNNING
    reason: str = ""
    request: str
    repo: str
    branch: str = ""
    commit: str = ""
    applied_to: str = ""
    model: str = ""
    plan_source: str = ""
    tasks: list[TaskRun] = Field(default_factory=list)
    changed_files: list[str] = Field(default_factory=list)
    diff: str = ""
    tests: TestTotals = Field(default_factory=TestTotals)
    violations: list[Violation] = Field(default_factory=list)
    tokens: TokenTotals = Field(default_factory=TokenTotals)
    stage_s: dict[str, float] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    wall_s: float = 0.0
