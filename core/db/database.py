"""The DuckDB backend: one database file per process, a single serialized writer and
per-thread readers.

DuckDB lets one process open a file read-write, and concurrent writers to the same rows
conflict. So every write function runs on one dedicated writer thread, inside its own
transaction, one at a time; reads run on per-thread cursors and see committed data.
Both are callable from sync code and, without blocking the event loop, from async code.
Repositories' SQL reaches DuckDB untouched: no translation on this path.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import wait as wait_for_futures
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any, Concatenate, NamedTuple, ParamSpec, TypeVar

import duckdb

from core.db.base import DUCKDB, Connection, Database, Dialect, JournalEntry, Tx, log_failure
from core.db.errors import DatabaseBusy, DatabaseError, DatabaseLocked, IntegrityViolation
from core.db.journal import Journal, Journaled, encode_line, read_lines, replay_lines

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 - an item of a batched write

# DuckDB's migrations; PostgreSQL's twins live in migrations/postgresql/ (same numbers).
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Writes one commit may hold: a DuckDB statement costs about a millisecond of CPU whatever
# its row count, so a writer that has fallen behind catches up in few, large batches
# (decision 54: 64 kept it behind at 300 calls/s on two cores).
MAX_GROUP_COMMIT = 256
# How long the writer lets journaled writes gather before committing them, unless a reader
# or another write is waiting: they are durable in the journal already, and one commit of
# many rows costs little more CPU than a commit of one (decision 52).
JOURNAL_LINGER = 0.05
# ...and while fewer than JOURNAL_COMPANY have gathered by then (a sparse load: calls that
# wait on the upstream arrive far apart), up to JOURNAL_LINGER_SPARSE in all, so that each
# call does not get a commit of its own (~4 ms of CPU, landing during a later call). Once
# calls arrive together, the first JOURNAL_LINGER gathers company enough (decision 58).
JOURNAL_COMPANY = 16
JOURNAL_LINGER_SPARSE = 0.5
# Journaled writes the writer may owe at most: past this, a caller also waits for its own
# commit, so an overloaded writer slows answers down instead of falling ever further behind.
JOURNAL_BACKLOG = 2 * MAX_GROUP_COMMIT
# The journal is emptied when the writer has committed every line, which under steady load
# may never happen: it grew by 250 KB a second at c=1 and 500 KB at c=64, to be replayed
# whole after a crash. Past this size, writes skip it and wait for their commit (DuckDB's
# own, as durable) until the writer has caught up and emptied it (decision 55).
JOURNAL_MAX_BYTES = 4 * 1024 * 1024
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

DuckDBConnection = duckdb.DuckDBPyConnection


class DuckDBTx(Tx):
    """The writer's handle inside one transaction: run SQL, queue after-commit callbacks
    (they run on the writer thread, in commit order)."""

    __slots__ = ("con",)

    dialect: Dialect = DUCKDB

    def __init__(self, con: DuckDBConnection) -> None:
        super().__init__()
        self.con = con

    def execute(self, sql: str, params: Any = None) -> DuckDBConnection:
        return self.con.execute(sql, params)


def translate_error(exc: duckdb.Error) -> DatabaseError:
    """Turn a driver exception into the project's own, keeping the message for logs."""
    text = str(exc)
    if isinstance(exc, duckdb.IOException) and "lock" in text.lower():
        return DatabaseLocked(text)
    if isinstance(exc, duckdb.ConstraintException):
        return IntegrityViolation(text)
    if isinstance(exc, duckdb.TransactionException):
        return DatabaseBusy(text)
    return DatabaseError(text)


def list_migrations(directory: Path = MIGRATIONS_DIR) -> list[tuple[int, str, Path]]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise DatabaseError(f"Migration file {path.name} is not named NNNN_name.sql.")
        found.append((int(match.group(1)), path.stem, path))
    versions = [version for version, _, _ in found]
    if len(versions) != len(set(versions)):
        raise DatabaseError("Two migration files share a number.")
    return found


