"""DRF authentication: `Authorization: Bearer <access token | API key>`."""

from __future__ import annotations

from typing import Any, cast

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from accounts.repository import User
from accounts.services import Credential, authenticate_bearer
from core.errors import NotAuthenticated, RateLimited
from core.requests import GatewayRequest
from core.throttling import FailedAuthThrottle


class BearerAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[User, Credential] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        failures = FailedAuthThrottle()
        wait = failures.retry_after(request)
        if wait is not None:
            raise RateLimited(wait, "Too many failed sign-ins from this address. Try again later.")
        try:
            user, how = _check(header)
        except NotAuthenticated:
            failures.note_failure(request)
            raise
        # The request log middleware reads this from the Django request it set up.
        cast(GatewayRequest, request._request).auth_user_id = user.id
        return user, how

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


def _check(header: str) -> tuple[User, Credential]:
    scheme, _, credential = header.partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise NotAuthenticated(
            "Send credentials as 'Authorization: Bearer <token or API key>'.",
            code="invalid_authorization_header",
        )
    return authenticate_bearer(credential)


def request_user(request: Any) -> User:
    """The signed-in user of a request that passed IsSignedIn."""
    user = request.user
    assert isinstance(user, User)
    return user


class BearerAuthenticationScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema describes BearerAuthentication (drf-spectacular finds it)."""

    target_class = BearerAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "`Authorization: Bearer <token>` with an access token from "
                "`POST /api/auth/login` (a JWT, 15 minutes) or a personal API key "
                "(`agw_...`, from `POST /api/auth/keys`)."
            ),
        }
