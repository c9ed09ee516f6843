"""Start the gateway: `python -m aigateway.serve [--host 127.0.0.1] [--port 8000]`.

The one start command (`make run`, the README, the end-to-end tests and the benchmarks
use it): uvicorn, configured from settings rather than from uvicorn's own defaults, which
trust X-Forwarded-For from 127.0.0.1 and never close a connection that sends nothing.

- BEHIND_PROXY off: proxy headers are ignored; the client address is the TCP peer.
- BEHIND_PROXY on: X-Forwarded-For and X-Forwarded-Proto are believed from
  FORWARDED_ALLOW_IPS only (uvicorn takes the right-most address not in that list).
- SERVER_LIMIT_CONCURRENCY, SERVER_KEEP_ALIVE_TIMEOUT, SERVER_HEADER_TIMEOUT: see
  core/server.py.
- --workers (default: WEB_CONCURRENCY, as uvicorn reads it, else 1): that many worker
  processes under uvicorn's supervisor, which shares the listening socket, restarts a
  worker that dies and passes SIGTERM on (decision 44). More than one is refused on DuckDB,
  which lets one process open the file, and on PostgreSQL without REDIS_URL, through which
  workers share rate limits and the directory's invalidations (decision 45).
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from typing import Any

# File descriptors the process needs besides its connections: the database and its WAL,
# media files being streamed, upstream connections, the log, Python's own.
SPARE_DESCRIPTORS = 256

log = logging.getLogger("uvicorn.error")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m aigateway.serve", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--backlog", type=int, default=2048, help="listen backlog (uvicorn's)")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="server processes (default: $WEB_CONCURRENCY, else 1); DuckDB allows one",
    )
    return parser.parse_args(argv)


def refuse_workers(workers: int) -> None:
    """Stop with one sentence when the database cannot be shared by `workers` processes."""
    from core.db import one_process_only

    reason = one_process_only(workers)
    if reason:
        raise SystemExit(f"aigateway: {reason}")


def uvicorn_options(settings: Any) -> dict[str, Any]:
    """uvicorn.Config keyword arguments that follow from the settings."""
    from core.server import GuardedHttpProtocol

    return {
        "proxy_headers": bool(settings.BEHIND_PROXY),
        "forwarded_allow_ips": list(settings.FORWARDED_ALLOW_IPS),
        "limit_concurrency": allowed_connections(int(settings.SERVER_LIMIT_CONCURRENCY)),
        "timeout_keep_alive": int(settings.SERVER_KEEP_ALIVE_TIMEOUT),
        "http": GuardedHttpProtocol,  # reads SERVER_HEADER_TIMEOUT itself
        "lifespan": "on",
        "access_log": False,  # the app logs one line per request itself
        "server_header": False,
    }


def allowed_connections(wanted: int) -> int:
    """`wanted`, or fewer if the process may not open that many files: the soft limit on
    open files is raised to the hard one first, as servers commonly do."""
    try:
        import resource
    except ImportError:  # not a POSIX system
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        target = wanted + SPARE_DESCRIPTORS
        if hard != resource.RLIM_INFINITY:
            target = min(target, hard)
        if target > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft == resource.RLIM_INFINITY or wanted + SPARE_DESCRIPTORS <= soft:
        return wanted
    fitting = max(2, soft - SPARE_DESCRIPTORS)
    log.warning(
        "SERVER_LIMIT_CONCURRENCY=%d needs more open files than this process may have (%d);"
        " using %d",
        wanted,
        soft,
        fitting,
    )
    return fitting


def describe(options: dict[str, Any], settings: Any) -> str:
    proxy = (
        "trusting X-Forwarded-For/-Proto from " + ",".join(options["forwarded_allow_ips"])
        if options["proxy_headers"]
        else "proxy headers off"
    )
    return (
        f"{proxy}; limit_concurrency={options['limit_concurrency']},"
        f" keep_alive={options['timeout_keep_alive']}s,"
        f" header_timeout={settings.SERVER_HEADER_TIMEOUT}s"
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aigateway.settings")
    import uvicorn
    from django.conf import settings

    options = uvicorn_options(settings)  # a bad setting stops here, in one line
    config = uvicorn.Config(
        "aigateway.asgi:application", host=args.host, port=args.port, backlog=args.backlog,
        workers=args.workers, **options,
    )  # fmt: skip
    refuse_workers(config.workers)  # uvicorn read WEB_CONCURRENCY when --workers was not given
    # Each worker's start-up checks the count again (a bare `uvicorn` has only this variable).
    os.environ["WEB_CONCURRENCY"] = str(config.workers)
    log.info("aigateway: %d worker(s); %s", config.workers, describe(options, settings))
    if config.workers > 1:
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
