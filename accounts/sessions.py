"""Browser sessions: a signed cookie names the user and their login's token family.

Every page request re-checks both against the in-process directory, so a deleted,
disabled or demoted user loses access on their very next click.
"""

from __future__ import annotations

from uuid import UUID

from django_htmx.middleware import HtmxDetails

from accounts.identity import get_directory
from accounts.repository import User
from core.requests import GatewayRequest

SESSION_USER = "uid"
SESSION_FAMILY = "fam"


class PageRequest(GatewayRequest):
    """A page request, for type annotations: what the page middleware sets on it."""

    gateway_user: User | None  # accounts.middleware.PageUserMiddleware
    htmx: HtmxDetails  # core.middleware.InlineMiddleware, as django-htmx's middleware would


def sign_in(request: PageRequest, user: User, family: str) -> None:
    request.session.cycle_key()
    request.session[SESSION_USER] = str(user.id)
    request.session[SESSION_FAMILY] = family
    request.gateway_user = user


def sign_out(request: PageRequest) -> None:
    request.session.flush()
    request.gateway_user = None


def session_family(request: PageRequest) -> str | None:
    family = request.session.get(SESSION_FAMILY)
    return family if isinstance(family, str) else None


def session_user(request: PageRequest) -> User | None:
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


def attach_page_user(request: PageRequest) -> None:
    """Set request.gateway_user for a page request (by accounts.middleware.PageUserMiddleware)."""
    user = session_user(request)
    request.gateway_user = user
    if user is not None:
        request.auth_user_id = user.id


def current_user(request: PageRequest) -> User:
    """The signed-in user of a page behind login_required."""
    user = request.gateway_user
    assert user is not None
    return user
