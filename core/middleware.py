"""One log line per request: request id, method, path, status, duration, user id."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, cast
from urllib.parse import quote

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase
from django.utils.decorators import sync_and_async_middleware
from django_htmx.middleware import HtmxDetails

from core.paths import is_api_path
from core.requests import GatewayRequest

log = logging.getLogger("aigateway.request")

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

Handler = Callable[[GatewayRequest], HttpResponseBase]
AsyncHandler = Callable[[GatewayRequest], Awaitable[HttpResponseBase]]


def _request_id(request: HttpRequest) -> str:
    # META, not request.headers: nothing else on an API request builds that mapping of all
    # the headers, which costs more than the rest of the request log.
    incoming = request.META.get("HTTP_X_REQUEST_ID", "")
    return incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex


def _start(request: GatewayRequest) -> float:
    request.request_id = _request_id(request)
    request.auth_user_id = None
    return time.perf_counter()


def _finish(request: GatewayRequest, response: HttpResponseBase, started: float) -> None:
    response["X-Request-ID"] = request.request_id
    # The path only: query strings may carry things that are nobody's business in a log.
    log.info(
        "request id=%s method=%s path=%s status=%s duration_ms=%.1f user=%s",
        request.request_id,
        request.method,
        quote(request.path, safe="/"),  # percent-encoded: a path cannot start a new line
        response.status_code,
        (time.perf_counter() - started) * 1000,
        request.auth_user_id or "-",
    )


@sync_and_async_middleware
def request_log_middleware(get_response: Handler | AsyncHandler) -> Handler | AsyncHandler:
    if iscoroutinefunction(get_response):
        async_response = cast(AsyncHandler, get_response)

        async def middleware(request: GatewayRequest) -> HttpResponseBase:
            started = _start(request)
            response = await async_response(request)
            _finish(request, response, started)
            return response

        return middleware

    sync_response = cast(Handler, get_response)

    def sync_middleware(request: GatewayRequest) -> HttpResponseBase:
        started = _start(request)
        response = sync_response(request)
        _finish(request, response, started)
        return response

    return sync_middleware


# Pages load scripts, styles, images and media from this site only, run no inline script,
# inline handler, inline style or eval, and are never framed (docs/decisions.md, 28).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "media-src 'self'",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class InlineMiddleware:
    """Django's security, session, CSRF, messages and clickjacking middleware, run inline,
    and django-htmx's `request.htmx`, for pages only.

    Under ASGI their MiddlewareMixin base runs every hook through sync_to_async (a thread
    hop each, ~100 µs here). Their hooks only do in-memory work in this project
    (signed-cookie sessions, cookie messages), so they run directly on the event loop.
    The JSON APIs (/api/, /v1/) authenticate with bearer tokens, never cookies, so they get
    only the security headers; pages get the whole set and a Content-Security-Policy.
    (HtmxMiddleware would give every request an HtmxDetails, which points back at the
    request: a reference cycle per API request for the garbage collector, decision 55.)
    Django's own classes cost twice the CPU on /api/ping and 38 % more on a chat request
    (decision 38).
    """

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: AsyncHandler) -> None:
        from django.contrib.messages.middleware import MessageMiddleware
        from django.contrib.sessions.middleware import SessionMiddleware
        from django.middleware.clickjacking import XFrameOptionsMiddleware
        from django.middleware.csrf import CsrfViewMiddleware
        from django.middleware.security import SecurityMiddleware

        self.get_response = get_response
        markcoroutinefunction(self)
        unused = _never_called
        self.security = SecurityMiddleware(unused)
        self.session = SessionMiddleware(unused)
        self.csrf = CsrfViewMiddleware(unused)
        self.messages = MessageMiddleware(unused)
        self.xframe = XFrameOptionsMiddleware(unused)

    async def __call__(self, request: GatewayRequest) -> Any:
        # Django's stubs type these hooks for HttpResponse; they accept any response.
        early = self.security.process_request(request)
        if early is not None:
            return self.security.process_response(request, early)
        if is_api_path(request.path):
            response: Any = await self.get_response(request)
            return self.security.process_response(request, response)
        request.htmx = HtmxDetails(request)  # type: ignore[attr-defined]  # a page request
        self.session.process_request(request)
        self.messages.process_request(request)
        self.csrf.process_request(request)
        response = await self.get_response(request)
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response = self.xframe.process_response(request, response)
        response = self.messages.process_response(request, response)
        response = self.csrf.process_response(request, response)
        response = self.session.process_response(request, response)
        return self.security.process_response(request, response)

    async def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: Any
    ) -> HttpResponseBase | None:
        if is_api_path(request.path):
            return None
        return self.csrf.process_view(request, view, args, kwargs)

    def process_exception(
        self, request: HttpRequest, exception: Exception
    ) -> HttpResponseBase | None:
        """A page whose service refused (not found, bad upstream…) shows it in the site's look."""
        from django.shortcuts import render

        from core.errors import ApiError

        if is_api_path(request.path) or not isinstance(exception, ApiError):
            return None
        template = "404.html" if exception.status == 404 else "error.html"
        return render(request, template, {"error": exception}, status=exception.status)


def _never_called(request: HttpRequest) -> HttpResponseBase:
    raise AssertionError("wrapped middleware hooks are called directly")
