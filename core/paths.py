"""Which paths are JSON APIs (bearer credentials, JSON errors) rather than pages."""

from __future__ import annotations

from django.conf import settings

DEFAULT_API_PREFIXES = ("/api/",)


def is_api_path(path: str) -> bool:
    """True under any of settings.API_PATH_PREFIXES (the wiring names its API mounts)."""
    return path.startswith(tuple(getattr(settings, "API_PATH_PREFIXES", DEFAULT_API_PREFIXES)))
