"""Time as the database stores it (naive UTC) and as the API shows it (ISO 8601, Z).

Every "now" of the application comes from `utcnow()`; tests move time with `set_clock()`
(e.g. across a budget period's end) instead of patching each module's import.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any


def _system_now() -> datetime:
    return datetime.now(UTC)


_source: Callable[[], datetime] = _system_now


def utcnow() -> datetime:
    """Now, as the naive UTC timestamp the database stores."""
    return _source().replace(tzinfo=None)


def set_clock(source: Callable[[], datetime] | None) -> None:
    """Take "now" from source (an aware UTC datetime each call); None restores the system
    clock. For tests only."""
    global _source
    _source = source or _system_now


def aware(value: datetime | None) -> datetime | None:
    """A stored naive UTC timestamp as an aware datetime."""
    return value.replace(tzinfo=UTC) if value is not None else None


def iso(value: Any) -> str | None:
    """An aware datetime (or date) in ISO 8601, with Z for UTC; None stays None."""
    return value.isoformat().replace("+00:00", "Z") if value is not None else None
