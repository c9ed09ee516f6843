"""Template context for every page."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def navigation(request: HttpRequest) -> dict[str, Any]:
    """The signed-in user and which section is active."""
    return {
        # Absent on /api/ and on error pages rendered before the page middleware ran.
        "gateway_user": getattr(request, "gateway_user", None),
        "section": request.path.strip("/").split("/")[0] or "home",
        # Off, nobody can create a password account: the pages offer none.
        "password_login": settings.PASSWORD_LOGIN,
    }
