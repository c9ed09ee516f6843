"""Browser sessions: a signed cookie names the user and their login's token family.

Every page request re-checks both against the in-process directory, so a deleted,
disabled or demoted user loses access on their very next click.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from accounts.identity import get_directory
from accounts.repository import User

SESSION_USER = "uid"
SESSION_FAMILY = "fam"

View = Callable[..., Any]  # async page views; typed loosely so urls.py accepts them


def sign_in(request: HttpRequest, user: User, family: str) -> None:
    request.session.cycle_key()
    request.session[SESSION_USER] = str(user.id)
    request.session[SESSION_FAMILY] = family
    request.gateway_user = user  # type: ignore[attr-defined]


def sign_out(request: HttpRequest) -> None:
    request.session.flush()
    request.gateway_user = None  # type: ignore[attr-defined]


def session_family(request: HttpRequest) -> str | None:
    family = request.session.get(SESSION_FAMILY)
    return family if isinstance(family, str) else None


def session_user(request: HttpRequest) -> User | None:
    """The signed-in user, in their current state, or None."""
    raw_id, family = request.session.get(SESSION_USER), session_family(request)
    if not raw_id or not family:
        return None
    try:
        user_id = UUID(str(raw_id))
    except ValueError:
        return None
    directory = get_directory()
    user = directory.user(user_id)
    if user is None or not user.is_active or not directory.family_is_live(family):
        return None
    return user


def attach_page_user(request: HttpRequest) -> None:
    """Set request.gateway_user for a page request (by accounts.middleware.PageUserMiddleware)."""
    user = session_user(request)
    request.gateway_user = user  # type: ignore[attr-defined]
    if user is not None:
        request.auth_user_id = user.id  # type: ignore[attr-defined]


def current_user(request: HttpRequest) -> User:
    user = getattr(request, "gateway_user", None)
    assert isinstance(user, User)
    return user


def login_required(view: View) -> View:
    @functools.wraps(view)
    async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if getattr(request, "gateway_user", None) is None:
            if request.headers.get("HX-Request"):
                response = HttpResponse(status=401)
                response["HX-Redirect"] = reverse("login")
                return response
            login = reverse("login") + "?" + urlencode({"next": request.get_full_path()})
            return HttpResponseRedirect(login)
        return await view(request, *args, **kwargs)

    return wrapper


def admin_required(view: View) -> View:
    @login_required
    @functools.wraps(view)
    async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not current_user(request).is_admin:
            return render(request, "403.html", status=403)
        return await view(request, *args, **kwargs)

    return wrapper


def safe_next(request: HttpRequest, default: str | None = None) -> str:
    if default is None:
        default = reverse("home")
    target = request.POST.get("next") or request.GET.get("next") or default
    if url_has_allowed_host_and_scheme(
        target, {request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


def navigation(request: HttpRequest) -> dict[str, Any]:
    """Template context: the signed-in user and which section is active."""
    path = request.path
    return {
        "gateway_user": getattr(request, "gateway_user", None),
        "section": path.strip("/").split("/")[0] or "home",
    }
