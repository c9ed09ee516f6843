"""Rate limits: DRF throttles on Django's cache, with rates read from settings per request.

Three scopes, each a sliding window of `RATE_LIMITS[scope]` ("N/s|min|hour|day", or None
for no limit):

- `user`: every API request of a signed-in user, keyed by user id (tokens and API keys alike);
- `anon`: every API request without credentials, keyed by client IP;
- `auth`: views marked `@rate_limit_scope("auth")` (register, login, refresh), keyed by
  client IP, on top of `anon`; they ignore credentials, so the IP is all there is to go by;
- `auth_failures`: failed authentications (a bad, expired or revoked token or API key),
  keyed by client IP. Credentials are checked before any limit applies, so without it
  guesses would only ever meet 401s; once an IP has spent its failures, its requests with
  credentials get 429 before the credentials are even looked at (see FailedAuthThrottle).

DRF binds THROTTLE_RATES at import time; reading settings.RATE_LIMITS on every request
instead lets tests (and a settings override) change the limits. Pages, which are not DRF
views, share the `auth` counters through page_retry_after().

Without REDIS_URL the windows are DRF's lists in the process's cache (one process: exact).
With REDIS_URL each window is a sorted set in Redis, trimmed, counted and added to by one
script, so workers on any machine share one exact counter per user or address even when
requests reach them at the same instant (DRF's read-then-write would let them all in).
"""

from __future__ import annotations

import functools
import math
import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

V = TypeVar("V", bound=type)


def rate_limit_scope(scope: str) -> Callable[[V], V]:
    """Class decorator: the view's requests also count against RATE_LIMITS[scope], per IP."""

    def mark(view: V) -> V:
        view.throttle_scope = scope  # type: ignore[attr-defined]
        return view

    return mark


@functools.cache
def _parsed(rate: str) -> tuple[int, int]:
    count, _, period = rate.partition("/")
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[0]]
    return int(count), seconds


# Trim the window, count it, and add this request if it fits (or always, or never).
_WINDOW = """
local key, now, window, limit, add = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]),
    tonumber(ARGV[3]), ARGV[5]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
local added = 0
if add == 'always' or (add == 'if_under' and count < limit) then
    redis.call('ZADD', key, now, ARGV[4])
    redis.call('PEXPIRE', key, math.ceil(window * 1000))
    count = count + 1
    added = 1
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return {added, count, oldest[2] or ''}
"""


class _RedisWindows:
    """Sliding windows as sorted sets in Redis (REDIS_URL), shared by every worker."""

    def __init__(self, url: str) -> None:
        import redis

        self.url = url
        self._script = redis.Redis.from_url(url).register_script(_WINDOW)

    def hit(
        self, key: str, now: float, duration: int, limit: int, add: str
    ) -> tuple[bool, list[float]]:
        """(added, a stand-in history: as many entries as the window holds, the oldest last)."""
        added, count, oldest = self._script(
            keys=[cache.make_key(key)],
            args=[repr(now), duration, limit, f"{now!r}:{uuid.uuid4().hex[:8]}", add],
        )
        history = [now] * max(0, int(count) - 1) + ([float(oldest)] if int(count) else [])
        return bool(added), history


_windows: _RedisWindows | None = None


def _redis_windows() -> _RedisWindows | None:
    global _windows
    url = settings.REDIS_URL
    if not url:
        return None
    if _windows is None or _windows.url != url:
        _windows = _RedisWindows(str(url))
    return _windows


class _SettingsRateThrottle(SimpleRateThrottle):
    """A SimpleRateThrottle whose rate is looked up when the request arrives."""

    def __init__(self) -> None:
        self.rate: str | None = None
        self.num_requests: int | None = None
        self.duration: int | None = None

    def scope_of(self, view: Any) -> str | None:
        return self.scope

    def get_rate(self) -> str | None:
        rates: dict[str, str | None] = getattr(settings, "RATE_LIMITS", {}) or {}
        return rates.get(self.scope or "")

    def allow_request(self, request: Request, view: Any) -> bool:
        scope = self.scope_of(view)
        if scope is None:
            return True
        self.scope = scope
        self.rate = self.get_rate()
        if self.rate is None:
            return True
        self.num_requests, self.duration = _parsed(self.rate)
        windows = _redis_windows()
        if windows is None:
            return bool(super().allow_request(request, view))
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        allowed, self.history = windows.hit(
            self.key, self.now, self.duration, self.num_requests, "if_under"
        )
        return allowed

    def key_for(self, ident: str) -> str:
        return self.cache_format % {"scope": self.scope, "ident": ident}


def client_ip(request: Request) -> str:
    # Imported late: DRF imports this module while rest_framework.views is half-loaded.
    from core.api import client_ip as ip_of

    return ip_of(request)


class UserRateThrottle(_SettingsRateThrottle):
    scope = "user"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        user = request.user
        if not getattr(user, "is_authenticated", False):
            return None
        return self.key_for(str(user.id))


class AnonRateThrottle(_SettingsRateThrottle):
    scope = "anon"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if getattr(request.user, "is_authenticated", False):
            return None
        return self.key_for(client_ip(request))


class ScopedIpRateThrottle(_SettingsRateThrottle):
    """Per-IP limit for views that name a scope (see rate_limit_scope)."""

    scope = ""

    def scope_of(self, view: Any) -> str | None:
        return getattr(view, "throttle_scope", None) or None

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return self.key_for(client_ip(request))


class FailedAuthThrottle(_SettingsRateThrottle):
    """Per-IP count of failed authentications, checked and counted by the authentication
    class itself (DRF's throttles run only after authentication has succeeded or failed)."""

    scope = "auth_failures"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return self.key_for(client_ip(request))

    def retry_after(self, request: Request) -> int | None:
        """Seconds to wait while this IP has no failures left, else None (counts nothing)."""
        if not self._load_history(request):
            return None
        if len(self.history) < (self.num_requests or 0):
            return None
        return max(1, math.ceil(self.wait() or 1))

    def note_failure(self, request: Request) -> None:
        if _redis_windows() is not None:
            self._load_history(request, add="always")  # counted in the same round trip
        elif self._load_history(request):
            self.throttle_success()  # DRF's name for "record this request in the window"

    def _load_history(self, request: Request, add: str = "never") -> bool:
        self.rate = self.get_rate()
        if self.rate is None:
            return False
        self.num_requests, self.duration = _parsed(self.rate)
        self.key = self.get_cache_key(request, None)
        self.now = self.timer()
        windows = _redis_windows()
        if windows is not None and self.key is not None:
            _, self.history = windows.hit(self.key, self.now, self.duration, self.num_requests, add)
            return True
        self.history = [t for t in self.cache.get(self.key, []) if t > self.now - self.duration]
        return True


def page_retry_after(request: HttpRequest, scope: str = "auth") -> int | None:
    """For pages (plain Django views, e.g. the login form): count this request against
    RATE_LIMITS[scope] for its IP, sharing the API's counters. None while under the limit,
    else the seconds to wait (for a 429 with Retry-After)."""
    throttle = ScopedIpRateThrottle()
    if throttle.allow_request(request, SimpleNamespace(throttle_scope=scope)):  # type: ignore[arg-type]
        return None
    return max(1, math.ceil(throttle.wait() or 1))
