"""Missions started from the web page: the same options as ``coditect run``, run in this process.

Each mission gets its own runtime (its model, sandbox and limits come from the form) whose
events go to one bus shared with the page's live streams. With ``review`` on, the mission waits
at :class:`~coditect.orchestrator.review.PendingReviews` until the page's buttons decide.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from coditect.bus.base import EventBus
from coditect.config import Settings
from coditect.domain.events import Event, MissionState
from coditect.domain.mission import MissionOutcome, MissionReport, new_mission_id
from coditect.domain.tasks import GoalState
from coditect.errors import CoditectError, InputError
from coditect.orchestrator.review import PendingReviews

if TYPE_CHECKING:
    from coditect.orchestrator.mission import MissionRunner
    from coditect.runtime import Runtime

__all__ = ["Launcher", "StartForm"]

_log = logging.getLogger(__name__)


class StartForm(BaseModel):
    """The start form: the options of ``coditect run`` (empty fields keep the settings' defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request: str = Field(min_length=1)
    repo: str = Field(min_length=1)
    llm: str | None = None
    sandbox: str | None = None
    max_repairs: int | None = Field(default=None, ge=0, le=10)
    timeout: float | None = Field(default=None, gt=0)
    budget_usd: float | None = Field(default=None, ge=0)
    budget_tokens: int | None = Field(default=None, ge=0)
    no_reuse: bool = False
    review: bool = False

    def settings(self, base: Settings) -> Settings:
        """``base`` with this form's overrides (as ``coditect run`` builds them from its flags)."""
        overrides: dict[str, object] = {}
        for key, value in (
            ("llm", self.llm),
            ("sandbox", self.sandbox),
            ("max_repairs", self.max_repairs),
            ("mission_timeout_s", self.timeout),
            ("budget_usd", self.budget_usd),
            ("budget_tokens", self.budget_tokens),
            ("reuse", False if self.no_reuse else None),
        ):
            if value is not None:
                overrides[key] = value
        return base.model_copy(update=overrides)


class _SharedBus(EventBus):
    """Forwards a mission runtime's events to the server's bus; closing it leaves that bus open."""

    def __init__(self, inner: EventBus) -> None:
        self._inner = inner

    async def publish(self, event: Event) -> None:
        """Publish on the shared bus."""
        await self._inner.publish(event)

    def subscribe(self, pattern: str = ">") -> AsyncIterator[Event]:
        """Subscribe to the shared bus."""
        return self._inner.subscribe(pattern)


class Launcher:
    """Starts missions as background tasks of the server's event loop.

    Args:
        settings: The defaults the form's options override (home, model, sandbox...).
        bus: The bus the page's live streams listen to.
        build: Builds a runtime from settings and a bus (tests pass one with a scripted model).
    """

    def __init__(
        self,
        settings: Settings,
        bus: EventBus,
        *,
        build: Callable[..., object] | None = None,
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.reviews = PendingReviews()
        self._build = build
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # Until the runner stores the first report (after copying the repository), the page
        # shows this one: the redirect after "Start" must not find nothing.
        self._started: dict[str, MissionReport] = {}

    def start(self, form: StartForm) -> str:
        """Start a mission and return its id at once (it runs in the background).

        Raises:
            InputError: The repository path is not a directory.
            CoditectError: The form's model or sandbox cannot be set up (nothing was started).
        """
        from coditect.runtime import Runtime, build_runtime

        repo = Path(form.repo).expanduser()
        if not repo.is_dir():
            raise InputError(f"{repo} is not a directory", hint="give the project's path")
        build = self._build or build_runtime
        rt = build(form.settings(self.settings), bus=_SharedBus(self.bus))
        assert isinstance(rt, Runtime)
        runner = copy.copy(rt.runner)  # the review gate is per mission, the runtime's is not
        if form.review:
            runner.review = self.reviews
        mission_id = new_mission_id()
        task = asyncio.get_running_loop().create_task(
            self._run(rt, runner, form.request, repo.resolve(), mission_id),
            name=f"ui-{mission_id}",
        )
        self._tasks[mission_id] = task
        self._started[mission_id] = MissionReport(
            mission_id=mission_id, request=form.request, repo=str(repo.resolve())
        )
        task.add_done_callback(lambda _t: self._forget(mission_id))
        return mission_id

    def _forget(self, mission_id: str) -> None:
        self._tasks.pop(mission_id, None)
        self._started.pop(mission_id, None)

    def placeholder(self, mission_id: str) -> MissionReport | None:
        """A RUNNING report of a mission started here that has not stored its own yet."""
        return self._started.get(mission_id)

    @staticmethod
    async def _run(
        rt: Runtime, runner: MissionRunner, request: str, repo: Path, mission_id: str
    ) -> None:
        try:
            await runner.run(request, repo, mission_id=mission_id)
        except Exception as exc:  # the runner stores a FAILED report for what it can
            _log.exception("mission %s stopped", mission_id)
            if await rt.store.get_report(mission_id) is None:  # refused before it began
                await _record_refusal(rt, mission_id, request, repo, exc)
        finally:
            await rt.aclose()

    def running(self) -> list[str]:
        """Ids of missions started here that have not ended."""
        return list(self._tasks)

    async def aclose(self) -> None:
        """Cancel the missions still running (their reports are stored as CANCELLED)."""
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)


async def _record_refusal(
    rt: Runtime, mission_id: str, request: str, repo: Path, exc: Exception
) -> None:
    """Store a FAILED report for a mission refused before it stored one (the page waits on it)."""
    reason = exc.message if isinstance(exc, CoditectError) else repr(exc)
    report = MissionReport(
        mission_id=mission_id,
        request=request,
        repo=str(repo),
        status=MissionOutcome.FAILED,
        reason=reason,
    )
    await rt.store.save_report(report)
    await rt.store.append_events(
        [MissionState(mission_id=mission_id, state=GoalState.FAILED, reason=reason)]
    )
