"""The project's one error model: every API failure is an ApiError with a stable code,
rendered (and documented) in the one shape ErrorSerializer declares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

from core.serializers import render


class ApiError(Exception):
    """An error a client may see: HTTP status, stable machine code, sentence for people."""

    status: int = 400
    code: str = "bad_request"
    message: str = "The request could not be processed."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        status: int | None = None,
        fields: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.message = message or type(self).message
        self.code = code or type(self).code
        self.status = status or type(self).status
        self.fields = dict(fields or {})
        self.headers = dict(headers or {})
        super().__init__(self.message)

    def as_dict(self) -> dict[str, Any]:
        return render(ErrorSerializer, self)


class ErrorDetailSerializer(serializers.Serializer["ApiError"]):
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. `email_taken`.")
    message = serializers.CharField(help_text="A sentence for people.")
    # A declared field named like Serializer.fields: DRF's metaclass takes it out of the class.
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.CharField(),
        help_text="Per-field validation messages, keyed by field name (may be empty).",
    )


class ErrorSerializer(serializers.Serializer["ApiError"]):
    """Every error of the API, whatever the status."""

    error = ErrorDetailSerializer(source="*")

    class Meta:
        ref_name = "Error"


class ValidationFailed(ApiError):
    status = 400
    code = "validation_error"
    message = "Some fields are invalid."


class NotAuthenticated(ApiError):
    status = 401
    code = "not_authenticated"
    message = "Authentication credentials were not provided or are not valid."


class Forbidden(ApiError):
    status = 403
    code = "forbidden"
    message = "You are not allowed to do this."


class NotFound(ApiError):
    status = 404
    code = "not_found"
    message = "Not found."


class Conflict(ApiError):
    status = 409
    code = "conflict"
    message = "The request conflicts with the current state."


class RateLimited(ApiError):
    status = 429
    code = "rate_limited"
    message = "Too many requests. Try again later."

    def __init__(self, retry_after: int, message: str | None = None, *, code: str | None = None):
        super().__init__(message, code=code, headers={"Retry-After": str(max(1, retry_after))})
        self.retry_after = max(1, retry_after)


class UpstreamError(ApiError):
    """A failure talking to OpenRouter, already mapped to the status a client should see.

    Statuses: 502 (unreachable, 5xx, bad answer, 402 credits), 503 (not configured),
    504 (timeout), 429 (rate limited, with Retry-After), 4xx (the request was refused upstream).
    The message never contains the API key or the raw request.
    """

    status = 502
    code = "upstream_error"
    message = "The AI provider failed to answer."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        status: int | None = None,
        retry_after: int | None = None,
        upstream_status: int | None = None,
    ) -> None:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        super().__init__(message, code=code, status=status, headers=headers)
        self.retry_after = retry_after
        self.upstream_status = upstream_status
        self.latency_ms: int | None = None  # how long the failed call took, for usage records
