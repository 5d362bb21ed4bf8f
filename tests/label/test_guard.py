"""The host, origin and token checks of :class:`volgan.label.guard.RequestGuard`, called as ASGI.

The same checks are exercised over real HTTP in ``test_label_security.py``; these cover the
edge cases of header parsing without a server.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from volgan.label.guard import RequestGuard, is_loopback, normalise_origin

TOKEN = "s3cret-token-0123456789"


def call(guard: RequestGuard, headers: dict[str, str], method: str = "GET") -> tuple[int, dict, dict]:
    """Run one request through ``guard``; returns (status, response headers, JSON body or {})."""
    reached = []

    async def app(scope, receive, send):
        reached.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    guard.app = app
    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": method, "path": "/info/", "scheme": "http",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    asyncio.run(guard(scope, receive, send))
    status = sent[0]["status"]
    assert bool(reached) == (status == 200)
    out_headers = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    body = json.loads(sent[1]["body"]) if sent[1]["body"] else {}
    return status, out_headers, body


def guard(**kwargs) -> RequestGuard:
    return RequestGuard(None, **kwargs)


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost:8000", "[::1]:8000", "127.0.0.2", "LOCALHOST",
                                  "app.localhost:8000"])
def test_loopback_hosts_pass(host):
    assert call(guard(), {"host": host})[0] == 200


@pytest.mark.parametrize("host", ["evil.example:8000", "192.168.1.5:8000", "", "127.0.0.1.evil.example",
                                  "localhost:notaport"])
def test_other_hosts_are_refused_on_a_loopback_server(host):
    status, _, body = call(guard(), {"host": host} if host else {})
    assert status == 403 and "not served" in body["detail"]


def test_other_hosts_pass_when_the_server_binds_elsewhere():
    assert call(guard(loopback_only=False), {"host": "scanner-pc.lan:8000"})[0] == 200


@pytest.mark.parametrize("origin", ["http://127.0.0.1:8000", "HTTP://127.0.0.1:8000"])
def test_same_origin_passes(origin):
    assert call(guard(), {"host": "127.0.0.1:8000", "origin": origin}, "PUT")[0] == 200


@pytest.mark.parametrize("origin", ["http://evil.example", "http://127.0.0.1:9999", "https://127.0.0.1:8000",
                                    "null", "http://localhost:8000"])
def test_foreign_origins_are_refused(origin):
    status, headers, body = call(guard(), {"host": "127.0.0.1:8000", "origin": origin}, "PUT")
    assert status == 403 and "cross-origin" in body["detail"] and "--allow-origin" in body["detail"]
    assert not any(k.startswith("access-control") for k in headers)


def test_allowed_origins_pass():
    g = guard(allowed_origins=["http://localhost:3000/"])
    assert call(g, {"host": "127.0.0.1:8000", "origin": "http://localhost:3000"}, "DELETE")[0] == 200
    assert call(g, {"host": "127.0.0.1:8000", "origin": "http://localhost:3001"}, "DELETE")[0] == 403


def test_token_is_required_and_compared_exactly():
    g = guard(token=TOKEN)
    host = {"host": "127.0.0.1:8000"}
    for auth in (None, "", "Bearer", f"Basic {TOKEN}", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", TOKEN):
        headers = host if auth is None else {**host, "authorization": auth}
        status, out, body = call(g, headers)
        assert status == 401, auth
        assert out["www-authenticate"].startswith("Bearer") and "token" in body["detail"]
    assert call(g, {**host, "authorization": f"Bearer {TOKEN}"})[0] == 200
    assert call(g, {**host, "authorization": f"bearer  {TOKEN}"})[0] == 200


def test_host_and_origin_are_checked_before_the_token():
    g = guard(token=TOKEN)
    assert call(g, {"host": "evil.example", "authorization": f"Bearer {TOKEN}"})[0] == 403
    assert call(g, {"host": "127.0.0.1:8000", "origin": "http://evil.example",
                    "authorization": f"Bearer {TOKEN}"})[0] == 403


def test_helpers():
    assert is_loopback("::1") and is_loopback("[::1]") and is_loopback("127.8.9.10") and is_loopback("localhost.")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1") and not is_loopback("localhost.evil.example")
    assert normalise_origin("http://LocalHost:80") == "http://localhost"
    assert normalise_origin("https://[::1]:8443") == "https://[::1]:8443"


def test_preflights_from_allowed_origins_need_no_token_and_others_are_refused():
    g = guard(token=TOKEN, allowed_origins=["http://localhost:3000"])
    preflight = {"host": "127.0.0.1:8000", "access-control-request-method": "PUT"}
    assert call(g, {**preflight, "origin": "http://localhost:3000"}, "OPTIONS")[0] == 200
    status, headers, _ = call(g, {**preflight, "origin": "http://evil.example"}, "OPTIONS")
    assert status == 403 and not any(k.startswith("access-control") for k in headers)
    assert call(g, {"host": "127.0.0.1:8000", "origin": "http://localhost:3000"}, "OPTIONS")[0] == 401
    assert call(g, {"host": "127.0.0.1:8000", "origin": "http://localhost:3000"}, "PUT")[0] == 401
