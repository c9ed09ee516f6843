from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request


class IsSignedIn(BasePermission):
    message = "Sign in first."

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(getattr(request.user, "is_authenticated", False))


class IsAdmin(BasePermission):
    """Admins only; the role is the user's current one, not the token's claim."""

    message = "Only admins may do this."
    refuses_signed_in_users = True  # so the OpenAPI schema documents its 403

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(getattr(user, "is_authenticated", False) and getattr(user, "is_admin", False))
