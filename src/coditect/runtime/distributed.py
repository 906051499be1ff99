"""Composition root of the distributed mode: settings in, running services and workers out.

Like :mod:`coditect.runtime.local` for one process, this is where concrete backends (NATS,
Redis, SQL, gRPC) are chosen; the service logic receives them through constructors. The
missions are driven by the same coordinator as in one process, over the distributed port, and
workers run the same task step (:func:`coditect.runtime.local.build_task_step`).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from coditect.aio import cancel_and_wait
from coditect.api.clients import ClientOptions, TaskQueueClient
from coditect.api.server import GrpcServer, ServerOptions, start_server
from coditect.api.services import (
    ORCHESTRATOR_SERVICE,
    TASK_QUEUE_SERVICE,
    OrchestratorServicer,
    TaskQueueServicer,
)
from coditect.bus.jetstream import JetStreamBus, JetStreamConfig
from coditect.bus.workqueue import JetStreamWorkQueue, WorkQueueConfig
from coditect.distributed.orchestrator import CoordinatorSettings, OrchestratorService
from coditect.distributed.settings import DistributedSettings
from coditect.distributed.taskqueue import TaskQueueService
from coditect.distributed.worker import Worker, WorkerSettings
from coditect.domain.events import TaskState
from coditect.domain.taskstate import TaskStateRecord
from coditect.errors import StoreError
from coditect.llm.base import Model
from coditect.llm.ledger import SqliteLedger
from coditect.orchestrator.coordinator import CoordinatorPolicy
from coditect.orchestrator.goals import GoalPolicy
from coditect.orchestrator.planner import validate_plan
from coditect.reuse import PlanReuse, Reuse, ReuseStore, TaskReuse
from coditect.reuse.redis_store import RedisReuseStore
from coditect.reuse.responses import ReuseStoreCache
from coditect.reuse.semantic import load_embedder
from coditect.runtime.local import build_model, build_sandbox, build_task_step, open_reuse_store
from coditect.state.base import Lock
from coditect.state.redis_counts import CountedTaskStateStore
from coditect.state.redis_locks import RedisLock
from coditect.state.redis_world import RedisFileIndexStore, RedisMissionValueStore, connect_redis
from coditect.state.sql import SqlStore
from coditect.telemetry.metrics import (
    MetricsServer,
    poll_queue_depth,
    poll_task_counts,
    serve_metrics,
)
from coditect.telemetry.wrappers import MeteredModel, MeteredSandbox

__all__ = [
    "RunningService",
    "open_store",
    "run_until_signalled",
    "run_worker",
    "build_shared_reuse",
    "build_taskqueue_service",
    "build_worker",
    "client_options",
    "start_orchestrator",
    "start_taskqueue",
]

_log = logging.getLogger(__name__)


@dataclass
class RunningService:
    """A started gRPC service and what to close when it stops."""

    grpc: GrpcServer
    closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)
    #: The ``/metrics`` endpoint, when ``metrics_listen`` is set.
    metrics: MetricsServer | None = None

    @property
    def port(self) -> int:
        """The bound port."""
        return self.grpc.port

    async def stop(self) -> None:
        """Stop serving, then close the backends (in reverse order of opening)."""
        await self.grpc.stop()
        for close in reversed(self.closers):
            with contextlib.suppress(Exception):
                await close()


def _server_options(cfg: DistributedSettings) -> ServerOptions:
    return ServerOptions(
        listen=cfg.listen, token=cfg.token, tls=cfg.tls, max_message_bytes=cfg.max_message_bytes
    )


def client_options(cfg: DistributedSettings, address: str) -> ClientOptions:
    """Client settings for ``address`` from ``cfg``."""
    return ClientOptions(
        address=address,
        token=cfg.token,
        tls=cfg.tls,
        deadline_s=cfg.rpc_deadline_s,
        retries=cfg.rpc_retries,
        max_message_bytes=cfg.max_message_bytes,
    )


def _workqueue_config(cfg: DistributedSettings) -> WorkQueueConfig:
    name = cfg.queue_name
    return WorkQueueConfig(
        stream=f"{name.upper().replace('-', '_')}_TASKS",
        subject_prefix=f"{name}.tasks",
        dlq_stream=f"{name.upper().replace('-', '_')}_DLQ",
        dlq_prefix=f"{name}.dlq",
        ack_wait_s=cfg.ack_wait_s,
        heartbeat_interval_s=cfg.heartbeat_interval_s,
        max_deliveries=cfg.max_deliveries,
    )


def _events_config(cfg: DistributedSettings) -> JetStreamConfig:
    name = cfg.queue_name
    return JetStreamConfig(
        stream=f"{name.upper().replace('-', '_')}_EVENTS", subject_prefix=f"{name}.events"
    )


async def _close_all(closers: list[Callable[[], Awaitable[Any]]]) -> None:
    """Close what was opened, last first; one that fails does not stop the others."""
    for close in reversed(closers):
        with contextlib.suppress(Exception):
            await close()


def _background(work: Coroutine[Any, Any, None], name: str) -> Callable[[], Awaitable[None]]:
    """Run ``work`` as a task of the service; returns the closer that stops it."""
    task = asyncio.get_running_loop().create_task(work, name=name)

    async def stop() -> None:
        await cancel_and_wait(task)

    return stop


def _serve_metrics(
    cfg: DistributedSettings, closers: list[Callable[[], Awaitable[Any]]]
) -> MetricsServer | None:
    """The ``/metrics`` endpoint on ``cfg.metrics_listen`` (None when it is off)."""
    if not cfg.metrics_listen:
        return None
    server = serve_metrics(cfg.metrics_listen)
    closers.append(server.close)
    return server


async def _redis(cfg: DistributedSettings) -> Any:
    nodes = cfg.cluster_nodes
    if nodes:
        return await connect_redis(cluster_nodes=nodes, max_wait_s=cfg.connect_wait_s)
    return await connect_redis(cfg.redis_url, max_wait_s=cfg.connect_wait_s)


async def open_store(cfg: DistributedSettings) -> SqlStore:
    """The metadata store, retried with backoff for ``connect_wait_s``.

    Raises:
        StoreError: The database did not answer in time, or refused for a reason that waiting
            cannot fix (``retryable`` False: an unknown schema revision, auto-migration off).
    """
    cfg.home.mkdir(parents=True, exist_ok=True)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + cfg.connect_wait_s
    delay_s = 0.1
    while True:
        try:
            return await asyncio.to_thread(SqlStore, cfg.database_url)
        except StoreError as exc:
            if not exc.retryable:  # e.g. a schema newer than this CODITECT: waiting cannot help
                raise
            if loop.time() + delay_s > deadline:
                raise StoreError(
                    f"cannot open the metadata database within {cfg.connect_wait_s:g}s: {exc.message}",
                    hint="is PostgreSQL running, and is --db right?",
                ) from exc
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, 2.0)


def _semantic() -> bool:
    """Whether the sentence embedder of semantic plan reuse can be imported here."""
    return importlib.util.find_spec("sentence_transformers") is not None


def build_shared_reuse(cfg: DistributedSettings, model: Model) -> Reuse | None:
    """The reuse stores every service and worker shares (None when reuse is off).

    The default store is the Redis of ``redis_url``, so a result stored after one worker's
    mission is found by every other worker; the LLM response cache lives in the same store.
    """
    if not cfg.reuse:
        return None
    url = cfg.reuse_url or cfg.redis_url
    if cfg.cluster_nodes and not cfg.reuse_url:
        _log.warning("work reuse is off: the reuse store needs one Redis server (--reuse-url)")
        return None
    store: ReuseStore
    if url.startswith(("redis://", "rediss://", "unix://")):
        # Namespaced by the queue name, as the streams are: two deployments sharing one Redis
        # (or two tests sharing one server) never serve each other's work.
        store = RedisReuseStore(url, namespace=f"{cfg.queue_name}:reuse:")
    else:
        store = open_reuse_store(url, home=cfg.home)
    return Reuse(
        tasks=TaskReuse(store, model=model.name),
        # Without the semantic extra there is nothing to compare plans with: no SCAN of Redis
        # for other plans on every request.
        plans=PlanReuse(
            store, embedder=load_embedder if _semantic() else None, validate=validate_plan
        ),
        responses=ReuseStoreCache(store),
    )


def build_taskqueue_service(
    workqueue: JetStreamWorkQueue,
    redis: Any,
    *,
    prefix: str = "coditect",
    state_retention_s: float | None = None,
    notify: Callable[[TaskStateRecord], Awaitable[None]] | None = None,
) -> tuple[TaskQueueService, CountedTaskStateStore]:
    """The task queue's logic over JetStream and Redis, and its counted task-state store.

    Every Redis key of a mission expires ``state_retention_s`` after its last write.
    """
    states = CountedTaskStateStore(redis, prefix=prefix, ttl_s=state_retention_s)
    service = TaskQueueService(
        workqueue=workqueue,
        states=states,
        files=RedisFileIndexStore(redis, prefix=prefix, ttl_s=state_retention_s),
        values=RedisMissionValueStore(redis, prefix=prefix, ttl_s=state_retention_s),
        dead_letter_consumer=f"{workqueue.config.consumer_prefix}-dlq-settle",
        notify=notify,
    )
    return service, states


async def start_taskqueue(cfg: DistributedSettings) -> RunningService:
    """Connect NATS and Redis (bounded retries), then serve the TaskQueue service."""
    closers: list[Callable[[], Awaitable[Any]]] = []
    try:
        workqueue = await JetStreamWorkQueue.connect(
            cfg.nats_url, config=_workqueue_config(cfg), max_wait_s=cfg.connect_wait_s
        )
        closers.append(workqueue.close)
        redis = await _redis(cfg)
        closers.append(redis.aclose)
        events = await JetStreamBus.connect(
            cfg.nats_url, config=_events_config(cfg), max_wait_s=cfg.connect_wait_s
        )
        closers.append(events.close)

        async def notify(record: TaskStateRecord) -> None:
            await events.publish(
                TaskState(
                    mission_id=record.mission_id,
                    task_id=record.task_id,
                    agent=record.worker,
                    state=record.state,
                    attempt=record.attempt,
                    error=record.error,
                )
            )

        service, states = build_taskqueue_service(
            workqueue, redis, state_retention_s=cfg.state_retention_s, notify=notify
        )
        await states.ensure_counts()  # rebuilt from the task states if Redis has none
        closers.append(_background(service.watch_dead_letters(), "dead-letters"))
        servicer = TaskQueueServicer(service)
        metrics = _serve_metrics(cfg, closers)
        if metrics is not None:
            closers.append(_background(poll_queue_depth(workqueue.depth), "queue-depth"))
            closers.append(_background(poll_task_counts(states.counts), "task-counts"))
        server = await start_server(_server_options(cfg), servicer.register, [TASK_QUEUE_SERVICE])
    except BaseException:
        await _close_all(closers)
        raise
    return RunningService(grpc=server, closers=closers, metrics=metrics)


async def start_orchestrator(
    cfg: DistributedSettings, *, model: Model | None = None
) -> RunningService:
    """Open the metadata store, connect to the task queue service, serve the Orchestrator."""
    closers: list[Callable[[], Awaitable[Any]]] = []
    try:
        store = await open_store(cfg)
        closers.append(store.close)
        model = MeteredModel(model or build_model(cfg.llm))
        closers.append(model.aclose)
        tasks = TaskQueueClient(client_options(cfg, cfg.taskqueue))
        closers.append(tasks.aclose)
        events = await JetStreamBus.connect(
            cfg.nats_url, config=_events_config(cfg), max_wait_s=cfg.connect_wait_s
        )
        closers.append(events.close)
        ledger = await asyncio.to_thread(SqliteLedger, cfg.database_url)
        closers.append(ledger.close)
        reuse = build_shared_reuse(cfg, model)
        if reuse is not None:
            closers.append(reuse.close)
        coordinator = OrchestratorService(
            model=model,
            store=store,
            tasks=tasks,
            events=events,
            ledger=ledger,
            reuse=reuse,
            settings=CoordinatorSettings(
                work_dir=cfg.home / "orchestrator",
                mission=CoordinatorPolicy(
                    goals=GoalPolicy(
                        mission_timeout_s=cfg.mission_timeout_s,
                        error_threshold=cfg.error_threshold,
                        max_repairs=cfg.max_repairs,
                    ),
                    budget_usd=cfg.budget_usd,
                    budget_tokens=cfg.budget_tokens,
                    reuse=cfg.reuse,
                ),
            ),
        )
        closers.append(coordinator.aclose)
        await coordinator.start()
        servicer = OrchestratorServicer(coordinator)
        metrics = _serve_metrics(cfg, closers)
        server = await start_server(_server_options(cfg), servicer.register, [ORCHESTRATOR_SERVICE])
    except BaseException:
        await _close_all(closers)
        raise
    return RunningService(grpc=server, closers=closers, metrics=metrics)


async def build_worker(
    cfg: DistributedSettings, *, model: Model | None = None
) -> tuple[Worker, list[Callable[[], Awaitable[Any]]]]:
    """A connected worker and its closers (NATS and Redis retried for ``connect_wait_s``)."""
    closers: list[Callable[[], Awaitable[Any]]] = []
    try:
        workqueue = await JetStreamWorkQueue.connect(
            cfg.nats_url, config=_workqueue_config(cfg), max_wait_s=cfg.connect_wait_s
        )
        closers.append(workqueue.close)
        redis = await _redis(cfg)
        closers.append(redis.aclose)
        sink = TaskQueueClient(client_options(cfg, cfg.taskqueue))
        closers.append(sink.aclose)
        events = await JetStreamBus.connect(
            cfg.nats_url, config=_events_config(cfg), max_wait_s=cfg.connect_wait_s
        )
        closers.append(events.close)
        model = MeteredModel(model or build_model(cfg.llm))
        closers.append(model.aclose)
        reuse = build_shared_reuse(cfg, model)
        if reuse is not None:
            closers.append(reuse.close)
        step = build_task_step(
            model=model,
            sandbox=MeteredSandbox(build_sandbox(cfg.sandbox)),
            task_timeout_s=cfg.task_timeout_s,
            test_timeout_s=cfg.test_timeout_s,
            reuse=reuse,
        )
        ws = WorkerSettings(
            capabilities=cfg.capability_list,
            cache_dir=cfg.home / "worker" / (cfg.worker_id or "default"),
            worker_id=cfg.worker_id,
            task_delay_s=cfg.task_delay_s,
            test_timeout_s=cfg.test_timeout_s,
            state_retention_s=cfg.state_retention_s,
            connect_wait_s=cfg.connect_wait_s,
        )

        def push_lock(name: str) -> Lock:
            return RedisLock(
                redis,
                name,
                ttl_s=ws.push_lock_ttl_s,
                wait_s=ws.push_lock_ttl_s,
                fence_ttl_s=ws.state_retention_s,
            )

        worker = Worker(
            settings=ws,
            workqueue=workqueue,
            sink=sink,
            values=RedisMissionValueStore(redis, ttl_s=ws.state_retention_s),
            events=events,
            step=step,
            locks=push_lock,
        )
        _serve_metrics(cfg, closers)
    except BaseException:
        await _close_all(closers)
        raise
    return worker, closers


async def run_worker(
    cfg: DistributedSettings,
    *,
    model: Model | None = None,
    burst: bool = False,
    on_ready: Callable[[], None] | None = None,
) -> int:
    """Run a worker until SIGTERM/SIGINT (or idle, with ``burst``); returns tasks done.

    ``on_ready`` is called once the task queue service accepted the worker's credentials.

    Raises:
        AuthenticationError: The task queue service refused the credentials (at start, or
            while a task was held: that task was given back to the queue).
    """
    worker, closers = await build_worker(cfg, model=model)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, worker.stop)
    try:
        await worker.run(burst=burst, on_ready=on_ready)
    finally:
        await _close_all(closers)
    return worker.tasks_done


async def run_until_signalled(
    service: RunningService, on_ready: Callable[[int], None] | None = None
) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    if on_ready is not None:
        on_ready(service.port)
    try:
        await stop.wait()
    finally:
        await service.stop()
