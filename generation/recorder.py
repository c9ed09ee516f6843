"""Buffered inserts for the usage records nobody is billed for and no response reports.

Only catalogue listings are buffered now: every generation, and every video poll and
download, commits its usage row with its own state change (generation/ledger.py). A DuckDB
commit costs about a millisecond, so these few rows are inserted in batches by the writer
(one statement per batch), at the latest after FLUSH_SECONDS, at once when a batch fills,
and on shutdown. Readers that must see them call `await flush()` first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from core.db import Database, Tx, get_database
from generation import repository as repo
from generation.repository import UsageRecord

FLUSH_SECONDS = 1.0
BATCH_ROWS = 500

R = TypeVar("R")


class Buffer(Generic[R]):
    def __init__(self, db: Database, insert: Callable[[Tx, Sequence[R]], None]) -> None:
        self._db = db
        self._insert = insert
        self._rows: list[R] = []
        self._lock = threading.Lock()

    def add(self, row: R) -> None:
        with self._lock:
            self._rows.append(row)
            full = len(self._rows) >= BATCH_ROWS
        if full:
            self.flush_soon()

    def _take(self) -> list[R]:
        with self._lock:
            rows, self._rows = self._rows, []
        return rows

    def flush_soon(self) -> None:
        rows = self._take()
        if rows:
            self._db.write_soon(self._insert, rows)

    def flush_in(self, tx: Tx) -> None:
        """Insert what is buffered inside the given transaction (used at shutdown)."""
        self._insert(tx, self._take())


class Recorder:
    """The process's buffers, flushed by a timer thread and on close."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.usage: Buffer[UsageRecord] = Buffer(db, repo.insert_usage)
        self._stop = threading.Event()
        self._timer = threading.Thread(target=self._run, name="recorder-flush", daemon=True)
        self._timer.start()

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            if not self.db.is_open:
                return
            self.flush_soon()

    def flush_soon(self) -> None:
        self.usage.flush_soon()

    async def flush(self) -> None:
        """Queue everything buffered and wait until the writer has committed it."""
        self.flush_soon()
        await self.db.awrite(_barrier)

    def close(self, tx: Tx) -> None:
        self._stop.set()
        self.usage.flush_in(tx)


def _barrier(tx: Tx) -> None:
    """A no-op write: once it returns, every write queued before it has committed."""


def _start_recorder(db: Database) -> Recorder:
    recorder = Recorder(db)
    db.add_close_hook(recorder.close)
    return recorder


def get_recorder() -> Recorder:
    return get_database().extension("generation.recorder", _start_recorder)


def record_usage(record: UsageRecord) -> None:
    get_recorder().usage.add(record)
