"""Trace context over a real gRPC loopback server: unary and server-streaming calls."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2
from opentelemetry import trace

from coditect.api.tracing import ServerTracingInterceptor, client_interceptors
from coditect.telemetry import tracing

REQ = health_pb2.HealthCheckRequest
RESP = health_pb2.HealthCheckResponse
CODEC = {"request_deserializer": REQ.FromString, "response_serializer": RESP.SerializeToString}


async def test_unary_and_streaming_calls_join_the_callers_trace(spans):
    seen: dict[str, str] = {}

    async def unary(request, context):
        seen["unary"] = tracing.current_ids()[0]
        return RESP()

    async def streaming(request, context):
        seen["stream"] = tracing.current_ids()[0]
        yield RESP()
        yield RESP()

    server = grpc.aio.server(interceptors=[ServerTracingInterceptor()])
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "t.Svc",
                {
                    "Get": grpc.unary_unary_rpc_method_handler(unary, **CODEC),
                    "Watch": grpc.unary_stream_rpc_method_handler(streaming, **CODEC),
                },
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", interceptors=client_interceptors())
    codec = {"request_serializer": REQ.SerializeToString, "response_deserializer": RESP.FromString}
    try:
        with tracing.span("caller") as caller:
            await channel.unary_unary("/t.Svc/Get", **codec)(REQ(), metadata=(("a", "b"),))
            got = [r async for r in channel.unary_stream("/t.Svc/Watch", **codec)(REQ())]
        assert len(got) == 2
    finally:
        await channel.close()
        await server.stop(0)
    trace_id = trace.format_trace_id(caller.get_span_context().trace_id)
    assert seen == {"unary": trace_id, "stream": trace_id}
    by_name = {s.name: s for s in spans.get_finished_spans()}
    for name in ("t.Svc/Get", "t.Svc/Watch"):
        span = by_name[name]
        assert span.kind is trace.SpanKind.SERVER
        assert span.parent is not None and span.parent.span_id == caller.get_span_context().span_id
        assert span.attributes["rpc.method"] == name.split("/")[1]
