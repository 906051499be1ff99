"""The ``coditect_*`` Prometheus metrics and the HTTP endpoint each service serves them on.

The metrics live in prometheus-client's default registry (with its ``process_*`` and
``python_*`` collectors); each service updates those that concern it and serves them all on
``--metrics-listen host:port`` (``GET /metrics``). docs/observability.md lists every metric.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from coditect.errors import ConfigError

__all__ = [
    "CONSISTENCY_VIOLATIONS",
    "LEASE_LATENCY",
    "LLM_COST",
    "LLM_REQUESTS",
    "LLM_TOKENS",
    "MISSIONS",
    "MISSIONS_RUNNING",
    "QUEUE_DEPTH",
    "SANDBOX_RUNS",
    "SANDBOX_SECONDS",
    "TASKS",
    "TASKS_BY_STATE",
    "WORKER_TASKS",
    "WORKER_TASK_SECONDS",
    "MetricsServer",
    "count_violations",
    "mission_ended",
    "mission_started",
    "observe_lease_latency",
    "parse_listen",
    "poll_queue_depth",
    "poll_task_counts",
    "serve_metrics",
    "set_task_counts",
]

_log = logging.getLogger(__name__)

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

# --- task queue ---------------------------------------------------------------------------------
TASKS = Counter(
    "coditect_task_state_changes",
    "Task state changes this task queue process recorded, by new state "
    "(pending, running, complete, failed, blocked, cancelled).",
    ["state"],
)
TASKS_BY_STATE = Gauge(
    "coditect_tasks",
    "Tasks in each state now, over every mission (kept in Redis, so every task-queue "
    "replica reports the same numbers).",
    ["state"],
)
QUEUE_DEPTH = Gauge(
    "coditect_queue_depth",
    "Tasks in the work-queue stream (waiting, or leased and not yet settled), by capability.",
    ["capability"],
)
LEASE_LATENCY = Histogram(
    "coditect_lease_latency_seconds",
    "Time from a task's enqueue to its lease by a worker (redeliveries include earlier tries).",
    ["capability"],
    buckets=_SECONDS,
)
# --- workers ------------------------------------------------------------------------------------
WORKER_TASKS = Counter(
    "coditect_worker_tasks",
    "Tasks a worker finished handling, by capability and outcome (acked, retry, dead_lettered).",
    ["capability", "outcome"],
)
WORKER_TASK_SECONDS = Histogram(
    "coditect_worker_task_duration_seconds",
    "Time a worker spent on one task, by capability.",
    ["capability"],
    buckets=_SECONDS,
)
CONSISTENCY_VIOLATIONS = Counter(
    "coditect_consistency_violations",
    "Violations the consistency checker found after an agent's action, by kind.",
    ["kind"],
)
# --- models and sandboxes (every service that runs them) ----------------------------------------
LLM_REQUESTS = Counter("coditect_llm_requests", "Model calls, by model.", ["model"])
LLM_TOKENS = Counter(
    "coditect_llm_tokens",
    "Tokens used by model calls, by model and kind (input, cached_input, output); "
    "input includes cached_input.",
    ["model", "kind"],
)
LLM_COST = Counter(
    "coditect_llm_cost_usd",
    "Estimated cost of model calls in US dollars at list prices (0 for local models), by model.",
    ["model"],
)
SANDBOX_RUNS = Counter(
    "coditect_sandbox_runs",
    "Commands run in a sandbox, by backend and outcome (ok, nonzero_exit, timeout, killed, error).",
    ["backend", "outcome"],
)
SANDBOX_SECONDS = Histogram(
    "coditect_sandbox_run_duration_seconds",
    "Wall time of sandboxed commands, by backend.",
    ["backend"],
    buckets=_SECONDS,
)
# --- orchestrator -------------------------------------------------------------------------------
MISSIONS = Counter(
    "coditect_missions",
    "Missions ended, by status (SUCCESS, FAILED, CANCELLED).",
    ["status"],
)
MISSIONS_RUNNING = Gauge("coditect_missions_running", "Missions this orchestrator is driving.")


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port`` -> (host, port).

    Raises:
        ConfigError: Not ``host:port`` with a port in 0..65535.
    """
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(
            f"invalid metrics address {listen!r}",
            hint="use host:port, e.g. --metrics-listen 0.0.0.0:9464 (port 0 picks a free one)",
        )
    return host.strip("[]"), int(port)


