"""A second URLconf for tests/test_hosts.py: one path, answered by another view."""

from django.http import HttpRequest, JsonResponse
from django.urls import path


def elsewhere(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"urlconf": "tests.resolve_urls"})


urlpatterns = [path("api/ping", elsewhere)]
