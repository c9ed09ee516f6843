"""ASGI entry point, served by `python -m aigateway.serve` (uvicorn).

Around Django: a lifespan handler that opens (and migrates) the database at start-up and
flushes and closes it at shutdown, a check of the Host header against ALLOWED_HOSTS for
every path, and a guard that refuses oversized bodies before Django spools them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aigateway.settings")

import django
from django.conf import settings

from core import invalidation
from core.asgi import (
    ASGIApp,
    GatewayASGIHandler,
    Receive,
    Scope,
    Send,
    follow_other_workers,
    limit_body_size,
    require_allowed_host,
    serve_static,
)
from core.db import DatabaseError, close_database, get_database, one_process_only

log = logging.getLogger(__name__)

LATE_COST_SHUTDOWN_WAIT = 2.0  # seconds


def with_lifespan(app: ASGIApp) -> ASGIApp:
    """Open the database at start-up (failing with one sentence) and close it at shutdown."""

    async def lifespan(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        from generation.ledger import wait_for_late_costs
        from generation.openrouter import close_openrouter_client
        from generation.services import watch_unfinished_jobs

        watcher: asyncio.Task[None] | None = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                refusal = one_process_only(web_concurrency())
                if refusal:  # e.g. a bare `uvicorn` started with WEB_CONCURRENCY=4
                    await send({"type": "lifespan.startup.failed", "message": refusal})
                    return
                try:
                    await asyncio.to_thread(warm_up)
                except DatabaseError as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                except invalidation.CoordinationUnavailable as exc:
                    await send({"type": "lifespan.startup.failed", "message": exc.message})
                    return
                watcher = asyncio.create_task(watch_unfinished_jobs(), name="video-job-watcher")
                freeze_heap()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if watcher is not None:
                    watcher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watcher
                # Abandoned streams being costed: usually done in a moment; never hold
                # the shutdown for OpenRouter's slow ones (they stay booked without a cost).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wait_for_late_costs(), LATE_COST_SHUTDOWN_WAIT)
                await close_openrouter_client()
                await asyncio.to_thread(close_database)
                await send({"type": "lifespan.shutdown.complete"})
                return

    return lifespan


def web_concurrency() -> int:
    """The worker count uvicorn was told through the environment (1 if unset or unreadable)."""
    try:
        return max(1, int(os.environ.get("WEB_CONCURRENCY") or 1))
    except ValueError:
        return 1


def warm_up() -> None:
    from accounts.identity import get_directory
    from generation.ledger import book_interrupted_calls
    from generation.recorder import get_recorder

    db = get_database()
    invalidation.start()  # before the directory loads: what is published later gets applied
    # Pending calls are a crash's leftovers only when no other worker is serving (whose
    # calls are pending too); a worker lost meanwhile is booked at the next such start.
    if db.start_serving(book_interrupted_calls) is None:
        log.info("other workers are serving: unfinished calls are theirs, left alone")
    get_directory()
    get_recorder()
    importlib.import_module(settings.ROOT_URLCONF)  # every view and serializer, before freezing
    log.info("database ready: %s %s", db.dialect, db.location)


def freeze_heap() -> None:
    """Take what start-up built (Django, the apps and their views, the directory just
    loaded) out of the garbage collector's sight. A full collection walks every tracked
    object: with these ~130,000 it held the event loop for ~33 ms every couple of thousand
    requests (decision 55)."""
    gc.collect()
    gc.freeze()


def make_django_application() -> GatewayASGIHandler:
    django.setup(set_prefix=False)
    return GatewayASGIHandler()


django_application = make_django_application()
application = with_lifespan(
    require_allowed_host(serve_static(limit_body_size(follow_other_workers(django_application))))
)
