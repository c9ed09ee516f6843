"""One log line per request: request id, method, path, status, duration, user id."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponseBase
from django.utils.decorators import sync_and_async_middleware

log = logging.getLogger("aigateway.request")

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

Handler = Callable[[HttpRequest], HttpResponseBase]
AsyncHandler = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


def _request_id(request: HttpRequest) -> str:
    incoming = request.headers.get("X-Request-ID", "")
    return incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex


def _finish(request: HttpRequest, response: HttpResponseBase, started: float) -> None:
    response["X-Request-ID"] = request.request_id  # type: ignore[attr-defined]
    user_id = getattr(request, "auth_user_id", None) or "-"
    # The path only: query strings may carry things that are nobody's business in a log.
    log.info(
        "request id=%s method=%s path=%s status=%s duration_ms=%.1f user=%s",
        request.request_id,  # type: ignore[attr-defined]
        request.method,
        request.path,
        response.status_code,
        (time.perf_counter() - started) * 1000,
        user_id,
    )


@sync_and_async_middleware
def request_log_middleware(get_response: Handler | AsyncHandler) -> Handler | AsyncHandler:
    if iscoroutinefunction(get_response):
        async_response = get_response

        async def middleware(request: HttpRequest) -> HttpResponseBase:
            started = time.perf_counter()
            request.request_id = _request_id(request)  # type: ignore[attr-defined]
            response = await async_response(request)
            _finish(request, response, started)
            return response

        return middleware

    sync_response = get_response

    def sync_middleware(request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        request.request_id = _request_id(request)  # type: ignore[attr-defined]
        response = sync_response(request)
        _finish(request, response, started)  # type: ignore[arg-type]
        return response  # type: ignore[return-value]

    return sync_middleware
