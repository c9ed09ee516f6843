"""ASGI entry point, served by `python -m aigateway.serve` (uvicorn, one process).

Around Django: a lifespan handler that opens (and migrates) the database at start-up and
flushes and closes it at shutdown, a check of the Host header against ALLOWED_HOSTS for
every path, and a guard that refuses oversized bodies before Django spools them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aigateway.settings")

import django
from django.conf import settings

from core.asgi import (
    ASGIApp,
    GatewayASGIHandler,
    Receive,
    Scope,
    Send,
    limit_body_size,
    require_allowed_host,
    serve_static,
)
from core.db import DatabaseError, close_database, get_database

log = logging.getLogger(__name__)


def with_lifespan(app: ASGIApp) -> ASGIApp:
    """Open the database at start-up (failing with one sentence) and close it at shutdown."""

    async def lifespan(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        from generation.openrouter import close_openrouter_client
        from generation.services import watch_unfinished_jobs

        watcher: asyncio.Task[None] | None = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await asyncio.to_thread(warm_up)
                except DatabaseError as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                watcher = asyncio.create_task(watch_unfinished_jobs(), name="video-job-watcher")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if watcher is not None:
                    watcher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watcher
                await close_openrouter_client()
                await asyncio.to_thread(close_database)
                await send({"type": "lifespan.shutdown.complete"})
                return

    return lifespan


def warm_up() -> None:
    from accounts.identity import get_directory
    from generation.ledger import book_interrupted_calls
    from generation.recorder import get_recorder

    get_database()
    book_interrupted_calls()
    get_directory()
    get_recorder()
    log.info("database ready at %s", settings.DUCKDB_PATH)


def make_django_application() -> GatewayASGIHandler:
    django.setup(set_prefix=False)
    return GatewayASGIHandler()


django_application = make_django_application()
application = with_lifespan(require_allowed_host(serve_static(limit_body_size(django_application))))
