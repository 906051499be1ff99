"""CODITECT errors <-> gRPC status codes.

Server side, :func:`status_for` picks the code a handler aborts with; client side,
:func:`from_rpc_error` turns a failed call back into a :class:`CoditectError` whose
``retryable`` says whether calling again may help.
"""

from __future__ import annotations

import grpc

from coditect.errors import (
    AuthenticationError,
    BudgetExceededError,
    CoditectError,
    InputError,
    NotFoundError,
)

__all__ = ["NotFoundError", "RpcAuthError", "RpcError", "from_rpc_error", "status_for"]

_AUTH_CODES = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})

_RETRYABLE_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED}
)


class RpcError(CoditectError):
    """A gRPC call failed.

    Attributes:
        code: The gRPC status code.
    """

    def __init__(self, message: str, *, code: grpc.StatusCode, hint: str = "") -> None:
        super().__init__(message, retryable=code in _RETRYABLE_CODES, hint=hint)
        self.code = code


class RpcAuthError(RpcError, AuthenticationError):
    """The server refused the call's credentials (UNAUTHENTICATED or PERMISSION_DENIED)."""


def status_for(exc: CoditectError) -> grpc.StatusCode:
    """The status code a server reports ``exc`` with."""
    if isinstance(exc, RpcError):
        return exc.code
    if isinstance(exc, NotFoundError):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(exc, InputError):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, BudgetExceededError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    if exc.retryable:
        return grpc.StatusCode.UNAVAILABLE
    return grpc.StatusCode.INTERNAL


_HINTS = {
    grpc.StatusCode.UNAUTHENTICATED: "pass the server's token (--token or CODITECT_TOKEN)",
    grpc.StatusCode.PERMISSION_DENIED: "this client's token or certificate is not allowed here",
    grpc.StatusCode.UNAVAILABLE: "is the server running, and do TLS settings match on both ends?",
    grpc.StatusCode.DEADLINE_EXCEEDED: "the server did not answer in time; raise --deadline",
}


def from_rpc_error(exc: grpc.RpcError, what: str) -> CoditectError:
    """A :class:`CoditectError` for a failed call (``what`` names the call for the message)."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else str(exc)
    message = f"{what}: {code.name}: {details}"
    if code is grpc.StatusCode.NOT_FOUND:
        return NotFoundError(message)
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        return InputError(message)
    if code in _AUTH_CODES:
        return RpcAuthError(message, code=code, hint=_HINTS.get(code, ""))
    return RpcError(message, code=code, hint=_HINTS.get(code, ""))
