"""The request as this project's middleware leaves it, for type annotations.

Django builds the request objects; these classes only name the attributes the middleware
sets on them, so views and helpers read them without `type: ignore`.
"""

from __future__ import annotations

from uuid import UUID

from django.http import HttpRequest


class GatewayRequest(HttpRequest):
    request_id: str  # core.middleware.request_log_middleware, first thing on every request
    auth_user_id: UUID | None  # who it was, for the request log: None until authenticated
