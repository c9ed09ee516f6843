"""What the auth and gateway benchmarks share: the server under test and how it is measured.

A run is on one backend or, with `--database postgres --workers N`, on two, one after the
other under the same load generator, so the figures can be read side by side:

  duckdb      the default: one process on a fresh DuckDB file in a temporary folder
  postgresql  N worker processes on a fresh PostgreSQL database (`CREATE DATABASE
              bench_<random>` in the server tests/services.py finds, dropped afterwards)
              and Redis under a fresh key prefix (its keys deleted afterwards)

A server's CPU and memory are those of its whole process tree (uvicorn's supervisor and
its workers), read from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.servers import GatewayServer  # noqa: E402

T = TypeVar("T")

# -- the event loop and the command line ------------------------------------------------


def uvloop_module() -> Any:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop


def loop_name() -> str:
    return "uvloop" if uvloop_module() is not None else "asyncio"


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when it is installed (as the server does), else asyncio."""
    uvloop = uvloop_module()
    return uvloop.run(coroutine) if uvloop is not None else asyncio.run(coroutine)


def shown_python() -> str:
    """The interpreter as a person would type it from the repository root."""
    python = Path(sys.executable)
    return str(python.relative_to(REPO_ROOT)) if python.is_relative_to(REPO_ROOT) else str(python)


# -- backends ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    database: str  # "duckdb" or "postgresql"
    workers: int

    @property
    def label(self) -> str:
        if self.database == "duckdb":
            return "DuckDB, 1 process"
        return f"PostgreSQL, {self.workers} worker{'s' if self.workers != 1 else ''}"

    @property
    def key(self) -> str:
        """A short name for JSON output: duckdb-1, postgresql-2."""
        return f"{self.database}-{self.workers}"


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database", choices=("duckdb", "postgres", "postgresql"), default="duckdb",
        help="duckdb: one process on a fresh DuckDB file; postgres: DuckDB first (unless "
        "--no-baseline), then --workers processes on a fresh PostgreSQL database and Redis",
    )  # fmt: skip
    parser.add_argument(
        "--workers", type=int, default=2, help="server processes on PostgreSQL (default 2)"
    )
    parser.add_argument(
        "--no-baseline", action="store_true",
        help="with --database postgres: skip the DuckDB single-process run",
    )  # fmt: skip


def backends(args: argparse.Namespace) -> list[Backend]:
    """The runs asked for, DuckDB's single process first."""
    if args.database == "duckdb":
        return [Backend("duckdb", 1)]
    if args.workers < 1:
        raise SystemExit("bench: --workers must be at least 1")
    scaled = Backend("postgresql", args.workers)
    return [scaled] if args.no_baseline else [Backend("duckdb", 1), scaled]


def backend_flags(args: argparse.Namespace) -> str:
    """The backend flags of the reproducing command."""
    if args.database == "duckdb":
        return "--database duckdb"
    return f"--database postgres --workers {args.workers}" + (
        " --no-baseline" if args.no_baseline else ""
    )


# -- fresh PostgreSQL and Redis databases -------------------------------------------------


@contextlib.contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty database `bench_<random>` in the suite's PostgreSQL; its URL. Dropped
    (its sessions ended first) when the block exits."""
    import psycopg
    from psycopg import sql

    from tests.services import postgres_url

    server, how = postgres_url()
    if server is None:
        raise SystemExit(f"bench: no PostgreSQL: {how}")
    admin = _with_database(server, "postgres")
    name = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_database(server, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as con:
            con.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)
            ))  # fmt: skip


def _with_database(url: str, name: str) -> str:
    """url with its path (the database name) replaced; query options kept."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextlib.contextmanager
def fresh_redis_prefix() -> Iterator[tuple[str, str]]:
    """(the suite's Redis URL, a key prefix no one else uses); the keys written under the
    prefix are deleted when the block exits (never FLUSHDB: the Redis may be shared)."""
    from tests.services import delete_redis_keys, redis_url

    url, how = redis_url()
    if url is None:
        raise SystemExit(f"bench: no Redis: {how}")
    prefix = f"aigateway-bench-{uuid.uuid4().hex[:12]}:"
    try:
        yield url, prefix
    finally:
        delete_redis_keys(url, prefix)


# -- the server -----------------------------------------------------------------------


