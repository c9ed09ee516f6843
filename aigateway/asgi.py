"""ASGI entry point: `python -m uvicorn aigateway.asgi:application` (one process).

Around Django: a lifespan handler that opens (and migrates) the database at start-up and
flushes and closes it at shutdown, and a guard that refuses oversized bodies before
Django spools them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aigateway.settings")

from django.conf import settings
from django.core.asgi import get_asgi_application

from aigateway.db import DatabaseError, close_database, get_database

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _TooLarge(Exception):
    pass


def body_limit_for(path: str) -> int:
    for prefix in getattr(settings, "UPLOAD_PATH_PREFIXES", ()):
        if path.startswith(prefix):
            return int(settings.MAX_UPLOAD_BYTES)
    return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


async def _send_413(scope: Scope, send: Send) -> None:
    if scope["path"].startswith("/api/"):
        body = json.dumps(
            {
                "error": {
                    "code": "payload_too_large",
                    "message": "The request body is too large.",
                    "fields": {},
                }
            }
        ).encode()
        content_type = b"application/json"
    else:
        body, content_type = b"Request body too large.", b"text/plain; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def limit_body_size(app: ASGIApp) -> ASGIApp:
    """Answer 413 as soon as a body is known to exceed its path's limit."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        limit = body_limit_for(scope["path"])
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and (not value.isdigit() or int(value) > limit):
                await _send_413(scope, send)
                return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _send_413(scope, send)

    return guarded


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
    from generation.recorder import get_recorder

    get_database()
    get_directory()
    get_recorder()
    log.info("database ready at %s", settings.DUCKDB_PATH)


django_application = get_asgi_application()
application = with_lifespan(limit_body_size(django_application))  # type: ignore[arg-type]
