"""The data layer's own exceptions; nothing above it ever sees a duckdb exception."""

from __future__ import annotations


class DatabaseError(Exception):
    """Something went wrong inside the database."""


class DatabaseLocked(DatabaseError):
    """Another process (normally the running server) holds the database file."""


class DatabaseBusy(DatabaseError):
    """A write conflicted with another transaction; retrying may succeed."""


class IntegrityViolation(DatabaseError):
    """A constraint (unique key, check, not-null) refused the write."""
