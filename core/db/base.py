"""The interface every backend implements, and what repositories need to speak to either.

Repository functions are synchronous `fn(con, ...)` for reads and `fn(tx, ...)` for writes;
a backend runs them: DuckDB on per-thread cursors and one writer thread (database.py),
PostgreSQL on pooled connections in worker threads (postgres.py). Services await
`db.aread(fn, ...)` and `db.awrite(fn, ...)` and never learn which backend ran them.

SQL is written once with `?` placeholders where both engines accept it; where they differ
a repository keeps both statements side by side in a `Dialects`, picked per connection.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Concatenate, Literal, ParamSpec, Protocol, TypeVar

from core.db.errors import DatabaseError

if TYPE_CHECKING:
    from core.db.journal import Journaled

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 - an item of a batched write

Dialect = Literal["duckdb", "postgresql"]
DUCKDB: Dialect = "duckdb"
POSTGRESQL: Dialect = "postgresql"


class Cursor(Protocol):
    """What a statement's result offers: a DuckDB connection or a psycopg cursor."""

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """What read functions receive: DuckDB's own cursor, or a PostgreSQL reader that
    accepts the same `?` placeholders."""

    def execute(self, sql: str, params: Any = None, /) -> Cursor: ...


def dialect_of(con: Connection | Tx) -> Dialect:
    # A DuckDB reader is DuckDB's own cursor, which has no `dialect`: the default.
    return getattr(con, "dialect", DUCKDB)


@dataclass(frozen=True, slots=True)
class Dialects:
    """One statement in each dialect, side by side, where DuckDB and PostgreSQL differ.

    `con.execute(STATEMENT.on(con), params)` runs the one that fits the connection.
    """

    duckdb: str
    postgresql: str

    def on(self, con: Connection | Tx) -> str:
        return self.postgresql if dialect_of(con) == POSTGRESQL else self.duckdb


