"""The per-user pseudonym sent to OpenRouter as `user` on every generation (decision 33).

OpenRouter isolates abusive end users by this field; without it a provider's policy block
lands on the whole organisation's account. It must be stable (the same person is the same
end user tomorrow) and must not identify anyone outside the gateway: an HMAC of the user
id under a server secret, never the email or the id itself.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from uuid import UUID

from django.conf import settings

_DERIVATION = b"aigateway upstream user pseudonym v1"


def upstream_user(user_id: UUID) -> str:
    """`agw-` and 32 hex digits: HMAC-SHA256(key, user id), cut to 128 bits."""
    return _pseudonym(_key(), user_id)


def _key() -> bytes:
    dedicated = str(getattr(settings, "UPSTREAM_USER_KEY", "") or "")
    return _derived(dedicated or str(settings.SECRET_KEY))


@functools.lru_cache(maxsize=4)
def _derived(secret: str) -> bytes:
    # A key of its own, so the pseudonym never equals any other HMAC made with SECRET_KEY.
    return hmac.new(secret.encode(), _DERIVATION, hashlib.sha256).digest()


@functools.lru_cache(maxsize=4096)
def _pseudonym(key: bytes, user_id: UUID) -> str:
    digest = hmac.new(key, user_id.bytes, hashlib.sha256).hexdigest()
    return "agw-" + digest[:32]
