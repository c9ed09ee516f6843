"""The project's errors in OpenAI's shape, in one place (decision 33).

`{"error": {"message", "type", "param", "code"}}` with the status the official SDKs map to
their exception classes. The SDKs retry 408, 409, 429 and 5xx by themselves unless the
answer says `x-should-retry: false`; that header goes on every 5xx of a generation (a retry
could bill twice, and the SPEC never repeats a generation silently) and on 429s whose wait
is longer than an SDK would honour (retrying sooner can never succeed).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework.response import Response

from core.api import as_api_error
from core.errors import ApiError

log = logging.getLogger(__name__)

# OpenAI's error types by status.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
# The longest Retry-After the official SDKs wait for before retrying by themselves.
SDK_RETRY_AFTER_LIMIT = 60
# Codes the OpenAI API uses for the same situations, where the gateway's differ.
_UNKNOWN_MODEL = "unknown_model"
# Failures no retry can mend until an administrator acts.
_NEVER_SUCCEEDS = frozenset({"upstream_not_configured", "upstream_auth_failed"})


def openai_error(
    error: ApiError, *, method: str = "POST"
) -> tuple[dict[str, Any], int, dict[str, str]]:
    """(body, status, headers) of an error in OpenAI's shape."""
    status, code, param = error.status, error.code, _param(error.fields)
    message = error.message
    if code == _UNKNOWN_MODEL:  # the catalogue has no such model (of this kind): 404
        status, code = 404, "model_not_found"
    if error.fields and code == "validation_error":
        message = "; ".join(f"{name}: {text}" for name, text in error.fields.items())
    headers = dict(error.headers)
    if status >= 500 and (method == "POST" or code in _NEVER_SUCCEEDS):
        headers["x-should-retry"] = "false"
    if status == 429 and _retry_after(headers) > SDK_RETRY_AFTER_LIMIT:
        headers["x-should-retry"] = "false"
    kind = _TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return body, status, headers


def error_response(error: ApiError, method: str) -> Response:
    body, status, headers = openai_error(error, method=method)
    response = Response(body, status=status)
    for name, value in headers.items():
        response[name] = value
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def openai_exception_handler(exc: Exception, context: Mapping[str, Any]) -> Response:
    """The DRF exception handler of every /v1/ view."""
    error = as_api_error(exc)
    if error is None:
        log.exception("unhandled error in %s", context.get("view"), exc_info=exc)
        error = ApiError("Something went wrong on our side.", code="internal_error", status=500)
    request = context.get("request")
    return error_response(error, getattr(request, "method", "POST") or "POST")


def not_found(request: HttpRequest, path: str = "") -> HttpResponse:
    """Any /v1/ path the gateway does not serve."""
    body, status, _ = openai_error(
        ApiError(
            f"The gateway serves no {request.method} /v1/{path}. See /api/docs/.",
            code="unknown_url",
            status=404,
        )
    )
    return JsonResponse(body, status=status)


def _param(fields: Mapping[str, str]) -> str | None:
    """The first field at fault, as OpenAI's `param` names it (none for the whole body)."""
    name = next(iter(fields), None)
    return None if name in (None, "non_field_errors") else name


def _retry_after(headers: Mapping[str, str]) -> int:
    value = headers.get("Retry-After", "")
    return int(value) if value.isdigit() else 0
