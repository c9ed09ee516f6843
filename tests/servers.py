"""Run the real gateway (`python -m aigateway.serve`: uvicorn + `aigateway.asgi`) as a
subprocess on a loopback port.

Shared by the end-to-end tests, the browser tests and the benchmarks:

    with GatewayServer(tmp_path / "gateway") as server:
        server.client().get("/api/ping")
        server.kill()                      # SIGKILL: nothing flushed, nothing closed
        server.start()                     # same port, same database file
        assert "secret" not in server.log_text()

The server owns its database file while it runs, so management commands that open the
database (`createadmin`, `backup`) go through `server.manage(...)` before `start()` or
after `stop()`.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent

# Fixed so tokens stay valid across restarts of one server; never used outside tests.
SECRET_KEY = "gateway-test-secret-key-not-for-production-0123456789abcdefghijk"
STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
MANAGE_TIMEOUT = 120.0
POLL_INTERVAL = 0.05
# The discard port: nothing listens there, so a server without an upstream fails fast
# instead of reaching the real OpenRouter.
UNREACHABLE_UPSTREAM = "http://127.0.0.1:9/api/v1"

# Inherited variables that would quietly override what the helper sets.
_CLEARED = (
    "DJANGO_SETTINGS_MODULE",  # pytest-django sets tests.settings (fast hasher): not the real app
    "SECRET_KEY_FILE",
    "JWT_SIGNING_KEY",
    "JWT_SIGNING_KEY_FILE",
    "OPENROUTER_API_KEY_FILE",
)


class ServerError(RuntimeError):
    """The gateway did not start, or did not stop, as asked."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (uvicorn binds it with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def gateway_env(
    data_dir: Path, overrides: Mapping[str, str] | None = None, database_url: str = ""
) -> dict[str, str]:
    """The environment of a gateway whose database (the DuckDB file, unless database_url
    names a PostgreSQL database) and media live in data_dir.

    OPENROUTER_API_KEY and OPENROUTER_BASE_URL pass through from this process when set;
    otherwise there is no key and the upstream is an unreachable loopback port. Anything in
    `overrides` wins. (A `.env` file in the repository root still fills in variables left
    unset here: settings.py reads it.)
    """
    env = {name: value for name, value in os.environ.items() if name not in _CLEARED}
    api_key = os.environ.get("OPENROUTER_API_KEY", "")
    default_base = "https://openrouter.ai/api/v1" if api_key else UNREACHABLE_UPSTREAM
    env.update(
        DJANGO_SETTINGS_MODULE="aigateway.settings",
        SECRET_KEY=SECRET_KEY,
        DEBUG="false",
        DUCKDB_PATH=str(data_dir / "gateway.duckdb"),
        DATABASE_URL=database_url,
        MEDIA_ROOT=str(data_dir / "media"),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
        OPENROUTER_API_KEY=api_key,
        OPENROUTER_BASE_URL=os.environ.get("OPENROUTER_BASE_URL", default_base),
        # Tests and benchmarks drive one loopback address far past production limits; a
        # test of the limits passes its own RATE_LIMIT_* in overrides.
        RATE_LIMIT_USER="off",
        RATE_LIMIT_ANON="off",
        RATE_LIMIT_AUTH="off",
        RATE_LIMIT_AUTH_FAILURES="off",
    )
    env.update(overrides or {})
    return env


