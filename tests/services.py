"""PostgreSQL and Redis for the test suite: the ones at TEST_DATABASE_URL and TEST_REDIS_URL
(defaults: the local services), or throwaway servers started from Debian's `postgresql` and
`redis-server` packages when nothing answers there.

A throwaway server lives in a temporary folder on a free loopback port for as long as the
process that started it, and is stopped and deleted at exit. PostgreSQL refuses to run as
root, so as root it runs as the `postgres` system user the Debian package creates.

`python -m tests.services packages` prints the Debian packages the suite still needs
(nothing answers and the server program is missing); scripts/install-test-packages.sh
installs them.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
START_TIMEOUT = 30.0


def database_url_setting() -> str:
    return os.environ.get("TEST_DATABASE_URL") or DEFAULT_DATABASE_URL


def redis_url_setting() -> str:
    return os.environ.get("TEST_REDIS_URL") or DEFAULT_REDIS_URL


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- reachability ---------------------------------------------------------------------


def postgres_problem(url: str) -> str | None:
    """None if a session can be opened at url, else why not."""
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


def redis_problem(url: str) -> str | None:
    """None if the Redis server at url answers PING, else why not."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 3) as s:
            s.sendall(b"PING\r\n")
            reply = s.recv(64)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if reply.startswith(b"+PONG") else f"unexpected reply {reply[:20]!r}"


# -- the server programs --------------------------------------------------------------


def postgres_bin_dir() -> Path | None:
    """Debian's /usr/lib/postgresql/N/bin (the newest), or wherever initdb is on PATH."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
    )
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def redis_server_program() -> str | None:
    return shutil.which("redis-server")


def needed_packages() -> list[str]:
    """Debian packages to install: for each service nothing answers for, whose server
    program is missing."""
    needed = []
    if postgres_problem(database_url_setting()) and postgres_bin_dir() is None:
        needed.append("postgresql")
    if redis_problem(redis_url_setting()) and redis_server_program() is None:
        needed.append("redis-server")
    return needed


# -- throwaway servers ----------------------------------------------------------------


@dataclass
class Throwaway:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    folder: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            # SIGINT is PostgreSQL's fast shutdown; Redis exits on it too.
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


_started: list[Throwaway] = []


@atexit.register
def _stop_all() -> None:
    while _started:
        _started.pop().stop()


def _wait(ready: Callable[[], str | None], process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    problem = ready()
    while problem:
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"the throwaway server did not start ({problem}):\n{tail}")
        time.sleep(0.1)
        problem = ready()


def start_postgres() -> Throwaway:
    """initdb into a temporary folder and start postgres there on a free port."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL's server programs are not installed (Debian: postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="aigateway-postgres-"))
    user = None
    if os.geteuid() == 0:  # postgres refuses root: run it as the postgres system user
        account = pwd.getpwnam("postgres")
        os.chown(folder, account.pw_uid, account.pw_gid)
        user = "postgres"
    data, log = folder / "data", folder / "server.log"
    subprocess.run(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
         "-E", "UTF8", "--no-sync", "--no-instructions"],
        check=True, capture_output=True, user=user, cwd=folder,
    )  # fmt: skip
    port = free_port()
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(folder),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off",
             "-c", "max_connections=300"],
            stdout=out, stderr=subprocess.STDOUT, user=user, cwd=folder,
            start_new_session=True,
        )  # fmt: skip
    server = f"postgresql://postgres@127.0.0.1:{port}"
    _wait(lambda: postgres_problem(f"{server}/postgres"), process, log)
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as con:
        con.execute("CREATE DATABASE test")
    throwaway = Throwaway("postgres", f"{server}/test", process, folder)
    _started.append(throwaway)
    return throwaway


def start_redis() -> Throwaway:
    program = redis_server_program()
    if program is None:
        raise RuntimeError("redis-server is not installed (Debian: redis-server)")
    folder = Path(tempfile.mkdtemp(prefix="aigateway-redis-"))
    port, log = free_port(), folder / "server.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [program, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(folder)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    _wait(lambda: redis_problem(url), process, log)
    throwaway = Throwaway("redis", url, process, folder)
    _started.append(throwaway)
    return throwaway


def delete_redis_keys(url: str, prefix: str) -> None:
    """Delete the keys under prefix (never FLUSHDB: the Redis may be shared)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


# -- what the suite asks for ----------------------------------------------------------

_resolved: dict[str, tuple[str | None, str]] = {}


def postgres_url() -> tuple[str | None, str]:
    """(a reachable PostgreSQL URL, how it was found) or (None, why there is none)."""
    if "postgres" not in _resolved:
        _resolved["postgres"] = _resolve(database_url_setting(), postgres_problem, start_postgres)
    return _resolved["postgres"]


def redis_url() -> tuple[str | None, str]:
    if "redis" not in _resolved:
        _resolved["redis"] = _resolve(redis_url_setting(), redis_problem, start_redis)
    return _resolved["redis"]


def _resolve(
    url: str,
    problem_at: Callable[[str], str | None],
    start: Callable[[], Throwaway],
) -> tuple[str | None, str]:
    problem = problem_at(url)
    if problem is None:
        return url, f"the server at {url}"
    try:
        started = start()
    except (RuntimeError, OSError, subprocess.CalledProcessError, KeyError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        text = detail.decode(errors="replace").strip() if isinstance(detail, bytes) else ""
        return None, f"nothing answers at {url} ({problem}) and no throwaway server: {exc} {text}"
    return started.url, f"a throwaway {started.name} server ({url}: {problem})"


_schemas: list[tuple[str, str]] = []


def new_postgres_schema() -> str:
    """A fresh schema in the suite's PostgreSQL, for a server process of its own; the URL
    of a database living in it. Dropped when this process exits."""
    import psycopg

    url, how = postgres_url()
    if url is None:
        raise RuntimeError(f"no PostgreSQL: {how}")
    schema = f"server_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {schema}")
    _schemas.append((url, schema))
    return with_schema(url, schema)


def with_schema(url: str, schema: str) -> str:
    """url whose sessions create and find tables in schema."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={schema}')}"


@atexit.register
def _drop_schemas() -> None:
    import psycopg

    while _schemas:
        url, schema = _schemas.pop()
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=3) as con:
                con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        except psycopg.Error:
            pass  # a throwaway server may already be gone, and its schemas with it


if __name__ == "__main__":
    if sys.argv[1:] == ["packages"]:
        print(" ".join(needed_packages()))
    else:
        raise SystemExit("usage: python -m tests.services packages")
