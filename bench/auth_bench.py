"""Auth throughput and latency of the real gateway, with an in-process aiohttp load generator.

Starts its own server (uvicorn, Argon2, DEBUG off, request log at INFO, a fresh DuckDB file
in a temporary folder; with `--database postgres --workers N` that one first and then N
worker processes on a fresh PostgreSQL database and Redis, see bench/harness.py), makes
users, tokens and API keys, then drives for a fixed time each:

  ping         GET /api/ping: the same middleware, no auth, no DRF; the ceiling
  me (access)  GET /api/users/me with an access token
  me (API key) GET /api/users/me with an API key
  refresh      POST /api/auth/refresh; every worker chains its own token family, each
               request spending the token its previous response returned

Refresh rotation is then checked for lost and double-spent tokens: a sample of spent tokens
is presented again (each must be refused), and after the server stops the database must
show exactly one successor per token the clients saw accepted, no more and no other.

The load generator shares the machine's cores with the server, so the table shows the CPU
time of both.

    .venv/bin/python bench/auth_bench.py [--duration 10] [--concurrency 32] [--refresh-workers 16]
        [--database postgres --workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import random
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import harness

from tests.servers import GatewayServer

PASSWORD = "bench horse battery staple"
ME_TARGET_RATIO = 0.7
REFRESH_TARGET_RPS = 300.0


# -- measurement ------------------------------------------------------------------------


@dataclass
class Tally:
    """What one case's workers saw during the measured window."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)  # error codes of non-2xx answers
    lost: int = 0  # no HTTP answer at all, or an answer without the error shape

    def add(self, seconds: float, status: int) -> None:
        self.latencies.append(seconds)
        self.statuses[status] += 1


@dataclass
class Result:
    name: str
    concurrency: int
    seconds: float
    tally: Tally
    client_cpu: float
    server_cpu: float
    services_cpu: float  # PostgreSQL's sessions and Redis (0 on DuckDB: it runs in-process)
    busiest_share: float  # of the server's CPU, the busiest process's part (1/N is even)

    @property
    def requests(self) -> int:
        return len(self.tally.latencies)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.tally.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.tally.statuses.items() if status >= 400) + (
            self.tally.lost
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "case": self.name,
            "concurrency": self.concurrency,
            "requests": self.requests,
            "rps": round(self.rps, 1),
            "p50_ms": round(self.percentile(0.50), 2),
            "p99_ms": round(self.percentile(0.99), 2),
            "errors": self.errors,
            "client_cpu_pct": round(100 * self.client_cpu / self.seconds, 1),
            "server_cpu_pct": round(100 * self.server_cpu / self.seconds, 1),
            "services_cpu_pct": round(100 * self.services_cpu / self.seconds, 1),
            "busiest_process_pct": round(100 * self.busiest_share, 1),
        }


Worker = Callable[[aiohttp.ClientSession, int, float, Tally | None], Awaitable[None]]


async def drive(
    server: GatewayServer,
    session: aiohttp.ClientSession,
    name: str,
    worker: Worker,
    *,
    concurrency: int,
    duration: float,
    warmup: float,
) -> Result:
    """Run `concurrency` copies of worker for warmup seconds (discarded), then duration."""
    if warmup > 0:
        deadline = time.perf_counter() + warmup
        await asyncio.gather(*(worker(session, n, deadline, None) for n in range(concurrency)))
    groups = harness.cpu_groups(server)  # uvicorn's supervisor and workers; PostgreSQL, Redis
    services = [pid for name, pids in groups.items() if name != "gateway" for pid in pids]
    tally = Tally()
    server_cpu, client_cpu = harness.cpu_each(groups["gateway"]), time.process_time()
    services_cpu = harness.cpu_seconds(services)
    started = time.perf_counter()
    await asyncio.gather(
        *(worker(session, n, started + duration, tally) for n in range(concurrency))
    )
    seconds = time.perf_counter() - started
    server_after = harness.cpu_each(groups["gateway"])
    return Result(
        name,
        concurrency,
        seconds,
        tally,
        client_cpu=time.process_time() - client_cpu,
        server_cpu=sum(server_after.values()) - sum(server_cpu.values()),
        services_cpu=harness.cpu_seconds(services) - services_cpu,
        busiest_share=harness.busiest_share(server_cpu, server_after),
    )


