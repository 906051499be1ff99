"""The composition root of one process (``coditect run``), and the pieces both modes share.

Everything else receives its model, sandbox, store and bus through constructors, so tests swap
them by passing their own (e.g. a scripted model) to :func:`build_runtime`.
:mod:`coditect.runtime.distributed` builds the services from the same pieces
(:func:`build_model`, :func:`build_sandbox`, :func:`build_task_step`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from coditect.agents.analyzer import AnalyzerAgent
from coditect.agents.candidates import CandidateSettings
from coditect.agents.coder import CoderAgent
from coditect.agents.tester import TesterAgent
from coditect.bus.base import EventBus
from coditect.bus.memory import MemoryBus
from coditect.config import Settings
from coditect.errors import ConfigError
from coditect.llm.base import Model
from coditect.llm.cache import SqliteCacheStore
from coditect.llm.ledger import Ledger, SqliteLedger
from coditect.orchestrator.allocator import ResourceAllocator
from coditect.orchestrator.goals import GoalPolicy
from coditect.orchestrator.mission import MissionRunner, MissionSettings
from coditect.orchestrator.planner import validate_plan
from coditect.orchestrator.step import TaskStep
from coditect.reuse import PlanReuse, Reuse, ReuseStore, TaskReuse
from coditect.reuse.semantic import load_embedder
from coditect.reuse.store import MemoryReuseStore, SqliteReuseStore
from coditect.sandbox.base import Sandbox
from coditect.state.sql import SqlStore
from coditect.taskqueue.parametrize import Parametrizer

__all__ = [
    "Runtime",
    "build_agents",
    "build_model",
    "build_reuse",
    "build_runtime",
    "build_sandbox",
    "build_task_step",
    "open_ledger",
    "open_reuse_store",
    "open_mission_store",
]


def build_model(spec: str) -> Model:
    """The model named by ``spec`` (``local`` is the embedded model)."""
    if spec in ("local", ""):
        from coditect.llm.local import LocalModel

        return LocalModel()
    try:
        from coditect.llm.registry import model_from_spec
    except ImportError as exc:  # pragma: no cover - the registry ships with the package
        raise ConfigError(f"unknown model {spec!r}", hint="use --llm local") from exc
    return model_from_spec(spec)


def build_agents(candidates: CandidateSettings | None = None) -> ResourceAllocator:
    """The agents of a process (one of each kind), behind the allocator."""
    coder = CoderAgent(candidates=candidates)
    return ResourceAllocator([AnalyzerAgent(), coder, TesterAgent()])


def build_task_step(
    *,
    model: Model,
    sandbox: Sandbox,
    task_timeout_s: float,
    test_timeout_s: float,
    reuse: Reuse | None = None,
) -> TaskStep:
    """The one task step of both modes, on this process's agents, model and sandbox."""
    return TaskStep(
        model=model,
        sandbox=sandbox,
        allocator=build_agents(),
        parametrizer=Parametrizer(test_timeout_s=test_timeout_s),
        task_timeout_s=task_timeout_s,
        responses=reuse.responses if reuse is not None else None,
        reuse=reuse.tasks if reuse is not None else None,
    )


def build_sandbox(name: str) -> Sandbox:
    """The sandbox backend (or the per-action policy for ``auto``)."""
    from coditect.sandbox.policy import build_sandbox as build

    return build(name)


@dataclass
class Runtime:
    """A wired CODITECT instance for one process."""

    settings: Settings
    model: Model
    sandbox: Sandbox
    store: SqlStore
    bus: EventBus
    runner: MissionRunner
    ledger: Ledger | None = None
    reuse: Reuse | None = None

    async def aclose(self) -> None:
        """Release the model, bus, stores and ledger."""
        await self.bus.close()
        await self.store.close()
        if self.ledger is not None:
            await self.ledger.close()
        if self.reuse is not None:
            await self.reuse.close()
        await self.model.aclose()


def open_mission_store(url: str) -> SqlStore:
    """The mission store at ``url`` (reports and events of both modes)."""
    return SqlStore(url)


def open_ledger(url: str) -> Ledger:
    """The cost ledger at ``url`` (the state database: ``coditect costs`` reads it)."""
    return SqliteLedger(url)


def open_reuse_store(url: str, *, home: Path) -> ReuseStore:
    """The store named by ``url``: ``""`` or ``sqlite`` (``home/reuse.db``), ``memory``, ``redis://...``.

    Raises:
        ConfigError: The URL names no known backend.
    """
    if url in ("", "sqlite"):
        return SqliteReuseStore(home / "reuse.db")
    if url.startswith("sqlite:///"):
        return SqliteReuseStore(Path(url.removeprefix("sqlite:///")))
    if url == "memory":
        return MemoryReuseStore()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from coditect.reuse.redis_store import RedisReuseStore

        return RedisReuseStore(url)
    raise ConfigError(
        f"unknown reuse store {url!r}", hint="use sqlite (default), memory or redis://HOST:PORT/DB"
    )


def build_reuse(settings: Settings, model: Model) -> Reuse:
    """The reuse stores named by ``settings`` (the sentence embedder only if installed)."""
    store = open_reuse_store(settings.reuse_url, home=settings.home)
    return Reuse(
        tasks=TaskReuse(store, model=model.name),
        plans=PlanReuse(store, embedder=load_embedder, validate=validate_plan),
        responses=SqliteCacheStore(f"sqlite:///{settings.home / 'llm_cache.db'}"),
    )


def build_runtime(
    settings: Settings | None = None,
    *,
    model: Model | None = None,
    sandbox: Sandbox | None = None,
    bus: EventBus | None = None,
) -> Runtime:
    """Wire the embedded backends from ``settings``; pass objects to override any of them."""
    settings = settings or Settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    model = model or build_model(settings.llm)
    sandbox = sandbox or build_sandbox(settings.sandbox)
    store = SqlStore(settings.database_url)
    bus = bus or MemoryBus()
    ledger = SqliteLedger(settings.database_url)
    reuse = build_reuse(settings, model) if settings.reuse else None
    runner = MissionRunner(
        model=model,
        sandbox=sandbox,
        store=store,
        bus=bus,
        allocator=build_agents(
            CandidateSettings(n=settings.candidates, temperature=settings.candidate_temperature)
        ),
        settings=MissionSettings(
            policy=GoalPolicy(
                mission_timeout_s=settings.mission_timeout_s,
                error_threshold=settings.error_threshold,
                max_repairs=settings.max_repairs,
            ),
            task_timeout_s=settings.task_timeout_s,
            test_timeout_s=settings.test_timeout_s,
            state_dir=settings.home,
            reuse=settings.reuse,
            budget_usd=settings.budget_usd,
            budget_tokens=settings.budget_tokens,
        ),
        ledger=ledger,
        reuse=reuse,
        parametrizer=Parametrizer(test_timeout_s=settings.test_timeout_s),
    )
    return Runtime(
        settings=settings,
        model=model,
        sandbox=sandbox,
        store=store,
        bus=bus,
        runner=runner,
        ledger=ledger,
        reuse=reuse,
    )
