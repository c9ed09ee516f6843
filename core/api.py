"""DRF plumbing shared by every app: async API views, strict input, one error shape."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.http.multipartparser import MultiPartParserError
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.db import DatabaseBusy, DatabaseError, IntegrityViolation
from core.errors import ApiError, Conflict, RateLimited, ValidationFailed
from core.parsers import MalformedMultipart
from core.paths import is_api_path
from core.serializers import shared

log = logging.getLogger(__name__)

# DRF's own exceptions, as (status, code, message) of our error shape.
_DRF_ERRORS: dict[type[exceptions.APIException], tuple[str, str]] = {
    exceptions.NotAuthenticated: (
        "not_authenticated",
        "Authentication credentials were not provided.",
    ),
    exceptions.AuthenticationFailed: ("not_authenticated", "The credentials are not valid."),
    exceptions.PermissionDenied: ("forbidden", "You are not allowed to do this."),
    exceptions.NotFound: ("not_found", "Not found."),
    exceptions.MethodNotAllowed: ("method_not_allowed", "This method is not allowed here."),
    exceptions.NotAcceptable: ("not_acceptable", "This endpoint answers in JSON only."),
    exceptions.UnsupportedMediaType: (
        "unsupported_media_type",
        "Send the body as JSON with Content-Type: application/json.",
    ),
    exceptions.ParseError: ("malformed_json", "The body is not valid JSON."),
}


class ApiView(APIView):
    """An APIView whose handlers are coroutines, run on the event loop.

    Authentication, permissions and throttles are in-memory checks, so they run inline
    rather than on a thread; handlers await the database and upstream calls. adrf's
    APIView, which hops threads for them, needed 1.5x the CPU on /api/users/me (decision 33).
    """

    async def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:  # type: ignore[override]
        self.args = args
        self.kwargs = kwargs
        drf_request = self.initialize_request(request, *args, **kwargs)
        self.request = drf_request
        self.headers = self.default_response_headers
        try:
            self.initial(drf_request, *args, **kwargs)
            method = (request.method or "").lower()
            handler = getattr(self, method, None) if method in self.http_method_names else None
            if handler is None:
                handler = self.http_method_not_allowed
            response = handler(drf_request, *args, **kwargs)
            if inspect.isawaitable(response):
                response = await response
        except Exception as exc:
            response = self.handle_exception(exc)
        self.response = self.finalize_response(drf_request, response, *args, **kwargs)
        # DRF's request and response point back at this view through their contexts, as it
        # points at them. The body is parsed by now, and the response is rendered below (a
        # stream needs no context), so untied, the request's objects are freed as it ends
        # rather than by the garbage collector, whose passes hold the event loop for as long
        # as what they walk (decision 55).
        drf_request.parser_context = {}
        if not isinstance(self.response, Response):
            return self.response
        plain = rendered(self.response)
        self.response.renderer_context = {}  # type: ignore[attr-defined]  # set by DRF
        return plain


def rendered(response: Response) -> HttpResponse:
    """A DRF Response rendered now, as a plain HttpResponse.

    Django renders template-style responses (DRF's included) through sync_to_async, a
    thread hop per request under ASGI; JSON rendering is quick, so do it on the loop.
    """
    response.render()
    plain = HttpResponse(response.content, status=response.status_code)
    for name, value in response.items():
        plain[name] = value
    return plain


def error_response(error: ApiError) -> Response:
    response = Response(error.as_dict(), status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    if error.status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def as_api_error(exc: BaseException) -> ApiError | None:
    """Map any exception a request can raise to our error model, or None for a real bug."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, exceptions.ValidationError):
        return ValidationFailed(fields=flatten_errors(exc.detail))
    if isinstance(exc, exceptions.Throttled):
        return RateLimited(int(getattr(exc, "wait", None) or 1))
    if isinstance(exc, exceptions.APIException):
        for kind, (code, message) in _DRF_ERRORS.items():
            if isinstance(exc, kind):
                return ApiError(message, code=code, status=exc.status_code)
        return ApiError(str(exc.detail), code=str(exc.default_code), status=exc.status_code)
    if isinstance(exc, Http404):
        return ApiError("Not found.", code="not_found", status=404)
    if isinstance(exc, RequestDataTooBig):
        return ApiError("The request body is too large.", code="payload_too_large", status=413)
    if isinstance(exc, SuspiciousOperation):
        return ApiError("The request was refused.", code="bad_request", status=400)
    if isinstance(exc, IntegrityViolation):
        return Conflict()
    if isinstance(exc, DatabaseBusy):
        return ApiError(
            "The database is busy; try again.",
            code="database_busy",
            status=503,
            headers={"Retry-After": "1"},
        )
    if isinstance(exc, DatabaseError):
        log.error("database error: %s", exc)
        return ApiError("The database failed.", code="database_error", status=503)
    return None


def api_exception_handler(exc: Exception, context: Mapping[str, Any]) -> Response | None:
    error = as_api_error(exc)
    if error is None:
        log.exception("unhandled error in %s", context.get("view"), exc_info=exc)
        error = ApiError("Something went wrong on our side.", code="internal_error", status=500)
    return error_response(error)


def flatten_errors(detail: Any, prefix: str = "") -> dict[str, str]:
    """DRF's nested error detail as {"field" or "field.sub": "message ..."}."""
    if isinstance(detail, Mapping):
        flat: dict[str, str] = {}
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors" and not prefix:
                name = "non_field_errors"
            flat.update(flatten_errors(value, name))
        return flat
    if isinstance(detail, list):
        if all(not isinstance(item, (Mapping, list)) for item in detail):
            return {prefix or "non_field_errors": " ".join(str(item) for item in detail)}
        flat = {}
        for index, item in enumerate(detail):
            flat.update(flatten_errors(item, f"{prefix}.{index}" if prefix else str(index)))
        return flat
    return {prefix or "non_field_errors": str(detail)}


def validate(serializer_class: type[serializers.Serializer[Any]], data: Any) -> dict[str, Any]:
    """`data` as `serializer_class` validates it, or ValidationFailed with per-field messages."""
    try:
        return dict(shared(serializer_class).run_validation(data))
    except serializers.ValidationError as exc:
        raise ValidationFailed(fields=flatten_errors(exc.detail)) from None


def client_ip(request: HttpRequest | Request) -> str:
    """The client's address, for rate limits and the audit log: the peer uvicorn saw, or
    with BEHIND_PROXY the address a trusted proxy forwarded (uvicorn's --proxy-headers
    rewrites it; see aigateway.serve). X-Forwarded-For is never read here: any client
    can send one."""
    return str(request.META.get("REMOTE_ADDR", ""))


def json_error(error: ApiError) -> JsonResponse:
    """The error shape outside DRF (404/500 handlers, ASGI guards)."""
    response = JsonResponse(error.as_dict(), status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    return response


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_path(request.path):
        return json_error(ApiError("Not found.", code="not_found", status=404))
    from django.views.defaults import page_not_found

    return page_not_found(request, exception or Http404())


def server_error(request: HttpRequest) -> HttpResponse:
    if is_api_path(request.path):
        return json_error(
            ApiError("Something went wrong on our side.", code="internal_error", status=500)
        )
    from django.views.defaults import server_error as default_server_error

    return default_server_error(request)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if isinstance(exception, MultiPartParserError):  # a form Django itself failed to read
        error: ApiError = MalformedMultipart()
        if is_api_path(request.path):
            return json_error(error)
        from django.shortcuts import render

        return render(request, "error.html", {"error": error}, status=error.status)
    if is_api_path(request.path):
        return json_error(ApiError("The request was refused.", code="bad_request", status=400))
    from django.views.defaults import bad_request as default_bad_request

    return default_bad_request(request, exception or SuspiciousOperation())
