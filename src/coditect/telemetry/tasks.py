"""Observing a leased task on a worker: its span, its log ids and its metrics, in one block."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from coditect.logging import bind_mission
from coditect.telemetry import metrics, tracing

if TYPE_CHECKING:
    from coditect.bus.base import Lease

__all__ = ["observe_lease"]

_log = logging.getLogger("coditect.worker")


@contextlib.contextmanager
def observe_lease(lease: Lease, *, worker: str) -> Iterator[None]:
    """Run the block as the handling of ``lease``.

    * a CONSUMER span ``worker.task``, child of the trace context in the message's headers
      (the enqueuing service's span), so the task joins its mission's trace;
    * ``mission_id`` and ``task_id`` on every log line written inside, and a line when the task
      starts and ends;
    * ``coditect_lease_latency_seconds``, ``coditect_worker_task_duration_seconds`` and
      ``coditect_worker_tasks_total{outcome}`` (how the lease was settled).
    """
    msg = lease.message
    metrics.observe_lease_latency(msg.capability, lease.enqueued_at)
    attributes: dict[str, str | int | None] = {
        "coditect.mission_id": msg.mission_id,
        "coditect.task_id": msg.task_id,
        "coditect.capability": msg.capability,
        "coditect.worker": worker,
        "coditect.delivery": lease.num_delivered,
        "messaging.system": "nats",
    }
    t0 = time.monotonic()
    with (
        tracing.span(
            "worker.task",
            parent=lease.headers,
            kind=tracing.SpanKind.CONSUMER,
            attributes=attributes,
        ) as span,
        bind_mission(msg.mission_id, task_id=msg.task_id),
    ):
        _log.info("task %s started (delivery %d)", msg.task_id, lease.num_delivered)
        try:
            yield
        finally:
            outcome = lease.outcome or "unsettled"
            _log.info("task %s %s in %.2fs", msg.task_id, outcome, time.monotonic() - t0)
            span.set_attribute("coditect.outcome", outcome)
            metrics.WORKER_TASK_SECONDS.labels(capability=msg.capability).observe(
                time.monotonic() - t0
            )
            metrics.WORKER_TASKS.labels(capability=msg.capability, outcome=outcome).inc()
