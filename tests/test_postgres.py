"""PostgreSQL: its schema against DuckDB's, migrations under an advisory lock, the pool
(a lost connection, an exhausted pool), placeholders and parameters, and the races that
DuckDB's single writer rules out and PostgreSQL's locks must rule out instead."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest

from accounts import repository as accounts_repo
from accounts import services as accounts_services
from accounts.identity import get_directory
from core.db import DatabaseBusy, DatabaseError, DuckDBDatabase, IntegrityViolation
from core.db.database import list_migrations, schema_version
from core.db.postgres import PostgresDatabase, postgres_migrations, to_psycopg
from core.errors import ApiError
from tests.conftest import PASSWORD, make_persona

pytestmark = pytest.mark.postgresql_only

# DuckDB's type names as information_schema spells them, and PostgreSQL's for the same.
COMPATIBLE_TYPES = {
    "VARCHAR": "character varying",
    "UUID": "uuid",
    "TIMESTAMP": "timestamp without time zone",
    "DOUBLE": "double precision",
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "BOOLEAN": "boolean",
    "DECIMAL(18,6)": "numeric",
}

SHAPES = (
    "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
    " WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
)


def shapes(db):
    return db.read(lambda con: con.execute(SHAPES).fetchall())


# -- the schema -------------------------------------------------------------------------


def test_a_fresh_postgresql_database_has_duckdbs_tables_and_columns(database, tmp_path):
    duck = DuckDBDatabase(tmp_path / "parity.duckdb").open()
    try:
        expected = [
            (table, column, COMPATIBLE_TYPES.get(kind, f"no PostgreSQL twin for {kind}"), null)
            for table, column, kind, null in shapes(duck)
        ]
    finally:
        duck.close()
    assert shapes(database) == expected
    assert database.read(schema_version) == max(v for v, _, _ in list_migrations())


def test_an_old_postgresql_database_migrated_forward_matches_a_fresh_one(
    make_postgres_schema, monkeypatch
):
    import core.db.postgres as postgres_module

    every = postgres_migrations()
    old_url, fresh_url = make_postgres_schema(), make_postgres_schema()
    monkeypatch.setattr(postgres_module, "postgres_migrations", lambda: every[:1])
    PostgresDatabase(old_url).open().close()
    monkeypatch.setattr(postgres_module, "postgres_migrations", lambda: every)
    upgraded = PostgresDatabase(old_url).open()
    fresh = PostgresDatabase(fresh_url).open()
    try:
        assert shapes(upgraded) == shapes(fresh)
    finally:
        upgraded.close()
        fresh.close()


def test_workers_starting_together_migrate_once(make_postgres_schema):
    url = make_postgres_schema()
    start = threading.Barrier(6)
    opened, failed = [], []

    def worker():
        start.wait()
        try:
            opened.append(PostgresDatabase(url, pool_size=2).open())
        except Exception as exc:  # collected, so the assertion shows it
            failed.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert failed == [] and len(opened) == 6
        versions = opened[0].read(
            lambda con: con.execute("SELECT version FROM schema_migrations").fetchall()
        )
        assert sorted(v for (v,) in versions) == [v for v, _, _ in postgres_migrations()]
    finally:
        for db in opened:
            db.close()


def test_only_a_process_starting_alone_runs_what_is_left_to_the_last_one_standing(
    make_postgres_schema,
):
    url = make_postgres_schema()
    first, second, third = (PostgresDatabase(url, pool_size=2).open() for _ in range(3))
    try:
        assert first.start_serving(lambda: "booked") == "booked"
        assert second.start_serving(lambda: "booked") is None  # the first still serves
        first.close()
        assert third.start_serving(lambda: "booked") is None  # the second still serves
        second.close()
        third.close()
        last = PostgresDatabase(url, pool_size=2).open()
        assert last.start_serving(lambda: "booked") == "booked"  # nobody else serves
        last.close()
    finally:
        for db in (first, second, third):
            db.close()


def test_an_unreachable_server_is_one_sentence():
    from core.db import DatabaseError

    with pytest.raises(DatabaseError) as caught:
        PostgresDatabase("postgresql://someone:secret@127.0.0.1:9/nothing").open()
    message = str(caught.value)
    assert message.startswith("PostgreSQL at postgresql://someone@127.0.0.1:9/nothing")
    assert "secret" not in message and "\n" not in message


# -- placeholders, parameters, time ----------------------------------------------------


def test_question_marks_become_placeholders_outside_quotes_only():
    assert to_psycopg("SELECT '?', ? || '%' FROM t WHERE a LIKE ?") == (
        "SELECT '?', %s || '%%' FROM t WHERE a LIKE %s"
    )
    assert to_psycopg('SELECT "odd?name" FROM t WHERE x = ?') == (
        'SELECT "odd?name" FROM t WHERE x = %s'
    )


def test_literals_and_parameters_reach_postgresql_intact(database):
    row = database.read(
        lambda con: con.execute(
            "SELECT '?' || ?::VARCHAR, '100%', ?::VARCHAR", ["x", "50%"]
        ).fetchone()
    )
    assert row == ("?x", "100%", "50%")


def test_lists_mixing_ints_and_floats_are_sent_as_one_type(database):
    value = database.read(
        lambda con: con.execute("SELECT ?::DOUBLE PRECISION[]", [[1, 0.5, None]]).fetchone()[0]
    )
    assert value == [1.0, 0.5, None]


def test_timestamps_are_utc_whatever_the_server_zone(database):
    other_zone = datetime(2026, 1, 2, 12, 0, tzinfo=UTC).astimezone(timezone(timedelta(hours=5)))
    naive = database.read(lambda con: con.execute("SELECT ?::TIMESTAMP", [other_zone]).fetchone())
    assert naive == (datetime(2026, 1, 2, 12, 0),)


# -- the pool ---------------------------------------------------------------------------


def _own_url(database, name):
    return f"{database.url}&application_name={name}"


def _terminate(database, name):
    with psycopg.connect(database.url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            [name],
        )


def test_a_lost_connection_is_replaced_and_the_call_retried(database):
    name = f"lost-{uuid.uuid4().hex[:8]}"
    db = PostgresDatabase(_own_url(database, name), pool_size=3).open()
    try:
        assert db.read(lambda con: con.execute("SELECT 1").fetchone()) == (1,)
        _terminate(database, name)  # as a server restart would
        assert db.read(lambda con: con.execute("SELECT 2").fetchone()) == (2,)
        db.write(
            lambda tx: tx.execute("INSERT INTO audit_log (occurred_at, action) VALUES (now(), 'x')")
        )
        _terminate(database, name)
        db.write(
            lambda tx: tx.execute("INSERT INTO audit_log (occurred_at, action) VALUES (now(), 'y')")
        )
        assert db.read(lambda con: con.execute("SELECT count(*) FROM audit_log").fetchone()) == (2,)
    finally:
        db.close()


def test_a_write_whose_connection_dies_before_commit_runs_again_once(database):
    name = f"dies-{uuid.uuid4().hex[:8]}"
    db = PostgresDatabase(_own_url(database, name), pool_size=2).open()
    attempts = []

    def insert(tx):
        attempts.append(1)
        tx.execute("INSERT INTO audit_log (occurred_at, action) VALUES (now(), 'once')")
        if len(attempts) == 1:
            _terminate(database, name)  # mid-transaction: the server rolls it back
        tx.execute("SELECT 1")

    try:
        db.write(insert)
        assert len(attempts) == 2
        count = db.read(lambda con: con.execute("SELECT count(*) FROM audit_log").fetchone())
        assert count == (1,)
    finally:
        db.close()


def test_a_pipelined_write_whose_connection_dies_before_commit_runs_again_once(database):
    name = f"pipe-{uuid.uuid4().hex[:8]}"
    db = PostgresDatabase(_own_url(database, name), pool_size=2).open()
    attempts = []
    insert = "INSERT INTO audit_log (occurred_at, action) VALUES (now(), ?)"

    def two_inserts(tx):
        attempts.append(1)
        tx.execute(insert, ["first"])  # queued, not waited for
        if len(attempts) == 1:
            _terminate(database, name)  # before COMMIT was sent: nothing applied
        tx.execute(insert, ["second"])

    try:
        db.write(two_inserts)
        assert len(attempts) == 2
        rows = db.read(lambda con: con.execute("SELECT action FROM audit_log").fetchall())
        assert sorted(rows) == [("first",), ("second",)]
    finally:
        db.close()


def test_a_failed_statement_in_a_pipelined_write_commits_nothing_before_it(database):
    insert = "INSERT INTO audit_log (occurred_at, action) VALUES (now(), ?)"

    def insert_then_clash(tx):
        tx.execute(insert, ["before"])
        tx.execute("INSERT INTO schema_migrations VALUES (?, ?, now()::TIMESTAMP)", [1, "again"])
        tx.execute(insert, ["after"])

    with pytest.raises(IntegrityViolation):
        database.write(insert_then_clash)
    database.write(lambda tx: tx.execute(insert, ["next"]))  # the connection is usable
    rows = database.read(lambda con: con.execute("SELECT action FROM audit_log").fetchall())
    assert rows == [("next",)]


def test_writes_failing_in_the_pipeline_leave_no_stale_prepared_statement(database):
    # psycopg prepares a statement on its fifth run; in a pipeline the server aborted, it
    # could record one as prepared that the server skipped, and a later write failed with
    # "prepared statement … does not exist".
    def write(tx, divisor, n):
        tx.execute("SELECT 1 / ?", [divisor])
        tx.execute("INSERT INTO audit_log (occurred_at, action) VALUES (now(), ?)", [str(n)])
        return tx.execute("SELECT count(*) FROM audit_log WHERE action >= ?", [""]).fetchone()

    failed = 0
    for n in range(30):
        try:
            database.write(write, 0 if n % 3 == 0 else 1, n)
        except DatabaseError as exc:
            assert "division by zero" in str(exc)
            failed += 1
    assert failed == 10
    assert database.read(lambda con: con.execute("SELECT count(*) FROM audit_log").fetchone()) == (
        20,
    )


def test_a_pipelined_write_reads_what_it_wrote_before(database):
    def insert_and_count(tx):
        tx.execute("INSERT INTO audit_log (occurred_at, action) VALUES (now(), ?)", ["mine"])
        return tx.execute("SELECT count(*) FROM audit_log WHERE action = ?", ["mine"]).fetchone()

    assert database.write(insert_and_count) == (1,)


def test_an_exhausted_pool_answers_busy(database):
    db = PostgresDatabase(database.url, pool_size=1, pool_timeout=0.3).open()
    holding, release = threading.Event(), threading.Event()

    def hold(con):
        holding.set()
        release.wait(10)

    thread = threading.Thread(target=db.read, args=(hold,))
    thread.start()
    try:
        assert holding.wait(10)
        with pytest.raises(DatabaseBusy):
            db.read(lambda con: con.execute("SELECT 1").fetchone())
    finally:
        release.set()
        thread.join()
        db.close()


def test_batched_writes_run_alone_and_keep_their_own_results(database):
    database.write(lambda tx: tx.execute("CREATE TABLE b (x INTEGER PRIMARY KEY)"))

    def insert_all(tx, items):
        tx.execute("INSERT INTO b SELECT unnest(?::INTEGER[])", [items])
        return [item * 10 for item in items]

    async def burst():
        return await asyncio.gather(*(database.awrite_batched(insert_all, i) for i in range(30)))

    assert asyncio.run(burst()) == [i * 10 for i in range(30)]
    assert database.read(lambda con: con.execute("SELECT count(*) FROM b").fetchone()[0]) == 30


def test_a_read_modify_write_with_a_row_lock_loses_nothing(database):
    database.write(lambda tx: tx.execute("CREATE TABLE counter (n INTEGER)"))
    database.write(lambda tx: tx.execute("INSERT INTO counter VALUES (0)"))

    def bump(tx):
        (n,) = tx.execute("SELECT n FROM counter FOR UPDATE").fetchone()
        tx.execute("UPDATE counter SET n = ?", [n + 1])

    threads = [
        threading.Thread(target=lambda: [database.write(bump) for _ in range(20)]) for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert database.read(lambda con: con.execute("SELECT n FROM counter").fetchone()[0]) == 120


# -- races the single DuckDB writer used to rule out ------------------------------------


async def _outcomes(*calls):
    """Run coroutines at once; each outcome is its result or the ApiError code it raised."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, ApiError):
            raise result
    return [result.code if isinstance(result, ApiError) else result for result in results]


