"""OpenTelemetry tracing: per-process set-up, span helpers, and context through carriers.

One mission is one trace: ``coditect submit`` opens it, gRPC calls carry it in metadata and
task messages carry it in NATS headers, both as W3C ``traceparent``/``tracestate`` (the
``opentelemetry.propagate`` API, so ``OTEL_PROPAGATORS`` is honoured)::

    from coditect.telemetry import tracing

    headers = tracing.inject()                        # {"traceparent": "00-..."}
    with tracing.span("worker.task", parent=headers, kind=SpanKind.CONSUMER):
        ...                                           # a child of the sender's span

Nothing is recorded or exported until :func:`setup_tracing` is given an OTLP endpoint
(``CODITECT_OTLP_ENDPOINT`` or the standard ``OTEL_EXPORTER_OTLP_ENDPOINT``) or a JSON-lines
file (``CODITECT_TRACE_FILE``); before that the spans are OpenTelemetry's no-op spans, which
still pass an incoming trace context on. Exporting needs the ``otel`` extra
(``opentelemetry-sdk``, ``opentelemetry-exporter-otlp-proto-http``).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind

from coditect.errors import ConfigError

__all__ = [
    "SpanKind",
    "context_headers",
    "current_ids",
    "extract",
    "inject",
    "install_log_correlation",
    "otlp_endpoint_from_env",
    "set_attributes",
    "setup_tracing",
    "span",
    "traced",
    "tracer",
]

TRACER_NAME = "coditect"
#: Standard OpenTelemetry variables that turn OTLP export on, most specific first.
_OTLP_ENV = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_OTEL_HINT = (
    "pip install 'coditect[otel]' (opentelemetry-sdk, opentelemetry-exporter-otlp-proto-http)"
)

P = ParamSpec("P")
R = TypeVar("R")
AttrValue = str | int | float | bool


def tracer() -> trace.Tracer:
    """CODITECT's tracer (a proxy: it follows the provider set later by :func:`setup_tracing`)."""
    return trace.get_tracer(TRACER_NAME)


def inject(carrier: dict[str, str] | None = None) -> dict[str, str]:
    """Add the current trace context (``traceparent``...) to ``carrier`` and return it.

    Without an active span the carrier is returned unchanged.
    """
    out: dict[str, str] = {} if carrier is None else carrier
    propagate.inject(out)
    return out


def context_headers(carrier: Mapping[str, str] | None) -> dict[str, str]:
    """The entries of ``carrier`` that carry trace context (``traceparent``, ``tracestate``...).

    The names are those of the configured propagators (``OTEL_PROPAGATORS``), matched
    case-insensitively; used to pass a message's context on without its other headers.
    """
    fields = {f.lower() for f in propagate.get_global_textmap().fields}
    return {str(k): str(v) for k, v in (carrier or {}).items() if str(k).lower() in fields}


def extract(carrier: Mapping[str, str] | None) -> Context:
    """The trace context carried by ``carrier`` (header names are matched case-insensitively).

    A carrier without a valid ``traceparent`` gives an empty context: spans started in it begin
    a new trace.
    """
    lowered = {str(k).lower(): str(v) for k, v in (carrier or {}).items()}
    return propagate.extract(lowered)


def _clean(attributes: Mapping[str, AttrValue | None] | None) -> dict[str, AttrValue]:
    return {k: v for k, v in (attributes or {}).items() if v is not None and v != ""}


@contextlib.contextmanager
def span(
    name: str,
    *,
    parent: Mapping[str, str] | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, AttrValue | None] | None = None,
) -> Iterator[trace.Span]:
    """A span around the block, made current inside it.

    Args:
        name: The span's name (``orchestrator.plan``, ``worker.task``...).
        parent: A carrier (gRPC metadata, NATS headers) whose trace context is the parent;
            None uses the current span.
        kind: The OpenTelemetry span kind.
        attributes: Attributes; None and "" values are left out.

    An exception escaping the block is recorded on the span, which then ends with an error.
    """
    ctx = extract(parent) if parent is not None else None
    with tracer().start_as_current_span(
        name, context=ctx, kind=kind, attributes=_clean(attributes)
    ) as s:
        yield s


