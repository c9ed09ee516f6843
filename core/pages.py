"""Site-wide pages that belong to no app."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A refused form, in the site's look, with what to do about it."""
    return render(request, "403_csrf.html", status=403)
