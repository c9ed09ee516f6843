"""SPEC §4 logs: one line per request with request id, method, path, status, duration and
user id, the id echoed in X-Request-ID; no secret ever reaches the log."""

from __future__ import annotations

import logging
import re

import pytest

from tests.accounts.test_auth_api import login, refresh
from tests.conftest import PASSWORD, ApiClient

LINE = re.compile(
    r"^request id=(?P<id>[A-Za-z0-9._-]+) method=(?P<method>[A-Z]+) path=(?P<path>\S+) "
    r"status=(?P<status>\d{3}) duration_ms=\d+\.\d user=(?P<user>\S+)$"
)


@pytest.fixture
def request_log(caplog):
    caplog.set_level(logging.DEBUG)

    def everything() -> str:
        return "\n".join(record.getMessage() for record in caplog.records) + caplog.text

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "aigateway.request"]

    everything.lines = lines  # type: ignore[attr-defined]
    return everything


def test_each_request_is_one_line_with_id_method_path_status_and_user(alice, request_log):
    response = alice.client.call("GET", "/api/users/me?page=1")
    [line] = request_log.lines()
    match = LINE.match(line)
    assert match, line
    assert match["id"] == response["X-Request-ID"]
    assert (match["method"], match["path"], match["status"]) == ("GET", "/api/users/me", "200")
    assert match["user"] == alice.id


def test_a_sane_incoming_request_id_is_kept_and_a_hostile_one_replaced(anon, request_log):
    kept = anon.get("/healthz", headers={"X-Request-ID": "trace-0123456789"})
    assert kept["X-Request-ID"] == "trace-0123456789"
    replaced = anon.get("/healthz", headers={"X-Request-ID": "evil id\nuser=admin"})
    assert replaced["X-Request-ID"] != "evil id\nuser=admin"
    assert all(LINE.match(line) for line in request_log.lines())


def test_secrets_never_reach_the_log(alice, request_log):
    key = alice.client.call("POST", "/api/auth/keys", {"name": "k"}).json()["key"]
    tokens = login(ApiClient(), alice.email).json()
    refresh(ApiClient(), tokens["refresh_token"])
    ApiClient(key).call("GET", "/api/users/me?access_token=" + tokens["access_token"])
    ApiClient().call("GET", "/api/users/me", headers={"Authorization": "Bearer forged.jwt.x"})
    login(ApiClient(), alice.email, "a wrong secret password")
    ApiClient().call("POST", "/api/auth/register", {"email": "x@example.com", "password": "pw"})
    ApiClient().call("GET", f"/api/generate/video/status?polling_url=https://x/?key={key}")
    text = request_log()
    assert request_log.lines()
    for secret in (
        key, tokens["access_token"], tokens["refresh_token"], alice.access, alice.refresh,
        PASSWORD, "a wrong secret password", "forged.jwt.x", "access_token=", "polling_url",
    ):  # fmt: skip
        assert secret not in text


def test_a_path_cannot_forge_a_second_log_line(anon, request_log):
    anon.get("/api/nothing%0Arequest%20id=forged%20status=200")
    lines = [line for message in request_log.lines() for line in message.splitlines()]
    assert len(lines) == 1
    assert LINE.match(lines[0])
    assert "path=/api/nothing%0Arequest%20id%3Dforged%20status%3D200 status=404" in lines[0]
