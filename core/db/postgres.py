"""The PostgreSQL backend: the same repository functions on pooled psycopg connections.

Selected by `DATABASE_URL=postgresql://…`. Repository functions stay synchronous
`fn(con, ...)`/`fn(tx, ...)`; each call runs on a thread of the database's own executor
with a connection from a `psycopg_pool.ConnectionPool` (decision 34 has the measurement
that chose this over an async driver). Every write function is one transaction of its
own; PostgreSQL's row locks, not a single writer, keep concurrent writes apart, so the
read-modify-write functions take the locks they need (decision 36).

Repositories write `?` placeholders, which a reader or a Tx here turns into psycopg's
`%s` (cached per statement); DuckDB's path never pays for that. Migrations are their own
numbered files in migrations/postgresql/, twins of DuckDB's, applied at start-up under an
advisory lock, so workers that start together migrate once.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from core.db.base import POSTGRESQL, Connection, Database, Dialect, Tx, log_failure
from core.db.database import MIGRATIONS_DIR, apply_migrations, list_migrations
from core.db.errors import DatabaseBusy, DatabaseError, IntegrityViolation

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 - an item of a batched write

POSTGRES_MIGRATIONS_DIR = MIGRATIONS_DIR / "postgresql"
# The first key of the advisory lock migrations take; the second is the schema's hash, so
# test schemas side by side in one database do not wait for each other.
MIGRATION_LOCK = 0x61677779  # "agwy"
# Held shared by every process serving a database for as long as it runs; taken exclusive
# by a process starting up to learn that no other serves it (second key: the schema).
SERVING_LOCK = 0x61677773  # "agws"
# A write that lost a serialization race or a deadlock, or found its connection dead
# before committing, was rolled back by the server and is run again, this many times.
ATTEMPTS = 3


def postgres_migrations() -> list[tuple[int, str, Path]]:
    return list_migrations(POSTGRES_MIGRATIONS_DIR)


# -- placeholders and parameters -------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def to_psycopg(sql: str) -> str:
    """`?` placeholders as psycopg's `%s`; a literal `%` doubled. `?` inside quotes stays."""
    out: list[str] = []
    quote = ""
    for char in sql:
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "?":
            out.append("%s")
            continue
        out.append("%%" if char == "%" else char)
    return "".join(out)


def _uniform_list(values: list[Any]) -> list[Any]:
    """psycopg dumps a list with one type per list: ints among floats become floats."""
    kinds = {type(value) for value in values if value is not None}
    if float in kinds and int in kinds:
        return [float(value) if type(value) is int else value for value in values]
    return values


def _params(params: Sequence[Any]) -> Sequence[Any]:
    if any(type(value) is list for value in params):
        return [_uniform_list(value) if type(value) is list else value for value in params]
    return params


def _execute(con: psycopg.Connection[Any], sql: str, params: Any) -> psycopg.Cursor[Any]:
    if params is None:
        # Without parameters psycopg sends the text as it is (several statements allowed).
        return con.execute(sql)
    return con.execute(to_psycopg(sql), _params(params))


class PostgresConnection:
    """What read functions receive on PostgreSQL: `execute` with `?` placeholders."""

    __slots__ = ("raw",)

    dialect: Dialect = POSTGRESQL

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Any = None, /) -> psycopg.Cursor[Any]:
        return _execute(self.raw, sql, params)


