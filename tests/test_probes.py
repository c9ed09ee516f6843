"""/healthz and /readyz: no auth, cheap, and honest about the database."""

from __future__ import annotations

from pathlib import Path

from core import health
from core.db import use_database


def test_healthz_does_not_need_the_database(anon, database, settings, tmp_path):
    database.close()
    use_database(None)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    settings.DUCKDB_PATH = str(blocker / "cannot" / "exist.duckdb")
    if settings.DATABASE_URL:  # nothing listens on the discard port
        settings.DATABASE_URL = "postgresql://postgres@127.0.0.1:9/test"
    assert anon.get("/healthz").json() == {"status": "ok"}
    ready = anon.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable"


def test_readyz_says_migrating_while_a_migration_is_pending(anon, monkeypatch):
    real = health.list_migrations()
    extra = (real[-1][0] + 1, "9999_future", Path("9999_future.sql"))
    monkeypatch.setattr(health, "list_migrations", lambda: [*real, extra])
    response = anon.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "migrating", "schema_version": real[-1][0]}


def test_probes_answer_get_and_head_only(anon):
    for path in ("/healthz", "/readyz"):
        assert anon.get(path).status_code == 200
        assert anon.head(path).status_code == 200
        assert anon.generic("TRACE", path).status_code == 405
        assert anon.delete(path).status_code == 405
