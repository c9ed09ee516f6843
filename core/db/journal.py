"""The journal: acknowledged writes that are on disk before the database has them
(decision 52).

A DuckDB commit costs milliseconds of CPU, too much to put on every generation's response
path, yet a response that carries an id or a cost must survive a crash. So a journaled write
is appended to a file beside the database as one JSON line and fdatasync'ed — one sync for
every line appended meanwhile (group sync) — and that is what the caller awaits. The writer
thread commits the same write in the background, batched with whatever else is queued, and
until it has, every read of the database waits for it (read-your-writes). The file is
emptied whenever the writer has caught up; at open, lines a dead process left behind are
replayed, idempotently, before anything else runs.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from core.db.base import Tx
from core.db.errors import DatabaseError

log = logging.getLogger(__name__)

I = TypeVar("I")  # noqa: E741 - an item of a batched write
# Called from the journal's thread once a line is on disk (None) or could not be (the error).
Synced = Callable[[DatabaseError | None], None]


@dataclass(frozen=True)
class Journaled(Generic[I]):
    """A batched write whose items are journaled until they commit.

    `key` is where this object lives ("package.module:NAME"), so a later process can find
    it to replay the lines; `encode(item)` is what the line keeps (JSON, with UUIDs and
    datetimes allowed) and `replay(tx, encoded)` must apply those values idempotently: the
    write may have committed before the process died."""

    key: str
    apply: Callable[[Tx, list[I]], Sequence[Any]]
    encode: Callable[[I], Any]
    replay: Callable[[Tx, list[Any]], None]


def encode_line(key: str, value: Any) -> bytes:
    return (json.dumps([key, value], default=_tag, separators=(",", ":")) + "\n").encode()


def _tag(value: Any) -> Any:
    if isinstance(value, UUID):
        return {"$uuid": str(value)}
    if isinstance(value, datetime):
        return {"$ts": value.isoformat()}
    raise TypeError(f"a journal line cannot hold {type(value).__name__}")


def _untag(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        if "$uuid" in obj:
            return UUID(obj["$uuid"])
        if "$ts" in obj:
            return datetime.fromisoformat(obj["$ts"])
    return obj


def read_lines(path: str) -> list[tuple[str, Any]]:
    """The (key, value) pairs of a journal file; a line that does not parse (the tail of a
    write cut off by a power loss: never acknowledged) is skipped with a warning."""
    try:
        with open(path, "rb") as file:
            raw = file.read()
    except FileNotFoundError:
        return []
    lines = []
    for number, line in enumerate(raw.splitlines(), 1):
        try:
            key, value = json.loads(line, object_hook=_untag)
        except (ValueError, TypeError):
            log.warning("journal %s: line %d is incomplete and was skipped", path, number)
            continue
        lines.append((str(key), value))
    return lines


def replay_lines(tx: Tx, lines: Sequence[tuple[str, Any]]) -> int:
    """Apply journal lines through their writes' replay(), in order, consecutive lines of
    one write together."""
    done = 0
    while done < len(lines):
        key = lines[done][0]
        end = done
        while end < len(lines) and lines[end][0] == key:
            end += 1
        _journaled(key).replay(tx, [value for _, value in lines[done:end]])
        done = end
    return done


def _journaled(key: str) -> Journaled[Any]:
    module, _, name = key.partition(":")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        found = None
    if not isinstance(found, Journaled):
        raise DatabaseError(f"The journal names a write this version does not know: {key}.")
    return found


class Journal:
    """An append-only file of lines, written and synced to disk by one thread for all of
    them: a caller hands a line over and is called back once it is on disk, so no system
    call runs on the caller's thread (the event loop)."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise DatabaseError(f"The journal {path} cannot be opened ({exc.strerror}).") from None
        self._size = os.fstat(self._fd).st_size
        self._cond = threading.Condition()
        self._queued: list[tuple[bytes, Synced]] = []  # lines handed over, not yet written
        self._closed = False
        self._thread = threading.Thread(target=self._sync_loop, name="journal-sync", daemon=True)
        self._thread.start()

    @property
    def size(self) -> int:
        """Bytes of lines in the file."""
        return self._size

    def append(self, line: bytes, synced: Synced) -> None:
        """Hand the line over; synced(None) is called from the journal's thread once it is
        on disk, synced(error) if it could not be written or synced."""
        with self._cond:
            if self._closed:
                raise DatabaseError("The journal is closed.")
            self._queued.append((line, synced))
            self._cond.notify()

    def write_now(self, line: bytes) -> bool:
        """Write the line on the calling thread, unless lines are waiting for the journal's
        thread (then False: hand it over instead, to keep the order). sync() follows."""
        with self._cond:
            if self._closed or self._queued:
                return False
            error = self._write(line)
        if error is not None:
            raise error
        return True

    def sync(self) -> None:
        """Put what was written on disk, on the calling thread."""
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            raise DatabaseError(f"The journal could not be synced ({exc.strerror}).") from None

    def empty(self) -> None:
        """Drop every line (the database has committed them all)."""
        with self._cond:
            if not self._closed and self._size:
                os.ftruncate(self._fd, 0)
                self._size = 0

    def close(self) -> None:
        """Write and sync what was handed over, then close."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()
        os.close(self._fd)

    def _sync_loop(self) -> None:
        while True:
            with self._cond:
                while not self._queued and not self._closed:
                    self._cond.wait()
                if not self._queued:
                    return
                batch, self._queued = self._queued, []
                error = self._write(b"".join(line for line, _ in batch))
            if error is None:
                try:
                    self.sync()
                except DatabaseError as exc:
                    error = exc
            for _, synced in batch:
                try:
                    synced(error)
                except Exception:
                    log.exception("a journal callback failed")

    def _write(self, data: bytes) -> DatabaseError | None:
        try:
            _write_all(self._fd, data)
        except OSError as exc:  # never leave part of a line for the next one to follow
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            return DatabaseError(f"The journal could not be written ({exc.strerror}).")
        self._size += len(data)
        return None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
