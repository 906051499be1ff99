"""Trace context in and out of dict carriers, spans, the JSON-lines exporter and log correlation."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from coditect.api.tracing import metadata_carrier
from coditect.errors import ConfigError
from coditect.logging import (
    configure_logging,
    get_logger,
    set_span_id_provider,
    set_trace_id_provider,
    unconfigure_logging,
)
from coditect.telemetry import tracing
from coditect.telemetry.filexport import JsonLinesSpanExporter

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


def _hex(span: trace.Span) -> tuple[str, str]:
    ctx = span.get_span_context()
    return trace.format_trace_id(ctx.trace_id), trace.format_span_id(ctx.span_id)


def test_inject_without_a_span_adds_nothing():
    assert tracing.inject() == {}
    carrier = {"Nats-Msg-Id": "x"}
    assert tracing.inject(carrier) is carrier and carrier == {"Nats-Msg-Id": "x"}


def test_inject_then_extract_continues_the_trace(spans):
    with tracing.span("sender") as sender:
        headers = tracing.inject()
    trace_id, span_id = _hex(sender)
    m = TRACEPARENT.match(headers["traceparent"])
    assert m and m.groups() == (trace_id, span_id)

    with tracing.span("receiver", parent=headers, kind=tracing.SpanKind.CONSUMER) as receiver:
        assert tracing.current_ids() == _hex(receiver)
    finished = {s.name: s for s in spans.get_finished_spans()}
    got = finished["receiver"]
    assert trace.format_trace_id(got.context.trace_id) == trace_id
    assert got.parent is not None and trace.format_span_id(got.parent.span_id) == span_id
    assert got.kind is trace.SpanKind.CONSUMER


def test_extract_ignores_header_case_and_rejects_garbage(spans):
    with tracing.span("sender") as sender:
        headers = {k.title(): v for k, v in tracing.inject().items()}  # "Traceparent"
    assert "Traceparent" in headers
    with tracing.span("child", parent=headers) as child:
        pass
    assert _hex(child)[0] == _hex(sender)[0]

    with tracing.span("orphan", parent={"traceparent": "not-a-traceparent"}) as orphan:
        pass
    assert _hex(orphan)[0] != _hex(sender)[0]
    assert next(s for s in spans.get_finished_spans() if s.name == "orphan").parent is None


def test_a_non_recording_span_still_passes_the_context_on():
    """With tracing off, a service forwards the caller's trace id unchanged."""
    ctx = SpanContext(
        trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
        span_id=0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    with trace.use_span(NonRecordingSpan(ctx)):
        headers = tracing.inject()
        assert tracing.current_ids() == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    assert headers["traceparent"] == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def test_traced_decorator_and_attributes(spans):
    @tracing.traced("work")
    async def work(x: int) -> int:
        tracing.set_attributes({"coditect.task_id": "t1", "skipped": None, "empty": ""})
        return x * 2

    assert await work(21) == 42
    (span,) = spans.get_finished_spans()
    assert span.name == "work" and dict(span.attributes) == {"coditect.task_id": "t1"}


def test_a_failing_block_ends_its_span_with_an_error(spans):
    with pytest.raises(ValueError), tracing.span("boom"):
        raise ValueError("x")
    (span,) = spans.get_finished_spans()
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.events and span.events[0].name == "exception"


def test_metadata_carrier_keeps_text_entries_only():
    md = [("traceparent", "00-abc"), ("authorization", "Bearer x"), ("bin-bin", b"\x00")]
    assert metadata_carrier(md) == {"traceparent": "00-abc", "authorization": "Bearer x"}
    assert metadata_carrier(None) == {}


def test_setup_tracing_exports_nothing_by_default(monkeypatch):
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    try:
        assert tracing.setup_tracing("worker") is False
    finally:
        set_trace_id_provider(None)
        set_span_id_provider(None)


def test_setup_tracing_rejects_an_endpoint_that_is_not_a_url(monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    try:
        with pytest.raises(ConfigError, match="not an http"):
            tracing.setup_tracing("worker", otlp_endpoint="collector:4318")
    finally:
        set_trace_id_provider(None)
        set_span_id_provider(None)


def test_json_lines_exporter_appends_one_object_per_span(tmp_path):
    path = tmp_path / "traces" / "spans.jsonl"
    provider = TracerProvider()  # a private provider: the global one is left alone
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("outer"):
        with tracer.start_as_current_span("inner", attributes={"coditect.task_id": "t2"}):
            pass
    provider.shutdown()
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["name"] for r in rows] == ["inner", "outer"]
    inner, outer = rows
    assert inner["trace_id"] == outer["trace_id"] and len(inner["trace_id"]) == 32
    assert inner["parent_span_id"] == outer["span_id"] and outer["parent_span_id"] == ""
    assert inner["attributes"] == {"coditect.task_id": "t2"}
    assert inner["end_ns"] >= inner["start_ns"] > 0


def test_json_lines_exporter_needs_a_writable_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot open the trace file"):
        JsonLinesSpanExporter(blocker / "spans.jsonl")


def test_log_lines_carry_the_current_trace_and_span_ids(spans):
    out = io.StringIO()
    configure_logging(stream=out, json=True)
    tracing.install_log_correlation()
    try:
        get_logger("test").info("outside")
        with tracing.span("work") as s:
            get_logger("test").info("inside")
            logging.getLogger("coditect.test").warning("stdlib too")
    finally:
        set_trace_id_provider(None)
        set_span_id_provider(None)
        unconfigure_logging()
    outside, inside, stdlib = (json.loads(line) for line in out.getvalue().splitlines())
    assert "trace_id" not in outside and "span_id" not in outside
    assert (inside["trace_id"], inside["span_id"]) == _hex(s)
    assert (stdlib["trace_id"], stdlib["span_id"]) == _hex(s)
