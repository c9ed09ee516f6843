"""Hardening against the real server, started the documented way (`python -m aigateway.serve`):
foreign Host headers, client IPs that only a trusted proxy may set, idle and half-open
connections that must not pile up, and long streams that must not be cut."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, bearer, log_in, unique_email
from tests.openrouter_stub import StubServer
from tests.servers import GatewayServer

STUB_KEY = "sk-or-v1-hardening-stub-key-0123456789abcdef0123456789abcdef"
HEADER_TIMEOUT = 1
LIMIT = 40


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with StubServer(api_key=STUB_KEY, token_delay=0.4) as server:
        yield server


def start_gateway(folder: Path, stub: StubServer, **env: str) -> GatewayServer:
    server = GatewayServer(
        folder,
        env={
            "OPENROUTER_BASE_URL": stub.base_url,
            "OPENROUTER_API_KEY": STUB_KEY,
            "SERVER_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
            "SERVER_KEEP_ALIVE_TIMEOUT": "1",
            "SERVER_LIMIT_CONCURRENCY": str(LIMIT),
            **env,
        },
    )
    server.create_admin(ADMIN_EMAIL, ADMIN_PASSWORD)
    return server.start()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, stub: StubServer) -> Iterator[GatewayServer]:
    server = start_gateway(tmp_path_factory.mktemp("hardened"), stub)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory, stub: StubServer) -> Iterator[GatewayServer]:
    """Behind a reverse proxy on loopback: X-Forwarded-For from 127.0.0.1 is believed."""
    server = start_gateway(
        tmp_path_factory.mktemp("proxied"), stub, BEHIND_PROXY="true", RATE_LIMIT_AUTH="3/min"
    )
    try:
        yield server
    finally:
        server.stop()


# -- Host ---------------------------------------------------------------------------------


def test_a_foreign_host_gets_400_from_the_api_pages_and_static_files(gateway):
    attacker = {"Host": "attacker.example"}
    with gateway.client() as http:
        email = unique_email("rebind")
        refused = http.post(
            "/api/auth/register", json={"email": email, "password": PASSWORD}, headers=attacker
        )
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "invalid_host"
        for path in ("/login", "/static/css/app.css", "/api/ai/models"):
            assert http.get(path, headers=attacker).status_code == 400, path
        assert http.get("/healthz", headers=attacker).status_code == 200
        assert (
            http.post("/api/auth/login", json={"email": email, "password": PASSWORD}).status_code
            == 401
        )


# -- client IP ----------------------------------------------------------------------------


def test_without_a_proxy_x_forwarded_for_changes_neither_limits_nor_the_audit_log(tmp_path, stub):
    server = start_gateway(tmp_path, stub, RATE_LIMIT_AUTH="3/min")
    try:
        # One login attempt (for the audited action), then two more from "elsewhere".
        assert _audited_ip(server, {"X-Forwarded-For": "198.51.100.7"}) == "127.0.0.1"
        with server.client() as http:
            statuses = [
                http.post(
                    "/api/auth/login",
                    json={"email": "nobody@example.com", "password": "wrong password"},
                    headers={"X-Forwarded-For": f"203.0.113.{n}"},
                ).status_code
                for n in range(4)
            ]
        assert statuses == [401, 401, 429, 429]
    finally:
        server.stop()


def test_behind_a_proxy_the_address_it_forwards_counts(proxied):
    with proxied.client() as http:
        for n in range(5):
            response = http.post(
                "/api/auth/login",
                json={"email": "nobody@example.com", "password": "wrong password"},
                headers={"X-Forwarded-For": f"203.0.113.{n}"},
            )
            assert response.status_code == 401  # five addresses, one attempt each
    # A client's own X-Forwarded-For arrives first in the list; the proxy appends the
    # address it saw, which is the one believed.
    forged = {"X-Forwarded-For": "6.6.6.6, 198.51.100.8"}
    assert _audited_ip(proxied, forged) == "198.51.100.8"


def _audited_ip(server: GatewayServer, headers: dict[str, str]) -> str:
    """Create an API key (an audited action) with these headers; the IP the audit log kept."""
    with server.client() as http:
        token = log_in(http, ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
        made = http.post(
            "/api/auth/keys", json={"name": "ip"}, headers={**bearer(token), **headers}
        )
        assert made.status_code == 201, made.text
        audit = http.get("/api/admin/audit?action=api_key.created", headers=bearer(token)).json()
    return str(audit["items"][0]["ip"])


# -- connections --------------------------------------------------------------------------


def _open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes the socket within `within` seconds (after a 503 or not)."""
    deadline = time.monotonic() + within
    try:
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if sock.recv(1024) == b"":
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return False


def test_idle_connections_are_closed_and_cannot_exhaust_file_descriptors(gateway):
    assert gateway.pid is not None
    before = _open_files(gateway.pid)
    idle = [socket.create_connection((gateway.host, gateway.port)) for _ in range(LIMIT * 5)]
    try:
        time.sleep(0.5)
        # Connections past the limit are closed on arrival, so the server's descriptors
        # stay bounded however many sockets a client opens.
        assert _open_files(gateway.pid) <= before + LIMIT + 5
        deadline = HEADER_TIMEOUT + 3
        assert all(_closed_by_server(sock, deadline) for sock in idle)
    finally:
        for sock in idle:
            sock.close()
    with gateway.client() as http:
        assert http.get("/healthz").status_code == 200


def test_a_request_trickling_in_slower_than_the_header_timeout_is_cut_off(gateway):
    with socket.create_connection((gateway.host, gateway.port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < HEADER_TIMEOUT + 3:
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except OSError:
                closed = True
                break
            sock.settimeout(0.3)
            try:
                if sock.recv(1024) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
        assert closed


def test_a_keep_alive_connection_still_serves_requests_within_the_timeouts(gateway):
    with gateway.client() as http:
        for _ in range(3):
            assert http.get("/healthz").status_code == 200
            time.sleep(0.3)


def test_a_stream_outlasting_every_timeout_is_not_cut(gateway):
    with gateway.client() as http:
        token = log_in(http, ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
        body = {
            "model": "openai/gpt-4o-mini", "stream": True,
            "messages": [{"role": "user", "content": "one two three four five six seven"}],
        }  # fmt: skip
        started = time.monotonic()
        events = []
        with http.stream(
            "POST", "/api/ai/chat", json=body,
            headers={**bearer(token), "Accept": "text/event-stream"},
        ) as response:  # fmt: skip
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("event: "):
                    events.append(line.removeprefix("event: "))
    assert events[-1] == "done"
    assert time.monotonic() - started > HEADER_TIMEOUT + 1


def test_the_server_is_started_from_settings_not_uvicorns_defaults(gateway):
    log = gateway.log_text()
    assert "proxy headers off" in log
    assert f"limit_concurrency={LIMIT}" in log
