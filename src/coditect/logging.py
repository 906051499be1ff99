"""Structured logging: JSON lines off a terminal, readable console lines on one.

Every line carries the ids bound in the current context (``mission_id``, ``task_id``, ``agent``,
``trace_id``), whether it comes from structlog or from a stdlib ``logging`` logger::

    from coditect.logging import bind_mission, configure_logging, get_logger

    configure_logging()                       # once, at process start (the CLI does it)
    with bind_mission(mission.id, trace_id=tid):
        with bind_mission(mission.id, task_id="t2", agent="coder"):
            get_logger(__name__).info("task.started", attempt=1)

The ids live in :mod:`contextvars`, so they follow asyncio tasks created inside the block and
do not leak between concurrent missions. See docs/observability.md.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, TextIO

import structlog

__all__ = [
    "bind_mission",
    "configure_logging",
    "get_logger",
    "logging_configured",
    "set_span_id_provider",
    "set_trace_id_provider",
    "unconfigure_logging",
]

#: Returns the current trace id (e.g. from OpenTelemetry) or "" when there is none.
_trace_id_provider: list[Callable[[], str]] = []
#: Returns the current span id or "" (added as ``span_id`` next to a provided ``trace_id``).
_span_id_provider: list[Callable[[], str]] = []

_HANDLER_NAME = "coditect-structlog"
#: The root logger's level before configure_logging (restored by unconfigure_logging).
_previous_level: list[int] = []


def set_trace_id_provider(provider: Callable[[], str] | None) -> None:
    """Take ``trace_id`` from ``provider()`` on lines where none was bound (None removes it)."""
    _trace_id_provider.clear()
    if provider is not None:
        _trace_id_provider.append(provider)


def set_span_id_provider(provider: Callable[[], str] | None) -> None:
    """Take ``span_id`` from ``provider()`` on lines where none was bound (None removes it)."""
    _span_id_provider.clear()
    if provider is not None:
        _span_id_provider.append(provider)


def _add_trace_id(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    if not event_dict.get("trace_id") and _trace_id_provider:
        trace_id = _trace_id_provider[0]()
        if trace_id:
            event_dict["trace_id"] = trace_id
    if not event_dict.get("span_id") and _span_id_provider:
        span_id = _span_id_provider[0]()
        if span_id:
            event_dict["span_id"] = span_id
    return event_dict


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        _add_trace_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure_logging(
    *, level: int | str = logging.INFO, json: bool | None = None, stream: TextIO | None = None
) -> None:
    """Route structlog and stdlib logging through one renderer writing to ``stream``.

    Calling it again replaces the previous configuration.

    Args:
        level: Minimum level (``"DEBUG"``, ``logging.INFO``...).
        json: JSON lines (True) or console lines (False); by default JSON unless ``stream``
            is a terminal.
        stream: Where lines go (stderr by default).
    """
    out = stream or sys.stderr
    if json is None:
        json = not (hasattr(out, "isatty") and out.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared = _shared_processors()
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    if not _remove_handler(root):
        _previous_level[:] = [root.level]
    root.addHandler(handler)
    root.setLevel(level)


def _remove_handler(root: logging.Logger) -> bool:
    removed = False
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
            removed = True
    return removed


def logging_configured() -> bool:
    """True when :func:`configure_logging` is in effect."""
    return any(h.get_name() == _HANDLER_NAME for h in logging.getLogger().handlers)


def unconfigure_logging() -> None:
    """Undo :func:`configure_logging`: remove its handler, restore the root level, reset structlog."""
    root = logging.getLogger()
    if _remove_handler(root) and _previous_level:
        root.setLevel(_previous_level.pop())
    structlog.reset_defaults()


def get_logger(name: str | None = None) -> Any:
    """A structlog logger (``log.info("event.name", key=value)``)."""
    return structlog.get_logger(name)


@contextlib.contextmanager
def bind_mission(
    mission_id: str,
    *,
    task_id: str | None = None,
    agent: str | None = None,
    trace_id: str | None = None,
) -> Iterator[None]:
    """Add the ids to every log line written inside the block (nested blocks override).

    Args:
        mission_id: The mission.
        task_id: The task, if the block works on one.
        agent: The agent (``analyzer``, ``coder``, ``tester``...), if any.
        trace_id: The trace id (OpenTelemetry's, hex) when tracing is on.
    """
    ids = {"mission_id": mission_id, "task_id": task_id, "agent": agent, "trace_id": trace_id}
    with structlog.contextvars.bound_contextvars(**{k: v for k, v in ids.items() if v is not None}):
        yield
