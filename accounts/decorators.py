"""Page view decorators: signed in, and signed in as an admin."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlencode

from django.http import HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse

from accounts.sessions import PageRequest, current_user

PageView = Callable[..., Coroutine[Any, Any, HttpResponseBase]]


def login_required(view: PageView) -> PageView:
    @functools.wraps(view)
    async def wrapper(request: PageRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.gateway_user is None:
            if request.headers.get("HX-Request"):
                response = HttpResponse(status=401)
                response["HX-Redirect"] = reverse("login")
                return response
            login = reverse("login") + "?" + urlencode({"next": request.get_full_path()})
            return HttpResponseRedirect(login)
        return await view(request, *args, **kwargs)

    return wrapper


def admin_required(view: PageView) -> PageView:
    @login_required
    @functools.wraps(view)
    async def wrapper(request: PageRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not current_user(request).is_admin:
            return render(request, "403.html", status=403)
        return await view(request, *args, **kwargs)

    return wrapper
