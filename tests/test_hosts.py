"""ALLOWED_HOSTS holds for every path: API, pages and static files (not the probes).

These tests call the project's ASGI application itself, as uvicorn does, because the
host check sits in front of everything Django's test client would reach.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.conftest import PASSWORD

pytestmark = pytest.mark.anyio


async def asgi_request(
    path: str,
    *,
    method: str = "GET",
    host: str | None = "localhost",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> tuple[int, dict[str, str], bytes]:
    from aigateway.asgi import application

    raw_headers = [
        (name.lower().encode(), value.encode()) for name, value in (headers or {}).items()
    ]
    if host is not None:
        raw_headers.append((b"host", host.encode()))
    if body:
        raw_headers.append((b"content-length", str(len(body)).encode()))
    path, _, query = path.partition("?")
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
        "root_path": "", "headers": raw_headers, "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    sent: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:  # the client waits for the answer; Django listens for a disconnect
            await asyncio.Event().wait()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await application(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    response_headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], response_headers, content


def register_body(email: str) -> bytes:
    return json.dumps({"email": email, "password": PASSWORD}).encode()


JSON = {"content-type": "application/json"}


async def test_the_api_refuses_a_foreign_host_in_its_error_shape(database):
    status, headers, body = await asgi_request(
        "/api/auth/register", method="POST", host="attacker.example", headers=JSON,
        body=register_body("rebound@example.com"),
    )  # fmt: skip
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "invalid_host"
    assert database.read(lambda con: con.execute("SELECT count(*) FROM users").fetchone())[0] == 0


@pytest.mark.parametrize(
    "host",
    ["attacker.example", "attacker.example:8000", "localhost.attacker.example", "127.0.0.1.nip.io",
     "", "local host", "[::1", "x" * 300],
)  # fmt: skip
async def test_every_kind_of_path_refuses_a_host_not_allowed(database, host):
    for path in (
        "/api/users/me",
        "/api/ai/models",
        "/login",
        "/",
        "/static/css/app.css",
        "/api/schema/",
    ):
        status, _, _ = await asgi_request(path, host=host)
        assert status == 400, (path, host)


async def test_an_allowed_host_with_a_port_passes(database):
    status, _, body = await asgi_request("/static/css/app.css", host="localhost:8000")
    assert status == 200 and body
    status, _, body = await asgi_request("/api/auth/register", method="POST", host="127.0.0.1:8000",
                                         headers=JSON, body=register_body("ok@example.com"))  # fmt: skip
    assert status == 201, body


async def test_probes_answer_whatever_host_the_orchestrator_uses(database):
    for path in ("/healthz", "/readyz"):
        status, _, _ = await asgi_request(path, host="10.0.3.7:8000")
        assert status == 200, path


async def test_without_a_host_header_the_servers_own_address_counts(database, settings):
    status, _, _ = await asgi_request("/static/css/app.css", host=None)
    assert status == 200
    settings.ALLOWED_HOSTS = ["gateway.example.com"]
    status, _, _ = await asgi_request("/static/css/app.css", host=None)
    assert status == 400


async def test_subdomain_patterns_and_the_wildcard_work_as_in_django(database, settings):
    settings.ALLOWED_HOSTS = [".example.com"]
    assert (await asgi_request("/static/css/app.css", host="ai.example.com"))[0] == 200
    assert (await asgi_request("/static/css/app.css", host="example.com."))[0] == 200
    assert (await asgi_request("/static/css/app.css", host="localhost"))[0] == 400
    settings.ALLOWED_HOSTS = ["*"]
    assert (await asgi_request("/static/css/app.css", host="anything.test"))[0] == 200


# -- the handler's URL resolution ---------------------------------------------------------


async def test_paths_resolve_through_the_cache_and_follow_a_new_urlconf(database, settings):
    from django.test import RequestFactory
    from django.urls import Resolver404

    from core.asgi import GatewayASGIHandler, _resolved

    status, _, body = await asgi_request("/api/ping")
    assert status == 200 and b"tests.resolve_urls" not in body
    before = _resolved.cache_info()
    assert (await asgi_request("/api/ping"))[0] == 200
    assert _resolved.cache_info().hits == before.hits + 1
    # A path nothing matches is a 404 every time: misses are not remembered as matches.
    for _ in range(2):
        assert (await asgi_request("/api/no-such-path"))[0] == 404
    with pytest.raises(Resolver404):
        GatewayASGIHandler().resolve_request(RequestFactory().get("/no-such-path"))

    settings.ROOT_URLCONF = "tests.resolve_urls"  # clears Django's resolver cache
    status, _, body = await asgi_request("/api/ping")
    assert (status, json.loads(body)) == (200, {"urlconf": "tests.resolve_urls"})