class PostgresTx(Tx):
    """A write function's transaction on one pooled connection, in pipeline mode.

    Statements are sent without waiting for their results until one is read (`fetch*`)
    or the function returns, so a transaction takes two round trips instead of one per
    statement: BEGIN and the statements up to the last read, then COMMIT (preceded by
    the statements after that read, if any, in a round trip of their own). Each round
    trip is a wake-up of the database thread and a GIL hand-over with the event loop
    (decision 53). An error is raised when the results are read, and always before
    COMMIT is sent: the server skips the rest of the pipeline after it, so nothing after
    a failed statement takes effect, and a connection lost before COMMIT is retried as
    before. A text of several statements (migrations) or the raw connection (COPY) ends
    the pipeline first."""

    __slots__ = ("_db", "_pipeline", "_queues", "_raw", "holds_publication")

    dialect: Dialect = POSTGRESQL

    def __init__(self, raw: psycopg.Connection[Any], db: PostgresDatabase) -> None:
        super().__init__()
        self._raw = raw
        self._db = db
        self._pipeline: contextlib.AbstractContextManager[psycopg.Pipeline] | None = None
        self._queues: psycopg.Pipeline | None = None
        self.holds_publication = False

    @property
    def raw(self) -> psycopg.Connection[Any]:
        """The connection, out of pipeline mode (COPY cannot be pipelined)."""
        self.send_pending()
        return self._raw

    def execute(self, sql: str, params: Any = None) -> psycopg.Cursor[Any]:
        if params is None:
            self.send_pending()  # several statements in one text cannot be pipelined
        return _execute(self._raw, sql, params)

    def start_pipeline(self) -> None:
        pipeline = self._raw.pipeline()
        self._queues = pipeline.__enter__()
        self._pipeline = pipeline

    @property
    def answered(self) -> bool:
        """Whether every statement sent so far has had its result read."""
        queues = self._queues
        return self._pipeline is None or not (
            queues is None or queues.command_queue or queues.result_queue
        )

    def send_pending(self) -> None:
        """Leave pipeline mode: send what is queued, read its results, raise its error."""
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            pipeline.__exit__(None, None, None)

    def abandon_pipeline(self) -> bool:
        """Leave pipeline mode after an error; False if what was still queued failed."""
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            try:
                pipeline.__exit__(None, None, None)
            except psycopg.Error:
                return False
        return True

    def serialize_publication(self) -> None:
        if not self.holds_publication:
            self._db._publication.acquire()
            self.holds_publication = True

    @property
    def publishes(self) -> bool:
        return bool(self._after_commit) or self.holds_publication


# -- errors ---------------------------------------------------------------------------


def translate_error(exc: BaseException) -> DatabaseError:
    """A driver exception as the project's own, keeping the message for logs."""
    text = str(exc).strip()
    if isinstance(exc, psycopg.IntegrityError):
        return IntegrityViolation(text)
    if isinstance(
        exc,
        PoolTimeout
        | pg_errors.SerializationFailure
        | pg_errors.DeadlockDetected
        | pg_errors.LockNotAvailable
        | pg_errors.TooManyConnections,
    ):
        return DatabaseBusy(text)
    return DatabaseError(text)


def _retryable(exc: BaseException, con: psycopg.Connection[Any] | None, committing: bool) -> bool:
    """Whether the transaction certainly did not commit and may simply run again."""
    if isinstance(exc, pg_errors.SerializationFailure | pg_errors.DeadlockDetected):
        return True
    # A connection that died before COMMIT was sent took its transaction with it; one
    # that died during COMMIT leaves the outcome unknown, so that is never retried.
    return isinstance(exc, psycopg.OperationalError) and (
        con is not None and con.broken and not committing
    )


