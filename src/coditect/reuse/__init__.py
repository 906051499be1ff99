"""Work reuse: content-addressed task results, plan reuse for requests that mean the same thing.

See docs/reuse.md for how reuse decides, what is never reused and how to turn it off.
"""

from __future__ import annotations

from dataclasses import dataclass

from coditect.llm.cache import CacheStore
from coditect.reuse.plans import PlanHit, PlanReuse
from coditect.reuse.store import MemoryReuseStore, ReuseStore, SqliteReuseStore
from coditect.reuse.tasks import StoredTask, TaskReuse

__all__ = [
    "MemoryReuseStore",
    "PlanHit",
    "PlanReuse",
    "Reuse",
    "ReuseStore",
    "SqliteReuseStore",
    "StoredTask",
    "TaskReuse",
]


@dataclass
class Reuse:
    """Everything a mission runner needs to reuse work.

    Attributes:
        tasks: Task-result reuse.
        plans: Plan reuse.
        responses: The exact LLM response cache (None: off).
    """

    tasks: TaskReuse
    plans: PlanReuse
    responses: CacheStore | None = None

    async def close(self) -> None:
        """Close the stores."""
        await self.tasks.store.close()
        if self.plans.store is not self.tasks.store:
            await self.plans.store.close()
        if self.responses is not None:
            await self.responses.close()
