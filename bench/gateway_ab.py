"""Two checkouts of the gateway side by side, in one window: the added latency of each.

`bench/gateway_bench.py` measures one checkout at a time, and on a shared VM two runs a
minute apart can differ by more than the change being measured. This script starts the
stand-in once and one gateway from each checkout (each with its own virtualenv, DuckDB file
and port), then sends the same non-streaming chat request to the stand-in and to
`POST /api/ai/chat` of each gateway, one at a time, in rotating order, so all three see the
same machine. It prints p50/p99 per target and round, and the added latency of each gateway
(its p50 minus the stand-in's) with the difference between them. Each round also reads each
gateway's CPU time from /proc: its event loop's (the main thread's) and its whole process's
per request, a steadier figure than latency for changes of a few tens of microseconds.

Two identical checkouts do not measure the same: the gateway started second was 0.13 to
0.18 ms slower in every round here. So the comparison runs twice, the second time with the
start order swapped, and the difference it reports is the mean of the two, which cancels
that bias (both halves are printed).

    .venv/bin/python bench/gateway_ab.py OLD_CHECKOUT NEW_CHECKOUT --rounds 3 --duration 6

A checkout is a directory with the project and a `.venv` (a `git worktree` with a symlink
to this one's `.venv` will do). One whose `aigateway/serve.py` exists is started through
it, an older one through `python -m uvicorn aigateway.asgi:application`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.gateway_bench import API_KEY, MESSAGES, MODEL, PASSWORD, StubProcess, configure_stub
from tests.servers import free_port, gateway_env

BODY = {"model": MODEL, "messages": MESSAGES}


class Checkout:
    """One gateway, started from `root` on a fresh DuckDB file in `folder`."""

    def __init__(self, label: str, root: Path, folder: Path, upstream: str) -> None:
        self.label = label
        self.root = root
        self.folder = folder
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = gateway_env(
            folder,
            {
                "OPENROUTER_API_KEY": API_KEY,
                "OPENROUTER_BASE_URL": upstream,
                "ACCESS_TOKEN_TTL_SECONDS": "7200",
            },
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.token = ""

    def start(self) -> None:
        python = str(self.root / ".venv" / "bin" / "python")
        where = ["--host", "127.0.0.1", "--port", str(self.port), "--backlog", "4096"]
        if (self.root / "aigateway" / "serve.py").exists():
            command = [python, "-m", "aigateway.serve", *where]
        else:
            command = [python, "-m", "uvicorn", "aigateway.asgi:application", *where,
                       "--no-access-log"]  # fmt: skip
        self.folder.mkdir(parents=True, exist_ok=True)
        log = (self.folder / "gateway.log").open("wb")
        self.process = subprocess.Popen(
            command, cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def cpu(self) -> tuple[float, float]:
        """Seconds of CPU so far: the event loop's (the main thread) and the process's."""
        assert self.process is not None
        pid = self.process.pid
        return _cpu(f"/proc/{pid}/task/{pid}/stat"), _cpu(f"/proc/{pid}/stat")

    async def sign_in(self, session: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                async with session.get(self.base_url + "/healthz") as response:
                    if response.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline or (self.process and self.process.poll() is not None):
                raise SystemExit(f"{self.label}: the gateway did not start (see its log)")
            await asyncio.sleep(0.2)
        account = {"email": "bench-ab@example.com", "password": PASSWORD}
        async with session.post(self.base_url + "/api/auth/register", json=account) as response:
            if response.status != 201:
                raise SystemExit(f"{self.label}: register failed: {response.status}")
        async with session.post(self.base_url + "/api/auth/login", json=account) as response:
            self.token = str((await response.json())["access_token"])


def _cpu(stat_path: str) -> float:
    with open(stat_path) as file:
        fields = file.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def cpu_per_request(
    before: tuple[float, float], after: tuple[float, float], requests: int
) -> tuple[float, float]:
    """Milliseconds of CPU per request: the event loop's and the whole process's."""
    loop, total = (1000 * (b - a) / max(requests, 1) for a, b in zip(before, after, strict=True))
    return loop, total


async def timed(session: aiohttp.ClientSession, url: str, token: str) -> float:
    started = time.perf_counter()
    headers = {"Authorization": f"Bearer {token}"}
    async with session.post(url, json=BODY, headers=headers) as response:
        await response.read()
        if response.status != 200:
            raise SystemExit(f"{url} answered {response.status}")
    return (time.perf_counter() - started) * 1000


async def measure(
    session: aiohttp.ClientSession,
    targets: list[tuple[str, str, str]],
    seconds: float,
    rotate: int,
) -> dict[str, list[float]]:
    seen: dict[str, list[float]] = {label: [] for label, _, _ in targets}
    order = targets[rotate % len(targets) :] + targets[: rotate % len(targets)]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for label, url, token in order:
            seen[label].append(await timed(session, url, token))
    return seen


async def send_until(
    session: aiohttp.ClientSession, url: str, token: str, deadline: float, into: list[float]
) -> None:
    while time.monotonic() < deadline:
        into.append(await timed(session, url, token))


async def throughput(
    session: aiohttp.ClientSession,
    targets: list[tuple[str, str, str]],
    seconds: float,
    rotate: int,
    workers: int,
) -> dict[str, tuple[float, list[float]]]:
    """Each target alone under `workers` back-to-back senders, one after the other in
    rotating order: requests per second and the latencies."""
    found: dict[str, tuple[float, list[float]]] = {}
    for label, url, token in targets[rotate % len(targets) :] + targets[: rotate % len(targets)]:
        latencies: list[float] = []
        deadline = time.monotonic() + seconds
        started = time.monotonic()
        await asyncio.gather(
            *(send_until(session, url, token, deadline, latencies) for _ in range(workers))
        )
        found[label] = (len(latencies) / (time.monotonic() - started), latencies)
    return found


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


Figures = dict[str, list[float]]  # a gateway's label: a figure per round


async def run(
    args: argparse.Namespace, stub: StubProcess, gateways: list[Checkout]
) -> tuple[Figures, Figures]:
    """Rounds of the three targets; per gateway and round, the added latency p50 (or, with
    --concurrency, requests per second) and the event loop's CPU ms per request."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        for gateway in gateways:
            await gateway.sign_in(session)
        if args.upstream_latency:
            await configure_stub(session, stub, latency=args.upstream_latency / 1000)
        targets = [("direct", stub.base_url + "/chat/completions", API_KEY)] + [
            (g.label, g.base_url + "/api/ai/chat", g.token) for g in gateways
        ]
        await measure(session, targets, args.warmup, 0)
        if args.concurrency > 1:
            return await rates(args, session, targets[1:], gateways)
        added: dict[str, list[float]] = {"old": [], "new": []}
        loops: dict[str, list[float]] = {"old": [], "new": []}
        for number in range(1, args.rounds + 1):
            before = {g.label: g.cpu() for g in gateways}
            seen = await measure(session, targets, args.duration, number)
            cpu = {
                g.label: cpu_per_request(before[g.label], g.cpu(), len(seen[g.label]))
                for g in gateways
            }
            direct = p(seen["direct"], 0.5)
            for label in added:
                added[label].append(p(seen[label], 0.5) - direct)
                loops[label].append(cpu[label][0])
            print(
                f"| {number} | {' then '.join(g.label for g in gateways)} | {direct:.2f} "
                f"| {p(seen['old'], 0.5):.2f} / {p(seen['old'], 0.99):.2f} "
                f"| {p(seen['new'], 0.5):.2f} / {p(seen['new'], 0.99):.2f} "
                f"| +{added['old'][-1]:.2f} | +{added['new'][-1]:.2f} "
                f"| {added['new'][-1] - added['old'][-1]:+.2f} "
                f"| {cpu['old'][0]:.2f} / {cpu['old'][1]:.2f} "
                f"| {cpu['new'][0]:.2f} / {cpu['new'][1]:.2f} |",
                flush=True,
            )
        return added, loops


