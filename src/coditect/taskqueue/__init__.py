"""Layer 2, the task queue manager: priority queue, world model, parametrization, consistency.

The orchestrator pops ready tasks from :class:`TaskQueue`, turns each intent into a concrete
action with :class:`Parametrizer` (using the :class:`WorldModel` of the workspace), records an
:class:`Expectation` with :class:`ConsistencyChecker` before the agent runs, and checks the
rescanned world against it afterwards.
"""

from coditect.taskqueue.consistency import ConsistencyChecker, Expectation
from coditect.taskqueue.parametrize import ModuleChoice, Parametrizer, choose_module
from coditect.taskqueue.queue import TaskQueue
from coditect.taskqueue.world_model import DEFAULT_IGNORES, ScanStats, WorldModel

__all__ = [
    "DEFAULT_IGNORES",
    "ConsistencyChecker",
    "Expectation",
    "ModuleChoice",
    "Parametrizer",
    "ScanStats",
    "TaskQueue",
    "WorldModel",
    "choose_module",
]
