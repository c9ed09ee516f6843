"""The official `openai` SDK, current 3.x and last 2.x, sync and async, against the real
gateway (uvicorn, on the run's backend) in front of the OpenRouter stand-in, which refuses any
generation request without a `user` (require_user).

The SDK scenarios live in tests/e2e/openai_sdk/scenarios.py and run in a subprocess per
SDK version: the venv has 3.x; `make` installs 2.x into .sdk/openai-2, which goes first
on that subprocess's PYTHONPATH. Each scenario is reported here as its own test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import PASSWORD, bearer, log_in, unique_email
from tests.openrouter_stub import StubServer
from tests.servers import REPO_ROOT, GatewayServer

API_KEY = "sk-or-v1-sdk-e2e-stub-key-0123456789abcdef0123456789"
SCENARIOS = Path(__file__).with_name("openai_sdk") / "scenarios.py"
SDK2 = REPO_ROOT / ".sdk" / "openai-2"
VERSIONS = {"3.x": None, "2.x": SDK2}
SYNC = [
    "models_list", "models_retrieve", "chat_plain", "chat_stream", "chat_stream_usage",
    "chat_tools", "chat_tools_stream", "chat_response_format", "embeddings", "images",
    "revoked_key", "not_found", "bad_request", "permission_denied", "stream_abandoned",
]  # fmt: skip
ASYNC = [
    "async_models", "async_chat_plain", "async_chat_stream", "async_embeddings",
    "async_images", "async_errors", "async_stream_abandoned",
]  # fmt: skip


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with StubServer(api_key=API_KEY) as server:
        # Every generation must carry a user; streams slow enough to hang up on.
        server.configure(require_user=True, token_delay=0.02)
        yield server


def start_gateway(folder: Path, stub: StubServer, **env: str) -> GatewayServer:
    overrides = {"OPENROUTER_BASE_URL": stub.base_url, "OPENROUTER_API_KEY": API_KEY, **env}
    return GatewayServer(folder, env=overrides).start()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, stub: StubServer) -> Iterator[GatewayServer]:
    server = start_gateway(tmp_path_factory.mktemp("sdk-gateway"), stub)
    try:
        yield server
    finally:
        server.stop()


def sign_up_with_keys(server: GatewayServer, keys: int = 2) -> dict[str, Any]:
    """A new user with `keys` API keys, the last of which is revoked."""
    email = unique_email("sdk")
    with server.client() as http:
        assert http.post("/api/auth/register", json={"email": email, "password": PASSWORD})
        access = log_in(http, email, PASSWORD)["access_token"]
        me = http.get("/api/users/me", headers=bearer(access)).json()
        made = [
            http.post("/api/auth/keys", json={"name": f"k{n}"}, headers=bearer(access)).json()
            for n in range(keys)
        ]
        revoked = http.delete(f"/api/auth/keys/{made[-1]['id']}", headers=bearer(access))
        assert revoked.status_code == 204, revoked.text
    return {"email": email, "id": me["id"], "access": access, "keys": [k["key"] for k in made]}


@pytest.fixture(scope="module")
def account(gateway: GatewayServer) -> dict[str, Any]:
    return sign_up_with_keys(gateway)


def run_scenarios(
    version: str, server: GatewayServer, key: str, revoked: str, *names: str
) -> dict[str, Any]:
    target = VERSIONS[version]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PYTHON"))}
    if target is not None:
        if not (target / "openai").is_dir():
            pytest.fail(f"the {version} SDK is missing: run `make {target.name}` (see Makefile)")
        env["PYTHONPATH"] = str(target)
    env.update(GATEWAY_URL=server.base_url, API_KEY=key, REVOKED_KEY=revoked)
    done = subprocess.run(
        [sys.executable, str(SCENARIOS), *names],
        env=env, capture_output=True, text=True, timeout=300, check=False, cwd="/",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["version"].startswith(version[0] + "."), report["version"]
    return report


@pytest.fixture(scope="module")
def sdk_runs(gateway: GatewayServer, account: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every scenario of both SDK versions, run once for the module."""
    key, revoked = account["keys"]
    return {
        version: run_scenarios(version, gateway, key, revoked)["results"] for version in VERSIONS
    }


@pytest.mark.parametrize("scenario", SYNC + ASYNC)
@pytest.mark.parametrize("version", list(VERSIONS))
def test_the_sdk_scenario_passes(sdk_runs: dict[str, Any], version: str, scenario: str) -> None:
    result = sdk_runs[version][scenario]
    assert result["ok"], result.get("trace") or result


