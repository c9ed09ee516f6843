"""The data layer on either backend: migrations, writes and their transactions, error
translation; on DuckDB the serialized writer and the file lock. PostgreSQL-only behaviour
(pools, locks, reconnection, the schema's parity with DuckDB's) is in test_postgres.py."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from core.db import (
    Database,
    DatabaseError,
    DatabaseLocked,
    DuckDBDatabase,
    IntegrityViolation,
    database_from_settings,
)
from core.db.database import list_migrations, schema_version


def table_shapes(db: Database) -> list[tuple]:
    return db.read(
        lambda con: con.execute(
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
        ).fetchall()
    )


def test_a_fresh_database_is_fully_migrated(database):
    assert database.read(schema_version) == max(v for v, _, _ in list_migrations())
    names = {row[0] for row in table_shapes(database)}
    assert {"users", "refresh_tokens", "api_keys", "audit_log", "schema_migrations"} <= names


def test_migrations_are_applied_once_and_survive_reopening(database):
    shapes = table_shapes(database)
    database.close()
    again = database_from_settings().open()
    assert table_shapes(again) == shapes
    count = again.read(lambda con: con.execute("SELECT count(*) FROM schema_migrations").fetchone())
    assert count[0] == len(list_migrations())
    again.close()


@pytest.mark.duckdb_only
def test_an_old_database_migrated_forward_matches_a_fresh_one(tmp_path, monkeypatch):
    """Apply only the first migration, then the rest on the next start."""
    import core.db.database as database_module

    all_migrations = list_migrations()
    monkeypatch.setattr(database_module, "list_migrations", lambda: all_migrations[:1])
    old = DuckDBDatabase(tmp_path / "old.duckdb").open()
    old.close()
    monkeypatch.setattr(database_module, "list_migrations", lambda: all_migrations)
    upgraded = DuckDBDatabase(tmp_path / "old.duckdb").open()
    fresh = DuckDBDatabase(tmp_path / "fresh.duckdb").open()
    assert table_shapes(upgraded) == table_shapes(fresh)
    upgraded.close()
    fresh.close()


@pytest.mark.duckdb_only
def test_writes_are_serialized_and_none_is_lost(database):
    """One writer: a read-modify-write needs no lock on DuckDB (PostgreSQL: test_postgres)."""
    database.write(lambda tx: tx.execute("CREATE TABLE counter (n INTEGER)"))
    database.write(lambda tx: tx.execute("INSERT INTO counter VALUES (0)"))

    def bump(tx):
        (n,) = tx.execute("SELECT n FROM counter").fetchone()
        tx.execute("UPDATE counter SET n = ?", [n + 1])

    threads = [
        threading.Thread(target=lambda: [database.write(bump) for _ in range(25)]) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert database.read(lambda con: con.execute("SELECT n FROM counter").fetchone()[0]) == 200


def test_a_failing_write_rolls_back_and_spares_its_neighbours(database):
    database.write(lambda tx: tx.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
    results: list[object] = []

    def insert(tx, value):
        tx.execute("INSERT INTO t VALUES (?)", [value])
        return value

    def run(value):
        try:
            results.append(database.write(insert, value))
        except IntegrityViolation:
            results.append("conflict")

    threads = [threading.Thread(target=run, args=(v,)) for v in [1, 2, 1, 3, 2, 4]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r for r in results if r != "conflict") == [1, 2, 3, 4]
    assert results.count("conflict") == 2
    assert database.read(lambda con: con.execute("SELECT count(*) FROM t").fetchone()[0]) == 4


def test_after_commit_callbacks_run_only_on_commit(database):
    seen: list[str] = []

    def good(tx):
        tx.on_commit(lambda: seen.append("good"))

    def bad(tx):
        tx.on_commit(lambda: seen.append("bad"))
        raise ValueError("nope")

    database.write(good)
    with pytest.raises(ValueError):
        database.write(bad)
    assert seen == ["good"]


def test_driver_errors_become_our_own(database):
    with pytest.raises(DatabaseError) as caught:
        database.read(lambda con: con.execute("SELECT * FROM no_such_table"))
    assert type(caught.value).__module__ == "core.db.errors"
    database.write(lambda tx: tx.execute("CREATE TABLE u (x INTEGER PRIMARY KEY)"))
    database.write(lambda tx: tx.execute("INSERT INTO u VALUES (1)"))
    with pytest.raises(IntegrityViolation):
        database.write(lambda tx: tx.execute("INSERT INTO u VALUES (1)"))


def test_a_write_waits_for_nothing_but_flush_writes_waits_for_background_writes(database):
    database.write(lambda tx: tx.execute("CREATE TABLE w (x INTEGER)"))
    for value in range(20):
        database.write_soon(lambda tx, v=value: tx.execute("INSERT INTO w VALUES (?)", [v]))
    database.flush_writes()
    assert database.read(lambda con: con.execute("SELECT count(*) FROM w").fetchone()[0]) == 20


def test_async_reads_and_writes_do_not_block_the_loop(database):
    import asyncio

    async def main():
        await database.awrite(lambda tx: tx.execute("CREATE TABLE a (x INTEGER)"))
        await asyncio.gather(
            *(
                database.awrite(lambda tx, i=i: tx.execute("INSERT INTO a VALUES (?)", [i]))
                for i in range(50)
            )
        )
        return await database.aread(lambda con: con.execute("SELECT count(*) FROM a").fetchone()[0])

    assert asyncio.run(main()) == 50


@pytest.mark.duckdb_only
def test_a_second_process_is_told_the_database_is_in_use(database):
    code = (
        "import sys; sys.path.insert(0, '.');"
        "from core.db import DuckDBDatabase, DatabaseLocked\n"
        "try:\n"
        f"    DuckDBDatabase({database.path!r}).open()\n"
        "except DatabaseLocked as exc:\n"
        "    print(exc); sys.exit(3)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
        timeout=60,
    )
    assert result.returncode == 3, result.stderr
    assert "in use by another process" in result.stdout


def test_write_inside_a_write_is_refused(database):
    def nested(tx):
        database.write(lambda inner: None)

    with pytest.raises(DatabaseError):
        database.write(nested)


def test_locked_error_type_is_exported():
    assert issubclass(DatabaseLocked, DatabaseError)


@pytest.mark.duckdb_only
def test_batched_writes_share_one_call_and_keep_their_own_results(database):
    import asyncio

    database.write(lambda tx: tx.execute("CREATE TABLE b (x INTEGER PRIMARY KEY)"))
    calls: list[int] = []  # on PostgreSQL each item runs alone (test_postgres.py)

    def insert_all(tx, items):
        calls.append(len(items))
        tx.execute("INSERT INTO b SELECT unnest(?::INTEGER[])", [items])
        return [item * 10 for item in items]

    async def burst():
        return await asyncio.gather(*(database.awrite_batched(insert_all, i) for i in range(30)))

    assert asyncio.run(burst()) == [i * 10 for i in range(30)]
    assert sum(calls) == 30 and len(calls) < 30  # coalesced
    assert database.read(lambda con: con.execute("SELECT count(*) FROM b").fetchone()[0]) == 30


def test_a_failing_batch_falls_back_to_one_item_at_a_time(database):
    import asyncio

    database.write(lambda tx: tx.execute("CREATE TABLE c (x INTEGER PRIMARY KEY)"))
    database.write(lambda tx: tx.execute("INSERT INTO c VALUES (3)"))

    def insert_all(tx, items):
        tx.execute("INSERT INTO c SELECT unnest(?::INTEGER[])", [items])
        return items

    async def burst():
        return await asyncio.gather(
            *(database.awrite_batched(insert_all, i) for i in range(6)), return_exceptions=True
        )

    results = asyncio.run(burst())
    assert isinstance(results[3], IntegrityViolation)
    assert [r for i, r in enumerate(results) if i != 3] == [0, 1, 2, 4, 5]


def test_every_duckdb_migration_has_its_postgresql_twin():
    """Both sets are complete: the same numbers and names, 1..N with no gap, so a schema
    version means the same on both engines."""
    from core.db.postgres import postgres_migrations

    duckdb_set = [(version, name) for version, name, _ in list_migrations()]
    postgres_set = [(version, name) for version, name, _ in postgres_migrations()]
    assert postgres_set == duckdb_set
    assert [version for version, _ in duckdb_set] == list(range(1, len(duckdb_set) + 1))
