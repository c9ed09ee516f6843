"""Operations against the real server: a backup taken while it runs restores into a server
that serves the same accounts; rate limits answer 429 with Retry-After; the log keeps no
secrets; the docs load their assets from the app."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, bearer, log_in, unique_email
from tests.servers import GatewayServer


@pytest.fixture
def fresh_gateway(tmp_path: Path):
    """A server of this test's own, with an admin made before it started."""
    servers: list[GatewayServer] = []

    def start(name: str = "gateway", **env: str) -> GatewayServer:
        server = GatewayServer(
            tmp_path / name, env={"BACKUP_DIR": str(tmp_path / "backups"), **env}
        )
        server.create_admin(ADMIN_EMAIL, ADMIN_PASSWORD)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.mark.duckdb_only
def test_a_backup_of_the_running_server_restores_into_a_working_server(fresh_gateway, tmp_path):
    server = fresh_gateway()
    email = unique_email()
    with server.client() as http:
        assert (
            http.post("/api/auth/register", json={"email": email, "password": PASSWORD}).status_code
            == 201
        )
        admin = log_in(http, ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
        made = http.post("/api/admin/backup", headers=bearer(admin))
        assert made.status_code == 201, made.text
        backup = Path(made.json()["path"])
        late = unique_email("late")
        http.post("/api/auth/register", json={"email": late, "password": PASSWORD})

    refused = server.manage("backup", str(tmp_path / "while-running.duckdb"))
    assert refused.returncode != 0
    assert "POST /api/admin/backup" in refused.stderr
    assert "Traceback" not in refused.stderr
    server.stop()

    restored = GatewayServer(tmp_path / "restored", env={"BACKUP_DIR": str(tmp_path / "b2")})
    result = restored.manage("restore", str(backup))
    assert result.returncode == 0, result.stderr
    with restored, restored.client() as http:
        assert (
            http.post("/api/auth/login", json={"email": email, "password": PASSWORD}).status_code
            == 200
        )
        late_login = http.post("/api/auth/login", json={"email": late, "password": PASSWORD})
        assert late_login.status_code == 401  # registered after the snapshot
        admin = log_in(http, ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
        audit = http.get("/api/admin/audit?action=database.backed_up", headers=bearer(admin))
        assert audit.json()["total"] == 0  # the audit row is written after the snapshot
        assert http.get("/readyz").json()["status"] == "ready"


def test_the_real_server_answers_429_with_retry_after_past_the_login_limit(fresh_gateway):
    server = fresh_gateway(RATE_LIMIT_AUTH="3/min")
    with server.client() as http:
        statuses = [
            http.post(
                "/api/auth/login", json={"email": ADMIN_EMAIL, "password": "wrong"}
            ).status_code
            for _ in range(4)
        ]
        assert statuses == [401, 401, 401, 429]
        blocked = http.post(
            "/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
    assert blocked.status_code == 429
    assert 1 <= int(blocked.headers["Retry-After"]) <= 60
    assert blocked.json()["error"]["code"] == "rate_limited"


def test_the_server_log_has_one_line_per_request_and_no_secrets(fresh_gateway):
    server = fresh_gateway()
    with server.client() as http:
        tokens = log_in(http, ADMIN_EMAIL, ADMIN_PASSWORD)
        key = http.post(
            "/api/auth/keys", json={"name": "k"}, headers=bearer(tokens["access_token"])
        ).json()["key"]
        http.get("/api/users/me?token=" + tokens["access_token"], headers=bearer(key))
        http.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        http.get("/api/admin/stats", headers={"X-Request-ID": "trace-e2e-000001", **bearer(key)})
    log = server.log_text()
    for secret in (ADMIN_PASSWORD, tokens["access_token"], tokens["refresh_token"], key, "token="):
        assert secret not in log
    lines = [line for line in log.splitlines() if " aigateway.request " in line]
    assert any(
        re.search(r"request id=trace-e2e-000001 method=GET path=/api/admin/stats status=200 ", line)
        for line in lines
    )


def test_the_docs_page_loads_its_assets_from_the_app(fresh_gateway):
    server = fresh_gateway()
    with server.client() as http:
        page = http.get("/api/docs/")
        assert page.status_code == 200
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
        assert len(assets) >= 3
        for asset in assets:
            response = http.get(asset)
            assert response.status_code == 200, asset
            assert len(response.content) > 100
        schema = http.get("/api/schema/?format=json")
        assert schema.status_code == 200 and "/api/admin/stats" in schema.json()["paths"]
