"""Server-Sent Events decoding for chat streams (reference §3 "Streaming").

Follows the WHATWG event-stream rules that matter here: comment lines (": OPENROUTER
PROCESSING" keep-alives) are skipped, several data lines in one event are joined with
newlines, and a blank line ends the event. Line splitting across network reads is done
by httpx's aiter_lines, which also handles \\r\\n and \\r endings.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Comment:
    """A comment line (": OPENROUTER PROCESSING"): no event, but proof the stream is alive."""

    text: str


class EventDataDecoder:
    """Feed it lines without their line endings; it returns each event's data when complete,
    and each comment line as a Comment (readers that only want events skip them)."""

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed(self, line: str) -> str | Comment | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return Comment(line[1:].strip())
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        # "event", "id" and "retry" fields carry nothing OpenRouter's chat stream uses.
        return None

    def flush(self) -> str | None:
        """Data of an event the stream ended without a blank line after (lenient)."""
        return self._dispatch()

    def _dispatch(self) -> str | None:
        if not self._data:
            return None
        data = "\n".join(self._data)
        self._data = []
        return data
