"""How fast is GET /api/admin/stats on a large database?

Fills a fresh DuckDB file with synthetic users, usage_records and generations (1,000,000
rows each by default, appended in time order over the last --days days, as a real server
appends them), then times:

  service      adminops.services.collect_stats() in this process (the whole report)
  queries      its four big queries, each alone (the service runs them side by side)
  HTTP         GET /api/admin/stats on the real server (uvicorn, DEBUG off), as an admin

and prints p50/p99 per case and the command that reproduces the run. Target: HTTP p50 at
most 100 ms.

    .venv/bin/python bench/stats_bench.py [--rows 1000000] [--generations 1000000] [--runs 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.servers import GatewayServer  # noqa: E402

TARGET_P50_MS = 100.0
ADMIN_EMAIL = "bench-admin@example.com"
ADMIN_PASSWORD = "bench admin horse battery"

# Synthetic data, generated inside DuckDB from range(): about a second per million rows.
# Rows are appended oldest first, as a running server appends them.
KINDS = ["text"] * 4 + ["chat"] * 3 + ["image"] * 2 + ["video", "models", "video_poll"]
FILL_USERS = """
INSERT INTO users (id, email, email_key, password_hash, role, is_active, created_at, updated_at)
SELECT uuid(), 'bench-' || i || '@example.com', 'bench-' || i || '@example.com', '!', 'user',
       TRUE, now()::TIMESTAMP, now()::TIMESTAMP
FROM range($users) AS r(i)
"""
FILL_USAGE = """
INSERT INTO usage_records (occurred_at, user_id, kind, model, tokens_in, tokens_out, cost,
                           latency_ms, status, error_code)
