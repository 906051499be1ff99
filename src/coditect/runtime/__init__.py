"""The composition roots: the only modules that import concrete backends.

One module per mode, in this one package: :mod:`coditect.runtime.local` wires ``coditect run``
(one process: the embedded model, SQLite, the in-memory bus) and
:mod:`coditect.runtime.distributed` wires ``coditect serve`` (gRPC services, NATS JetStream,
Redis, PostgreSQL). Both drive missions with the same
:class:`~coditect.orchestrator.coordinator.Coordinator`; they differ only in the task port and
the backends they hand it. Everything else receives its backends through constructors, so
tests swap them by passing their own (e.g. a scripted model).
"""

from __future__ import annotations

from coditect.runtime.local import (
    Runtime,
    build_model,
    build_reuse,
    build_runtime,
    build_sandbox,
    build_task_step,
    open_ledger,
    open_mission_store,
    open_reuse_store,
)

__all__ = [
    "Runtime",
    "build_model",
    "build_reuse",
    "build_runtime",
    "build_sandbox",
    "build_task_step",
    "open_ledger",
    "open_mission_store",
    "open_reuse_store",
]
