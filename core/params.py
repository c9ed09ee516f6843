"""Numeric query parameters, read one way for the API and the pages.

`str.isdigit()` is no test for a number: it accepts "²" (which int() then refuses) and
"٣" (which int() quietly reads as 3), and int() of 4,301 digits raises; a number past
INT64 reaches DuckDB as an overflow. Only ASCII digits, at most MAX_DIGITS of them, count.
The API refuses anything else with a 400 naming the parameter (QueryIntegerField in
core.serializers); pages, where a person edits the address bar, clamp into range instead.
"""

from __future__ import annotations

from collections.abc import Mapping

MAX_DIGITS = 18  # every 18-digit number fits DuckDB's BIGINT
MAX_PAGE = 1_000_000


def ascii_whole_number(raw: str) -> int | None:
    """The value of a string of 1 to MAX_DIGITS ASCII digits, else None."""
    if not (0 < len(raw) <= MAX_DIGITS and raw.isascii() and raw.isdigit()):
        return None
    return int(raw)


def clamped_whole_number_param(
    query: Mapping[str, str], name: str, *, default: int, minimum: int, maximum: int
) -> int:
    """For pages: the parameter clamped into [minimum, maximum]; the default when it is
    absent or not a number; `maximum` for a string of digits too long to read."""
    raw = query.get(name, "")
    value = ascii_whole_number(raw)
    if value is None:
        too_long = len(raw) > MAX_DIGITS and raw.isascii() and raw.isdigit()
        return maximum if too_long else default
    return min(max(value, minimum), maximum)


def page_number(query: Mapping[str, str], name: str = "page") -> int:
    """A page's `?page=`, clamped to 1..MAX_PAGE."""
    return clamped_whole_number_param(query, name, default=1, minimum=1, maximum=MAX_PAGE)