async def rates(
    args: argparse.Namespace,
    session: aiohttp.ClientSession,
    targets: list[tuple[str, str, str]],
    gateways: list[Checkout],
) -> tuple[Figures, Figures]:
    """Rounds of each gateway under --concurrency senders; requests per second per round."""
    await throughput(session, targets, args.warmup, 0, args.concurrency)
    rate: Figures = {"old": [], "new": []}
    loops: Figures = {"old": [], "new": []}
    for number in range(1, args.rounds + 1):
        before = {g.label: g.cpu() for g in gateways}
        seen = await throughput(session, targets, args.duration, number, args.concurrency)
        cpu = {
            g.label: cpu_per_request(before[g.label], g.cpu(), len(seen[g.label][1]))
            for g in gateways
        }
        for label in rate:
            rate[label].append(seen[label][0])
            loops[label].append(cpu[label][0])
        old, new = seen["old"], seen["new"]
        print(
            f"| {number} | {' then '.join(g.label for g in gateways)} "
            f"| {old[0]:.0f} req/s, p50 {p(old[1], 0.5):.1f} / p99 {p(old[1], 0.99):.1f} ms "
            f"| {new[0]:.0f} req/s, p50 {p(new[1], 0.5):.1f} / p99 {p(new[1], 0.99):.1f} ms "
            f"| {new[0] / old[0]:.3f} "
            f"| {cpu['old'][0]:.2f} / {cpu['old'][1]:.2f} "
            f"| {cpu['new'][0]:.2f} / {cpu['new'][1]:.2f} |",
            flush=True,
        )
    return rate, loops