def error_code(body: bytes) -> str | None:
    """The `code` of an API error body, or None if the body is not in the error shape."""
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    return code if isinstance(code, str) else None


def get_worker(url: str, headers_for: Callable[[int], dict[str, str]]) -> Worker:
    async def work(
        session: aiohttp.ClientSession, n: int, deadline: float, tally: Tally | None
    ) -> None:
        headers = headers_for(n)
        while (now := time.perf_counter()) < deadline:
            try:
                async with session.get(url, headers=headers) as response:
                    body = await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError):
                if tally is not None:
                    tally.lost += 1
                continue
            if tally is None:
                continue
            tally.add(time.perf_counter() - now, status)
            if status >= 400:
                code = error_code(body)
                if code is None:
                    tally.lost += 1
                else:
                    tally.failures[code] += 1

    return work


# -- refresh rotation -------------------------------------------------------------------


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


@dataclass
class Chain:
    """One worker's token family: the live token, and every rotation the server accepted."""

    email: str
    token: str
    spent: list[str] = field(default_factory=list)  # tokens accepted once, in order
    successors: dict[str, str] = field(default_factory=dict)  # spent jti -> successor jti
    families: set[str] = field(default_factory=set)
    relogins: int = 0

    def accept(self, new_token: str) -> None:
        self.successors[jwt_claims(self.token)["jti"]] = jwt_claims(new_token)["jti"]
        self.spent.append(self.token)
        self.token = new_token

    def start_family(self, token: str) -> None:
        self.token = token
        self.families.add(str(jwt_claims(token)["fam"]))


async def log_in(session: aiohttp.ClientSession, base: str, email: str) -> dict[str, Any]:
    async with session.post(
        f"{base}/api/auth/login", json={"email": email, "password": PASSWORD}
    ) as response:
        body: dict[str, Any] = await response.json()
        if response.status != 200:
            raise SystemExit(f"bench: login failed for {email}: {response.status} {body}")
        return body


def refresh_worker(base: str, chains: list[Chain]) -> Worker:
    url = f"{base}/api/auth/refresh"

    async def work(
        session: aiohttp.ClientSession, n: int, deadline: float, tally: Tally | None
    ) -> None:
        chain = chains[n]
        while (now := time.perf_counter()) < deadline:
            try:
                async with session.post(url, json={"refresh_token": chain.token}) as response:
                    body = await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError):
                # The token's fate is unknown: count it lost and start a new family.
                if tally is not None:
                    tally.lost += 1
                chain.relogins += 1
                chain.start_family((await log_in(session, base, chain.email))["refresh_token"])
                continue
            if tally is not None:
                tally.add(time.perf_counter() - now, status)
            if status == 200:
                chain.accept(json.loads(body)["refresh_token"])
                continue
            code = error_code(body)
            if tally is not None:
                if code is None:
                    tally.lost += 1
                else:
                    tally.failures[code] += 1
            chain.relogins += 1
            chain.start_family((await log_in(session, base, chain.email))["refresh_token"])

    return work


async def present_again(
    session: aiohttp.ClientSession, base: str, tokens: list[str], concurrency: int
) -> Counter[int]:
    """POST each already-spent token again; every one must be refused."""
    statuses: Counter[int] = Counter()
    queue = list(tokens)

    async def work() -> None:
        while queue:
            token = queue.pop()
            async with session.post(
                f"{base}/api/auth/refresh", json={"refresh_token": token}
            ) as response:
                await response.read()
                statuses[response.status] += 1

    await asyncio.gather(*(work() for _ in range(concurrency)))
    return statuses


@dataclass
class RotationAudit:
    accepted: int  # rotations the clients saw succeed
    duplicate_tokens: int  # a token issued twice
    replayed: int  # spent tokens presented again
    replay_accepted: int  # ... and accepted: double-spent
    db_rotations: int  # spent tokens in the database, in the bench's families
    db_mismatched: int  # a spent token whose stored successor is not the one the client got
    db_unseen: int  # rotations the server committed but no client saw (lost answers)

    @property
    def double_spent(self) -> int:
        return self.replay_accepted + self.db_mismatched + self.duplicate_tokens

    @property
    def lost(self) -> int:
        return self.db_unseen


