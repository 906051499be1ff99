"""Who may use the web view: loopback by default, a bearer token otherwise, CSRF on every write.

- The token is the gRPC services' scheme (``Authorization: Bearer <token>``). A browser cannot set
  that header when following a link, so opening any page once with ``?token=<token>`` stores it
  in an HttpOnly, SameSite=Strict cookie, which is accepted in place of the header.
- The Host header must name the address the server listens on (or localhost): a page of another
  site that rebinds its DNS name to 127.0.0.1 is refused instead of reading the missions.
- Every state-changing request (POST) carries the server's CSRF token, which only pages of this
  server contain, and an Origin, when the browser sends one, of this server.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from coditect.errors import ConfigError

__all__ = ["Guard", "is_loopback", "split_listen"]

COOKIE = "coditect_token"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}


def split_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as a host and a port.

    Raises:
        ConfigError: The address has no valid port.
    """
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"--listen {listen!r} is not HOST:PORT", hint="e.g. 127.0.0.1:8420")
    return host.strip("[]") or "127.0.0.1", int(port)


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class Guard:
    """Checks tokens, hosts and CSRF for one server.

    Args:
        host: The address the server listens on.
        token: The bearer token; required when ``host`` is not loopback.
    """

    host: str
    token: str = ""
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    def __post_init__(self) -> None:
        if not self.token and not is_loopback(self.host):
            raise ConfigError(
                f"listening on {self.host} (not loopback) needs a token",
                hint="pass --token (the same bearer token as the gRPC services) or listen on 127.0.0.1",
            )

    def _host_ok(self, request: Request) -> bool:
        given = (request.headers.get("host") or "").rsplit(":", 1)[0].strip("[]").lower()
        if is_loopback(given) or given == self.host.lower():
            return True
        # A wildcard listen address has no single name; the token is the protection then.
        return self.host in ("0.0.0.0", "::") and bool(self.token)

    def _token_ok(self, request: Request) -> bool:
        if not self.token:
            return True
        expected = self.token.encode()
        header = request.headers.get("authorization", "")
        if header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(), expected):
            return True
        cookie = request.cookies.get(COOKIE, "")
        return bool(cookie) and hmac.compare_digest(cookie.encode(), expected)

    def _origin_ok(self, request: Request) -> bool:
        origin = request.headers.get("origin")
        if not origin or origin == "null":
            return origin is None  # "null" is an opaque origin (sandboxed frame, file://)
        return urlsplit(origin).netloc == request.headers.get("host", "")

    async def csrf_ok(self, request: Request, form_value: str | None) -> bool:
        """True when the CSRF token (form field or header) and the Origin are this server's."""
        given = form_value or request.headers.get(CSRF_HEADER, "")
        return self._origin_ok(request) and hmac.compare_digest(given.encode(), self.csrf.encode())

    async def __call__(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """The middleware: refuse foreign hosts and missing tokens; turn ``?token=`` into a cookie."""
        if not self._host_ok(request):
            return PlainTextResponse("unknown host", status_code=421)
        offered = request.query_params.get("token")
        if self.token and offered is not None:
            if not hmac.compare_digest(offered.encode(), self.token.encode()):
                return PlainTextResponse("invalid token", status_code=401)
            rest = request.url.remove_query_params("token")
            response = RedirectResponse(rest.path + (f"?{rest.query}" if rest.query else ""), 303)
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
            return response
        if not self._token_ok(request):
            return PlainTextResponse(
                "missing or invalid bearer token (open any page once with ?token=...)",
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return await call_next(request)
