"""Time as the database stores it (naive UTC) and as the API shows it (ISO 8601, Z)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def utcnow() -> datetime:
    """Now, as the naive UTC timestamp the database stores."""
    return datetime.now(UTC).replace(tzinfo=None)


def aware(value: datetime | None) -> datetime | None:
    """A stored naive UTC timestamp as an aware datetime."""
    return value.replace(tzinfo=UTC) if value is not None else None


def iso(value: Any) -> str | None:
    """An aware datetime (or date) in ISO 8601, with Z for UTC; None stays None."""
    return value.isoformat().replace("+00:00", "Z") if value is not None else None