def audit_database(server: GatewayServer, chains: list[Chain]) -> tuple[int, int, int]:
    """(rotations stored, mismatched successors, rotations no client saw) for the chains."""
    families = sorted({family for chain in chains for family in chain.families})
    expected = {jti: nxt for chain in chains for jti, nxt in chain.successors.items()}
    rows = server.query(
        "SELECT jti, replaced_by FROM refresh_tokens"
        " WHERE replaced_by IS NOT NULL AND family = ANY(?::VARCHAR[])",
        [families],
    )
    stored = dict(rows)
    mismatched = sum(1 for jti, nxt in expected.items() if stored.get(jti) != nxt)
    unseen = sum(1 for jti in stored if jti not in expected)
    return len(stored), mismatched, unseen


# -- the run ----------------------------------------------------------------------------


async def setup_accounts(
    session: aiohttp.ClientSession, base: str, users: int
) -> tuple[list[str], list[str], list[str]]:
    """Register users; return (emails, access tokens, API keys), one each per user."""
    emails = [f"bench-{n}@example.com" for n in range(users)]

    async def make(email: str) -> tuple[str, str]:
        async with session.post(
            f"{base}/api/auth/register", json={"email": email, "password": PASSWORD}
        ) as response:
            if response.status != 201:
                raise SystemExit(f"bench: register failed: {response.status}")
        access = (await log_in(session, base, email))["access_token"]
        async with session.post(
            f"{base}/api/auth/keys",
            json={"name": "bench"},
            headers={"Authorization": f"Bearer {access}"},
        ) as response:
            if response.status != 201:
                raise SystemExit(
                    f"bench: creating an API key failed: {response.status} {await response.text()}"
                )
            key = (await response.json())["key"]
        return access, key

    made = await asyncio.gather(*(make(email) for email in emails))
    return emails, [access for access, _ in made], [key for _, key in made]


async def run(args: argparse.Namespace, server: GatewayServer) -> dict[str, Any]:
    base = server.base_url
    load_before = os.getloadavg()[0]  # other work on the machine skews every number
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        emails, access, keys = await setup_accounts(session, base, args.users)
        chains = [
            Chain(email=emails[n % len(emails)], token="") for n in range(args.refresh_workers)
        ]
        logins = await asyncio.gather(*(log_in(session, base, c.email) for c in chains))
        for chain, tokens in zip(chains, logins, strict=True):
            chain.start_family(tokens["refresh_token"])

        def bearer(tokens: list[str]) -> Callable[[int], dict[str, str]]:
            return lambda n: {"Authorization": f"Bearer {tokens[n % len(tokens)]}"}

        cases: list[tuple[str, Worker, int]] = [
            ("GET /api/ping", get_worker(f"{base}/api/ping", lambda n: {}), args.concurrency),
            (
                "GET /api/users/me (access token)",
                get_worker(f"{base}/api/users/me", bearer(access)),
                args.concurrency,
            ),
            (
                "GET /api/users/me (API key)",
                get_worker(f"{base}/api/users/me", bearer(keys)),
                args.concurrency,
            ),
            ("POST /api/auth/refresh", refresh_worker(base, chains), args.refresh_workers),
        ]
        results = []
        for name, worker, concurrency in cases:
            results.append(
                await drive(
                    server,
                    session,
                    name,
                    worker,
                    concurrency=concurrency,
                    duration=args.duration,
                    warmup=args.warmup,
                )
            )

        spent = [token for chain in chains for token in chain.spent]
        sample = random.sample(spent, min(args.reuse_sample, len(spent)))
        replays = await present_again(session, base, sample, args.refresh_workers)

    issued = [jti for chain in chains for jti in chain.successors.values()]
    accepted = sum(len(chain.successors) for chain in chains)
    server.stop()
    db_rotations, mismatched, unseen = audit_database(server, chains)
    audit = RotationAudit(
        accepted=accepted,
        duplicate_tokens=len(issued) - len(set(issued)),
        replayed=len(sample),
        replay_accepted=replays.get(200, 0),
        db_rotations=db_rotations,
        db_mismatched=mismatched,
        db_unseen=unseen,
    )
    return {
        "results": results,
        "audit": audit,
        "relogins": sum(c.relogins for c in chains),
        "load_before": load_before,
    }


