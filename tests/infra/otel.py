"""Recorded OpenTelemetry spans for tests: an SDK tracer provider with an in-memory exporter.

Load it as a pytest plugin from ``tests/conftest.py`` (``pytest_plugins = [..., "infra.otel"]``).
The provider is installed once per test session (OpenTelemetry allows one global provider per
process); the ``spans`` fixture gives a test the exporter, emptied before and after it.
"""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@pytest.fixture(scope="session")
def _span_exporter() -> InMemorySpanExporter:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider(resource=Resource.create({"service.name": "coditect-tests"}))
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def spans(_span_exporter: InMemorySpanExporter):
    """The exporter of this test's finished spans (``spans.get_finished_spans()``)."""
    _span_exporter.clear()
    yield _span_exporter
    _span_exporter.clear()


def trace_ids(finished: tuple[ReadableSpan, ...] | list[ReadableSpan]) -> set[str]:
    """The hex trace ids of ``finished``."""
    return {trace.format_trace_id(s.context.trace_id) for s in finished if s.context}