class Tx(ABC):
    """A write function's handle inside one transaction: run SQL, queue after-commit work."""

    __slots__ = ("_after_commit",)

    dialect: Dialect

    def __init__(self) -> None:
        self._after_commit: list[Callable[[], None]] = []

    @abstractmethod
    def execute(self, sql: str, params: Any = None) -> Cursor: ...

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run callback once the transaction has committed (never if it rolls back)."""
        self._after_commit.append(callback)

    def serialize_publication(self) -> None:  # noqa: B027 - a no-op unless overridden
        """Let no other transaction of this process publish its after-commit work between
        this transaction's reads and its own callbacks, so a cache loaded from the database
        stays exact. For read-only loads only: a transaction holding this must not wait for
        a row lock. The DuckDB writer runs one transaction at a time: nothing to do there."""

    def run_after_commit(self) -> None:
        for callback in self._after_commit:
            try:
                callback()
            except Exception:
                log.exception("after-commit callback failed")


class Database(ABC):
    """The process's database; a backend implements the abstract methods."""

    dialect: Dialect

    def __init__(self) -> None:
        self._close_hooks: list[Callable[[Tx], None]] = []
        # In-process state (caches, buffers) whose lifetime is this database's.
        self._extensions: dict[str, Any] = {}
        self._extensions_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------

    @property
    @abstractmethod
    def is_open(self) -> bool: ...

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the data lives, for people: a file path, or a URL without its password."""

    @abstractmethod
    def open(self) -> Database:
        """Connect and apply pending migrations; returns self."""

    @abstractmethod
    def close(self) -> None:
        """Run the close hooks as last writes, finish queued writes, disconnect."""

    def extension(self, key: str, create: Callable[[Database], T]) -> T:
        """The in-process companion stored under key (a cache, a buffer), made once by
        create(db) and living as long as this database."""
        found = self._extensions.get(key)
        if found is None:
            with self._extensions_lock:
                found = self._extensions.get(key)
                if found is None:
                    found = self._extensions[key] = create(self)
        return found

    def pool_stats(self) -> dict[str, int] | None:
        """The connection pool's counters, for backends that keep one."""
        return None

    def start_serving(self, if_alone: Callable[[], T]) -> T | None:
        """Mark this process as serving the database until it closes, first running
        if_alone() when no other process serves it (what a crash left behind is then
        nobody's). None when others serve it. One process can open a DuckDB file."""
        return if_alone()

    def add_close_hook(self, hook: Callable[[Tx], None]) -> None:
        """Run hook(tx) as a last write just before the database closes (e.g. flush buffers)."""
        self._close_hooks.append(hook)

    # -- reads -----------------------------------------------------------------------

    @abstractmethod
    def read(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run a read-only function on a connection of this thread, seeing committed data."""

    @abstractmethod
    async def aread(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Like read(), on a worker thread so the event loop keeps serving."""

    # -- writes ----------------------------------------------------------------------

    @abstractmethod
    def write(self, fn: Callable[Concatenate[Tx, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run fn(tx, ...) in a transaction and wait for it.

        fn may be run more than once (grouped with other writes and re-run alone if a
        neighbour fails; retried after a lost connection or a serialization failure), so it
        must not have side effects outside the database: queue them with tx.on_commit().
        """

    @abstractmethod
    async def awrite(
        self, fn: Callable[Concatenate[Tx, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Like write(), awaited without blocking the event loop."""

    def awrite_batched(
        self, fn: Callable[[Tx, list[I]], Sequence[T]], item: I
    ) -> asyncio.Future[T]:
        """Start fn(tx, [item, ...]) -> one result per item now; await the returned future.

        Items queued back to back with the same fn may be handed to one call, so a burst
        of identical writes costs a few set-based statements instead of a few per item.
        The write starts when this is called, not when it is awaited, so it can run while
        the caller does something else (an upstream call) and be awaited afterwards.
        """
        return asyncio.wrap_future(self.queue_batched(fn, item))

    @abstractmethod
    def queue_batched(self, fn: Callable[[Tx, list[I]], Sequence[T]], item: I) -> Future[T]:
        """awrite_batched() for a caller that may never wait: the thread's own future,
        which costs the event loop nothing (no wake-up when the write is done) unless it
        is wrapped and awaited."""

    def journal(
        self,
        write: Journaled[I],
        item: I,
        *,
        sync_now: bool = False,
        defer: bool = False,
        replaces: JournalEntry | None = None,
    ) -> JournalEntry:
        """Start item's write so that it is kept before it commits, and return it: await
        its kept() before telling anyone of it, its durable() where a power loss must not
        lose it either (decisions 52, 56). Reads see it once kept() was awaited.

        A backend whose commit is cheap enough (PostgreSQL) simply commits it, batched
        like awrite_batched(); DuckDB journals it and commits it in the background.
        `sync_now`: a synced() is to come, so the sync may start at once. `defer`: the
        write waits for the entry's queue(), or for the write that `replaces` it, whose
        commit then stands for both (a call's final row for its pending row). A deferred
        write is kept meanwhile only where it is journaled: on PostgreSQL it does not exist
        until queued."""
        if replaces is not None:
            replaces.replaced()
        entry = JournalEntry(None, functools.partial(self.queue_batched, write.apply, item))
        if not defer:
            entry.queue()
        return entry

    async def acaught_up(self) -> None:  # noqa: B027 - a no-op unless overridden
        """Until every journaled write has committed and run its after-commit work (for
        in-process state that follows commits); nothing to wait for where they commit at
        once. Reads wait for this themselves."""

    @abstractmethod
    def write_soon(
        self, fn: Callable[Concatenate[Tx, P], Any], *args: P.args, **kwargs: P.kwargs
    ) -> None:
        """Queue a write nobody waits for (buffers, last-used stamps); failures are logged."""

    @abstractmethod
    def flush_writes(self) -> None:
        """Wait until every write queued before this call has committed (or failed)."""

    @abstractmethod
    async def aflush_writes(self) -> None:
        """Like flush_writes(), awaited without blocking the event loop."""


class JournalEntry:
    """A write started by Database.journal(). Here its commit is all there is: it is
    synced, kept and durable once committed; a backend that journals it says so sooner.
    A deferred write starts when queue() is called (or never, if a write replaces it)."""

    __slots__ = ("_start", "committed")

    def __init__(
        self, committed: Future[Any] | None, start: Callable[[], Future[Any]] | None = None
    ) -> None:
        self.committed = committed  # the writer's future, once queued
        self._start = start  # queues a deferred write

    @property
    def queued(self) -> bool:
        return self.committed is not None

    def queue(self) -> None:
        """Queue a deferred write now (nothing once it is queued or replaced)."""
        if self.committed is None and self._start is not None:
            self.committed = self._start()

    def replaced(self) -> None:
        """A later write stands for this one, which is never to be queued now."""
        self._start = None

    async def synced(self, *, here: bool = False) -> None:
        """Until what has been written of it would survive a power loss (nothing yet, for a
        deferred write not queued); reads need not see it. Raises the write's
        DatabaseError. `here`: the caller knows of no other work in flight, so the backend
        may wait on the calling thread rather than be woken (decision 54)."""
        if self.committed is not None:
            await asyncio.shield(asyncio.wrap_future(self.committed))

    async def kept(self) -> None:
        """Until the write would survive the death of this process; reads see it from then
        on. Raises the write's DatabaseError."""
        await self._commit()

    async def durable(self) -> None:
        """kept() and synced()."""
        await self._commit()

    async def _commit(self) -> None:
        self.queue()
        if self.committed is None:
            raise DatabaseError("The write was replaced by another and never queued.")
        await asyncio.shield(asyncio.wrap_future(self.committed))


def log_failure(future: Any) -> None:
    exc = future.exception()
    if exc is not None:
        log.error("background write failed: %s", exc)