# -- report -----------------------------------------------------------------------------


def table(results: list[Result]) -> str:
    header = (
        "| case | conc | requests | req/s | p50 ms | p99 ms | errors | client CPU | server CPU |"
        " PostgreSQL + Redis CPU | server CPU ms/req | busiest server process |"
    )
    lines = [header, "|" + "---|" * 12]
    for r in results:
        row = r.as_dict()
        lines.append(
            f"| {r.name} | {r.concurrency} | {r.requests} | {r.rps:,.0f} | {row['p50_ms']:.2f}"
            f" | {row['p99_ms']:.2f} | {r.errors} | {row['client_cpu_pct']:.0f}%"
            f" | {row['server_cpu_pct']:.0f}% | {row['services_cpu_pct']:.0f}%"
            f" | {cpu_per_request_ms(r):.2f} | {row['busiest_process_pct']:.0f}% |"
        )
    return "\n".join(lines)


def cpu_per_request_ms(result: Result) -> float:
    return 1000 * result.server_cpu / result.requests if result.requests else float("nan")


@dataclass
class Rotation:
    """The refresh case's figures against its target."""

    rps: float
    lost: int
    double_spent: int

    @property
    def met(self) -> bool:
        return self.rps >= REFRESH_TARGET_RPS and self.lost == 0 and self.double_spent == 0


def rotation(outcome: dict[str, Any]) -> Rotation:
    rotate: Result = outcome["results"][-1]
    audit: RotationAudit = outcome["audit"]
    return Rotation(rotate.rps, rotate.tally.lost + audit.lost, audit.double_spent)


def report(
    args: argparse.Namespace, backend: harness.Backend, outcome: dict[str, Any]
) -> tuple[str, bool]:
    results: list[Result] = outcome["results"]
    audit: RotationAudit = outcome["audit"]
    ping, me_access, me_key, rotate = results
    access_ratio = me_access.rps / ping.rps if ping.rps else 0.0
    key_ratio = me_key.rps / ping.rps if ping.rps else 0.0
    refresh = rotation(outcome)
    failures = dict(rotate.tally.failures)
    me_errors = me_access.errors + me_key.errors
    me_ok = min(access_ratio, key_ratio) >= ME_TARGET_RATIO and me_errors == 0
    lines = [
        f"## {backend.label}",
        "",
        f"# {os.cpu_count()} CPUs shared by server and load generator; Python "
        f"{platform.python_version()}; client aiohttp {aiohttp.__version__} on "
        f"{harness.loop_name()}; "
        f"{args.duration:g} s per case after {args.warmup:g} s warm-up",
        "# CPU columns: % of one core over the measured window (server = the uvicorn process"
        " and its workers; PostgreSQL = the sessions of the gateway's pools; Redis = its whole"
        f" server, shared); load average before the run {outcome['load_before']:.2f}",
        "",
        table(results),
        "",
        f"me (access token) / ping = {access_ratio:.2f}, me (API key) / ping = {key_ratio:.2f}"
        f", {me_errors} errors (target >= {ME_TARGET_RATIO}, 0 errors): {harness.verdict(me_ok)}",
        f"refresh: {refresh.rps:,.0f} rotations/s (target >= {REFRESH_TARGET_RPS:.0f}), "
        f"lost {refresh.lost}, double-spent {refresh.double_spent} (target 0 and 0): "
        f"{harness.verdict(refresh.met)}",
        f"  accepted {audit.accepted} rotations (warm-up included) in "
        f"{args.refresh_workers + outcome['relogins']} token families; "
        f"refused {failures or 'none'}; no answer or no error shape {rotate.tally.lost}",
        f"  replayed {audit.replayed} spent tokens: {audit.replay_accepted} accepted again; "
        f"duplicate tokens issued: {audit.duplicate_tokens}",
        f"  database: {audit.db_rotations} rotations stored in these families, "
        f"{audit.db_mismatched} with a successor the client never got, "
        f"{audit.db_unseen} committed without the client seeing them",
    ]
    return "\n".join(lines), me_ok and refresh.met


