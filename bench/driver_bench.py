"""Which PostgreSQL driver shape for the repository layer: a micro-benchmark.

The repository functions are synchronous `fn(con, ...)`/`fn(tx, ...)` run by the data
layer; services await `db.aread(...)`/`db.awrite(...)`. This measures, from an asyncio
event loop like the server's, the two operations that dominate the benches:

  point read   SELECT one user row by primary key (what login and the API key check do)
  small write  one transaction: UPDATE one row + INSERT one row (what a refresh rotation does)

for each way of running them:

  psycopg sync in threads   psycopg 3 sync connections from psycopg_pool.ConnectionPool, each
                            call run on a thread of the database's own executor (what keeps the
                            repository functions and the services unchanged)
  psycopg async             psycopg 3 AsyncConnectionPool, awaited on the loop
  asyncpg                   asyncpg's pool, awaited on the loop
  aigateway PostgresDatabase  the data layer as built: the first shape plus `?` translation
  duckdb (reference)        the DuckDB Database: per-thread readers, one writer thread

at concurrency 1 (latency) and at --concurrency (throughput), printing operations per second,
p50/p99 latency and the CPU this process spent per operation (the server's CPU is PostgreSQL's,
shared on the same machine). Each case gets a fresh table in a scratch schema that is dropped.

    .venv/bin/python bench/driver_bench.py [--url postgresql://postgres@127.0.0.1:5432/test]
        [--seconds 5] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

ROWS = 1000
SCHEMA = "driver_bench"
SETUP = [
    f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE",
    f"CREATE SCHEMA {SCHEMA}",
    f"CREATE TABLE {SCHEMA}.users (id UUID PRIMARY KEY, email VARCHAR NOT NULL,"
    " role VARCHAR NOT NULL, is_active BOOLEAN NOT NULL, created_at TIMESTAMP NOT NULL,"
    " last_login_at TIMESTAMP)",
    f"CREATE TABLE {SCHEMA}.events (id UUID PRIMARY KEY, user_id UUID NOT NULL,"
    " occurred_at TIMESTAMP NOT NULL)",
]
READ_SQL = (
    f"SELECT id, email, role, is_active, created_at, last_login_at FROM {SCHEMA}.users"
    " WHERE id = %s"
)
UPDATE_SQL = f"UPDATE {SCHEMA}.users SET last_login_at = %s WHERE id = %s"
INSERT_SQL = f"INSERT INTO {SCHEMA}.events (id, user_id, occurred_at) VALUES (%s, %s, %s)"


def now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC).replace(tzinfo=None)


class Result:
    def __init__(self, name: str, op: str, concurrency: int) -> None:
        self.name, self.op, self.concurrency = name, op, concurrency
        self.latencies: list[float] = []
        self.seconds = 0.0
        self.cpu = 0.0

    def row(self) -> str:
        n = len(self.latencies)
        ordered = sorted(self.latencies)
        p50 = statistics.median(ordered) * 1000
        p99 = ordered[min(n - 1, int(n * 0.99))] * 1000
        return (
            f"| {self.name} | {self.op} | {self.concurrency} | {n / self.seconds:,.0f} |"
            f" {p50:.3f} | {p99:.3f} | {self.cpu / n * 1e6:.0f} |"
        )


async def drive(
    name: str, op: str, concurrency: int, seconds: float, call: Callable[[], Awaitable[None]]
) -> Result:
    result = Result(name, op, concurrency)
    for _ in range(50):  # warm-up: connections opened, statements prepared
        await call()
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await call()
            result.latencies.append(time.perf_counter() - started)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - wall
    result.cpu = time.process_time() - cpu
    return result


def fill(con: Any, ids: list[uuid.UUID]) -> None:
    for statement in SETUP:
        con.execute(statement)
    with con.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {SCHEMA}.users VALUES (%s, %s, 'user', TRUE, %s, NULL)",
            [(user_id, f"u{n}@example.com", now()) for n, user_id in enumerate(ids)],
        )


async def psycopg_threads(url: str, ids: list[uuid.UUID], args: argparse.Namespace) -> list[Result]:
    import psycopg
    from psycopg_pool import ConnectionPool

    with psycopg.connect(url, autocommit=True) as con:
        fill(con, ids)
    pool = ConnectionPool(
        url, min_size=args.concurrency, max_size=args.concurrency, kwargs={"autocommit": True},
        open=True,
    )  # fmt: skip
    pool.wait()
    executor = ThreadPoolExecutor(max_workers=args.concurrency)
    loop = asyncio.get_running_loop()

    def read() -> None:
        with pool.connection() as con:
            con.execute(READ_SQL, (ids[int(time.perf_counter_ns()) % ROWS],)).fetchone()

    def write() -> None:
        user_id = ids[int(time.perf_counter_ns()) % ROWS]
        with pool.connection() as con:
            con.execute("BEGIN")
            con.execute(UPDATE_SQL, (now(), user_id))
            con.execute(INSERT_SQL, (uuid.uuid4(), user_id, now()))
            con.execute("COMMIT")

    async def aread() -> None:
        await loop.run_in_executor(executor, read)

    async def awrite() -> None:
        await loop.run_in_executor(executor, write)

    name = "psycopg sync in threads"
    try:
        return [
            await drive(name, op, c, args.seconds, fn)
            for c in (1, args.concurrency)
            for op, fn in (("point read", aread), ("small write", awrite))
        ]
    finally:
        executor.shutdown()
        pool.close()


async def psycopg_async(url: str, ids: list[uuid.UUID], args: argparse.Namespace) -> list[Result]:
    import psycopg
    from psycopg_pool import AsyncConnectionPool

    with psycopg.connect(url, autocommit=True) as con:
        fill(con, ids)
    pool = AsyncConnectionPool(
        url, min_size=args.concurrency, max_size=args.concurrency, kwargs={"autocommit": True},
        open=False,
    )  # fmt: skip
    await pool.open(wait=True)

    async def aread() -> None:
        async with pool.connection() as con:
            cur = await con.execute(READ_SQL, (ids[int(time.perf_counter_ns()) % ROWS],))
            await cur.fetchone()

    async def awrite() -> None:
        user_id = ids[int(time.perf_counter_ns()) % ROWS]
        async with pool.connection() as con:
            await con.execute("BEGIN")
            await con.execute(UPDATE_SQL, (now(), user_id))
            await con.execute(INSERT_SQL, (uuid.uuid4(), user_id, now()))
            await con.execute("COMMIT")

    name = "psycopg async"
    try:
        return [
            await drive(name, op, c, args.seconds, fn)
            for c in (1, args.concurrency)
            for op, fn in (("point read", aread), ("small write", awrite))
        ]
    finally:
        await pool.close()


async def asyncpg_pool(url: str, ids: list[uuid.UUID], args: argparse.Namespace) -> list[Result]:
    import asyncpg
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        fill(con, ids)
    pool = await asyncpg.create_pool(url, min_size=args.concurrency, max_size=args.concurrency)
    read_sql = READ_SQL.replace("%s", "$1")
    update_sql = UPDATE_SQL.replace("%s", "$1", 1).replace("%s", "$2", 1)
    insert_sql = INSERT_SQL.replace("%s", "$1", 1).replace("%s", "$2", 1).replace("%s", "$3", 1)

    async def aread() -> None:
        async with pool.acquire() as con:
            await con.fetchrow(read_sql, ids[int(time.perf_counter_ns()) % ROWS])

    async def awrite() -> None:
        user_id = ids[int(time.perf_counter_ns()) % ROWS]
        async with pool.acquire() as con, con.transaction():
            await con.execute(update_sql, now(), user_id)
            await con.execute(insert_sql, uuid.uuid4(), user_id, now())

    name = "asyncpg"
    try:
        return [
            await drive(name, op, c, args.seconds, fn)
            for c in (1, args.concurrency)
            for op, fn in (("point read", aread), ("small write", awrite))
        ]
    finally:
        await pool.close()


async def gateway_postgres(
    url: str, ids: list[uuid.UUID], args: argparse.Namespace
) -> list[Result]:
    """The data layer itself: PostgresDatabase (psycopg in threads, `?` translated)."""
    import psycopg

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    from core.db.postgres import PostgresDatabase

    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        con.execute(f"CREATE SCHEMA {SCHEMA}")
    separator = "&" if "?" in url else "?"
    db = PostgresDatabase(  # the app's own tables, by its migrations
        f"{url}{separator}options=-csearch_path%3D{SCHEMA}", pool_size=args.concurrency
    ).open()

    def setup(tx: Any) -> None:
        tx.execute(SETUP[3].replace(f"{SCHEMA}.", ""))
        tx.execute(
            "INSERT INTO users (id, email, email_key, password_hash, role, created_at,"
            " updated_at) SELECT u, u::VARCHAR, u::VARCHAR, 'x', 'user', now(), now()"
            " FROM unnest(?::UUID[]) AS u",
            [ids],
        )

    db.write(setup)
    read_sql = READ_SQL.replace(f"{SCHEMA}.", "").replace("%s", "?")
    update_sql = UPDATE_SQL.replace(f"{SCHEMA}.", "").replace("%s", "?")
    insert_sql = INSERT_SQL.replace(f"{SCHEMA}.", "").replace("%s", "?")

    def read(con: Any, user_id: uuid.UUID) -> None:
        con.execute(read_sql, [user_id]).fetchone()

    def write(tx: Any, user_id: uuid.UUID) -> None:
        tx.execute(update_sql, [now(), user_id])
        tx.execute(insert_sql, [uuid.uuid4(), user_id, now()])

    async def aread() -> None:
        await db.aread(read, ids[int(time.perf_counter_ns()) % ROWS])

    async def awrite() -> None:
        await db.awrite(write, ids[int(time.perf_counter_ns()) % ROWS])

    name = "aigateway PostgresDatabase"
    try:
        return [
            await drive(name, op, c, args.seconds, fn)
            for c in (1, args.concurrency)
            for op, fn in (("point read", aread), ("small write", awrite))
        ]
    finally:
        db.close()


async def duckdb_reference(ids: list[uuid.UUID], args: argparse.Namespace) -> list[Result]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    from core.db import DuckDBDatabase

    folder = tempfile.mkdtemp(prefix="driver-bench-")
    db = DuckDBDatabase(Path(folder) / "bench.duckdb").open()

    def setup(tx: Any) -> None:  # the app's own tables (migrated) plus the events table
        tx.execute(SETUP[3].replace(f"{SCHEMA}.", ""))
        tx.execute(
            "INSERT INTO users (id, email, email_key, password_hash, role, created_at,"
            " updated_at) SELECT u, u::VARCHAR, u::VARCHAR, 'x', 'user', now(), now()"
            " FROM (SELECT unnest(?::UUID[]) AS u)",
            [ids],
        )

    db.write(setup)
    read_sql = READ_SQL.replace(f"{SCHEMA}.", "").replace("%s", "?")
    update_sql = UPDATE_SQL.replace(f"{SCHEMA}.", "").replace("%s", "?")
    insert_sql = INSERT_SQL.replace(f"{SCHEMA}.", "").replace("%s", "?")

    def read(con: Any, user_id: uuid.UUID) -> None:
        con.execute(read_sql, [user_id]).fetchone()

    def write(tx: Any, user_id: uuid.UUID) -> None:
        tx.execute(update_sql, [now(), user_id])
        tx.execute(insert_sql, [uuid.uuid4(), user_id, now()])

    async def aread() -> None:
        await db.aread(read, ids[int(time.perf_counter_ns()) % ROWS])

    async def awrite() -> None:
        await db.awrite(write, ids[int(time.perf_counter_ns()) % ROWS])

    name = "duckdb (reference)"
    try:
        return [
            await drive(name, op, c, args.seconds, fn)
            for c in (1, args.concurrency)
            for op, fn in (("point read", aread), ("small write", awrite))
        ]
    finally:
        db.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url",
        default=os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--only",
        choices=("threads", "psycopg-async", "asyncpg", "gateway", "duckdb"),
        action="append",
    )
    args = parser.parse_args()
    print("$ " + " ".join([".venv/bin/python", "bench/driver_bench.py", *sys.argv[1:]]))
    ids = [uuid.uuid4() for _ in range(ROWS)]
    cases = {
        "threads": lambda: psycopg_threads(args.url, ids, args),
        "psycopg-async": lambda: psycopg_async(args.url, ids, args),
        "asyncpg": lambda: asyncpg_pool(args.url, ids, args),
        "gateway": lambda: gateway_postgres(args.url, ids, args),
        "duckdb": lambda: duckdb_reference(ids, args),
    }
    print("| driver | operation | concurrency | ops/s | p50 ms | p99 ms | client CPU µs/op |")
    print("|---|---|---|---|---|---|---|")
    try:
        for key in args.only or list(cases):
            for result in await cases[key]():
                print(result.row(), flush=True)
    finally:
        import psycopg

        with psycopg.connect(args.url, autocommit=True) as con:
            con.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
