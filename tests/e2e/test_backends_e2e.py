"""The real server on each backend: DuckDB refuses several workers at start-up in one
sentence; PostgreSQL serves, migrates once when several servers start together, lets
commands run beside the server and answers backups with a pointer to pg_dump."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, bearer, log_in, unique_email
from tests.servers import REPO_ROOT, GatewayServer, free_port, gateway_env


@pytest.mark.duckdb_only
@pytest.mark.parametrize("how", ["env", "flag"])
def test_duckdb_refuses_several_workers_in_one_sentence(tmp_path: Path, how: str) -> None:
    env = gateway_env(tmp_path)
    args = [sys.executable, "-m", "aigateway.serve", "--port", str(free_port())]
    if how == "env":
        env["WEB_CONCURRENCY"] = "3"
    else:
        args += ["--workers", "3"]
    result = subprocess.run(
        args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("aigateway: DuckDB lets one process open the database")
    assert "DATABASE_URL" in lines[-1] and "Traceback" not in result.stderr
    assert not Path(env["DUCKDB_PATH"]).exists()  # refused before anything was opened


@pytest.mark.postgresql_only
def test_the_server_runs_on_postgresql(tmp_path: Path) -> None:
    server = GatewayServer(tmp_path / "gateway", env={"BACKUP_DIR": str(tmp_path / "backups")})
    assert server.database_url
    server.create_admin(ADMIN_EMAIL, ADMIN_PASSWORD)
    with server, server.client() as http:
        assert http.get("/readyz").json()["status"] == "ready"
        email = unique_email()
        assert (
            http.post("/api/auth/register", json={"email": email, "password": PASSWORD}).status_code
            == 201
        )
        tokens = log_in(http, email, PASSWORD)
        refreshed = http.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert refreshed.status_code == 200
        # No file lock: a command runs beside the server, and the server sees its change.
        promoted = server.manage("createadmin", "--email", email)
        assert promoted.returncode == 0, promoted.stderr
        admin = log_in(http, ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
        health = http.get("/api/admin/health/db", headers=bearer(admin)).json()
        assert health["engine"] == "postgresql" and health["pool"]["size"] >= 1
        backup = http.post("/api/admin/backup", headers=bearer(admin))
        assert backup.status_code == 409 and "pg_dump" in backup.json()["error"]["message"]
    assert "database ready: postgresql postgresql://" in server.log_text()
    roles = server.query("SELECT role FROM users WHERE email_key = ?", [email])
    assert roles == [("admin",)]


@pytest.mark.postgresql_only
def test_servers_starting_together_on_one_database_migrate_it_once(tmp_path: Path) -> None:
    from tests.services import new_postgres_schema

    url = new_postgres_schema()
    servers = [GatewayServer(tmp_path / f"s{n}", database_url=url) for n in range(3)]
    failures: list[BaseException] = []

    def start(server: GatewayServer) -> None:
        try:
            server.start()
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=start, args=(server,)) for server in servers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        versions = servers[0].query("SELECT version FROM schema_migrations ORDER BY version")
        from core.db.database import list_migrations

        assert [v for (v,) in versions] == [v for v, _, _ in list_migrations()]
        applied = sum(server.log_text().count("applied migration") for server in servers)
        assert applied == len(versions)  # each migration applied by exactly one server
    finally:
        for server in servers:
            server.stop()