def comparison(runs: list[tuple[harness.Backend, dict[str, Any]]]) -> tuple[str, bool]:
    """The figures of issue 11 for each backend side by side; the scaled backend's target."""
    labels = [backend.label for backend, _ in runs]
    rows: list[tuple[str, list[str], str]] = []
    for index in range(len(runs[0][1]["results"])):
        cases: list[Result] = [outcome["results"][index] for _, outcome in runs]
        name = cases[0].name
        rows.append(harness.figure(f"{name} req/s", [r.rps for r in cases]))
        rows.append(
            harness.figure(
                f"{name} server CPU ms/req", [cpu_per_request_ms(r) for r in cases], ".2f"
            )
        )
        rows.append(
            harness.figure(
                f"{name} busiest server process's share of its CPU",
                [r.busiest_share for r in cases],
                ".0%",
            )
        )
        rows.append(
            harness.figure(
                f"{name} PostgreSQL + Redis CPU ms/req",
                [1000 * r.services_cpu / r.requests if r.requests else 0.0 for r in cases],
                ".2f",
            )
        )
    refreshes = [rotation(outcome) for _, outcome in runs]
    rows.append(
        ("refresh lost / double-spent", [f"{r.lost} / {r.double_spent}" for r in refreshes], "")
    )
    scaled = refreshes[-1]
    lines = [
        "## Side by side",
        "",
        harness.side_by_side(labels, rows),
        "",
        f"{labels[-1]}: refresh >= {REFRESH_TARGET_RPS:.0f} rotations/s with 0 lost and 0 "
        f"double-spent: {scaled.rps:,.0f}/s, {scaled.lost} lost, {scaled.double_spent} "
        f"double-spent: {harness.verdict(scaled.met)}",
    ]
    return "\n".join(lines), scaled.met


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.add_backend_arguments(parser)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per case")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds per case")
    parser.add_argument("--concurrency", type=int, default=32, help="workers for the GET cases")
    parser.add_argument("--refresh-workers", type=int, default=16, help="token families")
    parser.add_argument("--users", type=int, default=8, help="accounts to spread load over")
    parser.add_argument("--reuse-sample", type=int, default=200, help="spent tokens replayed")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when a target is not met (for CI)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = (
        f"{harness.shown_python()} bench/auth_bench.py"
        f" --duration {args.duration:g} --warmup {args.warmup:g}"
        f" --concurrency {args.concurrency} --refresh-workers {args.refresh_workers}"
        f" --users {args.users} {harness.backend_flags(args)}"
    )
    print(f"# reproduce: {command}", flush=True)
    print(f"# {harness.load_line()} at the start", flush=True)
    runs: list[tuple[harness.Backend, dict[str, Any]]] = []
    met = True
    for backend in harness.backends(args):
        with (
            tempfile.TemporaryDirectory(prefix="auth-bench-") as folder,
            harness.serve(backend, Path(folder)) as server,
        ):
            outcome = harness.run_async(run(args, server))
        runs.append((backend, outcome))
        text, backend_met = report(args, backend, outcome)
        met = met and backend_met
        print(text + "\n", flush=True)
    if len(runs) > 1:
        text, scaled_met = comparison(runs)
        met = met and scaled_met
        print(text, flush=True)
    print(f"# {harness.load_line()} at the end", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "command": command,
            "runs": {
                backend.key: {
                    "results": [r.as_dict() for r in outcome["results"]],
                    "audit": vars(outcome["audit"])
                    | {"double_spent": outcome["audit"].double_spent},
                }
                for backend, outcome in runs
            },
            "targets_met": met,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 1 if args.check and not met else 0


if __name__ == "__main__":
    raise SystemExit(main())
