"""SPEC §2 Admin: stats, database health, token purge, audit log, backups; staff only."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from accounts import repository as accounts_repo
from core.clock import utcnow
from generation import repository as generation_repo
from generation.recorder import record_usage
from generation.repository import Generation, UsageRecord
from tests.accounts.test_auth_api import error_code
from tests.conftest import PASSWORD, ApiClient, make_persona

ENDPOINTS = [
    ("GET", "/api/admin/stats", 200),
    ("GET", "/api/admin/health/db", 200),
    ("POST", "/api/admin/tokens/purge", 200),
    ("GET", "/api/admin/audit", 200),
    ("POST", "/api/admin/backup", 201),
]


@pytest.fixture(autouse=True)
def _backups(tmp_path, settings):
    settings.BACKUP_DIR = tmp_path / "backups"


# -- who may call -------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "status"), ENDPOINTS)
def test_admins_may_call_every_admin_endpoint(admin, method, path, status, backend):
    if path == "/api/admin/backup" and backend == "postgresql":
        status = 409  # pg_dump's job there
    response = admin.client.call(method, path)
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"


@pytest.mark.parametrize(("method", "path", "status"), ENDPOINTS)
def test_users_are_refused_every_admin_endpoint(alice, method, path, status):
    response = alice.client.call(method, path)
    assert response.status_code == 403
    assert error_code(response) == "forbidden"


@pytest.mark.parametrize(("method", "path", "status"), ENDPOINTS)
def test_anonymous_callers_are_refused_every_admin_endpoint(anon, method, path, status):
    response = anon.call(method, path)
    assert response.status_code == 401
    assert error_code(response) == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_demoted_admin_is_refused_on_the_next_request(admin):
    second = make_persona("second-admin@example.com", admin=True)
    assert second.client.call("GET", "/api/admin/stats").status_code == 200
    demoted = admin.client.call("PUT", f"/api/users/{second.id}/role", {"role": "user"})
    assert demoted.status_code == 200
    assert second.client.call("GET", "/api/admin/stats").status_code == 403


# -- stats --------------------------------------------------------------------------------


def _usage(when, user_id, kind, model, tokens_in, tokens_out, cost, status="ok"):
    return UsageRecord(
        occurred_at=when, user_id=user_id, kind=kind, model=model, tokens_in=tokens_in,
        tokens_out=tokens_out, cost=cost, latency_ms=10.0, status=status,
        error_code=None if status == "ok" else "upstream_error",
    )  # fmt: skip


def _generation(when, user_id, kind, model, status="completed"):
    return Generation(
        id=uuid.uuid4(), user_id=user_id, kind=kind, model=model, prompt="p", params={},
        status=status, output_text=None, media=(), error_code=None, error_message=None,
        tokens_in=None, tokens_out=None, cost=None, created_at=when.replace(tzinfo=UTC),
        finished_at=None,
    )  # fmt: skip


@pytest.fixture
def known_usage(database, alice, mallory):
    """Two users, three days, a row outside the window; costs chosen to add up exactly."""
    a, m = uuid.UUID(alice.id), uuid.UUID(mallory.id)
    today = utcnow().replace(hour=0, minute=30, second=0, microsecond=0)
    yesterday = today - timedelta(days=1)
    long_ago = today - timedelta(days=45)
    usage = [
        _usage(today, a, "text", "openai/gpt-4o-mini", 100, 50, 0.25),
        _usage(today, a, "chat", "openai/gpt-4o-mini", 10, 5, 0.5),
        _usage(yesterday, m, "image", "google/gemini-image", 20, 0, 2.0),
        _usage(yesterday, m, "image", "google/gemini-image", 0, 0, None, status="error"),
        _usage(today, None, "models", None, None, None, None),
        _usage(long_ago, a, "text", "openai/gpt-4o-mini", 1000, 1000, 100.0),
    ]
    generations = [
        _generation(today, a, "text", "openai/gpt-4o-mini"),
        _generation(today, a, "chat", "openai/gpt-4o-mini"),
        _generation(yesterday, m, "image", "google/gemini-image"),
        _generation(yesterday, m, "image", "google/gemini-image", status="failed"),
        _generation(long_ago, a, "text", "openai/gpt-4o-mini"),
    ]

    def insert(tx):
        generation_repo.insert_usage(tx, usage[:-1])
        generation_repo.insert_generations(tx, generations)

    database.write(insert)
    record_usage(usage[-1])  # still buffered: the stats must flush it first
    return {"today": today.date().isoformat(), "yesterday": yesterday.date().isoformat()}


def test_stats_add_up_a_known_data_set(admin, known_usage):
    body = admin.client.call("GET", "/api/admin/stats").json()
    assert body["window"]["days"] == 30
    assert body["users"] == {
        "total": 3, "active": 3, "disabled": 0, "by_role": {"user": 2, "admin": 1},
    }  # fmt: skip
    assert body["totals"] == {
        "generations": 4, "failed_generations": 1, "calls": 5, "errors": 1,
        "tokens_in": 130, "tokens_out": 55, "cost": 2.75,
    }  # fmt: skip
    kinds = {row["kind"]: row for row in body["by_kind"]}
    assert set(kinds) == {"text", "chat", "image", "models"}
    assert kinds["image"] == {
        "kind": "image", "generations": 2, "failed_generations": 1, "calls": 2, "errors": 1,
        "tokens_in": 20, "tokens_out": 0, "cost": 2.0,
    }  # fmt: skip
    assert kinds["models"]["generations"] == 0 and kinds["models"]["calls"] == 1
    assert body["by_kind"][0]["kind"] == "image"  # most expensive first
    models = {row["model"]: row for row in body["by_model"]}
    assert models["openai/gpt-4o-mini"]["cost"] == 0.75
    assert models["openai/gpt-4o-mini"]["generations"] == 2
    assert models["google/gemini-image"]["calls"] == 2
    assert len(body["by_day"]) == 30
    assert body["by_day"][-1]["day"] == known_usage["today"]
    days = {row["day"]: row for row in body["by_day"]}
    assert days[known_usage["today"]]["cost"] == 0.75
    assert days[known_usage["today"]]["calls"] == 3
    assert days[known_usage["yesterday"]]["generations"] == 2
    assert sum(row["calls"] for row in body["by_day"]) == 5
    assert [(u["email"], u["cost"]) for u in body["top_users"]] == [
        ("mallory@example.com", 2.0),
        ("alice@example.com", 0.75),
    ]


def test_stats_count_refresh_tokens_by_state(admin, database):
    _token_rows(database, admin.id)
    body = admin.client.call("GET", "/api/admin/stats").json()
    # admin's own login is active too
    assert body["refresh_tokens"] == {"active": 2, "revoked": 2, "expired": 1}


def test_stats_take_a_window_in_days(admin, known_usage):
    body = admin.client.call("GET", "/api/admin/stats?days=1").json()
    assert body["window"]["days"] == 1
    assert [row["day"] for row in body["by_day"]] == [known_usage["today"]]
    assert body["totals"]["cost"] == 0.75
    longer = admin.client.call("GET", "/api/admin/stats?days=60").json()
    assert longer["totals"]["cost"] == 102.75


@pytest.mark.parametrize("days", ["0", "367", "-1", "x", "1.5"])
def test_stats_refuse_a_bad_window(admin, days):
    response = admin.client.call("GET", f"/api/admin/stats?days={days}")
    assert response.status_code == 400
    assert "days" in response.json()["error"]["fields"]


def test_stats_keep_the_spend_of_a_deleted_user(admin, alice, known_usage):
    assert admin.client.call("DELETE", f"/api/users/{alice.id}").status_code == 204
    body = admin.client.call("GET", "/api/admin/stats").json()
    assert body["totals"]["cost"] == 2.75
    deleted = [u for u in body["top_users"] if u["user_id"] == alice.id]
    assert deleted == [{**deleted[0], "email": None}]


# -- database health ----------------------------------------------------------------------


def test_db_health_reports_connectivity_sizes_and_schema(admin, database):
    body = admin.client.call("GET", "/api/admin/health/db").json()
    from core.db.database import list_migrations

    latest = max(number for number, _, _ in list_migrations())
    assert body["status"] == "ok"
    assert body["engine"] == database.dialect
    assert body["schema_version"] == latest == body["latest_migration"]
    assert body["pending_migrations"] == []
    assert body["path"] == database.location
    assert body["read_latency_ms"] >= 0 and body["write_latency_ms"] >= 0
    assert body["table_rows"]["users"] == 1


@pytest.mark.duckdb_only
def test_db_health_on_duckdb_reports_the_file_and_its_blocks(admin, database):
    body = admin.client.call("GET", "/api/admin/health/db").json()
    assert body["file_size_bytes"] == Path(database.path).stat().st_size
    assert body["database_size_bytes"] == body["file_size_bytes"]
    assert body["duckdb_version"].startswith("v") and body["version"] == body["duckdb_version"]
    assert body["blocks"]["total"] >= body["blocks"]["used"] >= 0
    assert body["pool"] is None


@pytest.mark.postgresql_only
def test_db_health_on_postgresql_reports_server_pool_and_size(admin, database, settings):
    body = admin.client.call("GET", "/api/admin/health/db").json()
    assert body["version"].split(".")[0].isdigit() and body["duckdb_version"] is None
    assert body["database_size_bytes"] > 0 and body["file_size_bytes"] is None
    assert body["blocks"] is None
    pool = body["pool"]
    assert pool["max_size"] == settings.DATABASE_POOL_SIZE
    assert 0 <= pool["available"] <= pool["size"] <= pool["max_size"]
    assert pool["waiting"] == 0 and pool["server_connections"] >= pool["size"]
    assert "password" not in body["path"]


def test_the_health_page_shows_the_engine(admin, database):
    from tests.pages.test_pages import browser, text_of

    page = browser(admin).get("/admin/health")
    assert page.status_code == 200
    assert ("PostgreSQL" if database.dialect == "postgresql" else "DuckDB") in text_of(page)


# -- token purge --------------------------------------------------------------------------


def _token_rows(database, user_id):
    """One live, one revoked, one expired and one revoked-and-expired token; their jtis."""
    now = utcnow()
    rows = {
        "live": (now + timedelta(days=1), None),
        "revoked": (now + timedelta(days=1), now - timedelta(minutes=5)),
        "expired": (now - timedelta(seconds=1), None),
        "revoked_expired": (now - timedelta(days=1), now - timedelta(days=2)),
    }

    def insert(tx):
        for name, (expires_at, revoked_at) in rows.items():
            tx.execute(
                "INSERT INTO refresh_tokens (jti, user_id, family, issued_at, expires_at,"
                " revoked_at) VALUES (?, ?, ?, ?, ?, ?)",
                [f"jti-{name}", user_id, f"family-{name}", now - timedelta(days=3), expires_at,
                 revoked_at],
            )  # fmt: skip

    database.write(insert)
    return {name: f"jti-{name}" for name in rows}


def _jtis(database):
    return {
        row[0]
        for row in database.read(
            lambda con: con.execute("SELECT jti FROM refresh_tokens").fetchall()
        )
    }


def test_purge_removes_exactly_the_expired_and_revoked_tokens(admin, alice, database):
    made = _token_rows(database, alice.id)
    before = _jtis(database)
    response = admin.client.call("POST", "/api/admin/tokens/purge")
    assert response.status_code == 200
    assert response.json() == {"purged": 3}
    gone = {made["revoked"], made["expired"], made["revoked_expired"]}
    assert _jtis(database) == before - gone
    assert made["live"] in _jtis(database)
    assert admin.client.call("POST", "/api/admin/tokens/purge").json() == {"purged": 0}


def test_purge_leaves_every_live_session_working(admin, alice):
    from tests.accounts.test_auth_api import refresh

    rotated = refresh(ApiClient(), alice.refresh)
    assert rotated.status_code == 200
    assert admin.client.call("POST", "/api/admin/tokens/purge").json() == {"purged": 1}
    assert alice.client.call("GET", "/api/users/me").status_code == 200
    fresh = rotated.json()
    assert ApiClient(fresh["access_token"]).call("GET", "/api/users/me").status_code == 200
    assert refresh(ApiClient(), fresh["refresh_token"]).status_code == 200


def test_a_purged_rotated_token_replayed_still_revokes_its_login(admin, alice):
    """Purging deletes the evidence of rotation; replay detection must survive it."""
    from tests.accounts.test_auth_api import refresh

    fresh = refresh(ApiClient(), alice.refresh).json()
    admin.client.call("POST", "/api/admin/tokens/purge")
    replay = refresh(ApiClient(), alice.refresh)
    assert replay.status_code == 401
    assert error_code(replay) == "token_reused"
    assert refresh(ApiClient(), fresh["refresh_token"]).status_code == 401
    assert ApiClient(fresh["access_token"]).call("GET", "/api/users/me").status_code == 401


def test_purge_is_audited_with_the_count(admin, alice, database):
    _token_rows(database, alice.id)
    admin.client.call("POST", "/api/admin/tokens/purge", headers={"X-Forwarded-For": "6.6.6.6"})
    entry = admin.client.call("GET", "/api/admin/audit?action=tokens.purged").json()["items"][0]
    assert entry["actor"] == {"id": admin.id, "email": admin.email}
    assert entry["detail"] == {"count": 3}
    assert entry["ip"] == "127.0.0.1"  # X-Forwarded-For is trusted only behind a proxy


# -- audit log ----------------------------------------------------------------------------


def _audit(admin, query=""):
    response = admin.client.call("GET", f"/api/admin/audit{query}")
    assert response.status_code == 200, response.content
    return response.json()


def _last(admin, action):
    items = _audit(admin, f"?action={action}")["items"]
    assert items, f"no {action} in the audit log"
    return items[0]


def test_audit_records_a_role_change(admin, alice):
    admin.client.call("PUT", f"/api/users/{alice.id}/role", {"role": "admin"})
    entry = _last(admin, "user.role_changed")
    assert entry["actor"] == {"id": admin.id, "email": admin.email}
    assert entry["target"] == {"type": "user", "id": alice.id, "label": alice.email}
    assert entry["detail"] == {"from": "user", "to": "admin"}
    assert entry["ip"] == "127.0.0.1"
    assert datetime.fromisoformat(entry["occurred_at"]) <= datetime.now(UTC)


def test_audit_records_disabling_and_enabling(admin, alice):
    admin.client.call("PUT", f"/api/users/{alice.id}/active", {"is_active": False})
    admin.client.call("PUT", f"/api/users/{alice.id}/active", {"is_active": True})
    for action in ("user.disabled", "user.enabled"):
        entry = _last(admin, action)
        assert entry["actor"]["id"] == admin.id
        assert entry["target"]["id"] == alice.id
        assert entry["ip"] == "127.0.0.1"


def test_audit_records_a_deletion(admin, alice):
    admin.client.call("DELETE", f"/api/users/{alice.id}")
    entry = _last(admin, "user.deleted")
    assert entry["actor"]["id"] == admin.id
    assert entry["target"] == {"type": "user", "id": alice.id, "label": alice.email}
    assert entry["detail"]["role"] == "user"
    assert entry["ip"] == "127.0.0.1"


def test_audit_records_api_key_creation_and_revocation(admin, alice):
    key = alice.client.call("POST", "/api/auth/keys", {"name": "laptop"}).json()
    alice.client.call("DELETE", f"/api/auth/keys/{key['id']}")
    for action in ("api_key.created", "api_key.revoked"):
        entry = _last(admin, action)
        assert entry["actor"] == {"id": alice.id, "email": alice.email}
        assert entry["target"] == {
            "type": "api_key", "id": key["id"], "label": f"laptop ({key['prefix']})",
        }  # fmt: skip
        assert entry["ip"] == "127.0.0.1"
        assert key["key"] not in str(entry)


def test_audit_records_createadmin_from_the_command_line(settings):
    from django.core.management import call_command

    from tests.accounts.test_createadmin import _reopen

    call_command("createadmin", "--email", "boss@example.com", "--password", PASSWORD)
    reopened = _reopen(settings)
    try:
        other = make_persona("other-admin@example.com", admin=True)
        entry = _last(other, "admin.created")
        assert entry["actor"] is None
        assert entry["target"]["label"] == "boss@example.com"
        assert entry["detail"] == {"via": "manage.py createadmin"}
        assert entry["ip"] is None
    finally:
        reopened.close()


def test_audit_filters_by_actor_id_or_email_and_by_action(admin, alice, mallory):
    alice.client.call("POST", "/api/auth/keys", {"name": "a"})
    mallory.client.call("POST", "/api/auth/keys", {"name": "m"})
    admin.client.call("PUT", f"/api/users/{alice.id}/role", {"role": "admin"})
    by_id = _audit(admin, f"?actor={alice.id}")
    assert by_id["total"] == 1 and by_id["items"][0]["target"]["label"].startswith("a (")
    by_email = _audit(admin, "?actor=MALLORY@example.com")
    assert [e["actor"]["email"] for e in by_email["items"]] == [mallory.email]
    assert _audit(admin, "?action=api_key.created")["total"] == 2
    assert _audit(admin, f"?actor={admin.email}&action=api_key.created")["total"] == 0
    assert _audit(admin, f"?target={alice.id}")["items"][0]["action"] == "user.role_changed"
    assert _audit(admin, "?actor=nobody@example.com")["total"] == 0


def test_audit_is_newest_first_and_paginated(admin, alice):
    for name in ("k1", "k2", "k3"):
        alice.client.call("POST", "/api/auth/keys", {"name": name})
    first = _audit(admin, "?page_size=2")
    assert first["total"] == 3 and first["page"] == 1 and first["page_size"] == 2
    assert [e["target"]["label"][:2] for e in first["items"]] == ["k3", "k2"]
    second = _audit(admin, "?page_size=2&page=2")
    assert [e["target"]["label"][:2] for e in second["items"]] == ["k1"]


@pytest.mark.parametrize("query", ["?page=0", "?page_size=1000", "?page=x", "?actor=" + "a" * 400])
def test_audit_refuses_bad_parameters(admin, query):
    response = admin.client.call("GET", f"/api/admin/audit{query}")
    assert response.status_code == 400
    assert error_code(response) == "validation_error"


# -- backup -------------------------------------------------------------------------------


@pytest.mark.postgresql_only
def test_on_postgresql_a_backup_is_refused_with_a_pointer_to_pg_dump(admin, settings):
    response = admin.client.call("POST", "/api/admin/backup")
    assert response.status_code == 409
    assert error_code(response) == "backup_not_available"
    assert "pg_dump" in response.json()["error"]["message"]
    assert not Path(settings.BACKUP_DIR).exists()


@pytest.mark.duckdb_only
def test_backup_writes_a_consistent_copy_into_the_backup_dir(admin, alice, settings):
    response = admin.client.call("POST", "/api/admin/backup")
    assert response.status_code == 201
    body = response.json()
    path = Path(body["path"])
    assert path.parent == Path(settings.BACKUP_DIR).resolve()
    assert path.name == body["file"] and path.stat().st_size == body["size_bytes"]
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no partial files left
    copy = duckdb.connect(str(path), read_only=True)
    emails = {row[0] for row in copy.execute("SELECT email FROM users").fetchall()}
    copy.close()
    assert emails == {admin.email, alice.email}
    entry = _last(admin, "database.backed_up")
    assert entry["target"]["id"] == path.name
    assert entry["detail"]["size_bytes"] == body["size_bytes"]


@pytest.mark.duckdb_only
def test_two_backups_get_two_files(admin, settings):
    first = admin.client.call("POST", "/api/admin/backup").json()
    second = admin.client.call("POST", "/api/admin/backup").json()
    assert first["path"] != second["path"]
    assert len(list(Path(settings.BACKUP_DIR).iterdir())) == 2


@pytest.mark.duckdb_only
def test_a_backup_dir_that_cannot_be_written_gives_a_clear_error(admin, settings, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    settings.BACKUP_DIR = blocker / "backups"
    response = admin.client.call("POST", "/api/admin/backup")
    assert response.status_code == 503
    assert error_code(response) == "backup_failed"


@pytest.mark.duckdb_only
def test_writes_keep_working_while_and_after_a_backup_runs(admin, alice, database):
    async def both():
        from adminops.services import backup_database

        user = database.read(accounts_repo.get_user, uuid.UUID(admin.id))
        made, _ = await asyncio.gather(
            backup_database(user),
            database.awrite(
                lambda tx: accounts_repo.update_user(tx, uuid.UUID(alice.id), role="admin")
            ),
        )
        return made

    made = asyncio.run(both())
    assert made.path.exists()
    assert alice.client.call("POST", "/api/auth/keys", {"name": "after"}).status_code == 201
