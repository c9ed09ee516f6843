"""Consistent copies of the database, and putting one back.

A backup is a complete DuckDB file made by `COPY FROM DATABASE` inside one write
function, so it runs on the writer thread: no write interleaves and the copy is one
committed snapshot (tables, sequences at their current values, indexes, migrations).
It is written beside its final name and renamed into place only when complete. The same
function serves `manage.py backup` (server stopped) and POST /api/admin/backup (running).

A restore copies a backup over DUCKDB_PATH while no process holds it, keeping the file it
replaces (and that file's WAL and journal, which must never be replayed onto another file).

Both are DuckDB-file features. PostgreSQL has its own tools, which the refusal names.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from core.db.base import Database, Tx
from core.db.database import DuckDBDatabase, DuckDBTx, schema_version, translate_error
from core.db.errors import DatabaseError, DatabaseLocked

USE_PG_DUMP = (
    "This server keeps its data in PostgreSQL (DATABASE_URL), so back it up with pg_dump "
    "and restore it with pg_restore (see the README's backup section); backup and restore "
    "here copy DuckDB files."
)


class BackupError(DatabaseError):
    """The backup or restore could not be made; the message says why."""


class BackupNotAvailable(BackupError):
    """The database is not a DuckDB file: its own tools back it up."""


@dataclass(frozen=True, slots=True)
class BackupFile:
    path: Path
    size_bytes: int
    schema_version: int
    created_at: datetime
    duration_ms: float


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def _journal(path: Path) -> Path:
    return path.with_name(path.name + ".journal")


def copy_into(tx: Tx, partial: Path) -> int:
    """Write function: copy the whole database into a new file at `partial`.

    COPY FROM DATABASE writes only to the attached file, and a DuckDB transaction may
    write to one database only, so if the writer groups this with another write the group
    fails and each job re-runs alone (see DuckDBDatabase._run_group); hence the clean start.
    """
    assert isinstance(tx, DuckDBTx)
    for leftover in (partial, _wal(partial)):
        leftover.unlink(missing_ok=True)
    alias = "backup_" + secrets.token_hex(6)  # generated, never user input
    source = tx.execute("SELECT current_database()").fetchone()
    assert source is not None
    tx.execute(f"ATTACH ? AS {alias}", [str(partial)])
    tx.execute(f"COPY FROM DATABASE {_identifier(source[0])} TO {alias}")  # identifiers only
    version = schema_version(tx.con)

    def detach() -> None:
        # An attached database with uncommitted work cannot be detached: after COMMIT, then.
        tx.con.execute(f"DETACH {alias}")

    tx.on_commit(detach)
    return version


def backup_database(db: Database, destination: Path) -> BackupFile:
    """Write a consistent copy of db to destination, a new file (its folder is created)."""
    if not isinstance(db, DuckDBDatabase):
        raise BackupNotAvailable(USE_PG_DUMP)
    destination = Path(destination)
    if destination.exists():
        raise BackupError(f"{destination} already exists; choose a new file name.")
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.partial-{secrets.token_hex(4)}")
    started = time.perf_counter()
    try:
        version = db.write(copy_into, partial)
        os.replace(partial, destination)
    finally:
        for leftover in (partial, _wal(partial)):
            leftover.unlink(missing_ok=True)
    return BackupFile(
        path=destination.resolve(),
        size_bytes=destination.stat().st_size,
        schema_version=version,
        created_at=datetime.now(UTC),
        duration_ms=(time.perf_counter() - started) * 1000,
    )


def read_backup_version(path: Path) -> int:
    """The schema version of a backup file; BackupError if it is not an aigateway database."""
    if not Path(path).is_file():
        raise BackupError(f"{path} is not a file.")
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise BackupError(f"{path} is not a DuckDB database ({translate_error(exc)}).") from None
    try:
        return schema_version(con)
    except duckdb.Error:
        raise BackupError(f"{path} is not an aigateway database (no schema_migrations).") from None
    finally:
        con.close()


def _ensure_unused(target: Path) -> None:
    """Refuse while another process (normally the server) has the target open."""
    if not target.exists():
        return
    try:
        duckdb.connect(str(target)).close()
    except duckdb.Error as exc:
        error = translate_error(exc)
        if isinstance(error, DatabaseLocked):
            raise DatabaseLocked(
                f"The database {target} is in use by another process (normally the running "
                "aigateway server). Stop the server, then restore."
            ) from None
        # A damaged file is exactly what a restore replaces.


@dataclass(frozen=True, slots=True)
class Restored:
    path: Path
    schema_version: int
    replaced: Path | None  # where the previous file was moved, if there was one


def restore_database(backup: Path, target: Path) -> Restored:
    """Put a backup in place of target (server stopped); the old file is kept beside it."""
    backup, target = Path(backup).resolve(), Path(target).resolve()
    if backup == target:
        raise BackupError("The backup and the database are the same file.")
    version = read_backup_version(backup)
    _ensure_unused(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.restoring-{secrets.token_hex(4)}")
    try:
        shutil.copyfile(backup, partial)
        with open(partial, "rb+") as handle:
            os.fsync(handle.fileno())
        replaced = None
        side_files = (_wal, _journal)  # the replaced file's own: never applied to another
        if target.exists() or any(side(target).exists() for side in side_files):
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            replaced = target.with_name(f"{target.name}.replaced-{stamp}")
            if target.exists():
                os.replace(target, replaced)
            for side in side_files:
                if side(target).exists():
                    os.replace(side(target), side(replaced))
        os.replace(partial, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return Restored(path=target, schema_version=version, replaced=replaced)
