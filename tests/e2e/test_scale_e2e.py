"""Three worker processes on PostgreSQL and Redis (WEB_CONCURRENCY=3) keep the single
process's guarantees: a sign-out, a revoked family or a role change holds on the next
request whichever worker answers it, one refresh token is spent once, rate limits count
for the deployment, a video job is polled by one worker at a time and downloaded once, a
killed worker loses no acknowledged registration, and SIGTERM stops every worker cleanly.

Every request goes out on a new connection, so the kernel spreads them over the workers;
each carries an X-Request-ID and the server log says which worker (pid) answered it.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, bearer, unique_email
from tests.openrouter_stub import StubServer
from tests.servers import GatewayServer
from tests.services import delete_redis_keys

pytestmark = pytest.mark.postgresql_only

WORKERS = 3
USER_LIMIT = 300  # requests per minute per user, for the deployment
API_KEY = "sk-or-v1-e2e-scale-0123456789abcdef0123456789abcdef"
VIDEO_MODEL = "google/veo-3.1-fast"
_SERVED = re.compile(r"\[(\d+)\] INFO aigateway\.request request id=(\S+) ")


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"aigateway-e2e-{uuid.uuid4().hex[:12]}:"
    yield prefix
    delete_redis_keys(redis_url, prefix)


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with StubServer(api_key=API_KEY, video_seconds=6.0) as server:
        yield server


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, redis_prefix: str, stub: StubServer
) -> Iterator[GatewayServer]:
    env = {
        "WEB_CONCURRENCY": str(WORKERS),
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": redis_prefix,
        "RATE_LIMIT_USER": f"{USER_LIMIT}/min",
        "OPENROUTER_BASE_URL": stub.base_url,
        "OPENROUTER_API_KEY": API_KEY,
    }
    server = GatewayServer(tmp_path_factory.mktemp("cluster"), env=env, startup_timeout=60)
    server.create_admin(ADMIN_EMAIL, ADMIN_PASSWORD)
    server.start()
    try:
        wait_for_workers(server, WORKERS)
        yield server
    finally:
        try:
            server.stop(timeout=30)
        finally:
            server.kill()


def wait_for_workers(server: GatewayServer, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(server.worker_pids()) == count and healthy(server):
            started = server.log_text().count("Application startup complete.")
            if started >= count:
                return
        time.sleep(0.2)
    raise AssertionError(f"{count} workers did not start. Log tail:\n{server.log_tail()}")


def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def healthy(server: GatewayServer) -> bool:
    try:
        with server.client(timeout=2.0) as http:
            return http.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False


class Fresh:
    """Requests on a new connection each, tagged with a request id to find who served them."""

    def __init__(self, server: GatewayServer) -> None:
        self.http = server.client(limits=httpx.Limits(max_keepalive_connections=0))

    def __enter__(self) -> Fresh:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def send(self, method: str, path: str, tag: str = "", **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if tag:
            headers["X-Request-ID"] = tag
        return self.http.request(method, path, headers=headers, **kwargs)


def served_by(server: GatewayServer) -> dict[str, int]:
    """Request id -> pid of the worker that answered it, from the server log."""
    return {rid: int(pid) for pid, rid in _SERVED.findall(server.log_text())}


def register(fresh: Fresh, prefix: str) -> tuple[str, str]:
    email = unique_email(prefix)
    made = fresh.send("POST", "/api/auth/register", json={"email": email, "password": PASSWORD})
    assert made.status_code == 201, made.text
    return email, made.json()["id"]


def log_in(fresh: Fresh, email: str, password: str = PASSWORD, tag: str = "") -> dict[str, str]:
    response = fresh.send(
        "POST", "/api/auth/login", tag, json={"email": email, "password": password}
    )
    assert response.status_code == 200, response.text
    tokens: dict[str, str] = response.json()
    return tokens


def tag(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:16]}"


# -- revocation -------------------------------------------------------------------------

TRIALS = 1000
LANES = 4  # independent users, each running its trials one after the other


def test_a_thousand_logouts_hold_on_the_next_request_to_any_worker(
    cluster: GatewayServer,
) -> None:
    def lane(number: int) -> list[tuple[str, str, int]]:
        outcomes = []
        with Fresh(cluster) as fresh:
            email, _ = register(fresh, f"lane{number}")
            for _ in range(TRIALS // LANES):
                tokens = log_in(fresh, email)
                out, use = tag("logout"), tag("use")
                ended = fresh.send(
                    "POST", "/api/auth/logout", out,
                    json={"refresh_token": tokens["refresh_token"]},
                )  # fmt: skip
                assert ended.status_code in (200, 204), ended.text
                me = fresh.send("GET", "/api/users/me", use, headers=bearer(tokens["access_token"]))
                outcomes.append((out, use, me.status_code))
        return outcomes

    with ThreadPoolExecutor(LANES) as pool:
        trials = [trial for outcome in pool.map(lane, range(LANES)) for trial in outcome]

    assert len(trials) == TRIALS
    leaks = [trial for trial in trials if trial[2] != 401]
    assert leaks == [], f"{len(leaks)} of {TRIALS} revoked sessions still answered"
    workers = served_by(cluster)
    across = sum(1 for out, use, _ in trials if workers[out] != workers[use])
    assert len({workers[use] for _, use, _ in trials}) == WORKERS
    # The kernel spreads new connections over the workers; most trials cross them.
    assert across >= TRIALS // 4, f"only {across} of {TRIALS} trials crossed workers"


def test_twenty_refreshes_over_all_workers_let_one_through_and_the_reuse_ends_the_family(
    cluster: GatewayServer,
) -> None:
    with Fresh(cluster) as fresh:
        email, _ = register(fresh, "race")
        tokens = log_in(fresh, email)
    barrier = threading.Barrier(20)

    def refresh(_: int) -> tuple[str, httpx.Response]:
        with Fresh(cluster) as mine:
            rid = tag("refresh")
            barrier.wait()
            return rid, mine.send(
                "POST", "/api/auth/refresh", rid, json={"refresh_token": tokens["refresh_token"]}
            )

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(refresh, range(20)))

    statuses = Counter(response.status_code for _, response in results)
    assert statuses == {200: 1, 401: 19}, statuses
    workers = served_by(cluster)
    assert len({workers[rid] for rid, _ in results}) >= 2
    # The 19 replays revoked the family: the winner's new tokens are dead on every worker.
    won = next(response.json() for _, response in results if response.status_code == 200)
    with Fresh(cluster) as fresh:
        for _ in range(WORKERS * 3):
            me = fresh.send("GET", "/api/users/me", headers=bearer(won["access_token"]))
            assert me.status_code == 401, me.text
        again = fresh.send(
            "POST", "/api/auth/refresh", json={"refresh_token": won["refresh_token"]}
        )
        assert again.status_code == 401


def test_a_role_change_and_an_api_key_revocation_are_seen_on_the_next_request(
    cluster: GatewayServer,
) -> None:
    with Fresh(cluster) as fresh:
        admin = bearer(log_in(fresh, ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"])
        email, user_id = register(fresh, "promoted")
        user = bearer(log_in(fresh, email)["access_token"])
        for _ in range(10):
            up = fresh.send(
                "PUT", f"/api/users/{user_id}/role", json={"role": "admin"}, headers=admin
            )
            assert up.status_code == 200
            assert fresh.send("GET", "/api/users", headers=user).status_code == 200
            down = fresh.send(
                "PUT", f"/api/users/{user_id}/role", json={"role": "user"}, headers=admin
            )
            assert down.status_code == 200
            assert fresh.send("GET", "/api/users", headers=user).status_code == 403
        for _ in range(10):
            made = fresh.send("POST", "/api/auth/keys", json={"name": "k"}, headers=user)
            assert made.status_code == 201, made.text
            key = made.json()
            secret = bearer(key["key"])
            assert fresh.send("GET", "/api/users/me", headers=secret).status_code == 200
            gone = fresh.send("DELETE", f"/api/auth/keys/{key['id']}", headers=user)
            assert gone.status_code == 204
            assert fresh.send("GET", "/api/users/me", headers=secret).status_code == 401


def test_the_rate_limit_counts_once_for_all_workers(cluster: GatewayServer) -> None:
    with Fresh(cluster) as fresh:
        email, _ = register(fresh, "limited")
        access = bearer(log_in(fresh, email)["access_token"])
        tags = [tag("limited") for _ in range(USER_LIMIT + 20)]
        statuses = [fresh.send("GET", "/api/users/me", t, headers=access).status_code for t in tags]
    assert Counter(statuses) == {200: USER_LIMIT, 429: 20}
    assert statuses[:USER_LIMIT] == [200] * USER_LIMIT
    workers = served_by(cluster)
    assert len({workers[t] for t in tags}) == WORKERS


# -- video jobs -------------------------------------------------------------------------


def test_each_video_job_is_polled_by_one_worker_at_a_time_and_downloaded_once(
    cluster: GatewayServer, stub: StubServer
) -> None:
    stub.reset()
    with Fresh(cluster) as fresh:
        email, _ = register(fresh, "video")
        user = bearer(log_in(fresh, email)["access_token"])
        submitted = fresh.send(
            "POST", "/api/generate/video",
            json={"model": VIDEO_MODEL, "prompt": "a beach", "duration": 4}, headers=user,
        )  # fmt: skip
        assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    done = threading.Event()
    seen: list[dict[str, Any]] = []

    def watch(_: int) -> None:  # three impatient clients, on every worker
        with Fresh(cluster) as mine:
            deadline = time.monotonic() + 60
            while not done.is_set() and time.monotonic() < deadline:
                answer = mine.send("GET", f"/api/generate/video/{job_id}", headers=user)
                assert answer.status_code == 200, answer.text
                job = answer.json()
                if job["status"] == "completed" and job["video_url"]:
                    seen.append(job)
                    done.set()
                time.sleep(0.2)

    with ThreadPoolExecutor(3) as pool:
        list(pool.map(watch, range(3)))
    assert seen, "the video job did not finish within 60 s"

    calls = stub.requests("/api/v1/videos/")
    polls = sorted(c["time"] for c in calls if not c["path"].endswith("/content"))
    downloads = [c for c in calls if c["path"].endswith("/content")]
    assert len(downloads) == 1
    assert polls, "never polled"
    gaps = [later - earlier for earlier, later in itertools.pairwise(polls)]
    # POLL_INTERVAL is 5 s: two workers polling the same job at once would be ~0 s apart.
    assert all(gap > 4.0 for gap in gaps), gaps


# -- crashes and shutdown ---------------------------------------------------------------


def test_a_worker_killed_during_a_burst_of_registrations_loses_no_acknowledged_row(
    cluster: GatewayServer,
) -> None:
    acknowledged: list[str] = []
    failed = Counter[str]()
    stop = threading.Event()

    def burst(_: int) -> None:
        with Fresh(cluster) as fresh:
            while not stop.is_set():
                email = unique_email("burst")
                try:
                    made = fresh.send(
                        "POST", "/api/auth/register", json={"email": email, "password": PASSWORD}
                    )
                except httpx.TransportError as exc:
                    failed[type(exc).__name__] += 1
                    continue
                if made.status_code == 201:
                    acknowledged.append(email)
                else:
                    failed[str(made.status_code)] += 1

    victim = cluster.worker_pids()[0]
    started = cluster.log_text().count("Application startup complete.")
    with ThreadPoolExecutor(6) as pool:
        running = [pool.submit(burst, n) for n in range(6)]
        wait_until(lambda: len(acknowledged) >= 6, 60)
        os.kill(victim, signal.SIGKILL)  # while registrations are in flight on every worker
        before = len(acknowledged)
        wait_until(lambda: len(acknowledged) >= before + 12, 60)
        stop.set()
        for future in running:
            future.result()

    assert len(acknowledged) >= 18, (len(acknowledged), failed)
    stored = {
        email
        for (email,) in cluster.query("SELECT email FROM users WHERE email LIKE ?", ["burst-%"])
    }
    lost = [email for email in acknowledged if email not in stored]
    assert lost == [], f"{len(lost)} acknowledged registrations are missing"
    # uvicorn's supervisor replaced the worker (the killed one stays listed until it is
    # reaped); the replacement found the others serving and left their unfinished calls alone.
    wait_until(lambda: victim not in cluster.worker_pids(), 60)
    wait_until(lambda: cluster.log_text().count("Application startup complete.") > started, 60)
    wait_for_workers(cluster, WORKERS)
    assert "other workers are serving" in cluster.log_text()


def test_sigterm_stops_every_worker_after_it_flushed_its_buffered_rows(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    env = {
        "WEB_CONCURRENCY": str(WORKERS),
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": f"{redis_prefix}sigterm:",  # not the cluster's catalogue
        # A key but no upstream: every catalogue request fails fast and buffers a usage row.
        "OPENROUTER_API_KEY": API_KEY,
        "OPENROUTER_MAX_RETRIES": "0",
    }
    server = GatewayServer(tmp_path / "gateway", env=env, startup_timeout=60)
    server.start()
    try:
        wait_for_workers(server, WORKERS)
        with Fresh(server) as fresh:
            email, _ = register(fresh, "buffered")
            access = bearer(log_in(fresh, email)["access_token"])
            # New connections until two workers have answered (which worker accepts one is
            # the kernel's choice), at least twelve of them.
            tags: list[str] = []
            while len(tags) < 12 or (
                len({served_by(server)[t] for t in tags}) < 2 and len(tags) < 300
            ):
                tags.append(tag("models"))
                assert (
                    fresh.send("GET", "/api/ai/models", tags[-1], headers=access).status_code >= 500
                )
        answered_by = {served_by(server)[t] for t in tags}
    finally:
        code = server.stop(timeout=30)  # at once: the rows are still in the workers' buffers
    log = server.log_text()
    assert code == 0
    assert log.count("Application shutdown complete.") == WORKERS
    assert "close hook failed" not in log and "Traceback" not in log
    assert len(answered_by) >= 2
    rows = server.query("SELECT count(*) FROM usage_records WHERE kind = 'models'")
    assert rows == [(len(tags),)]


# -- moving an installation -------------------------------------------------------------


def test_a_populated_duckdb_installation_moves_to_postgresql_and_serves_on_three_workers(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    from tests.services import new_postgres_schema

    single = GatewayServer(tmp_path / "duckdb", database_url="")
    with single, Fresh(single) as fresh:
        email, user_id = register(fresh, "moved")
        access = bearer(log_in(fresh, email)["access_token"])
        key = fresh.send("POST", "/api/auth/keys", json={"name": "moved"}, headers=access)
        assert key.status_code == 201, key.text
    target = new_postgres_schema()
    copied = single.manage("copy_database", "--to", target)
    assert copied.returncode == 0, copied.stderr
    assert "Traceback" not in copied.stderr + copied.stdout

    env = {
        "WEB_CONCURRENCY": str(WORKERS),
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": redis_prefix,
    }
    moved = GatewayServer(tmp_path / "postgres", env=env, database_url=target, startup_timeout=60)
    with moved:
        wait_for_workers(moved, WORKERS)
        with Fresh(moved) as fresh:
            for _ in range(WORKERS * 2):
                me = fresh.send("GET", "/api/users/me", headers=bearer(key.json()["key"]))
                assert me.status_code == 200 and me.json()["id"] == user_id
            assert log_in(fresh, email)["access_token"]
