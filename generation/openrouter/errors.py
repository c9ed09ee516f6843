"""OpenRouter failures turned into the project's UpstreamError (SPEC §2, reference §6).

Every function here returns an exception instead of raising it, so the caller decides
where the traceback starts and no httpx object (which holds the request headers and so
the API key) ends up chained to the error.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
import httpx

from core.errors import UpstreamError
from core.parsers import load_json

#: Retry-After a client sees when OpenRouter's 429 carried none (SPEC: default 5 s).
DEFAULT_RETRY_AFTER = 5
#: Longest upstream text copied into a message: enough for a sentence, never a page of HTML.
MAX_UPSTREAM_TEXT = 500

_RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 524, 529})
_TIMEOUT_STATUSES = frozenset({408, 524})

# Everything a transport may raise while talking to the network. aiohttp's own errors and
# bare OSError/TimeoutError are listed because httpx-aiohttp only maps the ones it knows.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    httpx.TransportError,
    aiohttp.ClientError,
    OSError,  # includes TimeoutError
)


class OpenRouterError(UpstreamError):
    """An UpstreamError that also tells the client whether repeating the call may help."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status: int,
        retry_after: int | None = None,
        upstream_status: int | None = None,
        retryable: bool = False,
        wait_hint: float | None = None,
    ) -> None:
        super().__init__(
            message,
            code=code,
            status=status,
            retry_after=retry_after,
            upstream_status=upstream_status,
        )
        self.retryable = retryable
        self.wait_hint = wait_hint  # OpenRouter's Retry-After in seconds, for our own retries

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, status={self.status}, {self.message!r})"


def not_configured(reason: str) -> OpenRouterError:
    return OpenRouterError(
        f"The AI provider is not configured: {reason}",
        code="upstream_not_configured",
        status=503,
    )


def url_refused() -> OpenRouterError:
    return OpenRouterError(
        "The gateway refused to send its OpenRouter key to a URL outside the configured "
        "OpenRouter API.",
        code="upstream_url_refused",
        status=502,
    )


def bad_answer(detail: str) -> OpenRouterError:
    return OpenRouterError(
        f"OpenRouter sent an answer the gateway could not read: {detail}",
        code="upstream_error",
        status=502,
    )


def no_output(what: str, text: str = "") -> OpenRouterError:
    said = f" It said: {_clip(text)}" if text.strip() else ""
    return OpenRouterError(
        f"The model returned no {what}.{said}", code="upstream_no_output", status=502
    )


def too_large(limit_bytes: int) -> OpenRouterError:
    return OpenRouterError(
        f"OpenRouter's answer is larger than the gateway accepts "
        f"({limit_bytes // (1024 * 1024)} MB).",
        code="upstream_too_large",
        status=502,
    )


def stream_broken() -> OpenRouterError:
    return OpenRouterError(
        "The connection to OpenRouter broke while the answer was streaming.",
        code="upstream_stream_broken",
        status=502,
    )


def is_timeout(exc: BaseException) -> bool:
    """True for a real timeout, not for connection failures httpx-aiohttp labels as one.

    httpx-aiohttp maps every aiohttp.ClientConnectionError (refused, reset, server
    disconnected) to httpx.ConnectTimeout; its __cause__ still tells the truth.
    """
    if isinstance(exc, httpx.TimeoutException):
        cause = exc.__cause__
        return not (isinstance(cause, aiohttp.ClientError) and not isinstance(cause, TimeoutError))
    return isinstance(exc, TimeoutError)


def for_transport_failure(exc: BaseException, *, mid_stream: bool = False) -> OpenRouterError:
    """Connection refused/reset, DNS, TLS, timeouts (reference §3 "Cancelling", SPEC §2)."""
    if is_timeout(exc):
        return OpenRouterError(
            "OpenRouter did not answer in time.",
            code="upstream_timeout",
            status=504,
            retryable=True,
        )
    if mid_stream:
        return stream_broken()
    return OpenRouterError(
        "OpenRouter could not be reached. Try again in a moment.",
        code="upstream_unavailable",
        status=502,
        retryable=True,
    )


