"""Building gRPC servers and channels with the same transport settings on both ends."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from coditect.api.errors import status_for
from coditect.api.security import TlsConfig, TokenAuthInterceptor
from coditect.api.tracing import ServerTracingInterceptor, client_interceptors
from coditect.errors import CoditectError

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "GrpcServer",
    "ServerOptions",
    "channel_options",
    "handle_errors",
    "open_channel",
    "start_server",
    "stream_errors",
]

_log = logging.getLogger(__name__)

#: 16 MiB: plans and reports are small, but a diff or a file index can grow.
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024

R = TypeVar("R")


@dataclass(frozen=True)
class ServerOptions:
    """How a server listens.

    Attributes:
        listen: ``host:port``; port 0 picks a free one.
        token: Bearer token callers must present ("" disables authentication).
        tls: Certificates (plaintext when none is set).
        max_message_bytes: Largest request or response accepted or sent.
    """

    listen: str = "127.0.0.1:0"
    token: str = ""
    tls: TlsConfig = field(default_factory=TlsConfig)
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES


#: Every peer pings an idle connection this often (keepalive).
KEEPALIVE_MS = 30_000


def channel_options(
    max_message_bytes: int, *, keepalive_ms: int = KEEPALIVE_MS
) -> list[tuple[str, Any]]:
    """Options shared by servers and channels.

    A server accepts the keepalive pings of an idle connection as often as the peers send
    them: gRPC's server default expects at most one every 5 minutes and closes the
    connection (GOAWAY "too_many_pings") at the third early one, which cuts a stream that
    waits longer than that (a distributed test that hung in a loaded run logged it). The key
    is ``grpc.http2.min_ping_interval_without_data_ms`` (GRPC_ARG_HTTP2_MIN_RECV_PING_...; a
    "min_recv_..." spelling is not read by gRPC).
    """
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", keepalive_ms),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", keepalive_ms // 3),
    ]


@dataclass
class GrpcServer:
    """A started server, its bound port and its health servicer."""

    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer

    async def stop(self, grace_s: float = 2.0) -> None:
        """Mark NOT_SERVING, then stop, letting calls in flight finish for ``grace_s``."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)


async def start_server(
    options: ServerOptions,
    register: Callable[[grpc.aio.Server], None],
    service_names: Sequence[str],
) -> GrpcServer:
    """Create, register (``register(server)``), and start a server with health and reflection.

    Raises:
        ConfigError: TLS files are missing or unreadable.
        CoditectError: The address cannot be bound.
    """
    interceptors: list[grpc.aio.ServerInterceptor] = [ServerTracingInterceptor()]
    if options.token:
        interceptors.append(TokenAuthInterceptor(options.token))
    server = grpc.aio.server(
        interceptors=interceptors, options=channel_options(options.max_message_bytes)
    )
    register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME]
    reflection.enable_server_reflection(names, server)
    try:
        if options.tls.enabled:
            port = server.add_secure_port(options.listen, options.tls.server_credentials())
        else:
            port = server.add_insecure_port(options.listen)
    except RuntimeError as exc:
        raise CoditectError(f"cannot listen on {options.listen}: {exc}") from exc
    await server.start()
    for name in [*service_names, ""]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    _log.info("listening on %s (port %d, tls=%s)", options.listen, port, options.tls.enabled)
    return GrpcServer(server=server, port=port, health=health_servicer)


def open_channel(
    address: str,
    *,
    tls: TlsConfig | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> grpc.aio.Channel:
    """A channel to ``address`` (``host:port``), over TLS when ``tls`` has files.

    Every call carries the caller's trace context (``traceparent`` in the metadata).
    """
    opts = channel_options(max_message_bytes)
    interceptors = client_interceptors()
    if tls is not None and tls.enabled:
        return grpc.aio.secure_channel(
            address, tls.channel_credentials(), options=opts, interceptors=interceptors
        )
    return grpc.aio.insecure_channel(address, options=opts, interceptors=interceptors)


async def _abort(context: grpc.aio.ServicerContext, exc: CoditectError) -> None:
    await context.abort(status_for(exc), str(exc))


def handle_errors(
    fn: Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]],
) -> Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]]:
    """Wrap a unary handler: a :class:`CoditectError` aborts the call with its status code."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        try:
            return await fn(self, request, context)
        except CoditectError as exc:
            await _abort(context, exc)
            raise AssertionError("unreachable") from exc  # abort raises

    return wrapper


def stream_errors(
    fn: Callable[[Any, Any, grpc.aio.ServicerContext], AsyncIterator[R]],
) -> Callable[[Any, Any, grpc.aio.ServicerContext], AsyncIterator[R]]:
    """Like :func:`handle_errors`, for server-streaming handlers."""

    @functools.wraps(fn)
    async def wrapper(
        self: Any, request: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[R]:
        try:
            async for item in fn(self, request, context):
                yield item
        except CoditectError as exc:
            await _abort(context, exc)

    return wrapper
