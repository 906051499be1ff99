"""The project's own tests at a mission's base commit, shared by every worker of the mission.

One process runs the project's suite once before planning
(:func:`~coditect.taskqueue.testsetup.record_baseline`) and judges every later test run against
it: a test that was failing before the mission is not blamed on its change. In the distributed
mode the first worker to run a task of the mission records it and keeps it in the mission's
``baseline`` value (Redis in production); every task on every worker then finds the same
baseline in its clone. Tasks of a mission run one at a time, so it is recorded once.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from pathlib import Path

from coditect.agents.baseline import BASELINE_PATH, Baseline
from coditect.distributed.repos import git
from coditect.distributed.taskqueue import BASELINE
from coditect.generated import write_generated_modules
from coditect.sandbox.base import Sandbox
from coditect.state.base import MissionValueStore
from coditect.taskqueue.deps import unload_plugins
from coditect.taskqueue.testsetup import install_missing_dependencies, record_baseline

__all__ = ["MissionBaselines"]

_log = logging.getLogger(__name__)


class MissionBaselines:
    """Records each mission's baseline once and writes it into the clones that run its tasks."""

    def __init__(self, values: MissionValueStore, sandbox: Sandbox, *, timeout_s: float) -> None:
        self.values = values
        self.sandbox = sandbox
        self.timeout_s = timeout_s

    async def put(
        self,
        mission_id: str,
        clone: Path,
        *,
        base: str,
        head: str,
        generated: Mapping[str, str] | None = None,
    ) -> Baseline | None:
        """Give ``clone`` (checked out at ``head``) the mission's baseline; it, or None.

        Recorded here when the mission has none yet: in ``clone`` when it is at ``base``, else
        in a worktree of ``base`` beside it (the branch moved on before the baseline was kept).
        None when the project has no tests or its suite wrote no report (as in one process:
        nothing is excused then). ``auto``'s move of the project off a sandbox backend whose
        guest could not run its tests is applied to ``clone`` too, and so are the pytest plugins
        the suite could not run with (put aside). ``generated`` are the
        project's generated modules (:mod:`coditect.generated`), written into the worktree.

        Raises:
            StoreError: The mission's values cannot be read or written (retryable).
            GitError: The worktree of ``base`` cannot be made.
        """
        stored = await self.values.get_value(BASELINE, mission_id)
        if stored is None:
            recorded = await self._record(clone, base, head, generated or {})
            stored = recorded.to_json() if recorded is not None else ""
            await self.values.put_value(BASELINE, mission_id, stored)
            if recorded is not None and recorded.note:
                _log.info("mission %s: %s", mission_id, recorded.note)
        if not stored:
            return None
        try:
            baseline = Baseline.from_json(stored)
        except ValueError as exc:
            _log.warning("mission %s: its baseline is unreadable, not used: %s", mission_id, exc)
            return None
        if baseline.avoided:
            self.sandbox.avoid(clone, baseline.avoided)
        unload_plugins(clone, baseline.plugins_off)
        target = clone / BASELINE_PATH
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(stored, encoding="utf-8")
        return baseline

    async def _record(
        self, clone: Path, base: str, head: str, generated: Mapping[str, str]
    ) -> Baseline | None:
        if base == head:
            return await record_baseline(clone, self.sandbox, timeout_s=self.timeout_s)
        tree = clone.parent / f"{clone.name}.base"
        shutil.rmtree(tree, ignore_errors=True)
        await git(clone, "worktree", "prune")
        await git(clone, "worktree", "add", "-q", "--detach", str(tree), base)
        try:
            write_generated_modules(tree, generated)
            await install_missing_dependencies(tree)
            return await record_baseline(tree, self.sandbox, timeout_s=self.timeout_s)
        finally:
            self.sandbox.allow(tree)
            shutil.rmtree(tree, ignore_errors=True)
            await git(clone, "worktree", "prune")
