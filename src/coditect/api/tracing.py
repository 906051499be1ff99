"""Trace context over gRPC: clients put ``traceparent`` in the call metadata, servers open a span.

:func:`coditect.api.server.start_server` and :func:`~coditect.api.server.open_channel` install
these interceptors on every server and channel; with tracing off they only pass the context on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc

from coditect.telemetry import tracing

__all__ = ["ServerTracingInterceptor", "client_interceptors", "metadata_carrier"]

#: Calls that get no server span: the infrastructure, and GetTasks, which the orchestrator
#: polls several times a second for each running task (its caller's span covers the wait).
_UNTRACED_PREFIXES = ("/grpc.health.", "/grpc.reflection.")
_UNTRACED_METHODS = frozenset({"/coditect.v1.TaskQueue/GetTasks"})


def metadata_carrier(metadata: Sequence[tuple[str, Any]] | None) -> dict[str, str]:
    """The text entries of gRPC metadata as a dict (for :func:`tracing.extract`)."""
    return {str(k): v for k, v in (metadata or ()) if isinstance(v, str)}


def _with_context(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    headers = tracing.inject()
    if not headers:
        return details
    metadata = [(k, v) for k, v in (details.metadata or ()) if k not in headers] + list(
        headers.items()
    )
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


class _UnaryUnaryTracing(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]  # untyped base
    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(_with_context(client_call_details), request)


class _UnaryStreamTracing(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]  # untyped base
    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(_with_context(client_call_details), request)


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """Interceptors that add the caller's trace context to unary and server-streaming calls.

    Two objects: a grpc.aio channel files each interceptor under one call type only.
    """
    return [_UnaryUnaryTracing(), _UnaryStreamTracing()]


def _span_args(method: str) -> tuple[str, dict[str, str]]:
    path = method.lstrip("/")
    service, _, name = path.partition("/")
    return path, {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}


class ServerTracingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # untyped base
    """Runs each call in a SERVER span whose parent is the trace context in its metadata."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        """Wrap unary-unary and unary-stream handlers in a span."""
        handler = await continuation(handler_call_details)
        method = handler_call_details.method or ""
        if handler is None or method.startswith(_UNTRACED_PREFIXES) or method in _UNTRACED_METHODS:
            return handler
        carrier = metadata_carrier(handler_call_details.invocation_metadata)
        name, attributes = _span_args(method)
        codec = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            inner = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                with tracing.span(
                    name, parent=carrier, kind=tracing.SpanKind.SERVER, attributes=attributes
                ):
                    return await inner(request, context)

            return grpc.unary_unary_rpc_method_handler(unary, **codec)
        if handler.unary_stream is not None:
            inner_stream = handler.unary_stream

            async def streaming(
                request: Any, context: grpc.aio.ServicerContext
            ) -> AsyncIterator[Any]:
                with tracing.span(
                    name, parent=carrier, kind=tracing.SpanKind.SERVER, attributes=attributes
                ):
                    async for item in inner_stream(request, context):
                        yield item

            return grpc.unary_stream_rpc_method_handler(streaming, **codec)
        return handler