@contextlib.contextmanager
def serve(
    backend: Backend,
    folder: Path,
    *,
    env: Mapping[str, str] | None = None,
    uvicorn_args: Sequence[str] = (),
    prepare: Callable[[GatewayServer], None] | None = None,
) -> Iterator[GatewayServer]:
    """The gateway (`python -m aigateway.serve`, WEB_CONCURRENCY worker processes) on
    `backend`, started, with its data in `folder`; stopped at the end and its PostgreSQL and
    Redis databases dropped. `prepare` runs before the server starts (management commands)."""
    with contextlib.ExitStack() as stack:
        overrides = {**(env or {}), "WEB_CONCURRENCY": str(backend.workers), "REDIS_URL": ""}
        database_url = ""
        if backend.database == "postgresql":
            database_url = stack.enter_context(fresh_postgres_database())
            redis_url, prefix = stack.enter_context(fresh_redis_prefix())
            overrides |= {"REDIS_URL": redis_url, "REDIS_KEY_PREFIX": prefix}
        server = GatewayServer(
            folder, env=overrides, uvicorn_args=uvicorn_args, database_url=database_url
        )
        if prepare is not None:
            prepare(server)
        yield stack.enter_context(server)


# -- the server's processes -----------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name (field 3 onwards), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_tree(root: int | None) -> list[int]:
    """root and every process descended from it (uvicorn's workers), from /proc."""
    if root is None:
        return []
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, []))
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of these processes (0 for any that is gone)."""
    total = 0.0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def cpu_each(pids: Sequence[int]) -> dict[int, float]:
    """CPU seconds of each of these processes."""
    return {pid: cpu_seconds([pid]) for pid in pids}


def busiest_share(before: dict[int, float], after: dict[int, float]) -> float:
    """Of the CPU the processes used between two cpu_each() readings, the share of the
    busiest one: 1.0 for a single process; 1/N when N workers took equal parts."""
    used = [after[pid] - before.get(pid, 0.0) for pid in after]
    return max(used) / sum(used) if sum(used) > 0 else float("nan")


def memory_mb(pids: Sequence[int], field_name: str = "VmRSS") -> float:
    """VmRSS (now) or VmHWM (each one's peak) summed over these processes, in MB."""
    total, seen = 0.0, False
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith(field_name + ":"):
                total += int(line.split()[1]) / 1024
                seen = True
    return total if seen else float("nan")


def postgres_backends(database_url: str) -> list[int]:
    """The PostgreSQL server processes serving database_url's database right now (the
    gateway's pooled connections; this query's own session excluded)."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as con:
        rows = con.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [int(pid) for (pid,) in rows]


def redis_server(redis_url: str) -> list[int]:
    """The Redis server's process, if it runs on this machine (shared with any other user)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        pid = int(client.info("server")["process_id"])
    finally:
        client.close()
    return [pid] if Path(f"/proc/{pid}").exists() else []


def cpu_groups(server: GatewayServer) -> dict[str, list[int]]:
    """The processes whose CPU a case is charged for: the gateway's tree and, on
    PostgreSQL, the database sessions it holds and the Redis server. Taken after a warm-up,
    when the pool has opened the connections the load needs."""
    groups = {"gateway": process_tree(server.pid)}
    if server.database_url:
        groups["postgres"] = postgres_backends(server.database_url)
        groups["redis"] = redis_server(server.env["REDIS_URL"])
    return groups


# -- reading two backends side by side ------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def side_by_side(labels: Sequence[str], rows: Sequence[tuple[str, Sequence[str], str]]) -> str:
    """A Markdown table: one row per figure, one column per backend, then a ratio column."""
    lines = [
        "| figure | " + " | ".join(labels) + " | ratio |",
        "|" + "---|" * (len(labels) + 2),
    ]
    for name, values, ratio in rows:
        lines.append(f"| {name} | " + " | ".join(values) + f" | {ratio} |")
    return "\n".join(lines)


def ratio(scaled: float, base: float) -> str:
    return f"{scaled / base:.2f}x" if base else "-"


def figure(name: str, values: Sequence[float], spec: str = ",.0f") -> tuple[str, list[str], str]:
    """A side_by_side row: each backend's value formatted with spec, last over first."""
    return name, [format(value, spec) for value in values], ratio(values[-1], values[0])


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"
