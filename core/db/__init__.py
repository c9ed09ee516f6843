"""The data layer: the process-wide Database, chosen once from settings, and the
project's own exceptions.

Without DATABASE_URL the database is the DuckDB file at DUCKDB_PATH (one process); with
`DATABASE_URL=postgresql://…` it is PostgreSQL (any number of processes). Services and
repositories see the same interface either way (core/db/base.py).
"""

from __future__ import annotations

import threading

from django.conf import settings

from core.db.base import (
    DUCKDB,
    POSTGRESQL,
    Connection,
    Database,
    Dialects,
    JournalEntry,
    Tx,
    dialect_of,
)
from core.db.database import DuckDBDatabase
from core.db.errors import DatabaseBusy, DatabaseError, DatabaseLocked, IntegrityViolation
from core.db.journal import Journaled

__all__ = [
    "DUCKDB",
    "POSTGRESQL",
    "Connection",
    "Database",
    "DatabaseBusy",
    "DatabaseError",
    "DatabaseLocked",
    "Dialects",
    "DuckDBDatabase",
    "IntegrityViolation",
    "JournalEntry",
    "Journaled",
    "Tx",
    "close_database",
    "database_from_settings",
    "dialect_of",
    "get_database",
    "one_process_only",
    "use_database",
]

_current: Database | None = None
_lock = threading.Lock()


def database_from_settings() -> Database:
    """A new, unopened Database of the configured backend."""
    if settings.DATABASE_URL:
        from core.db.postgres import PostgresDatabase  # psycopg is imported only if used

        return PostgresDatabase(
            settings.DATABASE_URL,
            pool_size=settings.DATABASE_POOL_SIZE,
            pool_timeout=settings.DATABASE_POOL_TIMEOUT,
        )
    return DuckDBDatabase(settings.DUCKDB_PATH)


def get_database() -> Database:
    """The process's database, opened (and migrated) on first use."""
    global _current
    db = _current
    if db is None or not db.is_open:
        with _lock:
            if _current is None:
                _current = database_from_settings()
            db = _current.open()
    return db


def use_database(db: Database | None) -> None:
    """Make db the process's database (tests point this at a fresh one)."""
    global _current
    with _lock:
        _current = db


def close_database() -> None:
    global _current
    with _lock:
        if _current is not None:
            _current.close()
            _current = None


def one_process_only(workers: int) -> str | None:
    """Why `workers` server processes cannot share the configured database and its
    in-process caches, or None."""
    if workers > 1 and not settings.DATABASE_URL:
        return (
            f"DuckDB lets one process open the database, so {workers} workers cannot share "
            f"{settings.DUCKDB_PATH}: run one worker (unset WEB_CONCURRENCY), or set "
            "DATABASE_URL to a PostgreSQL database to run several."
        )
    if workers > 1 and not settings.REDIS_URL:
        return (
            f"{workers} workers on PostgreSQL need REDIS_URL, through which they share rate "
            "limits and learn of each other's sign-outs and role changes: set REDIS_URL, or "
            "run one worker (unset WEB_CONCURRENCY)."
        )
    return None
