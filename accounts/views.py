"""Pages: register, log in, log out, profile with API keys (SPEC §3)."""

from __future__ import annotations

import functools
import logging
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from accounts import oidc, services
from accounts.decorators import PageView, login_required
from accounts.forms import (
    ApiKeyForm,
    CredentialsForm,
    EmailChangeForm,
    PasswordChangeForm,
    RegisterForm,
)
from accounts.sessions import PageRequest, current_user, session_family, sign_in, sign_out
from core.api import client_ip
from core.errors import ApiError
from core.forms import apply_api_error
from core.middleware import CONTENT_SECURITY_POLICY
from core.throttling import page_retry_after


def safe_next(request: PageRequest, default: str | None = None) -> str:
    """The `next` address to return to after signing in, if it is one of ours."""
    if default is None:
        default = reverse("home")
    target = request.POST.get("next") or request.GET.get("next") or default
    if url_has_allowed_host_and_scheme(
        target, {request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


def _too_many_attempts(
    request: PageRequest, template: str, context: dict[str, object]
) -> HttpResponse | None:
    """Log-in and registration forms share the API's per-IP limit on auth attempts."""
    wait = page_retry_after(request)
    if wait is None:
        return None
    response = render(
        request,
        template,
        {"next": safe_next(request, ""), **context, "retry_after": wait},
        status=429,
    )
    response["Retry-After"] = str(wait)
    return response


@require_http_methods(["GET", "POST"])
async def register(request: PageRequest) -> HttpResponse:
    if request.gateway_user:
        return redirect("home")
    form = RegisterForm(request.POST or None)
    if request.method == "POST" and (
        limited := _too_many_attempts(request, "accounts/register.html", {"form": form})
    ):
        return limited
    if request.method == "POST" and form.is_valid():
        try:
            user = await services.register_user(
                form.cleaned_data["email"], form.cleaned_data["password"]
            )
            user, tokens = await services.start_session(user)
        except ApiError as exc:
            apply_api_error(form, exc)
        else:
            sign_in(request, user, tokens.family)
            messages.success(request, "Welcome! Your account is ready.")
            return redirect("home")
    return render(request, "accounts/register.html", {"form": form})


def sso_form_may_leave(view: PageView) -> PageView:
    """The SSO button POSTs to /login/oidc, which redirects to the provider; browsers check
    that redirect against the page's CSP form-action, so the provider's origin is added."""

    @functools.wraps(view)
    async def wrapper(request: PageRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = await view(request, *args, **kwargs)
        if oidc.enabled() and "Content-Security-Policy" not in response:
            sources = " ".join(["'self'", *oidc.form_action_origins()])
            response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY.replace(
                "form-action 'self'", f"form-action {sources}"
            )
        return response

    return wrapper


@sso_form_may_leave
@require_http_methods(["GET", "POST"])
async def login_page(request: PageRequest) -> HttpResponse:
    if request.gateway_user:
        return HttpResponseRedirect(safe_next(request))
    form = CredentialsForm(request.POST or None)
    if request.method == "POST" and (
        limited := _too_many_attempts(request, "accounts/login.html", _login_context(request, form))
    ):
        return limited
    if request.method == "POST" and form.is_valid():
        try:
            user, tokens = await services.login(
                form.cleaned_data["email"], form.cleaned_data["password"]
            )
        except ApiError as exc:
            form.add_error(None, exc.message)
        else:
            sign_in(request, user, tokens.family)
            return HttpResponseRedirect(safe_next(request))
    return render(request, "accounts/login.html", _login_context(request, form))


def _login_context(request: PageRequest, form: CredentialsForm) -> dict[str, object]:
    """The password form shows unless PASSWORD_LOGIN is off (then only on ?password=1, for
    break-glass admins); the single sign-on button whenever OIDC_ISSUER is set."""
    return {
        "form": form,
        "next": safe_next(request, ""),
        "password_login": settings.PASSWORD_LOGIN
        or "password" in request.GET
        or request.method == "POST",
        "password_login_off": not settings.PASSWORD_LOGIN,
        "sso_label": settings.OIDC_BUTTON_LABEL if oidc.enabled() else None,
    }


SSO_SESSION_KEY = "oidc"
log = logging.getLogger(__name__)


@require_POST
async def oidc_start(request: PageRequest) -> HttpResponse:
    """Send the browser to the provider (a POST with CSRF, so no page can start it)."""
    if not oidc.enabled():
        return redirect("login")
    try:
        url, attempt = await oidc.begin(safe_next(request))
    except oidc.SsoFailure as failure:
        return _sso_failed(request, failure)
    request.session[SSO_SESSION_KEY] = attempt.as_session()
    return HttpResponseRedirect(url)


@require_http_methods(["GET"])
async def oidc_callback(request: PageRequest) -> HttpResponse:
    """The provider sends the browser back here with a code (or an error)."""
    if not oidc.enabled():
        return redirect("login")
    attempt = oidc.Attempt.from_session(request.session.pop(SSO_SESSION_KEY, None))
    try:
        claims = await oidc.finish(attempt, request.GET.dict())
        user = await services.sso_user(claims, ip=client_ip(request))
        user, tokens = await services.start_session(user)
    except oidc.SsoFailure as failure:
        return _sso_failed(request, failure)
    except ApiError as exc:  # e.g. disabled between the check and the session
        return _sso_failed(request, oidc.SsoFailure(exc.message, exc.code))
    sign_in(request, user, tokens.family)
    assert attempt is not None
    return HttpResponseRedirect(attempt.next or reverse("home"))


def _sso_failed(request: PageRequest, failure: oidc.SsoFailure) -> HttpResponse:
    log.info("single sign-on refused: %s", failure.reason)
    request.session.pop(SSO_SESSION_KEY, None)
    messages.error(request, failure.message)
    return redirect("login")


@require_POST
async def logout_page(request: PageRequest) -> HttpResponse:
    family = session_family(request)
    if family:
        await services.end_session(family)
    sign_out(request)
    messages.info(request, "You are logged out.")
    return redirect("home")


@login_required
@require_http_methods(["GET", "POST"])
async def profile(request: PageRequest) -> HttpResponse:
    user = current_user(request)
    email_form = EmailChangeForm(request.POST if request.POST.get("action") == "email" else None)
    password_form = PasswordChangeForm(
        request.POST if request.POST.get("action") == "password" else None
    )
    key_form = ApiKeyForm(request.POST if request.POST.get("action") == "key" else None)
    context: dict[str, object] = {}
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "email" and email_form.is_valid():
            try:
                await services.update_profile(
                    user, email=email_form.cleaned_data["email"],
                    current_password=email_form.cleaned_data["current_password"],
                )  # fmt: skip
            except ApiError as exc:
                apply_api_error(email_form, exc)
            else:
                messages.success(request, "Your email was changed.")
                return redirect("profile")
        elif action == "password" and password_form.is_valid():
            revoke_keys = password_form.cleaned_data["revoke_api_keys"]
            key_count = len(await services.list_api_keys(user))
            try:
                updated = await services.update_profile(
                    user, password=password_form.cleaned_data["password"],
                    current_password=password_form.cleaned_data["current_password"],
                    revoke_api_keys=revoke_keys, ip=client_ip(request),
                )  # fmt: skip
            except ApiError as exc:
                apply_api_error(password_form, exc)
            else:
                # Every session was signed out; this browser continues on a fresh one.
                updated, tokens = await services.start_session(updated)
                sign_in(request, updated, tokens.family)
                messages.success(request, _password_changed(key_count, revoked=revoke_keys))
                return redirect("profile")
        elif action == "key" and key_form.is_valid():
            try:
                row, key = await services.create_api_key(
                    user, key_form.cleaned_data["name"], ip=client_ip(request)
                )
            except ApiError as exc:
                apply_api_error(key_form, exc)
            else:
                context["new_key"], context["new_key_row"] = key, row
                key_form = ApiKeyForm()
    keys = await services.list_api_keys(user)
    context["sso_only"] = not await services.has_password(user)
    return render(
        request, "accounts/profile.html",
        {"email_form": email_form, "password_form": password_form, "key_form": key_form, "keys": keys, **context},
    )  # fmt: skip


def _password_changed(key_count: int, *, revoked: bool) -> str:
    """What still works after a password change, in one message."""
    said = "Your password was changed and your other sessions were signed out."
    if key_count == 0:
        return said
    keys = f"{key_count} API key{'s' if key_count != 1 else ''}"
    if revoked:
        return f"{said} {keys} {'was' if key_count == 1 else 'were'} revoked."
    return f"{said} Your {keys} still work{'s' if key_count == 1 else ''}: revoke below any you no longer trust."


@login_required
@require_POST
async def revoke_key(request: PageRequest, key_id: UUID) -> HttpResponse:
    try:
        await services.revoke_api_key(current_user(request), key_id, ip=client_ip(request))
    except ApiError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "The API key was revoked.")
    return redirect("profile")