WITH ids AS (SELECT list(id ORDER BY email) AS ids, count(*) AS n FROM users),
rows AS (
    SELECT i, $kinds[1 + (hash(i) % len($kinds))::INTEGER] AS kind, hash(i * 7 + 1) % 1000 AS r
    FROM range($rows) AS t(i)
)
SELECT
    now()::TIMESTAMP - to_microseconds((($rows - i) * ($days * 86400000000 // $rows))::BIGINT),
    ids.ids[1 + (hash(i * 3) % ids.n)::INTEGER],
    kind,
    CASE WHEN kind = 'models' THEN NULL
         ELSE 'vendor-' || (r % 9) || '/model-' || (hash(i * 5) % 60) END,
    CASE WHEN kind IN ('text', 'chat') THEN 50 + r * 3 END,
    CASE WHEN kind IN ('text', 'chat') THEN 20 + r END,
    CASE WHEN kind IN ('models', 'video_poll') THEN NULL ELSE r / 100000.0 END,
    100 + r,
    CASE WHEN r < 30 THEN 'error' ELSE 'ok' END,
    CASE WHEN r < 30 THEN 'upstream_error' END
FROM rows, ids
"""
FILL_GENERATIONS = """
INSERT INTO generations (id, user_id, kind, model, prompt, params, status, output_text, media,
                         tokens_in, tokens_out, cost, created_at, finished_at)
WITH ids AS (SELECT list(id ORDER BY email) AS ids, count(*) AS n FROM users),
rows AS (
    SELECT i, $kinds[1 + (hash(i) % 10)::INTEGER] AS kind, hash(i * 7 + 1) % 1000 AS r,
           now()::TIMESTAMP
             - to_microseconds((($rows - i) * ($days * 86400000000 // $rows))::BIGINT) AS stamp
    FROM range($rows) AS t(i)
)
SELECT
    uuid(), ids.ids[1 + (hash(i * 3) % ids.n)::INTEGER], kind,
    'vendor-' || (r % 9) || '/model-' || (hash(i * 5) % 60),
    'a synthetic prompt number ' || i, '{}',
    CASE WHEN r < 30 THEN 'failed' ELSE 'completed' END,
    CASE WHEN kind IN ('text', 'chat') THEN 'an answer' END, '[]',
    50 + r * 3, 20 + r, r / 100000.0, stamp, stamp
FROM rows, ids
"""


def fill(db_path: Path, *, users: int, usage: int, generations: int, days: int) -> float:
    """Create the schema (the app's own migrations) and the synthetic rows; seconds taken."""
    from core.db import Database, Tx

    started = time.perf_counter()
    db = Database(db_path).open()

    def insert(tx: Tx) -> None:
        tx.execute(FILL_USERS, {"users": users})
        tx.execute(FILL_USAGE, {"rows": usage, "days": days, "kinds": KINDS})
        # Generations only of the first 10 kinds: the gateway's own (no listings, no polls).
        tx.execute(FILL_GENERATIONS, {"rows": generations, "days": days, "kinds": KINDS})

    db.write(insert)
    db.write(lambda tx: tx.execute("CHECKPOINT"))
    db.close()
    os.sync()  # so the disk is not still writing the new file while the timings run
    return time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


class Case:
    def __init__(self, name: str, samples: list[float]) -> None:
        self.name = name
        self.samples = samples

    def row(self) -> str:
        s = self.samples
        return (
            f"| {self.name:<38} | {len(s):>4} | {statistics.median(s):>8.1f} "
            f"| {percentile(s, 0.99):>8.1f} | {min(s):>8.1f} | {max(s):>8.1f} |"
        )


async def timed(fn: Callable[[], Awaitable[Any]], runs: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        await fn()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def in_process_cases(db_path: Path, runs: int) -> list[Case]:
    """Time the service and its two big queries in this process (no HTTP)."""
    os.environ["DUCKDB_PATH"] = str(db_path)
    import django

    django.setup()
    from adminops import repository as repo
    from adminops.services import collect_stats
    from core.clock import utcnow
    from core.db import Database, use_database

    db = Database(db_path).open()
    use_database(db)
    # The service's window: the start of the UTC day 29 days ago.
    since = utcnow().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=29)

    queries: list[tuple[str, Callable[..., Any], tuple[Any, ...]]] = [
        ("  usage by day and kind", repo.usage_by_day_and_kind, (since,)),
        ("  usage top 20 models", repo.usage_top_models, (since, 20)),
        ("  usage top 10 users", repo.usage_top_users, (since, 10)),
        ("  generations by day and kind", repo.generations_by_day_and_kind, (since,)),
    ]

    async def run() -> list[Case]:
        cases = [Case("service: collect_stats()", await timed(collect_stats, runs))]
        for name, query, args in queries:
            cases.append(Case(name, await timed(lambda q=query, a=args: db.aread(q, *a), runs)))
        return cases

    try:
        return asyncio.run(run())
    finally:
        use_database(None)
        db.close()


def http_case(server: GatewayServer, runs: int) -> tuple[Case, dict[str, Any]]:
    with server.client() as http:
        tokens = http.post(
            "/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        ).json()
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        body: dict[str, Any] = {}

        async def get() -> None:
            nonlocal body
            response = await asyncio.to_thread(http.get, "/api/admin/stats", headers=headers)
            response.raise_for_status()
            body = response.json()

        samples = asyncio.run(timed(get, runs))
    return Case("HTTP: GET /api/admin/stats", samples), body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="usage_records rows")
    parser.add_argument("--generations", type=int, default=1_000_000, help="generations rows")
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--days", type=int, default=90, help="history spread over this many days")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per case")
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args()

    command = shlex.join([".venv/bin/python", "bench/stats_bench.py", *sys.argv[1:]])
    print(f"reproduce: {command}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )

    secret = "bench-secret-key-not-for-production-0123456789abcdefghijklmnop"
    os.environ.setdefault("SECRET_KEY", secret)
    os.environ["DJANGO_SETTINGS_MODULE"] = "aigateway.settings"

    with tempfile.TemporaryDirectory(prefix="stats-bench-") as tmp:
        server = GatewayServer(Path(tmp), env={"RATE_LIMIT_USER": "off"})
        seconds = fill(
            server.db_path,
            users=args.users,
            usage=args.rows,
            generations=args.generations,
            days=args.days,
        )
        size = server.db_path.stat().st_size
        print(
            f"filled {args.rows:,} usage_records, {args.generations:,} generations and "
            f"{args.users:,} users over {args.days} days in {seconds:.1f} s "
            f"({size / 1e6:.0f} MB)"
        )
        cases = in_process_cases(server.db_path, args.runs)
        made = server.manage("createadmin", "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD)
        if made.returncode != 0:
            print(made.stderr, file=sys.stderr)
            return 2
        with server:
            http, body = http_case(server, args.runs)
        cases.append(http)

    print()
    print(f"| {'case':<38} | runs | p50 (ms) | p99 (ms) | min (ms) | max (ms) |")
    print(f"|{'-' * 40}|------|----------|----------|----------|----------|")
    for case in cases:
        print(case.row())
    totals = body.get("totals", {})
    print()
    print(
        f"the report covered {totals.get('calls', 0):,} calls and "
        f"{totals.get('generations', 0):,} generations in its 30-day window"
    )
    p50 = statistics.median(http.samples)
    verdict = "met" if p50 <= TARGET_P50_MS else "NOT MET"
    print(f"target: HTTP p50 <= {TARGET_P50_MS:.0f} ms: {verdict} ({p50:.1f} ms)")
    return 1 if args.check and verdict != "met" else 0


if __name__ == "__main__":
    sys.exit(main())
