"""Moving an installation: every table of a DuckDB file into an empty PostgreSQL database.

The source is opened as the server would open it (so it is first brought to the latest
schema) and must not be in use; the target is migrated to the same schema version, then
filled table by table with COPY inside one transaction, sequences are moved past the
copied ids, and the row counts of both sides are compared before that transaction
commits. A target holding any row, or any table that is not ours, is refused.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.db.base import Connection, Tx
from core.db.database import DuckDBDatabase, schema_version
from core.db.errors import DatabaseError
from core.db.postgres import (
    PostgresConnection,
    PostgresDatabase,
    PostgresTx,
    connection_info,
    redact,
)

COPY_BATCH = 5000


class CopyRefused(DatabaseError):
    """The copy was not made; the message says why, and the target is unchanged."""


@dataclass(frozen=True, slots=True)
class CopiedTable:
    name: str
    rows: int


@dataclass(frozen=True, slots=True)
class Copied:
    source: str
    target: str
    schema_version: int
    tables: list[CopiedTable]
    seconds: float

    @property
    def rows(self) -> int:
        return sum(table.rows for table in self.tables)


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _tables(con: Connection | Tx) -> dict[str, list[str]]:
    """Our tables in the connection's schema, with their columns in order."""
    rows = con.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
    ).fetchall()
    tables: dict[str, list[str]] = {}
    for table, column in rows:
        tables.setdefault(table, []).append(column)
    return tables


def _count(con: Connection | Tx, table: str) -> int:
    row = con.execute(f"SELECT count(*) FROM {_identifier(table)}").fetchone()  # noqa: S608
    return int(row[0]) if row else 0


def _refuse_unless_empty(con: Connection | Tx, ours: set[str], target: str) -> None:
    found = _tables(con)
    foreign = sorted(set(found) - ours)
    if foreign:
        raise CopyRefused(
            f"{target} is not empty: it has tables aigateway does not make "
            f"({', '.join(foreign[:5])}). Copy into an empty database or schema."
        )
    filled = [
        table for table in sorted(found) if table != "schema_migrations" and _count(con, table)
    ]
    if filled:
        raise CopyRefused(
            f"{target} is not empty: {', '.join(filled[:5])} already hold rows. Copy into an "
            "empty database or schema; nothing was changed."
        )


def copy_duckdb_to_postgres(source_path: str | Path, target_url: str) -> Copied:
    """Copy every table of the DuckDB file into the empty PostgreSQL database."""
    started = time.perf_counter()
    target_name = redact(target_url)
    source = DuckDBDatabase(source_path)
    if not Path(source_path).is_file():
        raise CopyRefused(f"There is no DuckDB database at {source_path}.")
    source.open()  # migrates the source to the latest schema, as starting the server would
    try:
        tables = source.read(_tables)
        version = source.read(schema_version)
        ours = set(tables)
        import psycopg

        try:
            with psycopg.connect(connection_info(target_url), autocommit=True) as probe:
                # Before migrating anything: a database that is not ours stays untouched.
                _refuse_unless_empty(PostgresConnection(probe), ours, target_name)
        except psycopg.Error as exc:
            raise DatabaseError(f"PostgreSQL at {target_name} cannot be reached: {exc}") from None
        target = PostgresDatabase(target_url, pool_size=2).open()
        try:
            copied = target.write(_copy_all, source, tables, ours, target_name)
            target_version = target.read(schema_version)
        finally:
            target.close()
    finally:
        source.close()
    if target_version != version:
        raise DatabaseError(
            f"schema versions differ: DuckDB {version}, PostgreSQL {target_version}"
        )
    return Copied(
        source=str(source_path),
        target=target_name,
        schema_version=version,
        tables=copied,
        seconds=time.perf_counter() - started,
    )


def _copy_all(
    tx: Tx, source: DuckDBDatabase, tables: dict[str, list[str]], ours: set[str], target: str
) -> list[CopiedTable]:
    """Write function on the target: one transaction for every table, checked before it
    commits (a mismatch raises, and nothing is kept)."""
    assert isinstance(tx, PostgresTx)
    _refuse_unless_empty(tx, ours, target)  # again, inside the transaction that copies
    target_tables = _tables(tx)
    copied = []
    for table, columns in sorted(tables.items()):
        if table == "schema_migrations":
            continue  # the target's own migrations wrote it
        if target_tables.get(table) is None or set(target_tables[table]) != set(columns):
            raise DatabaseError(
                f"table {table} differs between DuckDB {columns} and PostgreSQL "
                f"{target_tables.get(table)}"
            )
        names = ", ".join(_identifier(column) for column in columns)
        with tx.raw.cursor().copy(
            f"COPY {_identifier(table)} ({names}) FROM STDIN"  # names from the catalogue
        ) as copy:

            def stream(con: Any, copy: Any = copy, names: str = names, table: str = table) -> int:
                cursor = con.execute(f"SELECT {names} FROM {_identifier(table)}")  # noqa: S608
                sent = 0
                while batch := cursor.fetchmany(COPY_BATCH):
                    for row in batch:
                        copy.write_row(row)
                    sent += len(batch)
                return sent

            sent = source.read(stream)
        counted = _count(tx, table)
        if counted != sent or counted != source.read(_count, table):
            raise DatabaseError(f"table {table}: {sent} rows read, {counted} rows in PostgreSQL")
        copied.append(CopiedTable(table, counted))
    _move_sequences(tx, source)
    return copied


_NEXTVAL = re.compile(r"nextval\('([A-Za-z0-9_]+)'")


def _move_sequences(tx: Tx, source: DuckDBDatabase) -> None:
    """Set each PostgreSQL sequence past every id copied and past what DuckDB handed out."""
    defaults = tx.execute(
        "SELECT table_name, column_name, column_default FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND column_default LIKE 'nextval(%'"
    ).fetchall()
    handed_out = dict(
        source.read(
            lambda con: con.execute(
                "SELECT sequence_name, last_value FROM duckdb_sequences()"
                " WHERE schema_name = current_schema()"
            ).fetchall()
        )
    )
    for table, column, default in defaults:
        match = _NEXTVAL.match(default)
        if match is None:
            continue
        sequence = match.group(1)
        row = tx.execute(
            f"SELECT max({_identifier(column)}) FROM {_identifier(table)}"  # noqa: S608
        ).fetchone()
        highest = max(int(row[0]) if row and row[0] is not None else 0,
                      int(handed_out.get(sequence) or 0))  # fmt: skip
        if highest:
            tx.execute("SELECT setval(?::VARCHAR, ?::BIGINT)", [sequence, highest])