def run_manage(
    args: Iterable[str], env: Mapping[str, str], *, timeout: float = MANAGE_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """`python manage.py ARGS` from the repository root; output captured as text."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the child if the thread that started it dies,
    so a killed test run leaves no server holding a port and a database file."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return preexec


_PREEXEC = _die_with_parent()


def _is_worker(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"resource_tracker" not in command


_RUNNING: set[GatewayServer] = set()


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_RUNNING):
        server.kill()


class GatewayServer:
    """One `python -m aigateway.serve` process (uvicorn) on 127.0.0.1.

    Start it from a thread that outlives it (normally the main thread): on Linux the server
    is terminated when the starting thread exits.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        startup_timeout: float = STARTUP_TIMEOUT,
        uvicorn_args: Iterable[str] = (),
        database_url: str | None = None,
    ) -> None:
        """`uvicorn_args` are appended to `python -m aigateway.serve` (e.g. `--backlog 4096`).

        `database_url`: a PostgreSQL database for the server; by default a fresh schema when
        the test run is on PostgreSQL (TEST_BACKEND=postgresql), else a DuckDB file.
        """
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if database_url is None and os.environ.get("TEST_BACKEND") == "postgresql":
            from tests.services import new_postgres_schema

            database_url = new_postgres_schema()
        self.database_url = database_url or ""
        self.env = gateway_env(self.data_dir, env, self.database_url)
        self.host = "127.0.0.1"
        self.port = port or free_port(self.host)
        self.startup_timeout = startup_timeout
        self.uvicorn_args = list(uvicorn_args)
        self.log_path = self.data_dir / "server.log"
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None

    # -- where -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def db_path(self) -> Path:
        return Path(self.env["DUCKDB_PATH"])

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> GatewayServer:
        """Start on this server's port and database, and wait until /healthz answers."""
        if self.running:
            raise ServerError(f"The gateway is already running (pid {self.pid}).")
        self.starts += 1
        # The documented start command: uvicorn configured from the settings.
        command = [
            sys.executable,
            "-m",
            "aigateway.serve",
            "--host",
            self.host,
            "--port",
            str(self.port),
            *self.uvicorn_args,
        ]
        with self.log_path.open("ab") as log:
            log.write(f"=== gateway start #{self.starts} on port {self.port} ===\n".encode())
            log.flush()
            # The child keeps its own copy of the log descriptor; ours closes here.
            self._process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_PREEXEC,
            )
        _RUNNING.add(self)
        try:
            self._wait_until_healthy()
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_until_healthy(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        with httpx.Client(base_url=self.base_url, timeout=2.0, trust_env=False) as client:
            while True:
                code = self._process.poll()
                if code is not None:
                    raise ServerError(
                        f"The gateway exited with code {code} during start-up. "
                        f"Log tail:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if client.get("/healthz").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise ServerError(
                        f"The gateway did not answer /healthz within {self.startup_timeout:.0f}"
                        f" s on {self.base_url}. Log tail:\n{self.log_tail()}"
                    )
                time.sleep(POLL_INTERVAL)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM and wait for a graceful shutdown (SIGKILL after timeout); the exit code."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                self._forget()
                raise ServerError(
                    f"The gateway ignored SIGTERM for {timeout:.0f} s and was killed. "
                    f"Log tail:\n{self.log_tail()}"
                ) from None
        self._forget()
        return process.returncode

    def kill(self) -> None:
        """SIGKILL: the process (and its workers) get no chance to flush or close anything."""
        process = self._process
        if process is None:
            return
        workers = self.worker_pids()
        if process.poll() is None:
            process.kill()
        for pid in workers:  # spawned by uvicorn's supervisor: nothing else would stop them
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait()
        self._forget()

    def worker_pids(self) -> list[int]:
        """The worker processes of a server started with several (WEB_CONCURRENCY), by pid;
        empty for one process. Linux only (/proc)."""
        if self._process is None:
            return []
        pid = self._process.pid
        path = Path(f"/proc/{pid}/task/{pid}/children")
        try:
            children = [int(child) for child in path.read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            return []
        # uvicorn's workers, not multiprocessing's resource tracker
        return [child for child in children if _is_worker(child)]

    def restart(self) -> GatewayServer:
        self.stop()
        return self.start()

    def _forget(self) -> None:
        self._process = None
        _RUNNING.discard(self)

    def __enter__(self) -> GatewayServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self.stop()
        finally:
            self.kill()

    # -- talking to it ---------------------------------------------------------------

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client for this server (proxy settings of the environment ignored)."""
        kwargs.setdefault("timeout", 30.0)
        return httpx.Client(base_url=self.base_url, trust_env=False, **kwargs)

    def async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        kwargs.setdefault("timeout", 30.0)
        return httpx.AsyncClient(base_url=self.base_url, trust_env=False, **kwargs)

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`manage.py ARGS` against this server's database and settings."""
        return run_manage(args, self.env)

    def create_admin(self, email: str, password: str) -> None:
        """`manage.py createadmin`, which must succeed (before the server starts, on DuckDB)."""
        made = self.manage("createadmin", "--email", email, "--password", password)
        assert made.returncode == 0, made.stderr

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a `?`-placeholder query on this server's database, read directly: on
        DuckDB only while the server is stopped (it holds the file), on PostgreSQL anytime."""
        if self.database_url:
            import psycopg

            from core.db.postgres import connection_info, to_psycopg

            with psycopg.connect(connection_info(self.database_url)) as con:
                return con.execute(to_psycopg(sql), list(params)).fetchall()
        import duckdb

        con = duckdb.connect(str(self.db_path), read_only=True)
        try:
            return con.execute(sql, list(params)).fetchall()
        finally:
            con.close()

    # -- its output ------------------------------------------------------------------

    def log_text(self) -> str:
        """Everything the server wrote to stdout and stderr, over all its starts."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])