def test_concurrent_rotations_of_one_token_have_exactly_one_winner(alice, database):
    outcomes = asyncio.run(
        _outcomes(*(accounts_services.rotate_refresh_token(alice.refresh) for _ in range(16)))
    )
    winners = [o for o in outcomes if not isinstance(o, str)]
    assert len(winners) == 1
    assert set(outcomes) - set(winners) <= {"token_reused"}
    # The reuse was treated as theft: the whole family, the winner's new token too, is revoked.
    live = database.read(
        lambda con: con.execute(
            "SELECT count(*) FROM refresh_tokens WHERE user_id = ? AND revoked_at IS NULL",
            [uuid.UUID(alice.id)],
        ).fetchone()[0]
    )
    assert live == 0


def _promote(database, *user_ids):
    directory = get_directory()

    def promote(tx):
        for user_id in user_ids:
            updated = accounts_repo.update_user(tx, user_id, role="admin", is_active=True)
            tx.on_commit(lambda u=updated: directory.put_user(u))

    database.write(promote)


def test_two_admins_demoting_each_other_at_once_leave_one_admin(admin, database):
    other = make_persona("other-admin@example.com", admin=True)
    directory = get_directory()
    first, second = (directory.user(uuid.UUID(p.id)) for p in (admin, other))
    for _ in range(5):
        outcomes = asyncio.run(
            _outcomes(
                accounts_services.set_role(first, second.id, "user"),
                accounts_services.set_role(second, first.id, "user"),
            )
        )
        assert sorted(o if isinstance(o, str) else "ok" for o in outcomes) == ["last_admin", "ok"]
        assert database.read(lambda con: accounts_repo.count_admins(con)) == 1
        _promote(database, first.id, second.id)