def for_status(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    method: str,
    secret: str,
) -> OpenRouterError:
    """Map a non-2xx answer (reference §6 table) to the error a gateway client sees."""
    error = _error_object(body)
    upstream = _redact(_clip(_str(error.get("message"))), secret)
    detail = f": {upstream}" if upstream else "."
    wait_hint = parse_retry_after(headers.get("retry-after"))
    retryable = status in _RETRYABLE_STATUSES

    def make(
        message: str, code: str, http_status: int, retry_after: int | None = None
    ) -> OpenRouterError:
        return OpenRouterError(
            message,
            code=code,
            status=http_status,
            retry_after=retry_after,
            upstream_status=status,
            retryable=retryable,
            wait_hint=wait_hint,
        )

    if status == 429:
        seconds = DEFAULT_RETRY_AFTER if wait_hint is None else max(1, math.ceil(wait_hint))
        return make(
            f"OpenRouter is rate limiting requests{detail} Try again in {seconds} seconds.",
            "upstream_rate_limited",
            429,
            retry_after=seconds,
        )
    if status == 402:
        return make(
            f"The gateway's OpenRouter account cannot pay for this request{detail}",
            "upstream_payment_required",
            502,
        )
    if status == 403 and _is_moderation(error):
        return make(_moderation_message(error, upstream), "upstream_moderation", 400)
    if status in (401, 403):
        # The key is the server's, not the end user's: never answer 401/403 to them.
        return make(
            "The gateway's OpenRouter key was refused; an administrator must check "
            "OPENROUTER_API_KEY.",
            "upstream_auth_failed",
            502,
        )
    if status == 404 and method == "GET":
        return make(f"OpenRouter does not know this resource{detail}", "upstream_not_found", 404)
    if status in (400, 404, 422):
        # A POST answered 404 means "no route for what you asked" (unknown model, no
        # endpoint for the requested modalities): the request content is at fault.
        return make(f"OpenRouter rejected the request{detail}", "upstream_rejected", 400)
    if status == 413:
        return make(
            f"The request is too large for OpenRouter{detail}", "upstream_payload_too_large", 413
        )
    if status in _TIMEOUT_STATUSES:
        return make("OpenRouter did not answer in time.", "upstream_timeout", 504)
    if status >= 500:
        return make(
            f"OpenRouter is having trouble (HTTP {status}){detail}", "upstream_unavailable", 502
        )
    return make(f"OpenRouter answered with HTTP {status}{detail}", "upstream_error", 502)


def for_inband_error(error: object, *, secret: str) -> OpenRouterError:
    """An error reported inside a 200 answer: a stream event or finish_reason "error" (§3)."""
    fields = error if isinstance(error, dict) else {}
    upstream = _redact(_clip(_str(fields.get("message"))), secret) or "unknown error"
    if fields.get("code") in (429, "429", "rate_limit_exceeded"):
        return OpenRouterError(
            f"The model provider is rate limiting requests: {upstream}",
            code="upstream_rate_limited",
            status=429,
            retry_after=DEFAULT_RETRY_AFTER,
        )
    return OpenRouterError(
        f"The model failed while generating: {upstream}", code="upstream_error", status=502
    )


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date); None if unusable."""
    if not value or not value.strip():
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _error_object(body: bytes) -> dict[str, Any]:
    try:
        parsed = load_json(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict):
        return error
    if isinstance(error, str):  # some OpenAI-compatible servers answer {"error": "text"}
        return {"message": error}
    return {}


def _is_moderation(error: Mapping[str, Any]) -> bool:
    metadata = error.get("metadata")
    return isinstance(metadata, dict) and ("reasons" in metadata or "flagged_input" in metadata)


def _moderation_message(error: Mapping[str, Any], upstream: str) -> str:
    metadata = error.get("metadata")
    reasons = metadata.get("reasons") if isinstance(metadata, dict) else None
    if isinstance(reasons, list) and reasons:
        because = ", ".join(_clip(str(reason)) for reason in reasons)
        return f"The request was flagged by moderation ({because})."
    return f"The request was flagged by moderation: {upstream or 'no reason given'}"


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_UPSTREAM_TEXT else text[: MAX_UPSTREAM_TEXT - 1] + "…"


def _redact(text: str, secret: str) -> str:
    # Some OpenAI-compatible servers echo the key they refused; never pass it on.
    return text.replace(secret, "[redacted]") if secret else text
