"""Transport security: TLS (optionally mutual) credentials and bearer-token authentication."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from coditect.errors import ConfigError

__all__ = ["TlsConfig", "TokenAuthInterceptor", "auth_metadata"]

#: Methods callable without a token: load balancers probe health without credentials.
_OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def _read(path: Path | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc}", hint="check the path") from exc


@dataclass(frozen=True)
class TlsConfig:
    """PEM files for TLS; all ``None`` means a plaintext connection.

    Server side ``cert``/``key`` are the server's, ``ca`` verifies client certificates (mutual
    TLS when ``require_client_cert``). Client side ``ca`` verifies the server, and
    ``cert``/``key`` are the client's certificate for mutual TLS.
    """

    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None
    require_client_cert: bool = False

    @property
    def enabled(self) -> bool:
        """True when any TLS file is set."""
        return any(p is not None for p in (self.cert, self.key, self.ca))

    def server_credentials(self) -> grpc.ServerCredentials:
        """Credentials for a server port.

        Raises:
            ConfigError: The certificate or key is missing or unreadable.
        """
        cert, key = _read(self.cert, "TLS certificate"), _read(self.key, "TLS key")
        if cert is None or key is None:
            raise ConfigError("TLS needs both a certificate and a key", hint="--tls-cert/--tls-key")
        ca = _read(self.ca, "CA certificate")
        if self.require_client_cert and ca is None:
            raise ConfigError("mutual TLS needs the CA that signs client certificates")
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca, require_client_auth=self.require_client_cert
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """Credentials for a client channel."""
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca, "CA certificate"),
            private_key=_read(self.key, "TLS key"),
            certificate_chain=_read(self.cert, "TLS certificate"),
        )


def auth_metadata(token: str) -> tuple[tuple[str, str], ...]:
    """Call metadata that carries ``token`` (empty when there is none)."""
    return (("authorization", f"Bearer {token}"),) if token else ()


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Rejects calls without ``authorization: Bearer <token>`` with UNAUTHENTICATED.

    The request is refused before the handler runs, so a rejected call has no effect.
    """

    def __init__(self, token: str) -> None:
        if not token:
            raise ConfigError("an empty token would accept nobody")
        self._expected = f"Bearer {token}".encode()

    def _authorized(self, details: grpc.HandlerCallDetails) -> bool:
        for key, value in details.invocation_metadata or ():
            if key == "authorization":
                given = value.encode() if isinstance(value, str) else bytes(value)
                return hmac.compare_digest(given, self._expected)
        return False

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        """Pass authorised calls on; answer the others with UNAUTHENTICATED."""
        handler = await continuation(handler_call_details)
        method = handler_call_details.method or ""
        if handler is None or method.startswith(_OPEN_PREFIXES):
            return handler
        if self._authorized(handler_call_details):
            return handler
        return _denying(handler)


_DENIED = "missing or invalid bearer token"


def _denying(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    async def unary(_request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, _DENIED)

    async def streaming(_request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, _DENIED)
        yield  # pragma: no cover - abort raises

    codec = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(unary, **codec)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(streaming, **codec)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(unary, **codec)
    return grpc.stream_stream_rpc_method_handler(streaming, **codec)
