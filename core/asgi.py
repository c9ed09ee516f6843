"""ASGI pieces around Django: a host check, a body-size guard, a static file server, and
the handler.

The project's ASGI entry point (aigateway/asgi.py) composes them with its lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import mimetypes
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http.request import split_domain_port, validate_host
from django.urls import ResolverMatch, URLResolver, get_resolver, set_script_prefix

from core.errors import ApiError
from core.params import ascii_whole_number
from core.paths import is_api_path

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


async def _send_error(scope: Scope, send: Send, status: int, code: str, message: str) -> None:
    """An error answered before Django: the API's error shape under the API prefixes, text
    elsewhere."""
    if is_api_path(scope["path"]):
        body = json.dumps(ApiError(message, code=code, status=status).as_dict()).encode()
        content_type = b"application/json"
    else:
        body, content_type = message.encode(), b"text/plain; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _send_413(scope: Scope, send: Send) -> None:
    await _send_error(scope, send, 413, "payload_too_large", "The request body is too large.")


# Orchestrators and load balancers call the probes by an address, not by a host name; the
# probes change nothing and tell nothing worth a DNS-rebinding attack.
HOST_CHECK_EXEMPT = frozenset({"/healthz", "/readyz"})


def host_is_allowed(scope: Scope) -> bool:
    """Django's own ALLOWED_HOSTS test (request.get_host()), on an ASGI scope."""
    raw = None
    for name, value in scope.get("headers", ()):
        if name == b"host":
            raw = value.decode("latin-1")
            break
    if raw is None:  # HTTP/1.0: the address the request came in on, as Django does
        server = scope.get("server") or ("", None)
        raw = f"{server[0]}:{server[1]}" if server[1] else str(server[0])
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    domain, _ = split_domain_port(raw)
    return bool(domain) and validate_host(domain, allowed)


def require_allowed_host(app: ASGIApp) -> ASGIApp:
    """Answer 400 to a request for a host not in ALLOWED_HOSTS, on every path but the
    probes, before static files, the body guard or Django see it.

    Django checks the host only when something calls request.get_host(), which the API
    never did: with `Host: attacker.example` it registered users and ran generations,
    which is what a DNS-rebinding page needs to drive a gateway on an intranet or
    loopback address from a victim's browser.
    """

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in HOST_CHECK_EXEMPT or host_is_allowed(scope):
            await app(scope, receive, send)
            return
        log.warning("refused a request for a host not in ALLOWED_HOSTS: %r", _host_of(scope))
        await _send_error(
            scope, send, 400, "invalid_host", "This server does not answer to that host name."
        )

    return guarded


def _host_of(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"host":
            return str(value[:100].decode("latin-1"))
    return ""


def limit_body_size(app: ASGIApp) -> ASGIApp:
    """Answer 413 as soon as a body is known to exceed its path's limit."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        limit = body_limit_for(scope["path"])
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and (
                (declared := ascii_whole_number(value.decode("latin-1"))) is None
                or declared > limit
            ):
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
    (decision 33)."""
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


def follow_other_workers(app: ASGIApp) -> ASGIApp:
    """Before each request, apply what other worker processes committed to the in-process
    caches (core/invalidation.py): a sign-out answered by one worker holds on the next
    request to any other. 503 while Redis, which carries those changes, is unreachable."""
    from core import invalidation

    if not invalidation.follows_others():
        return app

    async def following(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in HOST_CHECK_EXEMPT:
            try:
                await invalidation.follow()
            except invalidation.CoordinationUnavailable as exc:
                await _send_error(scope, send, 503, "coordination_unavailable", exc.message)
                return
        await app(scope, receive, send)

    return following


class GatewayASGIHandler(ASGIHandler):
    """Django's ASGI handler without a ThreadSensitiveContext per request, closing each
    response on the event loop.

    That context gives each request its own executor, so the few sync hooks Django still
    runs per request (closing the response) start a fresh thread every time. Django's own
    handler cost 38 % more CPU on a chat request (decision 33). Every view here is async;
    no view depends on a thread of its own.

    Django then closes every response through `sync_to_async`: a hop to its sync thread
    and back per request, whose wake-ups and GIL hand-overs showed as an eighth of a
    worker's event loop in a profile of chat at c=64 (decision 53). Closing a response
    closes its files and sends `request_finished`, whose receivers here are Django's
    cache closing (a no-op for Redis and the local-memory cache) and URLconf reset; the
    ORM's are disconnected (core/apps.py). None blocks, so they run on the loop.
    """

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        await self.handle(scope, receive, send)

    def resolve_request(self, request: Any) -> ResolverMatch:
        """Django's, through a cache of recent paths' matches (_resolved)."""
        if hasattr(request, "urlconf") or len(request.path_info) > MAX_CACHED_PATH:
            return super().resolve_request(request)
        match = _resolved(get_resolver(), request.path_info)
        request.resolver_match = match
        return match

    async def handle(self, scope: Any, receive: Any, send: Any) -> None:
        """Django 5.2's ASGIHandler.handle with response.close() called directly."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        await signals.request_started.asend(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            assert error_response is not None  # Django returns one or the other
            body_file.close()
            await self.send_response(error_response, send)
            error_response.close()
            return

        async def process_request(request: Any, send: Any) -> Any:
            response = await self.run_get_response(request)
            with contextlib.suppress(asyncio.CancelledError):  # the client went away
                await self.send_response(response, send)
            return response

        # Django's way of noticing a client that disconnects while the view runs: the
        # listener goes first, as it should not raise anything that would stop the view
        # from being cancelled.
        tasks = [
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process_request(request, send)),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                if not task.cancelled() and isinstance(task.exception(), RequestAborted):
                    # Read, never raised: the listener ends with one on every request, once
                    # the response is complete, and raised here its traceback would hold
                    # this frame, tying the whole request into a reference cycle that only
                    # the garbage collector frees.
                    continue
                try:
                    task.result()
                except AssertionError:
                    body_file.close()
                    raise
            else:  # let the view handle its cancellation
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            response = tasks[1].result()
        except asyncio.CancelledError:
            await signals.request_finished.asend(sender=self.__class__)
        else:
            response.close()
        body_file.close()


MAX_CACHED_PATH = 256


@functools.lru_cache(maxsize=1024)
def _resolved(resolver: URLResolver, path: str) -> ResolverMatch:
    """The match of `path`. Django tries the URL patterns in order, a regex each, on every
    request: 14 µs for /api/ai/chat, whose pattern comes late, against 0.4 µs from here.
    A path's match cannot change while its resolver lives (another URLconf is another
    resolver: get_resolver() is cached per URLconf and cleared when ROOT_URLCONF changes),
    and nothing here changes a match after the fact. A path that matches nothing raises
    Resolver404, which is not cached."""
    return resolver.resolve(path)
