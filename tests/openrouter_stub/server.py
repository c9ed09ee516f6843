"""`StubServer`: run the stub under uvicorn on a free loopback port in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from .app import create_app
from .state import FaultRule, Generation, StubState, VideoJob

STARTUP_TIMEOUT = 10.0


def uvicorn_config(app: Any, host: str, port: int, **overrides: Any) -> uvicorn.Config:
    """Quiet, benchmark-friendly settings shared by the stand-ins' servers and CLIs."""
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": "warning",
        "access_log": False,
        "lifespan": "off",
        "proxy_headers": False,
        "server_header": False,
        "backlog": 4096,
        "timeout_keep_alive": 30,
        "timeout_graceful_shutdown": 1,
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)


class StubServer:
    """The stub on `127.0.0.1:<free port>`, for tests and benchmarks.

    >>> with StubServer(api_key="k", video_seconds=0.3) as stub:
    ...     httpx.get(stub.base_url + "/models")
    """

    def __init__(
        self,
        api_key: str = "stub-key",
        *,
        video_seconds: float = 3.0,
        latency: float = 0.0,
        token_delay: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.app = create_app(
            api_key, video_seconds=video_seconds, latency=latency, token_delay=token_delay
        )
        self.api_key = api_key
        self.host = host
        self._requested_port = port
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> StubState:
        return self.app.state

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """OpenRouter-style base URL, e.g. `http://127.0.0.1:PORT/api/v1`."""
        return self.root_url + "/api/v1"

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> StubServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        self.port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn_config(self.app, self.host, self.port))
        self._server = server
        # uvicorn.Server.run gives the thread its own event loop; signals stay with main.
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="openrouter-stub", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise RuntimeError("OpenRouter stub did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=10)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- control (same effects as the /_stub/ endpoints) ----------------------------------
    def add_fault(self, **rule: Any) -> FaultRule:
        """One rule, e.g. `add_fault(path="/api/v1/chat/completions", status=429, times=1)`."""
        rules = self.state.add_faults(rule)
        if not rules:
            raise ValueError("not a fault rule; use configure() for global settings")
        return rules[0]

    def add_faults(self, rules: list[dict[str, Any]]) -> list[FaultRule]:
        return self.state.add_faults(rules)

    def clear_faults(self) -> None:
        self.state.clear_faults()

    def configure(
        self,
        *,
        latency: float | None = None,
        token_delay: float | None = None,
        video_seconds: float | None = None,
        keepalive_interval: float | None = None,
        generation_stats_lag: float | None = None,
        require_user: bool | None = None,
    ) -> None:
        """Change global settings; None leaves a setting as it is."""
        values = {
            "latency": latency,
            "token_delay": token_delay,
            "video_seconds": video_seconds,
            "keepalive_interval": keepalive_interval,
            "generation_stats_lag": generation_stats_lag,
            "require_user": require_user,
        }
        self.state.update_settings(
            {key: value for key, value in values.items() if value is not None}
        )

    def requests(self, path: str = "") -> list[dict[str, Any]]:
        """Logged requests (oldest first), optionally only those whose path starts with `path`."""
        return [entry for entry in self.state.log_json() if entry["path"].startswith(path)]

    def users(self, path: str = "") -> list[Any]:
        """The `user` field of each generation request (None where absent), oldest first,
        optionally only for paths starting with `path` (e.g. "/api/v1/embeddings")."""
        return [entry["user"] for entry in self.state.users_json(path)]

    def generation(self, generation_id: str) -> Generation:
        """What the stub recorded for a generation id (KeyError if it never made it)."""
        return self.state.generations[generation_id]

    def generations(self) -> list[Generation]:
        return list(self.state.generations.values())

    def wait_until_abandoned(self, generation_id: str, timeout: float = 5.0) -> Generation:
        """Block until the stub has seen the client hang up on that stream."""
        deadline = time.monotonic() + timeout
        while True:
            generation = self.state.generations.get(generation_id)
            if generation is not None and generation.abandoned:
                return generation
            if time.monotonic() > deadline:
                raise TimeoutError(f"stream {generation_id} was not abandoned within {timeout} s")
            time.sleep(0.01)

    def video_job(self, job_id: str) -> VideoJob:
        """A video job with its `polls` and `downloads` counters (KeyError if unknown)."""
        return self.state.jobs[job_id]

    def forget_video_job(self, job_id: str) -> None:
        """From now on polls and content of the job answer 404, as if the upstream lost it."""
        job = self.state.jobs[job_id]
        job.forget_after_polls = job.polls

    def reset(self) -> None:
        """Clear faults, the logs, generations and video jobs; restore the start-up settings."""
        self.state.reset()
