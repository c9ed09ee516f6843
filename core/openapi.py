"""OpenAPI 3 (drf-spectacular): the error shape and the errors every view can give.

Views declare their own bodies with `@extend_schema(request=..., responses=...)` and the
errors only they raise with `errors(409, ...)`. The errors that follow from how a view is
built (auth → 401, a permission class with `refuses_signed_in_users` → 403, a body →
400/413/415, a path id → 404, and 429/503 anywhere) are added here, so no operation can
forget them.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import force_instance
from drf_spectacular.utils import OpenApiResponse
from rest_framework.permissions import AllowAny

from core.errors import ErrorSerializer
from core.serializers import StrictSerializer

# What each status means in this API, with the codes a client may see.
ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Invalid input: `validation_error` (per-field messages in `fields`), `malformed_json`.",
    401: "No, invalid or expired credentials: `not_authenticated`, `invalid_token`, "
    "`token_revoked`, `invalid_api_key`, `invalid_authorization_header`; on login "
    "`invalid_credentials`, `account_disabled`; on refresh `token_reused`.",
    403: "Signed in, but not allowed: `forbidden` (admins only); `model_not_allowed` (the "
    "caller's limits exclude the model; nothing was sent upstream).",
    404: "No such object, or it is not yours: `not_found` and more specific `*_not_found` codes.",
    409: "Conflicts with the current state, e.g. `email_taken`, `last_admin`.",
    413: "The body is too large: `payload_too_large`.",
    415: "Wrong content type: `unsupported_media_type`.",
    429: "Rate limited: `rate_limited`; wait `Retry-After` seconds. Or `budget_exceeded`: the "
    "call's worst-case cost does not fit the caller's remaining budget; `x-should-retry: "
    "false`, and `Retry-After` is the seconds until the budget period resets.",
    502: "OpenRouter failed: `upstream_error`, `upstream_payment_required`, ...",
    503: "Unavailable: `upstream_not_configured`, `database_busy`, `database_error`, "
    "`limits_unavailable` (the caller's limits could not be read; nothing was sent).",
    504: "OpenRouter timed out: `upstream_timeout`.",
}

_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "schema": {"type": "string"},
            "description": 'Always `Bearer realm="api"`.',
        }
    },
    429: {
        "Retry-After": {
            "schema": {"type": "integer", "minimum": 1},
            "description": "Seconds to wait before trying again.",
        }
    },
}


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    """Error responses for extend_schema(responses={..., **errors(409)})."""
    return {
        status: OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[status])
        for status in statuses
    }


UPSTREAM_ERRORS = (403, 429, 502, 503, 504)


class GatewaySchema(AutoSchema):
    """drf-spectacular's AutoSchema plus the error responses implied by the view's shape."""

    def _implied_errors(self) -> list[int]:
        statuses = [429, 503]
        permissions = getattr(self.view, "permission_classes", [])
        if self.view.get_authenticators() and not all(p is AllowAny for p in permissions):
            statuses.append(401)
        if any(getattr(p, "refuses_signed_in_users", False) for p in permissions):
            statuses.append(403)
        if self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None:
            statuses += [400, 413, 415]
        if self.get_override_parameters():
            statuses.append(400)
        if "{" in self.path:
            statuses.append(404)
        return statuses

    def _error(self, status: int) -> OpenApiResponse:
        """The view's error shape: the API's one, unless the view speaks another (a view
        with `error_serializer` and `error_descriptions`, e.g. OpenAI's under /v1/)."""
        serializer = getattr(self.view, "error_serializer", None)
        if serializer is None:
            return errors(status)[status]
        descriptions = getattr(self.view, "error_descriptions", ERROR_DESCRIPTIONS)
        return OpenApiResponse(serializer, description=descriptions[status])

    def _map_basic_serializer(self, serializer: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = super()._map_basic_serializer(serializer, direction)
        if direction == "request" and isinstance(force_instance(serializer), StrictSerializer):
            schema["additionalProperties"] = False  # unknown fields are refused
        return schema

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        for status in sorted(set(self._implied_errors())):
            if str(status) not in responses:
                responses[str(status)] = self._get_response_for_code(
                    self._error(status), str(status), direction=direction
                )
        for status, headers in _HEADERS.items():
            if str(status) in responses:
                responses[str(status)].setdefault("headers", {}).update(headers)
        return dict(sorted(responses.items()))


# -- plain Django JSON views, outside DRF ------------------------------------------------

_PLAIN_VIEWS: dict[str, dict[str, Any]] = {
    "/api/ping": {
        "summary": "Liveness through the whole middleware stack (no auth, no DRF)",
        "schema": {
            "type": "object",
            "properties": {"pong": {"type": "boolean"}},
            "required": ["pong"],
        },
        "statuses": (200,),
    },
}


def add_plain_views(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Postprocessing hook: document the /api/ JSON endpoints that are plain Django views.
    (/healthz and /readyz are probes for the operator, outside the API.)"""
    for path, spec in _PLAIN_VIEWS.items():
        content = {"application/json": {"schema": spec["schema"]}}
        result.setdefault("paths", {})[path] = {
            "get": {
                "operationId": path.strip("/").replace("/", "_") + "_retrieve",
                "summary": spec["summary"],
                "tags": ["health"],
                "security": [{}],
                "responses": {
                    str(status): {"description": spec["summary"], "content": content}
                    for status in spec["statuses"]
                },
            }
        }
    return result
