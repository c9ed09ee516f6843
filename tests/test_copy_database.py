"""`manage.py copy_database --to postgresql://…`: a populated DuckDB installation moves to an
empty PostgreSQL database whole, with every row count checked; a non-empty target is refused."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from accounts.identity import get_directory
from core.clock import utcnow
from core.db import DuckDBDatabase, database_from_settings, use_database
from core.db.postgres import PostgresDatabase
from generation import repository as generation_repo
from generation.repository import ChatMessage, Generation, LimitsRow, UsageRecord, VideoJob
from tests.conftest import ApiClient, make_persona

pytestmark = pytest.mark.postgresql_only


def _counts(db):
    def count_all(con):
        names = [
            name
            for (name,) in con.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema() ORDER BY table_name"
            ).fetchall()
        ]
        return {name: con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in names}

    return db.read(count_all)


def _populate(db):
    """Fill every table through the app's own paths (accounts) and repositories (the rest)."""
    use_database(db)
    alice = make_persona("alice@example.com")
    make_persona("boss@example.com", admin=True)
    alice.client.call("POST", "/api/auth/keys", {"name": "laptop"})  # api_keys + audit_log
    alice.client.call("POST", "/api/auth/refresh", {"refresh_token": alice.refresh})
    user_id = uuid.UUID(alice.id)
    now = utcnow()

    def content(tx):
        generation = Generation(
            id=uuid.uuid4(),
            user_id=user_id,
            kind="video",
            model="m/v",
            prompt="a cat",
            params={"duration": 4},
            status="completed",
            output_text=None,
            media=(),
            error_code=None,
            error_message=None,
            tokens_in=None,
            tokens_out=None,
            cost=0.25,
            created_at=now,
            finished_at=now,
            reserved_cost=0.5,
        )
        generation_repo.insert_generations(tx, [generation])
        generation_repo.insert_video_job(
            tx,
            VideoJob(
                id=generation.id,
                user_id=user_id,
                model="m/v",
                upstream_id="up-1",
                polling_url="https://example.test/poll/1",
                status="completed",
                error=None,
                cost=0.25,
                upstream_generation_id="gen-1",
                video_file="v.mp4",
                created_at=now,
                updated_at=now,
                last_polled_at=now,
                completed_at=now,
                reserved_cost=0.5,
            ),
        )
        generation_repo.insert_usage(
            tx,
            [
                UsageRecord(
                    now - timedelta(minutes=i),
                    user_id,
                    "chat",
                    "m/t",
                    10,
                    20,
                    0.001 * i,
                    12.5,
                    "ok",
                    None,
                    None,
                )
                for i in range(50)
            ],
        )
        conversation_id = uuid.uuid4()
        generation_repo.insert_conversation(
            tx, conversation_id=conversation_id, user_id=user_id, title="Hi", model="m/t", now=now
        )
        for message in (
            ChatMessage("user", "Hello"),
            ChatMessage("assistant", "Hi! 100% here?", stopped=True),
        ):
            generation_repo.add_message(tx, conversation_id, message, now)
        generation_repo.put_role_limits(
            tx, LimitsRow("user", ("openai/*",), Decimal("2.5"), "week", now)
        )
        generation_repo.put_user_limits(tx, LimitsRow(str(user_id), None, Decimal("1"), None, now))
        # Empty in a DuckDB installation (its reservations live in memory), copied all the same.
        generation_repo.insert_budget_reservation(tx, uuid.uuid4(), user_id, 0.25, now)
        tx.execute(
            "INSERT INTO oidc_identities (issuer, sub, user_id, email, created_at, last_login_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            ["https://idp.example.test", "sub-1", user_id, "alice@example.com", now, now],
        )
        tx.execute(
            "INSERT INTO password_login_exemptions (user_id, granted_at) VALUES (?, ?)",
            [user_id, now],
        )

    db.write(content)
    return alice


def test_a_populated_duckdb_installation_moves_to_postgresql_whole(
    database, settings, tmp_path, make_postgres_schema, capsys
):
    source = DuckDBDatabase(tmp_path / "old.duckdb").open()
    alice = _populate(source)
    expected = _counts(source)
    source.close()
    empty = [table for table, rows in expected.items() if rows == 0]
    assert empty == [], f"populate every table so the copy is tested on it: {empty}"

    target_url = make_postgres_schema()
    call_command("copy_database", "--from", str(tmp_path / "old.duckdb"), "--to", target_url)
    out = capsys.readouterr().out
    assert "every count checked" in out

    target = PostgresDatabase(target_url).open()
    try:
        assert _counts(target) == expected
        # Sequences continue after the copied ids: a new audit row gets a fresh id.
        ids = target.read(lambda con: con.execute("SELECT max(id) FROM audit_log").fetchone()[0])
        target.write(
            lambda tx: tx.execute(
                "INSERT INTO audit_log (occurred_at, action) VALUES (now(), 'after.copy')"
            )
        )
        assert (
            target.read(
                lambda con: con.execute(
                    "SELECT id FROM audit_log WHERE action = 'after.copy'"
                ).fetchone()[0]
            )
            > ids
        )
        messages = target.read(
            lambda con: con.execute(
                "SELECT content FROM conversation_messages ORDER BY id"
            ).fetchall()
        )
        assert messages == [("Hello",), ("Hi! 100% here?",)]
    finally:
        target.close()

    # The moved installation serves: alice logs in with her password on PostgreSQL.
    settings.DATABASE_URL = target_url
    moved = database_from_settings().open()
    use_database(moved)
    get_directory()
    login = ApiClient().call(
        "POST", "/api/auth/login", {"email": alice.email, "password": alice.password}
    )
    assert login.status_code == 200


def test_a_target_that_holds_rows_is_refused_and_left_alone(database, settings, tmp_path):
    source = DuckDBDatabase(tmp_path / "old.duckdb").open()
    source.write(
        lambda tx: tx.execute("INSERT INTO audit_log (occurred_at, action) VALUES (now(), 'a')")
    )
    source.close()
    make_persona("already@example.com")  # the test's own PostgreSQL database holds a user
    before = _counts(database)
    with pytest.raises(CommandError, match=r"not empty: .*users"):
        call_command(
            "copy_database", "--from", str(tmp_path / "old.duckdb"), "--to", settings.DATABASE_URL
        )
    use_database(database)
    assert _counts(database) == before


def test_a_target_with_foreign_tables_is_refused_before_anything_is_created(
    tmp_path, make_postgres_schema
):
    DuckDBDatabase(tmp_path / "old.duckdb").open().close()
    url = make_postgres_schema()
    import psycopg

    from core.db.postgres import connection_info

    with psycopg.connect(connection_info(url), autocommit=True) as con:
        con.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(CommandError, match="tables aigateway does not make"):
        call_command("copy_database", "--from", str(tmp_path / "old.duckdb"), "--to", url)
    with psycopg.connect(connection_info(url), autocommit=True) as con:
        tables = con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchall()
    assert tables == [("invoices",)]


def test_a_missing_source_or_a_bad_url_is_one_sentence(tmp_path, postgres_schema):
    with pytest.raises(CommandError, match="no DuckDB database"):
        call_command(
            "copy_database", "--from", str(tmp_path / "none.duckdb"), "--to", postgres_schema
        )
    with pytest.raises(CommandError, match="PostgreSQL URL"):
        call_command("copy_database", "--to", "mysql://nope")