def test_disabling_and_deleting_the_two_last_admins_at_once_keeps_one(admin, database):
    other = make_persona("other-admin@example.com", admin=True)
    directory = get_directory()
    first, second = (directory.user(uuid.UUID(p.id)) for p in (admin, other))
    outcomes = asyncio.run(
        _outcomes(
            accounts_services.set_active(first, second.id, False),
            accounts_services.delete_user(second, first.id),
        )
    )
    assert sorted(o if isinstance(o, str) else "ok" for o in outcomes) == ["last_admin", "ok"]
    assert database.read(lambda con: accounts_repo.count_admins(con)) == 1


def test_concurrent_registrations_of_one_email_make_one_account(database):
    outcomes = asyncio.run(
        _outcomes(
            *(accounts_services.create_user("twin@example.com", "x", role="user") for _ in range(8))
        )
    )
    assert sum(1 for o in outcomes if not isinstance(o, str)) == 1
    assert [o for o in outcomes if isinstance(o, str)] == ["email_taken"] * 7


def test_the_directory_follows_concurrent_writes_in_commit_order(alice, database):
    """Many transactions update one user row at once; after-commit callbacks publish their
    row to the in-process directory, which must end equal to the table."""
    directory = get_directory()
    user_id = uuid.UUID(alice.id)
    base = datetime(2026, 1, 1)

    def stamp(tx, minute):
        updated = accounts_repo.update_user(
            tx, user_id, last_login_at=base + timedelta(minutes=minute)
        )
        tx.on_commit(lambda: directory.put_user(updated))

    async def storm():
        await asyncio.gather(*(database.awrite(stamp, minute) for minute in range(60)))

    for _ in range(3):
        asyncio.run(storm())
        stored = database.read(accounts_repo.get_user, user_id)
        assert directory.user(user_id) == stored


def test_a_concurrent_registration_race_is_a_conflict_over_http(anon):
    from django.test import Client

    results = []

    def register():
        response = Client().post(
            "/api/auth/register",
            {"email": "race@example.com", "password": PASSWORD},
            content_type="application/json",
        )
        results.append(response.status_code)

    threads = [threading.Thread(target=register) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [201] + [409] * 5