def traced(
    name: str, *, kind: SpanKind = SpanKind.INTERNAL
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """Decorate a coroutine function: each call runs in a span called ``name``."""

    def decorate(fn: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with span(name, kind=kind):
                return await fn(*args, **kwargs)

        return wrapper

    return decorate


def set_attributes(attributes: Mapping[str, AttrValue | None]) -> None:
    """Set attributes on the current span (None and "" values are skipped)."""
    trace.get_current_span().set_attributes(_clean(attributes))


def current_ids() -> tuple[str, str]:
    """(trace id, span id) of the current span in hex, or ("", "") outside any trace."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return "", ""
    return trace.format_trace_id(ctx.trace_id), trace.format_span_id(ctx.span_id)


def install_log_correlation() -> None:
    """Make :mod:`coditect.logging` lines carry ``trace_id`` and ``span_id`` of the current span."""
    from coditect.logging import set_span_id_provider, set_trace_id_provider

    set_trace_id_provider(lambda: current_ids()[0])
    set_span_id_provider(lambda: current_ids()[1])


def otlp_endpoint_from_env() -> str:
    """The OTLP endpoint from the standard OpenTelemetry variables ("" when none is set)."""
    return next((os.environ[k] for k in _OTLP_ENV if os.environ.get(k)), "")


def _sdk_provider(service: str) -> Any:
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError as exc:
        raise ConfigError(
            "tracing is configured but the OpenTelemetry SDK is not installed", hint=_OTEL_HINT
        ) from exc
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):  # set up earlier in this process: add to it
        return provider
    name = os.environ.get("OTEL_SERVICE_NAME") or f"coditect-{service}"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    trace.set_tracer_provider(provider)
    return provider


def _otlp_exporter(endpoint: str) -> Any:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise ConfigError(
            "an OTLP endpoint is configured but the OTLP exporter is not installed",
            hint=_OTEL_HINT,
        ) from exc
    if not endpoint:  # the exporter reads the OTEL_EXPORTER_OTLP_* variables itself
        return OTLPSpanExporter()
    if not endpoint.startswith(("http://", "https://")):
        raise ConfigError(
            f"the OTLP endpoint {endpoint!r} is not an http(s) URL",
            hint="e.g. --otlp-endpoint http://localhost:4318 (OTLP over HTTP/protobuf)",
        )
    url = endpoint.rstrip("/")
    return OTLPSpanExporter(endpoint=url if url.endswith("/v1/traces") else url + "/v1/traces")


def setup_tracing(service: str, *, otlp_endpoint: str = "", trace_file: Path | None = None) -> bool:
    """Record and export this process's spans when an exporter is configured.

    Also turns on trace ids in log lines (:func:`install_log_correlation`). Calling it again in
    the same process adds exporters to the provider already set.

    Args:
        service: ``orchestrator``, ``taskqueue``, ``worker`` or ``client``; the resource's
            ``service.name`` becomes ``coditect-<service>`` (``OTEL_SERVICE_NAME`` wins).
        otlp_endpoint: OTLP/HTTP base URL (``http://collector:4318``); "" falls back to
            ``OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT``.
        trace_file: Append every finished span to this file as one JSON object per line.

    Returns:
        True when spans are recorded; False when nothing is configured (the default).

    Raises:
        ConfigError: An exporter is configured but the ``otel`` extra is missing, or the
            endpoint is not an http(s) URL.
    """
    install_log_correlation()
    from_env = otlp_endpoint_from_env()
    if not (otlp_endpoint or from_env or trace_file):
        return False
    exporter = _otlp_exporter(otlp_endpoint) if (otlp_endpoint or from_env) else None
    provider = _sdk_provider(service)
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    if trace_file is not None:
        from coditect.telemetry.filexport import JsonLinesSpanExporter

        provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(trace_file)))
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return True
