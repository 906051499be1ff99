"""A span exporter that appends finished spans to a file, one JSON object per line.

For local debugging and for tests that follow one trace across processes without a
collector: several processes may append to the same file (each line is one ``write`` on a
file opened with ``O_APPEND``). Needs the OpenTelemetry SDK (the ``otel`` extra).

Each line::

    {"name": "worker.task", "trace_id": "4bf9...", "span_id": "00f0...", "parent_span_id": "...",
     "kind": "CONSUMER", "service": "coditect-worker", "pid": 4242,
     "start_ns": ..., "end_ns": ..., "status": "UNSET", "attributes": {"coditect.task_id": "t2"}}
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import format_span_id, format_trace_id

from coditect.errors import ConfigError

__all__ = ["JsonLinesSpanExporter", "span_to_dict"]


def span_to_dict(span: ReadableSpan) -> dict[str, Any]:
    """The JSON-able form of a finished span."""
    ctx = span.get_span_context()
    parent = span.parent
    return {
        "name": span.name,
        "trace_id": format_trace_id(ctx.trace_id) if ctx else "",
        "span_id": format_span_id(ctx.span_id) if ctx else "",
        "parent_span_id": format_span_id(parent.span_id) if parent else "",
        "kind": span.kind.name,
        "service": str(span.resource.attributes.get("service.name", "")),
        "pid": os.getpid(),
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name,
        "attributes": {k: _plain(v) for k, v in (span.attributes or {}).items()},
    }


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


class JsonLinesSpanExporter(SpanExporter):
    """Appends spans to ``path`` (created with its parent directories)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(
                f"cannot open the trace file {self.path}: {exc.strerror}",
                hint="set CODITECT_TRACE_FILE to a writable path",
            ) from exc
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Write ``spans``, one line each."""
        lines = [json.dumps(span_to_dict(s), default=str) + "\n" for s in spans]
        with self._lock:
            if self._fd is None:
                return SpanExportResult.FAILURE
            try:
                for line in lines:
                    os.write(self._fd, line.encode())
            except OSError:
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Close the file."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered."""
        return True
