"""ASGI pieces around Django: a body-size guard, a static file server, and the handler.

The project's ASGI entry point (aigateway/asgi.py) composes them with its lifespan.
"""

from __future__ import annotations

import asyncio
import functools
import json
import mimetypes
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings
from django.core.handlers.asgi import ASGIHandler

from core.errors import ApiError

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
        error = ApiError("The request body is too large.", code="payload_too_large", status=413)
        body = json.dumps(error.as_dict()).encode()
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


@functools.lru_cache(maxsize=1024)
def _static_file(relative: str) -> tuple[bytes, str] | None:
    """(content, MIME type) of a static file found by Django's finders, read once."""
    from django.contrib.staticfiles import finders
    from django.core.exceptions import SuspiciousFileOperation

    try:
        found = finders.find(relative)
    except SuspiciousFileOperation:
        return None
    if not isinstance(found, str) or not os.path.isfile(found):
        return None
    media_type = mimetypes.guess_type(found)[0] or "application/octet-stream"
    if media_type.startswith("text/") or media_type.endswith(("javascript", "json")):
        media_type += "; charset=utf-8"
    with open(found, "rb") as handle:
        return handle.read(), media_type


def serve_static(app: ASGIApp) -> ASGIApp:
    """Serve STATIC_URL from the source tree on the event loop: no collectstatic step and
    no sync middleware in front of Django. WhiteNoise's middleware is sync-only, so every
    request, API included, would switch threads twice: 25 % more CPU on a chat request
    (decision 20)."""
    prefix = settings.STATIC_URL

    async def static(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(prefix) or scope["method"] not in ("GET", "HEAD"):
            await app(scope, receive, send)
            return
        found = await asyncio.to_thread(_static_file, path[len(prefix) :])
        if found is None:
            await app(scope, receive, send)
            return
        body, media_type = found
        headers = [
            (b"content-type", media_type.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"public, max-age=3600"),
            (b"x-content-type-options", b"nosniff"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )

    return static


class GatewayASGIHandler(ASGIHandler):
    """Django's ASGI handler without a ThreadSensitiveContext per request.

    That context gives each request its own executor, so the few sync hooks Django still
    runs per request (closing the response) start a fresh thread every time. Without it
    they share Django's one sync thread. Every view here is async; no view depends on a
    thread of its own. Django's own handler cost 38 % more CPU on a chat request
    (decision 20).
    """

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        await self.handle(scope, receive, send)