def test_the_tested_versions_are_the_pinned_ones(sdk_runs: dict[str, Any]) -> None:
    pins = (REPO_ROOT / "requirements-dev.txt").read_text()
    assert "openai==3." in pins
    assert "openai==2." in (SCENARIOS.parent / "requirements-2x.txt").read_text()


def test_a_stream_the_client_closes_stops_upstream_and_is_booked(
    sdk_runs: dict[str, Any], gateway: GatewayServer, account: dict[str, Any], stub: StubServer
) -> None:
    ids = [
        sdk_runs[version][name]["id"]
        for version in VERSIONS
        for name in ("stream_abandoned", "async_stream_abandoned")
    ]
    deadline = time.monotonic() + 15
    with gateway.client(headers=bearer(account["access"])) as http:
        for generation_id in ids:
            while True:  # settled at once; costed once OpenRouter's GET /generation knows it
                row = http.get(f"/api/generations/{generation_id}").json()
                if row["usage"]["cost"] is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert row["status"] == "cancelled", row
            assert row["kind"] == "chat"
            assert row["usage"]["cost"] > 0, row  # what the provider billed for it
    abandoned = [g for g in stub.generations() if g.abandoned]
    assert len(abandoned) >= len(ids)
    assert all(not g.stream_finished for g in abandoned)


def test_every_generation_upstream_carried_the_users_pseudonym(
    sdk_runs: dict[str, Any], account: dict[str, Any], stub: StubServer
) -> None:
    users = stub.users("/api/v1/")
    assert users, "no generation reached the stand-in"
    assert set(users) == {users[0]}  # one person, one stable pseudonym
    assert users[0] not in (account["email"], account["id"], account["id"].replace("-", ""))
    assert account["id"].replace("-", "")[:8] not in users[0]


def test_usage_and_history_are_recorded_for_sdk_calls(
    sdk_runs: dict[str, Any], gateway: GatewayServer, account: dict[str, Any]
) -> None:
    completed = [sdk_runs[v][n]["id"] for v in VERSIONS for n in ("chat_plain", "chat_stream")]
    abandoned = [sdk_runs[v]["stream_abandoned"]["id"] for v in VERSIONS]
    gateway.stop()  # flushes the buffered usage rows (and frees a DuckDB file for reading)
    try:
        rows = gateway.query(
            "SELECT CAST(generation_id AS VARCHAR), kind, status, error_code, cost, tokens_in"
            " FROM usage_records WHERE user_id = ?",
            [account["id"]],
        )
    finally:
        gateway.start()
    by_id = {row[0]: row for row in rows}
    for generation_id in completed:
        _, kind, status, _, cost, tokens_in = by_id[generation_id]
        assert (kind, status) == ("chat", "ok") and cost and cost > 0 and tokens_in
    for generation_id in abandoned:
        assert by_id[generation_id][2:4] == ("error", "cancelled")
        assert by_id[generation_id][4] > 0  # costed afterwards through GET /generation
    assert API_KEY not in gateway.log_text()
    kinds = {row[1] for row in rows}
    assert {"chat", "embedding", "image"} <= kinds


def test_rate_limited_sdk_calls_fail_at_once_without_a_retry_storm(
    tmp_path: Path, stub: StubServer
) -> None:
    server = start_gateway(tmp_path / "limited", stub)
    accounts = {version: sign_up_with_keys(server) for version in VERSIONS}
    server.stop()
    server.env["RATE_LIMIT_USER"] = "3/hour"  # counters live in the process: a fresh start
    server.start()
    try:
        for version, account in accounts.items():
            key, revoked = account["keys"]
            before = server.log_text().count("path=/v1/models ")
            result = run_scenarios(version, server, key, revoked, "rate_limited")
            outcome = result["results"]["rate_limited"]
            assert outcome["ok"], outcome
            assert outcome["after"] == 3
            assert outcome["x_should_retry"] == "false"
            assert int(outcome["retry_after"]) > 60
            assert outcome["seconds"] < 5
            sent = server.log_text().count("path=/v1/models ") - before
            assert sent == 4  # three answered, one refused, no retries
    finally:
        server.stop()


def test_the_v1_routes_answer_with_request_ids(gateway: GatewayServer) -> None:
    with httpx.Client(base_url=gateway.base_url, trust_env=False) as http:
        response = http.get("/v1/models", headers={"Authorization": "Bearer agw_nope_nope"})
    assert response.status_code == 401
    assert response.headers["x-request-id"]
    assert response.json()["error"]["type"] == "authentication_error"
