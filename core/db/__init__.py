"""The DuckDB data layer: the process-wide Database and the project's own exceptions."""

from __future__ import annotations

import threading

from django.conf import settings

from core.db.database import Connection, Database, Tx
from core.db.errors import DatabaseBusy, DatabaseError, DatabaseLocked, IntegrityViolation

__all__ = [
    "Connection",
    "Database",
    "DatabaseBusy",
    "DatabaseError",
    "DatabaseLocked",
    "IntegrityViolation",
    "Tx",
    "close_database",
    "get_database",
    "use_database",
]

_current: Database | None = None
_lock = threading.Lock()


def get_database() -> Database:
    """The process's database, opened (and migrated) on first use."""
    global _current
    db = _current
    if db is None or not db.is_open:
        with _lock:
            if _current is None:
                _current = Database(settings.DUCKDB_PATH)
            db = _current.open()
    return db


def use_database(db: Database | None) -> None:
    """Make db the process's database (tests point this at a fresh file)."""
    global _current
    with _lock:
        _current = db


def close_database() -> None:
    global _current
    with _lock:
        if _current is not None:
            _current.close()
            _current = None