def session(args: argparse.Namespace, order: list[tuple[str, Path]]) -> tuple[Figures, Figures]:
    """One stand-in and the two gateways, started in `order`, measured for all rounds."""
    with tempfile.TemporaryDirectory(prefix="gateway-ab-") as scratch:
        folder = Path(scratch)
        with StubProcess(folder / "stub.log") as stub:
            gateways = [
                Checkout(label, root.resolve(), folder / label, stub.base_url)
                for label, root in order
            ]
            try:
                for gateway in gateways:
                    gateway.start()
                return asyncio.run(run(args, stub, gateways))
            finally:
                for gateway in gateways:
                    gateway.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", type=Path, help="the checkout to compare against")
    parser.add_argument("new", type=Path, help="the checkout measured")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=6.0, help="measured seconds a round")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument(
        "--concurrency", type=int, default=1,
        help="1: added latency, requests one at a time; N: each gateway's requests per second "
        "under N senders, the two measured one after the other in each round",
    )  # fmt: skip
    parser.add_argument(
        "--upstream-latency", type=float, default=0.0, metavar="MS",
        help="the stand-in answers after MS milliseconds (0: at once, as gateway_bench.py "
        "measures added latency); the direct target waits as long",
    )  # fmt: skip
    args = parser.parse_args(argv)
    print(
        f"# reproduce: bench/gateway_ab.py {args.old} {args.new} --rounds {args.rounds} "
        f"--duration {args.duration:g} --warmup {args.warmup:g} --concurrency {args.concurrency}"
        f" --upstream-latency {args.upstream_latency:g}"
    )
    print(
        f"# load average {os.getloadavg()[0]:.2f} at the start; non-streaming chat, "
        f"concurrency {args.concurrency}"
    )
    if args.concurrency > 1:
        print("| round | started | old | new | new / old | old CPU ms/req: loop / process "
              "| new CPU ms/req: loop / process |\n|---|---|---|---|---|---|---|")  # fmt: skip
    else:
        print("| round | started | direct p50 | old p50 / p99 | new p50 / p99 | added old "
              "| added new | new - old | old CPU ms/req: loop / process "
              "| new CPU ms/req: loop / process |\n|---|---|---|---|---|---|---|---|---|---|")  # fmt: skip
    halves, loop_halves = [], []
    for order in ([("old", args.old), ("new", args.new)], [("new", args.new), ("old", args.old)]):
        seen, loops = session(args, order)
        loop_halves.append(
            statistics.median(y - x for x, y in zip(loops["old"], loops["new"], strict=True))
        )
        old, new = statistics.median(seen["old"]), statistics.median(seen["new"])
        pairs = list(zip(seen["old"], seen["new"], strict=True))
        if args.concurrency > 1:
            halves.append(statistics.median(y / x for x, y in pairs))
            print(f"# {order[0][0]} started first: median old {old:.0f}, new {new:.0f} req/s")
        else:
            halves.append(statistics.median(y - x for x, y in pairs))
            print(
                f"# {order[0][0]} started first: added latency p50 median old +{old:.2f} ms, "
                f"new +{new:.2f} ms"
            )
    what, unit = (
        ("new / old, requests per second", "")
        if args.concurrency > 1
        else ("new - old, added latency p50", " ms")
    )
    sign = "" if args.concurrency > 1 else "+"
    print(
        f"\n{what}: {statistics.mean(halves):{sign}.3f}{unit} (median of the rounds "
        f"{halves[0]:{sign}.3f}{unit} with old started first, {halves[1]:{sign}.3f}{unit} "
        "with new first)"
    )
    print(
        f"new - old, event loop CPU per request: {statistics.mean(loop_halves):+.3f} ms "
        f"({loop_halves[0]:+.3f} with old started first, {loop_halves[1]:+.3f} with new first)"
    )
    print(f"# load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