def redact(url: str) -> str:
    """The URL without its password, for logs and the health page."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def connection_info(url: str) -> str:
    """The libpq connection string: the URL plus UTC for timestamps and a name in
    pg_stat_activity. Options given in the URL (e.g. a search_path) are kept."""
    params = conninfo_to_dict(url)
    options = str(params.get("options") or "")
    params["options"] = f"{options} -c TimeZone=UTC".strip()
    params.setdefault("application_name", "aigateway")
    params.setdefault("connect_timeout", 10)
    return make_conninfo("", **params)


# -- the database --------------------------------------------------------------------


class PostgresDatabase(Database):
    """The process's PostgreSQL database: a pool of connections, each call on a thread."""

    dialect: Dialect = POSTGRESQL

    def __init__(self, url: str, *, pool_size: int = 10, pool_timeout: float = 10.0) -> None:
        super().__init__()
        self.url = url
        self.pool_size = pool_size
        self.pool_timeout = pool_timeout
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._serving: psycopg.Connection[Any] | None = None  # holds the serving lock
        self._executor: ThreadPoolExecutor | None = None
        self._open_lock = threading.Lock()
        self._local = threading.local()
        # Held from a COMMIT until its after-commit callbacks ran, so this process's
        # caches see commits in commit order (the DuckDB writer gives that for free).
        self._publication = threading.Lock()
        # Writes started on the executor and not yet done, for flush_writes().
        self._in_flight: set[Future[Any]] = set()
        self._in_flight_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    @property
    def location(self) -> str:
        return redact(self.url)

    def open(self) -> PostgresDatabase:
        """Connect (failing with one sentence), migrate under an advisory lock, pool."""
        with self._open_lock:
            if self._pool is not None:
                return self
            conninfo = connection_info(self.url)
            try:
                psycopg.connect(conninfo).close()  # the precise reason, if it cannot
            except psycopg.Error as exc:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc)
                raise DatabaseError(
                    f"PostgreSQL at {self.location} cannot be reached: {reason}"
                ) from None
            pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
                conninfo,
                min_size=min(2, self.pool_size),
                max_size=self.pool_size,
                kwargs={"autocommit": True},
                timeout=self.pool_timeout,
                name="aigateway",
                open=False,
            )
            try:
                pool.open(wait=True, timeout=max(self.pool_timeout, 5.0))
            except PoolTimeout:
                pool.close()
                raise DatabaseError(
                    f"PostgreSQL at {self.location} accepted one connection but not a pool of "
                    f"{pool.min_size}; check its max_connections."
                ) from None
            self._pool = pool
            self._executor = ThreadPoolExecutor(
                max_workers=self.pool_size, thread_name_prefix="postgres"
            )
        try:
            self.write(migrate)
        except BaseException:
            self.close()
            raise
        return self

    def start_serving(self, if_alone: Callable[[], T]) -> T | None:
        """On a connection of its own, held until close (PostgreSQL drops the lock when a
        killed process's connection drops): the serving lock exclusive to run if_alone(),
        then shared, as every serving process holds it."""
        self._pool_or_fail()
        con = psycopg.connect(connection_info(self.url), autocommit=True)
        try:
            schema = con.execute("SELECT current_schema()").fetchone()
            key = [SERVING_LOCK, schema[0] if schema else ""]
            alone = con.execute(
                "SELECT pg_try_advisory_lock(%s::INTEGER, hashtext(%s::VARCHAR))", key
            ).fetchone()
            result = None
            if alone and alone[0]:
                try:
                    result = if_alone()
                finally:
                    con.execute(
                        "SELECT pg_advisory_lock_shared(%s::INTEGER, hashtext(%s::VARCHAR))", key
                    )
                    con.execute(
                        "SELECT pg_advisory_unlock(%s::INTEGER, hashtext(%s::VARCHAR))", key
                    )
            else:  # waits while a process starting alone runs its if_alone()
                con.execute(
                    "SELECT pg_advisory_lock_shared(%s::INTEGER, hashtext(%s::VARCHAR))", key
                )
        except BaseException:
            con.close()
            raise
        with self._open_lock:
            if self._serving is not None:
                self._serving.close()
            self._serving = con
        return result

    def close(self) -> None:
        """Run the close hooks as last writes, finish queued writes, close the pool."""
        with self._open_lock:
            pool, executor = self._pool, self._executor
            if pool is not None and executor is not None:
                for hook in self._close_hooks:
                    try:
                        self.write(hook)
                    except Exception:
                        log.exception("close hook failed")
                executor.shutdown(wait=True)
                self._executor = None
                self._pool = None
                pool.close()
            if self._serving is not None:  # last: this process no longer serves
                self._serving.close()
                self._serving = None

    def pool_stats(self) -> dict[str, int]:
        """psycopg_pool's counters: pool_size, pool_available, requests_waiting, …"""
        return self._pool.get_stats() if self._pool is not None else {}

    def _pool_or_fail(self) -> ConnectionPool[psycopg.Connection[Any]]:
        pool = self._pool
        if pool is None:
            raise DatabaseError("The database is not open.")
        return pool

    def _start(self, call: Callable[[], T]) -> Future[T]:
        executor = self._executor
        if executor is None:
            raise DatabaseError("The database is not open.")
        future = executor.submit(contextvars.copy_context().run, call)
        return future

    def _submit(self, call: Callable[[], T]) -> asyncio.Future[T]:
        return asyncio.wrap_future(self._start(call))

    def _start_write(self, call: Callable[[], T]) -> Future[T]:
        """A write on the executor, remembered until done so flush_writes() can wait for it."""
        future = self._start(call)
        with self._in_flight_lock:
            self._in_flight.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: Future[Any]) -> None:
        with self._in_flight_lock:
            self._in_flight.discard(future)

    def flush_writes(self) -> None:
        with self._in_flight_lock:
            pending = list(self._in_flight)
        wait(pending)

    async def aflush_writes(self) -> None:
        with self._in_flight_lock:
            pending = list(self._in_flight)
        if pending:
            await asyncio.wait([asyncio.wrap_future(future) for future in pending])

    # -- reads -----------------------------------------------------------------------

    def read(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run a read-only function on a pooled connection (autocommit: each statement
        sees what was committed when it started, as on DuckDB's readers)."""
        pool = self._pool_or_fail()
        for attempt in range(1, ATTEMPTS + 1):
            con = None
            try:
                with pool.connection() as con:
                    return fn(PostgresConnection(con), *args, **kwargs)
            except psycopg.Error as exc:
                if attempt < ATTEMPTS and _retryable(exc, con, committing=False):
                    self._lost_connection(exc)
                    continue
                raise translate_error(exc) from exc
        raise AssertionError("unreachable")

    async def aread(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return await self._submit(functools.partial(self.read, fn, *args, **kwargs))

    # -- writes ----------------------------------------------------------------------

    def write(self, fn: Callable[Concatenate[Tx, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run fn(tx, ...) in a transaction of its own on this thread and wait for it."""
        if getattr(self._local, "writing", False):
            raise DatabaseError("write() called from inside a write function: pass the Tx along.")
        pool = self._pool_or_fail()
        self._local.writing = True
        try:
            for attempt in range(1, ATTEMPTS + 1):
                con = None
                committing = False
                try:
                    with pool.connection() as con:
                        tx = PostgresTx(con, self)
                        try:
                            tx.start_pipeline()
                            con.execute("BEGIN")
                            result = fn(tx, *args, **kwargs)
                            if not tx.answered:  # their outcome before COMMIT is sent
                                tx.send_pending()
                            committing = True
                            self._commit(con, tx)
                        except BaseException as exc:
                            if not tx.abandon_pipeline() or isinstance(exc, psycopg.Error):
                                # A pipeline the server aborted can leave psycopg's cache
                                # of prepared statements naming ones the server never
                                # prepared ("prepared statement _pg3_2 does not exist" on
                                # a later write): the pool replaces a closed connection.
                                con.close()
                            elif not committing:
                                _rollback(con)
                            raise
                        finally:
                            if tx.holds_publication:
                                tx.holds_publication = False
                                self._publication.release()
                        return result
                except psycopg.Error as exc:
                    if attempt < ATTEMPTS and _retryable(exc, con, committing):
                        self._lost_connection(exc)
                        continue
                    if committing and con is not None and con.broken:
                        raise DatabaseError(
                            "The connection to PostgreSQL was lost while committing; the "
                            f"write may or may not have been applied ({exc})."
                        ) from exc
                    raise translate_error(exc) from exc
            raise AssertionError("unreachable")
        finally:
            self._local.writing = False

    def _commit(self, con: psycopg.Connection[Any], tx: PostgresTx) -> None:
        publishes = tx.publishes
        if publishes:
            tx.serialize_publication()  # released by write() once the callbacks ran
        con.execute("COMMIT")
        tx.send_pending()  # a COMMIT queued behind answered statements goes now
        if publishes:
            tx.run_after_commit()

    def _lost_connection(self, exc: BaseException) -> None:
        """After a dead connection, check the idle ones too (a restarted server killed
        them all) so the retry gets a live one; the pool reconnects in the background."""
        log.warning("PostgreSQL: retrying after %s: %s", type(exc).__name__, exc)
        if isinstance(exc, psycopg.OperationalError) and self._pool is not None:
            self._pool.check()

    async def awrite(
        self, fn: Callable[Concatenate[Tx, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        job = functools.partial(self.write, fn, *args, **kwargs)
        return await asyncio.wrap_future(self._start_write(job))

    def queue_batched(self, fn: Callable[[Tx, list[I]], Sequence[T]], item: I) -> Future[T]:
        """Each item runs alone, in its own transaction, started now: PostgreSQL commits
        concurrent transactions side by side, so there is no queue to coalesce."""
        return self._start_write(functools.partial(self.write, _first_of, fn, item))

    def write_soon(
        self, fn: Callable[Concatenate[Tx, P], Any], *args: P.args, **kwargs: P.kwargs
    ) -> None:
        job = functools.partial(self.write, fn, *args, **kwargs)
        self._start_write(job).add_done_callback(log_failure)


def _rollback(con: psycopg.Connection[Any]) -> None:
    # The transaction may never have begun, or the connection may be gone with it.
    if con.broken or con.pgconn.transaction_status == TransactionStatus.IDLE:
        return
    with contextlib.suppress(psycopg.Error):
        con.execute("ROLLBACK")


def _first_of(tx: Tx, fn: Callable[[Tx, list[Any]], Sequence[T]], item: Any) -> T:
    (result,) = fn(tx, [item])
    return result


def migrate(tx: Tx) -> list[int]:
    """Apply PostgreSQL's pending migrations, one process at a time per schema."""
    row = tx.execute("SELECT current_schema()").fetchone()
    if row is None or row[0] is None:
        raise DatabaseError(
            "PostgreSQL has no schema to create the tables in: the search_path names none "
            "that exists."
        )
    tx.execute(
        "SELECT pg_advisory_xact_lock(?::INTEGER, hashtext(?::VARCHAR))", [MIGRATION_LOCK, row[0]]
    )
    started = time.perf_counter()
    applied = apply_migrations(tx, postgres_migrations())
    if applied:
        log.info("migrated PostgreSQL in %.0f ms", (time.perf_counter() - started) * 1000)
    return applied