@dataclass
class MetricsServer:
    """A running ``/metrics`` endpoint (a daemon thread)."""

    host: str
    port: int
    _httpd: Any
    _thread: threading.Thread

    @property
    def url(self) -> str:
        """Where Prometheus scrapes."""
        return f"http://{self.host}:{self.port}/metrics"

    async def close(self) -> None:
        """Stop serving."""
        await asyncio.to_thread(self._stop)

    def _stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def serve_metrics(listen: str) -> MetricsServer:
    """Serve the metrics on ``listen`` (``host:port``) from a background thread.

    Raises:
        ConfigError: The address is invalid or cannot be bound.
    """
    host, port = parse_listen(listen)
    try:
        httpd, thread = start_http_server(port, addr=host)
    except OSError as exc:
        raise ConfigError(
            f"cannot serve metrics on {listen}: {exc.strerror or exc}",
            hint="pick a free port with --metrics-listen (or CODITECT_METRICS_LISTEN)",
        ) from exc
    server = MetricsServer(host=host, port=int(httpd.server_port), _httpd=httpd, _thread=thread)
    _log.info("metrics on %s", server.url)
    return server


def observe_lease_latency(capability: str, enqueued_at: datetime | None) -> None:
    """Record the time since ``enqueued_at`` (the stream's timestamp of the message)."""
    if enqueued_at is None:
        return
    when = enqueued_at if enqueued_at.tzinfo else enqueued_at.replace(tzinfo=UTC)
    wait_s = (datetime.now(UTC) - when).total_seconds()
    LEASE_LATENCY.labels(capability=capability).observe(max(wait_s, 0.0))


def count_violations(kinds: Iterable[str]) -> None:
    """Count consistency violations by kind."""
    for kind in kinds:
        CONSISTENCY_VIOLATIONS.labels(kind=str(kind)).inc()


def mission_started() -> None:
    """A mission began to run."""
    MISSIONS_RUNNING.inc()


def mission_ended(status: str) -> None:
    """A mission that :func:`mission_started` ended with ``status``."""
    MISSIONS_RUNNING.dec()
    MISSIONS.labels(status=status).inc()


async def poll_queue_depth(
    depth: Callable[[], Awaitable[dict[str, int]]], *, interval_s: float = 2.0
) -> None:
    """Refresh :data:`QUEUE_DEPTH` from ``depth()`` every ``interval_s`` until cancelled."""
    seen: set[str] = set()
    while True:
        t0 = time.monotonic()
        try:
            current = await depth()
        except Exception as exc:  # NATS away: keep the last values, try again later
            _log.debug("queue depth unavailable: %r", exc)
        else:
            for cap in seen | set(current):
                QUEUE_DEPTH.labels(capability=cap).set(current.get(cap, 0))
            seen |= set(current)
        await asyncio.sleep(max(interval_s - (time.monotonic() - t0), 0.05))


def set_task_counts(counts: Mapping[str, int]) -> None:
    """Set :data:`TASKS_BY_STATE` to ``counts`` (state -> tasks); states not named are left."""
    for state, n in counts.items():
        TASKS_BY_STATE.labels(state=state).set(n)


async def poll_task_counts(
    counts: Callable[[], Awaitable[Mapping[str, int]]], *, interval_s: float = 2.0
) -> None:
    """Refresh :data:`TASKS_BY_STATE` from ``counts()`` every ``interval_s`` until cancelled.

    The task queue also sets the gauge after each of its own writes; polling picks up the
    changes other replicas made.
    """
    while True:
        t0 = time.monotonic()
        try:
            set_task_counts(await counts())
        except Exception as exc:  # Redis away: keep the last values, try again later
            _log.debug("task counts unavailable: %r", exc)
        await asyncio.sleep(max(interval_s - (time.monotonic() - t0), 0.05))
