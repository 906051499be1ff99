"""Pure data shared by every layer: no I/O here."""

from coditect.domain.actions import Action, ActionKind, FileRecord, Violation, ViolationKind
from coditect.domain.events import (
    AgentAct,
    AgentLearn,
    AgentThink,
    Event,
    MissionState,
    TaskState,
    event_adapter,
)
from coditect.domain.graph import TaskGraph
from coditect.domain.mission import (
    MissionOutcome,
    MissionReport,
    TaskRun,
    TestTotals,
    TokenTotals,
    new_mission_id,
)
from coditect.domain.results import (
    AnalysisReport,
    CodeChange,
    FailureCategory,
    FileEdit,
    Finding,
    ModuleInfo,
    TaskResult,
    TestFailure,
    TestReport,
)
from coditect.domain.tasks import CAPABILITY_FOR_INTENT, GoalState, Intent, TaskSpec

__all__ = [
    "CAPABILITY_FOR_INTENT",
    "Action",
    "ActionKind",
    "AgentAct",
    "AgentLearn",
    "AgentThink",
    "AnalysisReport",
    "CodeChange",
    "Event",
    "FailureCategory",
    "FileEdit",
    "FileRecord",
    "Finding",
    "GoalState",
    "Intent",
    "MissionOutcome",
    "MissionReport",
    "MissionState",
    "ModuleInfo",
    "TaskGraph",
    "TaskResult",
    "TaskRun",
    "TaskSpec",
    "TaskState",
    "TestFailure",
    "TestReport",
    "TestTotals",
    "TokenTotals",
    "Violation",
    "ViolationKind",
    "event_adapter",
    "new_mission_id",
]
