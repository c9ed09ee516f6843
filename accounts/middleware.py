"""Pages learn who is signed in: request.gateway_user, checked against the directory."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import markcoroutinefunction
from django.http import HttpResponseBase

from accounts.sessions import PageRequest, attach_page_user
from core.paths import is_api_path


class PageUserMiddleware:
    """After the session middleware: set request.gateway_user for every page request.

    The JSON APIs authenticate bearer credentials in DRF instead, so they are left alone.
    """

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: Callable[[PageRequest], Awaitable[HttpResponseBase]]) -> None:
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request: PageRequest) -> HttpResponseBase:
        if not is_api_path(request.path):
            attach_page_user(request)
        return await self.get_response(request)
