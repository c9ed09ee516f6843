"""JWTs, issued and validated by simplejwt; refresh-token state lives in the database."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from django.conf import settings
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.repository import User
from core.errors import NotAuthenticated

API_KEY_PREFIX = "agw_"


@dataclass(frozen=True, slots=True)
class IssuedRefresh:
    token: str
    jti: str
    family: str
    issued_at: datetime  # naive UTC, as stored
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    family: str  # the login this pair belongs to (browser sessions keep only this)


@dataclass(frozen=True, slots=True)
class RefreshClaims:
    jti: str
    user_id: UUID
    family: str


def new_family() -> str:
    return secrets.token_urlsafe(12)


def _naive(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC).replace(tzinfo=None)


def issue_refresh(user_id: UUID, family: str) -> IssuedRefresh:
    token = RefreshToken()
    token["sub"] = str(user_id)
    token["fam"] = family
    return IssuedRefresh(
        token=str(token),
        jti=str(token["jti"]),
        family=family,
        issued_at=_naive(int(token["iat"])),
        expires_at=_naive(int(token["exp"])),
    )


def issue_access(user: User, family: str) -> str:
    token = AccessToken()
    token["sub"] = str(user.id)
    token["role"] = user.role  # informational: every request re-reads the current role
    token["fam"] = family
    return str(token)


def pair(user: User, refresh: IssuedRefresh) -> TokenPair:
    return TokenPair(
        access_token=issue_access(user, refresh.family),
        refresh_token=refresh.token,
        expires_in=int(settings.ACCESS_TOKEN_LIFETIME.total_seconds()),
        family=refresh.family,
    )


def _claims_user_id(raw: object) -> UUID:
    try:
        return UUID(str(raw))
    except ValueError:
        raise NotAuthenticated("The token is not valid.", code="invalid_token") from None


def decode_refresh(raw: str) -> RefreshClaims:
    try:
        token = RefreshToken(raw)  # type: ignore[arg-type]
    except TokenError:
        raise NotAuthenticated(
            "The refresh token is invalid or expired.", code="invalid_token"
        ) from None
    return RefreshClaims(
        jti=str(token["jti"]),
        user_id=_claims_user_id(token.get("sub")),
        family=str(token.get("fam")),
    )


# Access tokens already verified: token -> (user id, family, expiry). A token is immutable
# and signed by us, so re-checking its signature on every request only burns CPU (~0.1 ms);
# the expiry is still checked each time, and the user and family against the directory.
_verified: dict[str, tuple[UUID, str, float]] = {}
VERIFIED_CACHE_SIZE = 20_000


def decode_access(raw: str) -> tuple[UUID, str]:
    """Validate an access token's signature, expiry and type; return (user id, family)."""
    known = _verified.get(raw)
    if known is not None and known[2] > time.time():
        return known[0], known[1]
    try:
        token = AccessToken(raw)  # type: ignore[arg-type]
    except TokenError:
        raise NotAuthenticated(
            "The access token is invalid or expired.", code="invalid_token"
        ) from None
    user_id, family = _claims_user_id(token.get("sub")), str(token.get("fam"))
    if len(_verified) >= VERIFIED_CACHE_SIZE:
        _verified.pop(next(iter(_verified)), None)  # the oldest entry
    _verified[raw] = (user_id, family, float(token["exp"]))
    return user_id, family


def new_api_key() -> tuple[str, str, str]:
    """A fresh API key: (the key, its visible prefix, its stored hash)."""
    visible = API_KEY_PREFIX + secrets.token_hex(4)
    key = f"{visible}_{secrets.token_urlsafe(32)}"
    return key, visible, hash_api_key(key)


def hash_api_key(key: str) -> str:
    # A 256-bit random secret needs no slow hash; sha256 makes the stored value useless.
    return hashlib.sha256(key.encode()).hexdigest()