class DuckDBDatabase(Database):
    """The process's DuckDB database: open once, read anywhere, write through one thread."""

    dialect: Dialect = DUCKDB

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = str(path)
        self._con: DuckDBConnection | None = None
        self._open_lock = threading.Lock()
        self._local = threading.local()
        self._writer: threading.Thread | None = None
        self._queue = _WriteQueue()
        self._writer_thread_id: int | None = None
        self._cursors: list[DuckDBConnection] = []
        # The journal of acknowledged writes the writer has not committed yet (journal.py).
        self._journal: Journal | None = None
        self._journal_lock = threading.Lock()
        self._uncommitted = 0  # journaled writes queued, not yet committed
        self._queued_lines = 0  # journaled writes queued since open: each one's number
        # The acknowledged write queued last (its number): reads wait for its commit, and
        # so for every write queued before it (the writer commits in queue order).
        self._acknowledged: tuple[int, Future[Any]] | None = None
        self._keep_journal = False  # a journaled write failed: its line waits for a restart

    # -- lifecycle -----------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._con is not None

    @property
    def location(self) -> str:
        return self.path

    def open(self) -> DuckDBDatabase:
        """Open the file (creating it and its folder) and apply pending migrations."""
        with self._open_lock:
            if self._con is not None:
                return self
            if self.path != ":memory:":
                try:
                    Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise DatabaseError(
                        f"The folder for the database {self.path} cannot be created "
                        f"({exc.strerror})."
                    ) from None
            try:
                con = duckdb.connect(self.path)
            except duckdb.Error as exc:
                error = translate_error(exc)
                if isinstance(error, DatabaseLocked):
                    raise DatabaseLocked(
                        f"The database {self.path} is in use by another process (normally the "
                        "running aigateway server). Stop the server first, or use its admin API."
                    ) from None
                raise error from None
            self._con = con
            self._queue = _WriteQueue()
            self._writer = threading.Thread(
                target=self._writer_loop, args=(con,), name="duckdb-writer", daemon=True
            )
            self._writer.start()
            self._writer_thread_id = self._writer.ident
        self.write(apply_migrations)
        if self.path != ":memory:":
            self._open_journal(self.path + ".journal")
        return self

    def _open_journal(self, path: str) -> None:
        """Replay what a dead process acknowledged but never committed, then journal anew."""
        lines = read_lines(path)
        self._keep_journal = False
        if lines:
            try:
                self.write(replay_lines, lines)
                log.warning("replayed %d acknowledged write(s) from the journal", len(lines))
            except Exception as exc:
                self._keep_journal = True
                log.error("the journal %s could not be replayed and is kept: %s", path, exc)
        self._journal = Journal(path)
        if lines and not self._keep_journal:
            self._journal.empty()

    def close(self) -> None:
        """Run the close hooks through the writer, finish queued writes, close the file."""
        with self._open_lock:
            if self._con is None or self._writer is None:
                return
            for hook in self._close_hooks:
                try:
                    self.write(hook)
                except Exception:
                    log.exception("close hook failed")
            writer, con = self._writer, self._con
            self._queue.put(None)
            writer.join()
            if self._journal is not None:
                if not self._uncommitted and not self._keep_journal:
                    self._journal.empty()
                self._journal.close()
                self._journal = None
            self._writer = None
            self._con = None
            for cursor in self._cursors:
                cursor.close()
            self._cursors.clear()
            con.close()

    # -- reads -----------------------------------------------------------------------

    def _reader(self) -> DuckDBConnection:
        con = self._con
        if con is None:
            raise DatabaseError("The database is not open.")
        cursor: DuckDBConnection | None = getattr(self._local, "cursor", None)
        owner = getattr(self._local, "owner", None)
        if cursor is None or owner is not con:
            cursor = con.cursor()
            self._local.cursor = cursor
            self._local.owner = con
            with self._open_lock:
                self._cursors.append(cursor)
        return cursor

    def _journaled_pending(self) -> Future[Any] | None:
        """The last acknowledged write, while it is uncommitted (the writer runs in order:
        once it is done, so are the others). Unacknowledged ones nobody has heard of."""
        acknowledged = self._acknowledged
        if acknowledged is None or acknowledged[1].done():
            return None
        return acknowledged[1]

    def _acknowledge(self, number: int, job: Future[Any]) -> None:
        with self._journal_lock:
            if self._acknowledged is None or self._acknowledged[0] < number:
                self._acknowledged = (number, job)

    async def acaught_up(self) -> None:
        pending = self._journaled_pending()
        if pending is not None:  # shielded: a reader going away must not cancel the write
            self._queue.put(HURRY)
            with contextlib.suppress(Exception):
                await asyncio.shield(asyncio.wrap_future(pending))

    def read(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run a read-only function on this thread's cursor, once every journaled write
        has committed (read-your-writes)."""
        pending = self._journaled_pending()
        if pending is not None and threading.get_ident() != self._writer_thread_id:
            self._queue.put(HURRY)
            wait_for_futures([pending])
        try:
            return fn(self._reader(), *args, **kwargs)
        except duckdb.Error as exc:
            raise translate_error(exc) from exc

    async def aread(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Like read(), on a worker thread so the event loop keeps serving."""
        await self.acaught_up()
        return await asyncio.to_thread(functools.partial(self.read, fn, *args, **kwargs))

    # -- writes ----------------------------------------------------------------------

    def _writer_loop(self, con: DuckDBConnection) -> None:
        """Run queued write functions in order; whatever queued up meanwhile commits together,
        and journaled writes linger to gather company (JOURNAL_LINGER)."""
        queue = self._queue
        while True:
            job = queue.get()
            if job is None:
                return
            if isinstance(job, _Hurry):
                continue
            batch = [job]
            # A hurry already queued counts too: a reader waits for what the batch holds.
            stop, urgent = queue.gather(batch)
            if not urgent and job.journaled:
                stop = queue.linger(batch)
            if len(batch) == 1 or not self._run_group(con, batch):
                for one in batch:
                    self._run_one(con, one)
            if stop:
                return

    def _run_one(self, con: DuckDBConnection, job: _WriteJob) -> None:
        if not job.future.set_running_or_notify_cancel():
            return
        tx = DuckDBTx(con)
        try:
            con.execute("BEGIN TRANSACTION")
            if job.batched:
                (result,) = job.fn(tx, [job.args[0]])
            else:
                result = job.fn(tx, *job.args, **job.kwargs)
            con.execute("COMMIT")
        except BaseException as exc:
            _rollback(con)
            job.future.set_exception(translate_error(exc) if isinstance(exc, duckdb.Error) else exc)
            return
        tx.run_after_commit()
        job.future.set_result(result)

    def _run_group(self, con: DuckDBConnection, batch: list[_WriteJob]) -> bool:
        """Group commit: one transaction for the batch. False (rolled back) if any job failed,
        and the caller then runs each job alone, so one bad write never sinks the others."""
        done: list[tuple[list[_WriteJob], DuckDBTx, list[Any]]] = []
        try:
            con.execute("BEGIN TRANSACTION")
            for run in _runs(batch):
                tx = DuckDBTx(con)
                if run[0].batched:
                    results = list(run[0].fn(tx, [job.args[0] for job in run]))
                else:
                    results = [run[0].fn(tx, *run[0].args, **run[0].kwargs)]
                done.append((run, tx, results))
            con.execute("COMMIT")
        except BaseException:
            _rollback(con)
            return False
        for run, tx, results in done:
            tx.run_after_commit()
            for job, result in zip(run, results, strict=True):
                if job.future.set_running_or_notify_cancel():
                    job.future.set_result(result)
        return True

    def _submit(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        batched: bool = False,
        journaled: bool = False,
    ) -> Future[Any]:
        if self._con is None:
            raise DatabaseError("The database is not open.")
        future: Future[Any] = Future()
        job = _WriteJob(fn, args, kwargs, future, batched, journaled)
        self._queue.put(job, urgent=not journaled)
        return future

    def queue_batched(self, fn: Callable[[Tx, list[I]], Sequence[T]], item: I) -> Future[T]:
        """Queue one item for fn(tx, items) -> one result per item, now (awrite_batched()
        awaits it). Items queued back to back with the same fn are handed to a single call,
        so a burst of identical writes costs a few set-based statements instead of a few
        per item."""
        return self._submit(fn, (item,), {}, batched=True)

    def journal(
        self,
        write: Journaled[I],
        item: I,
        *,
        sync_now: bool = False,
        defer: bool = False,
        replaces: JournalEntry | None = None,
    ) -> JournalEntry:
        """Append item's line to the journal and queue its write (unless deferred); the
        writer commits it in the background, batched, and reads wait for that commit once
        it has been acknowledged (journal.py, decisions 52, 56). Writing the line is the
        only system call on the caller's thread: the journal's thread syncs it, when
        synced() asks or, with `sync_now`, at once."""
        journal = self._journal
        # A deferred line `replaces` stands for is retired by this write's commit.
        retires = replaces if isinstance(replaces, _JournalLine) and not replaces.queued else None
        # In memory there is no crash to survive, and past JOURNAL_MAX_BYTES the journal is
        # left to empty: either way the write's own commit is what keeps it.
        if journal is None or journal.size >= JOURNAL_MAX_BYTES:
            return self._committing(write, item, retires)
        line = encode_line(write.key, write.encode(item))
        # One section, so the journal is never emptied between the line and its count.
        with self._journal_lock:
            try:
                mark = journal.write(line, sync=sync_now)
            except DatabaseError as exc:  # kept only once the writer commits it
                log.error("%s Waiting for the database's own commit instead.", exc)
                entry = None
            else:
                self._uncommitted += 1
                entry = _JournalLine(self, journal, mark, write, item)
                if not defer:
                    self._queue_line(entry)
        if entry is None:
            return self._committing(write, item, retires)
        if entry.committed is not None:
            entry.committed.add_done_callback(self._journaled_committed)
            self._retire(retires, entry.committed, entry.number)
        return entry

    def _committing(
        self, write: Journaled[I], item: I, retires: _JournalLine | None
    ) -> JournalEntry:
        job = self.queue_batched(write.apply, item)
        self._retire(retires, job)
        return JournalEntry(job)

    def _retire(self, line: _JournalLine | None, job: Future[Any], number: int = 0) -> None:
        """From now on job's commit is the deferred line's: the line leaves the journal's
        count with it (outside _journal_lock: a job already done calls back at once)."""
        if line is not None:
            line.number, line.committed = number, job
            job.add_done_callback(self._journaled_committed)

    def _queue_line(self, entry: _JournalLine) -> Future[Any]:
        """Queue a journaled line's write (with _journal_lock held)."""
        job = self._submit(entry.write.apply, (entry.item,), {}, batched=True, journaled=True)
        self._queued_lines += 1
        entry.number, entry.committed = self._queued_lines, job
        return job

    def _queue_deferred(self, entry: _JournalLine) -> None:
        with self._journal_lock:
            if entry.committed is not None:
                return
            job = self._queue_line(entry)
        job.add_done_callback(self._journaled_committed)  # outside the lock, as above

    def _journaled_committed(self, job: Future[Any]) -> None:
        failed = job.cancelled() or job.exception() is not None
        if failed:
            log.error(
                "a journaled write failed (%s); the journal keeps it for the next start",
                "cancelled" if job.cancelled() else job.exception(),
            )
        with self._journal_lock:
            self._uncommitted -= 1
            self._keep_journal |= failed
            if not self._uncommitted and not self._keep_journal and self._journal is not None:
                self._journal.empty()

    def write(self, fn: Callable[Concatenate[Tx, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run fn(tx, ...) in a transaction on the writer thread and wait for it.

        fn may be grouped with other queued writes into one commit, and re-run alone if a
        neighbour fails, so it must not have side effects outside the database: queue them
        with tx.on_commit().
        """
        if threading.get_ident() == self._writer_thread_id:
            raise DatabaseError("write() called from inside a write function: pass the Tx along.")
        result: T = self._submit(fn, args, kwargs).result()
        return result

    async def awrite(
        self, fn: Callable[Concatenate[Tx, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Like write(), awaited without blocking the event loop."""
        return await asyncio.wrap_future(self._submit(fn, args, kwargs))

    def write_soon(
        self, fn: Callable[Concatenate[Tx, P], Any], *args: P.args, **kwargs: P.kwargs
    ) -> None:
        """Queue a write nobody waits for (buffers, last-used stamps); failures are logged."""
        self._submit(fn, args, kwargs).add_done_callback(log_failure)

    def flush_writes(self) -> None:
        # The writer runs jobs in order: an empty one returns after everything before it.
        self.write(_nothing)

    async def aflush_writes(self) -> None:
        await self.awrite(_nothing)


class _JournalLine(JournalEntry):
    """A write whose line is in the journal: kept at once, durable once synced."""

    __slots__ = ("_db", "_journal", "_mark", "item", "number", "write")

    def __init__(
        self, db: DuckDBDatabase, journal: Journal, mark: int, write: Journaled[Any], item: Any
    ) -> None:
        super().__init__(None)
        self._db, self._journal, self._mark = db, journal, mark
        self.write, self.item = write, item
        self.number = 0  # its place in the writer's queue, once queued

    def queue(self) -> None:
        if self.committed is None:
            self._db._queue_deferred(self)

    async def synced(self, *, here: bool = False) -> None:
        try:
            if here:
                self._journal.sync_here(self._mark)
                return
            waiter = asyncio.get_running_loop().create_future()
            if self._journal.on_disk(self._mark, functools.partial(_resolve_soon, waiter)):
                return
            await asyncio.shield(waiter)
        except DatabaseError:  # not on disk (the journal logged why): durable once committed
            await self._commit()

    async def _commit(self) -> None:
        self.queue()
        self._db._queue.put(HURRY)  # waited for: the writer must not linger on
        await super()._commit()

    async def kept(self) -> None:
        self.queue()
        assert self.committed is not None
        self._db._acknowledge(self.number, self.committed)
        if self._db._uncommitted > JOURNAL_BACKLOG:  # back-pressure (see JOURNAL_BACKLOG)
            with contextlib.suppress(Exception):
                await asyncio.shield(asyncio.wrap_future(self.committed))

    async def durable(self) -> None:
        await self.kept()
        await self.synced()


def _resolve_soon(future: asyncio.Future[None], error: DatabaseError | None) -> None:
    """Called on the journal's thread: resolve future on its loop."""
    with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
        future.get_loop().call_soon_threadsafe(_resolve, future, error)


def _resolve(future: asyncio.Future[None], error: DatabaseError | None) -> None:
    if not future.done():
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def _nothing(tx: Tx) -> None:
    """An empty write: once it has run, every write queued before it has committed."""


class _WriteJob(NamedTuple):
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    future: Future[Any]
    batched: bool = False
    journaled: bool = False


class _Hurry:
    """Queued by a reader waiting for journaled writes: the writer stops lingering."""


HURRY = _Hurry()


class _WriteQueue:
    """The writer's queue. A put wakes a writer waiting for work; while the writer lingers
    (JOURNAL_LINGER), only what must not wait wakes it: a reader's hurry, a write that is
    not journaled, a full batch, the stop. A journaled write queued meanwhile joins the
    batch when the linger ends: waking the writer for each one cost every call a futex
    wake and a turn of the GIL, 0.05 ms of added latency at c=1 (decision 57). While a
    sparse batch lingers on (JOURNAL_LINGER_SPARSE), the put that gives it company enough
    wakes it too (decision 58)."""

    def __init__(self) -> None:
        self._items: SimpleQueue[_WriteJob | _Hurry | None] = SimpleQueue()
        self._lingering = False
        self._wake_at = MAX_GROUP_COMMIT  # queued items that end the linger (set by it)
        self._nudge = threading.Event()

    def put(self, item: _WriteJob | _Hurry | None, *, urgent: bool = True) -> None:
        self._items.put(item)
        if self._lingering and (urgent or self._items.qsize() >= self._wake_at):
            self._nudge.set()

    def get(self) -> _WriteJob | _Hurry | None:
        return self._items.get()

    def gather(self, batch: list[_WriteJob]) -> tuple[bool, bool]:
        """Add what is queued already to batch: (stop after it, something must not wait)."""
        urgent = False
        while len(batch) < MAX_GROUP_COMMIT:
            try:
                nxt = self._items.get_nowait()
            except Empty:
                return False, urgent
            if nxt is None:
                return True, True
            if isinstance(nxt, _Hurry):
                urgent = True
            else:
                batch.append(nxt)
                urgent = urgent or not nxt.journaled
        return False, True

    def linger(self, batch: list[_WriteJob]) -> bool:
        """Let more journaled writes join batch for JOURNAL_LINGER, then, if fewer than
        JOURNAL_COMPANY have, until they have or JOURNAL_LINGER_SPARSE has passed; ending
        early when something must not wait. True to stop after it."""
        started = time.monotonic()
        deadline, enough = started + JOURNAL_LINGER, MAX_GROUP_COMMIT
        self._lingering = True
        try:
            while True:
                self._nudge.clear()
                stop, urgent = self.gather(batch)
                now = time.monotonic()
                if urgent or len(batch) >= enough:
                    return stop
                if now >= deadline:  # a sparse batch lingers on; any other is done
                    sparse_ends = started + JOURNAL_LINGER_SPARSE
                    if len(batch) >= JOURNAL_COMPANY or now >= sparse_ends:
                        return stop
                    deadline, enough = sparse_ends, JOURNAL_COMPANY
                self._wake_at = enough - len(batch)
                if self._items.qsize() >= self._wake_at:  # a put that saw the old mark
                    continue
                self._nudge.wait(deadline - now)
        finally:
            self._lingering = False


def _runs(batch: list[_WriteJob]) -> list[list[_WriteJob]]:
    """Split a group into runs, in order: neighbouring batched jobs of one fn share a run."""
    runs: list[list[_WriteJob]] = []
    for job in batch:
        last = runs[-1] if runs else None
        if last and job.batched and last[0].batched and last[0].fn is job.fn:
            last.append(job)
        else:
            runs.append([job])
    return runs


def _rollback(con: DuckDBConnection) -> None:
    # Nothing may have begun, or the transaction may already be aborted.
    with contextlib.suppress(duckdb.Error):
        con.execute("ROLLBACK")


def apply_migrations(
    tx: Tx, migrations: Sequence[tuple[int, str, Path]] | None = None
) -> list[int]:
    """Apply every numbered .sql file (DuckDB's unless `migrations` are given) not yet
    recorded in schema_migrations, in order. The bookkeeping SQL suits both engines."""
    tx.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
    )
    done = {row[0] for row in tx.execute("SELECT version FROM schema_migrations").fetchall()}
    applied = []
    for version, name, path in list_migrations() if migrations is None else migrations:
        if version in done:
            continue
        tx.execute(path.read_text())
        tx.execute("INSERT INTO schema_migrations VALUES (?, ?, now()::TIMESTAMP)", [version, name])
        applied.append(version)
        log.info("applied migration %s", name)
    return applied


def schema_version(con: Connection | Tx) -> int:
    row = con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(row[0]) if row else 0
