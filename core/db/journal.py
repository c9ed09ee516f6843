"""The journal: writes that are kept before the database has them (decisions 52, 56).

A DuckDB commit costs milliseconds of CPU, too much to put on every generation's response
path, yet a response that carries an id or a cost must survive a crash. So a journaled write
is appended to a file beside the database as one JSON line, and the writer thread commits
the same write in the background, batched with whatever else is queued. Once written, the
line survives the death of the process (the kernel holds it); one thread fdatasyncs
whatever has been written, one sync for every line written meanwhile (group sync), and a
caller whose write must also survive a power loss waits for that. Until an acknowledged
write has committed, every read of the database waits for it (read-your-writes). The file
is emptied whenever the writer has caught up; at open, lines a dead process left behind are
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
    return (_ENCODER.encode([key, value]) + "\n").encode()


def _tag(value: Any) -> Any:
    if isinstance(value, UUID):
        return {"$uuid": str(value)}
    if isinstance(value, datetime):
        return {"$ts": value.isoformat()}
    raise TypeError(f"a journal line cannot hold {type(value).__name__}")


# Built once (json.dumps with options builds one per call); a line is a tree, never a cycle.
_ENCODER = json.JSONEncoder(default=_tag, separators=(",", ":"), check_circular=False)


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
    """An append-only file of lines. A caller writes its line itself, into the page cache:
    from then on it survives the death of the process. One thread puts lines on disk when
    they must survive a power loss too — those written with sync=True, and any a caller
    asks about (on_disk) — with one fdatasync for every line written meanwhile (group sync).

    A line nobody needs on disk is never synced for its own sake (decision 56): on ext4 an
    append waits while a sync of its file commits, so every sync can delay the next write.

    After a failed fdatasync the kernel may have dropped the lines it could not write, and
    a later sync can succeed without them, so none is tried again: until the next open,
    every line not known to be on disk is reported as not (the caller then waits for the
    database's own commit)."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise DatabaseError(f"The journal {path} cannot be opened ({exc.strerror}).") from None
        self._size = os.fstat(self._fd).st_size
        self._cond = threading.Condition()
        # Bytes written and bytes on disk since the file was opened: a line's mark is the
        # first count at its end. They only grow (emptying the file does not reset them).
        self._written = 0
        self._wanted = 0  # the mark up to which lines are to be synced
        self._synced = 0
        self._waiting: list[tuple[int, Synced]] = []  # (mark, callback) not on disk yet
        self._failed: str | None = None  # why a sync failed: no line is synced any more
        self._closed = False
        self._thread = threading.Thread(target=self._sync_loop, name="journal-sync", daemon=True)
        self._thread.start()

    @property
    def size(self) -> int:
        """Bytes of lines in the file."""
        return self._size

    def write(self, line: bytes, *, sync: bool = False) -> int:
        """Append the line on the calling thread and return its mark; `sync`: the journal's
        thread syncs it now, ahead of an on_disk() expected later. A line that could not be
        written whole is cut off again."""
        with self._cond:
            if self._closed:
                raise DatabaseError("The journal is closed.")
            try:
                _write_all(self._fd, line)
            except OSError as exc:  # never leave part of a line for the next one to follow
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self._size)
                raise DatabaseError(f"The journal could not be written ({exc.strerror}).") from None
            self._size += len(line)
            self._written += len(line)
            if sync:
                self._wanted = self._written
                self._cond.notify()
            return self._written

    def on_disk(self, mark: int, synced: Synced) -> bool:
        """True if the line of that mark is on disk; otherwise synced(None) is called from
        the journal's thread once it is, synced(error) if it could not be synced. Raises
        DatabaseError once a sync has failed."""
        with self._cond:
            if self._synced >= mark:
                return True
            if self._failed is not None:
                raise DatabaseError(self._failed)
            self._waiting.append((mark, synced))
            if self._wanted < mark:
                self._wanted = mark
                self._cond.notify()
            return False

    def sync_here(self, mark: int) -> None:
        """Put the line of that mark on disk from the calling thread, now (a sync of the
        journal's thread already under way is waited out by the kernel instead of being
        heard of later)."""
        with self._cond:
            if self._synced >= mark:
                return
            if self._failed is not None:
                raise DatabaseError(self._failed)
            target = self._written
        error = self._fdatasync()
        self._synced_to(target, error)
        if error is not None:
            raise error

    def empty(self) -> None:
        """Drop every line (the database has committed them all)."""
        with self._cond:
            if not self._closed and self._size:
                os.ftruncate(self._fd, 0)
                self._size = 0

    def close(self) -> None:
        """Sync what was written, then close."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()
        os.close(self._fd)

    def _sync_loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (self._failed or self._synced >= self._wanted):
                    self._cond.wait()
                if self._closed:
                    self._wanted = self._written
                if self._failed or self._synced >= self._wanted:
                    return
                target = self._written
            self._synced_to(target, self._fdatasync())

    def _fdatasync(self) -> DatabaseError | None:
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            error = DatabaseError(
                f"The journal could not be synced ({exc.strerror}). Until a restart, writes "
                "wait for the database's own commit instead."
            )
            log.error("%s", error)
            return error
        return None

    def _synced_to(self, target: int, error: DatabaseError | None) -> None:
        """Lines up to target have been synced, or failed to be: then so has every line
        anyone waits for. Tell them."""
        with self._cond:
            if error is not None:
                self._failed = str(error)
                due, self._waiting = [synced for _, synced in self._waiting], []
            elif self._synced >= target:
                return
            else:
                self._synced = target
                due = [synced for mark, synced in self._waiting if mark <= target]
                self._waiting = [(m, synced) for m, synced in self._waiting if m > target]
        for synced in due:
            try:
                synced(error)
            except Exception:
                log.exception("a journal callback failed")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
