"""ASGI middleware in front of the MONAI Label routes: host, origin and token checks.

* **Host**: a server bound to a loopback address answers only requests whose ``Host`` is a
  loopback name or address (``localhost``, ``127.x.x.x``, ``[::1]``), so a web page whose own
  name resolves to 127.0.0.1 (DNS rebinding) is refused.
* **Origin**: a request that carries an ``Origin`` header (browsers send one with every
  cross-origin request and every non-GET request) is refused unless that origin is the server's
  own or one of the allowed origins. A CORS preflight from an allowed origin goes on without the
  token to the CORS middleware behind this one; nothing else gets CORS headers.
* **Token**: with a token set, every other request needs ``Authorization: Bearer <token>``
  (compared in constant time); otherwise 401.

Refusals are JSON ``{"detail": "..."}`` answers, as FastAPI's own errors are.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Iterable
from urllib.parse import urlsplit

LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) is this machine only."""
    host = host.strip().strip("[]").lower().rstrip(".")
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_host(value: str) -> tuple[str, int | None]:
    """``(host, port)`` of a ``Host`` header value (``[::1]:8000``, ``localhost``, ...)."""
    parts = urlsplit(f"//{value}")
    try:
        port = parts.port
    except ValueError:
        port = -1  # not a port: never equal to a real one
    return parts.hostname or "", port


def normalise_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, without a default port."""
    parts = urlsplit(origin.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        return origin
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if port is None or (scheme, port) in (("http", 80), ("https", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


class RequestGuard:
    """ASGI middleware that refuses foreign hosts, foreign origins and requests without the token.

    Args:
        app: the ASGI app it guards.
        token: the bearer token every request must carry; ``None`` or empty: no token check.
        allowed_origins: origins (``scheme://host:port``) besides the server's own whose
            requests are accepted.
        loopback_only: refuse requests whose ``Host`` is not a loopback name or address.
    """

    def __init__(self, app, *, token: str | None = None, allowed_origins: Iterable[str] = (),
                 loopback_only: bool = True):
        self.app = app
        self.token = token.encode("utf-8") if token else None
        self.allowed_origins = {normalise_origin(o) for o in allowed_origins}
        self.loopback_only = loopback_only

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        preflight = scope["method"] == "OPTIONS" and "access-control-request-method" in headers
        refusal = self.refusal(scope.get("scheme", "http"), host, headers.get("origin"), headers.get("authorization"),
                               preflight=preflight)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, detail = refusal
        extra = [(b"www-authenticate", b'Bearer realm="volgan"')] if status == 401 else []
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                *extra]})
        await send({"type": "http.response.body", "body": body})

    def refusal(self, scheme: str, host: str, origin: str | None, authorization: str | None, *,
                preflight: bool = False) -> tuple[int, str] | None:
        """``(status, reason)`` when the request must be refused, ``None`` when it may go on.

        ``preflight``: a CORS preflight (``OPTIONS`` with ``Access-Control-Request-Method``),
        which browsers send without credentials.
        """
        hostname, port = split_host(host)
        if self.loopback_only and (port == -1 or not is_loopback(hostname)):
            return 403, f"host {host!r} is not served: this server answers requests to localhost / 127.0.0.1 only"
        if origin is not None:
            own = normalise_origin(f"{scheme}://{host}")
            if normalise_origin(origin) != own and normalise_origin(origin) not in self.allowed_origins:
                return 403, (f"cross-origin request from {origin!r} refused; start the server with "
                             f"--allow-origin {origin} to accept it")
            if preflight:
                return None
        if self.token is not None:
            scheme_, _, given = (authorization or "").partition(" ")
            if scheme_.lower() != "bearer" or not hmac.compare_digest(given.strip().encode("utf-8"), self.token):
                return 401, "missing or wrong token: send 'Authorization: Bearer <token>'"
        return None
