"""Reuse of task results: look up before an agent runs, re-apply written files on a hit.

What is stored is the typed :class:`~coditect.domain.results.TaskResult` and, for a code change,
the new contents of the files it wrote, so that a hit reproduces the change byte for byte. Test
runs are never reused: tests always run, they are cheap and they are the safety net.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from coditect.domain.actions import Action
from coditect.domain.agents import Upstream
from coditect.domain.results import CodeChange, TaskResult
from coditect.domain.tasks import Intent, TaskSpec
from coditect.reuse.keys import read_set, task_key
from coditect.reuse.store import ReuseStore
from coditect.taskqueue.world_model import WorldModel

__all__ = ["REUSABLE_INTENTS", "StoredTask", "TaskReuse", "apply_files"]

#: Intents whose results may be reused; RUN_TESTS is deliberately absent.
REUSABLE_INTENTS = frozenset({Intent.ANALYZE, Intent.WRITE_CODE, Intent.WRITE_TESTS})

_RESULT: TypeAdapter[TaskResult] = TypeAdapter(TaskResult)


class StoredTask(BaseModel):
    """One reusable task result.

    Attributes:
        result_json: The TaskResult as JSON.
        files: For a code change: path -> new content of every file it wrote.
        tokens: Fresh LLM tokens the original run spent (what a hit saves).
        usd: What the original run cost.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    result_json: str
    files: dict[str, str] = Field(default_factory=dict)
    tokens: int = 0
    usd: float = 0.0

    @property
    def result(self) -> TaskResult:
        """The typed result."""
        return _RESULT.validate_json(self.result_json)


class TaskReuse:
    """Looks task results up by content-addressed key, and stores successful ones.

    Args:
        store: Where entries live.
        model: Name of the model the agents use (part of every key).
    """

    def __init__(self, store: ReuseStore, *, model: str) -> None:
        self.store = store
        self.model = model

    def key(
        self, task: TaskSpec, action: Action, world: WorldModel, upstream: Upstream, request: str
    ) -> str | None:
        """The key of ``task``, or None when its intent is never reused."""
        if task.intent not in REUSABLE_INTENTS:
            return None
        hashes = {}
        for path in read_set(action, upstream):
            record = world.get(path)
            hashes[path] = record.sha256 if record is not None else None
        return task_key(
            task=task,
            action=action,
            request=request,
            model=self.model,
            upstream=upstream,
            hashes=hashes,
        )

    async def lookup(self, key: str) -> StoredTask | None:
        """The stored entry, or None (an unreadable entry counts as a miss)."""
        text = await self.store.get(key)
        if text is None:
            return None
        try:
            return StoredTask.model_validate_json(text)
        except ValueError:
            return None

    @staticmethod
    def entry(result: TaskResult, workspace: Path, *, tokens: int, usd: float) -> StoredTask | None:
        """The entry a task's result would be stored as, with the files it wrote.

        None when a written file no longer matches the change (it changed after the task
        wrote it: a guess is not stored).
        """
        files: dict[str, str] = {}
        if isinstance(result, CodeChange):
            for edit in result.edits:
                data = (workspace / edit.path).read_bytes()
                if hashlib.sha256(data).hexdigest() != edit.after_sha256:
                    return None
                files[edit.path] = data.decode("utf-8")
        return StoredTask(
            result_json=_RESULT.dump_json(result).decode(), files=files, tokens=tokens, usd=usd
        )

    async def put(self, key: str, entry_json: str) -> None:
        """Store an entry made by :meth:`entry` (once the mission that made it succeeded)."""
        await self.store.put(key, entry_json)

    async def remember(
        self, key: str, result: TaskResult, workspace: Path, *, tokens: int, usd: float
    ) -> None:
        """Store a successful task's result (and the files it wrote)."""
        entry = self.entry(result, workspace, tokens=tokens, usd=usd)
        if entry is not None:
            await self.put(key, entry.model_dump_json())


def apply_files(entry: StoredTask, workspace: Path) -> bool:
    """Write a stored code change's files into ``workspace``; False if they do not match it."""
    result = entry.result
    if isinstance(result, CodeChange):
        for edit in result.edits:
            content = entry.files.get(edit.path)
            if content is None:
                return False
            if hashlib.sha256(content.encode("utf-8")).hexdigest() != edit.after_sha256:
                return False
        for edit in result.edits:
            target = workspace / edit.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(entry.files[edit.path].encode("utf-8"))
    return True
