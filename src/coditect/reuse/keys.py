"""Content-addressed keys for task results.

A key is the SHA-256 of everything that can change a task's result: its intent and parameters
(canonical request, description, feedback, target and written files), the model, the prompt
template version, the upstream facts the agent uses, and the content hash of every file it reads.
Change any one of them and the key changes, so a stale entry is never found.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping

from coditect.domain.actions import Action
from coditect.domain.agents import Upstream
from coditect.domain.tasks import Intent, TaskSpec

__all__ = ["PROMPT_VERSION", "digest", "read_set", "task_key"]

#: Bump when agent prompts or result formats change: every older entry then misses.
PROMPT_VERSION = "1"


def digest(payload: object) -> str:
    """SHA-256 hex digest of the canonical JSON of ``payload``."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def read_set(action: Action, upstream: Upstream) -> tuple[str, ...]:
    """Every file the task may read: the action's reads and writes, and upstream-written files."""
    paths = [*action.read_files, *action.write_files]
    for change in upstream.code:
        paths.extend(change.paths)
    return tuple(sorted(dict.fromkeys(paths)))


def _upstream_facts(task: TaskSpec, upstream: Upstream, files: Iterable[str]) -> object:
    if task.intent is Intent.ANALYZE:
        return None
    wanted = set(files)
    analysis = upstream.analysis
    findings = (
        [f.model_dump(mode="json") for f in analysis.findings if f.path in wanted]
        if analysis is not None
        else []
    )
    tests = upstream.tests
    return {
        "code": [c.model_dump(mode="json", exclude={"generations"}) for c in upstream.code],
        "findings": findings,
        "failures": [f.model_dump(mode="json") for f in tests.failures] if tests else [],
    }


def task_key(
    *,
    task: TaskSpec,
    action: Action,
    request: str,
    model: str,
    upstream: Upstream,
    hashes: Mapping[str, str | None],
) -> str:
    """The reuse key of ``task`` about to run ``action``.

    Args:
        task: The task (its id is left out: the same work under another id still matches).
        action: Its parametrised action.
        request: The canonical request of the mission.
        model: The name of the model the agents use.
        upstream: Results of earlier tasks the agent may use.
        hashes: Content hash of each file of :func:`read_set` (None: the file does not exist).
    """
    files = read_set(action, upstream)
    payload = {
        "v": PROMPT_VERSION,
        "intent": task.intent.value,
        "request": request,
        "description": task.description,
        "feedback": task.feedback,
        "targets": list(task.target_files),
        "reads": list(action.read_files),
        "writes": list(action.write_files),
        "model": model,
        "files": {p: hashes.get(p) for p in files},
        "upstream": _upstream_facts(task, upstream, files),
    }
    return "task:" + digest(payload)
