"""Single sign-on with any OpenID Connect provider (decision 42).

Authlib's httpx client speaks the protocol (authorization URL with PKCE S256, the code
exchange with client_secret_basic); joserfc, which Authlib builds on, verifies the ID token
(signature against the provider's JWKS, issuer, audience, expiry, nonce). Every failure
becomes an `SsoFailure` with one sentence for the login page; codes and tokens are never
logged or shown.
"""

from __future__ import annotations

import functools
import logging
import secrets
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx2 as httpx  # Authlib's HTTP client library (decision 42)
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from django.conf import settings
from django.urls import reverse
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

log = logging.getLogger(__name__)

DISCOVERY_TTL = 3600.0  # seconds a provider's discovery document and keys are trusted
SIGNING_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]
CLOCK_LEEWAY = 60  # seconds of clock difference tolerated on exp/iat


class SsoFailure(Exception):
    """A sign-in that must end on the login page with this one sentence."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason  # short, safe for the log: never a code or a token


PROVIDER_DOWN = "The sign-in provider could not be reached; try again in a moment."
NOT_VERIFIED = "The sign-in provider's answer could not be verified, so you were not signed in."
EXPIRED = "The sign-in took too long or was already used; start again."


def enabled() -> bool:
    return bool(settings.OIDC_ISSUER)


def redirect_uri() -> str:
    """Where the provider sends people back: from SITE_URL, never from the Host header."""
    return str(settings.SITE_URL) + reverse("oidc-callback")


def form_action_origins() -> list[str]:
    """Origins the login page's SSO form may end up at: browsers apply the CSP's
    form-action to the redirect that follows the POST, so the provider must be named."""
    urls = [settings.OIDC_ISSUER]
    if _provider is not None:
        urls.append(_provider.authorization_endpoint)
    origins = []
    for url in urls:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in origins:
            origins.append(origin)
    return origins


@dataclass(frozen=True, slots=True)
class Provider:
    """What discovery told us about the provider OIDC_ISSUER names."""

    configured: str  # OIDC_ISSUER when this was fetched
    issuer: str  # exactly as the provider spells it: ID tokens' `iss` must equal it
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str | None
    jwks_uri: str
    fetched_at: float


_provider: Provider | None = None
_keys: tuple[str, KeySet] | None = None  # (jwks_uri, keys), refreshed on an unknown kid


def forget_provider() -> None:
    """Drop the cached discovery document and keys (tests, issuer changes)."""
    global _provider, _keys
    _provider = None
    _keys = None


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every SSO client: building one costs ~75 ms, the client ~0.3 ms."""
    return httpx.create_ssl_context()


def _client(**kwargs: Any) -> AsyncOAuth2Client:
    """A client for one sign-in step (a sign-in is rare; a shared client would be bound to
    one event loop)."""
    return AsyncOAuth2Client(
        verify=_tls(),
        client_id=settings.OIDC_CLIENT_ID,
        client_secret=settings.OIDC_CLIENT_SECRET,
        scope=settings.OIDC_SCOPES,
        redirect_uri=redirect_uri(),
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",  # noqa: S106 - a method name
        timeout=settings.OIDC_TIMEOUT,
        **kwargs,
    )


async def _get_json(client: AsyncOAuth2Client, url: str, what: str) -> dict[str, Any]:
    try:
        response = await client.request("GET", url, withhold_token=True)
    except httpx.HTTPError as exc:
        raise SsoFailure(PROVIDER_DOWN, f"{what}: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise SsoFailure(PROVIDER_DOWN, f"{what}: HTTP {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise SsoFailure(PROVIDER_DOWN, f"{what}: not a JSON object")
    return body


async def discover(client: AsyncOAuth2Client) -> Provider:
    """OpenID Connect Discovery 1.0 §4, cached; the document must name our issuer exactly."""
    global _provider
    configured = settings.OIDC_ISSUER
    if (
        _provider is not None
        and _provider.configured == configured
        and time.monotonic() - _provider.fetched_at < DISCOVERY_TTL
    ):
        return _provider
    doc = await _get_json(client, configured + "/.well-known/openid-configuration", "discovery")
    issuer = str(doc.get("issuer", ""))
    if issuer.rstrip("/") != configured:  # OIDC_ISSUER is kept without a trailing slash
        raise SsoFailure(PROVIDER_DOWN, "discovery names another issuer")
    try:
        provider = Provider(
            configured=configured,
            issuer=issuer,
            authorization_endpoint=str(doc["authorization_endpoint"]),
            token_endpoint=str(doc["token_endpoint"]),
            userinfo_endpoint=str(doc["userinfo_endpoint"])
            if doc.get("userinfo_endpoint")
            else None,
            jwks_uri=str(doc["jwks_uri"]),
            fetched_at=time.monotonic(),
        )
    except KeyError as exc:
        raise SsoFailure(PROVIDER_DOWN, f"discovery lacks {exc.args[0]}") from None
    _provider = provider
    return provider


async def _signing_keys(client: AsyncOAuth2Client, provider: Provider, *, fresh: bool) -> KeySet:
    global _keys
    if _keys is not None and _keys[0] == provider.jwks_uri and not fresh:
        return _keys[1]
    raw = await _get_json(client, provider.jwks_uri, "jwks")
    try:
        keys = KeySet.import_key_set(raw)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError):
        raise SsoFailure(PROVIDER_DOWN, "jwks unreadable") from None
    _keys = (provider.jwks_uri, keys)
    return keys


# -- the flow -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attempt:
    """What the browser's session keeps between /login/oidc and the callback."""

    state: str
    nonce: str
    verifier: str
    next: str

    def as_session(self) -> dict[str, str]:
        return {
            "state": self.state,
            "nonce": self.nonce,
            "verifier": self.verifier,
            "next": self.next,
        }

    @classmethod
    def from_session(cls, raw: Any) -> Attempt | None:
        if not isinstance(raw, dict):
            return None
        try:
            return cls(str(raw["state"]), str(raw["nonce"]), str(raw["verifier"]), str(raw["next"]))
        except KeyError:
            return None


async def begin(next_url: str) -> tuple[str, Attempt]:
    """The provider's authorization URL (code flow, PKCE S256, state, nonce) and what to
    remember for the callback."""
    attempt = Attempt(
        state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32),
        verifier=secrets.token_urlsafe(64),
        next=next_url,
    )
    async with _client() as client:
        provider = await discover(client)
        url, _ = client.create_authorization_url(
            provider.authorization_endpoint,
            state=attempt.state,
            code_verifier=attempt.verifier,
            nonce=attempt.nonce,
        )
    return str(url), attempt


# Provider error codes (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6) and what people are told.
_PROVIDER_ERRORS = {
    "access_denied": "The sign-in was cancelled or refused at the provider.",
    "login_required": "The provider could not sign you in; try again.",
    "consent_required": "The sign-in needs your consent at the provider; try again.",
    "temporarily_unavailable": PROVIDER_DOWN,
    "server_error": PROVIDER_DOWN,
}


@dataclass(frozen=True, slots=True)
class Claims:
    """The verified facts about the person, from the ID token (and /userinfo)."""

    issuer: str
    sub: str
    email: str | None
    email_verified: bool
    groups: tuple[str, ...]


async def finish(attempt: Attempt | None, params: dict[str, str]) -> Claims:
    """Check the callback against the attempt, exchange the code, verify the ID token."""
    if attempt is None:
        raise SsoFailure(EXPIRED, "no sign-in in progress in this browser")
    if not secrets.compare_digest(params.get("state", "").encode(), attempt.state.encode()):
        raise SsoFailure(
            "The sign-in could not be matched to this browser, so you were not signed in.",
            "state mismatch",
        )
    if error := params.get("error"):
        message = _PROVIDER_ERRORS.get(error, "The sign-in provider refused the sign-in.")
        raise SsoFailure(message, f"provider error {error[:40]!r}")
    code = params.get("code")
    if not code:
        raise SsoFailure(EXPIRED, "callback without a code")
    async with _client() as client:
        provider = await discover(client)
        try:
            token = await client.fetch_token(
                provider.token_endpoint, code=code, code_verifier=attempt.verifier
            )
        except OAuthError as exc:
            if exc.error in ("invalid_grant", "invalid_request"):
                raise SsoFailure(EXPIRED, f"token endpoint: {exc.error}") from None
            raise SsoFailure(NOT_VERIFIED, f"token endpoint: {exc.error}") from None
        except (httpx.HTTPError, ValueError) as exc:
            raise SsoFailure(PROVIDER_DOWN, f"token endpoint: {type(exc).__name__}") from None
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise SsoFailure(NOT_VERIFIED, "no id_token in the token response")
        claims = await _verify_id_token(client, provider, id_token, attempt.nonce)
        access_token = token.get("access_token")
        if provider.userinfo_endpoint and isinstance(access_token, str):
            claims = {**await _userinfo(client, provider, access_token, claims["sub"]), **claims}
    return _claims_of(claims)


async def _verify_id_token(
    client: AsyncOAuth2Client, provider: Provider, id_token: str, nonce: str
) -> dict[str, Any]:
    """OIDC Core §3.1.3.7: signature, iss, aud (and azp), exp, iat, nonce."""
    try:
        header = jws.extract_compact(id_token.encode("ascii")).headers()
    except (JoseError, ValueError, UnicodeError):
        raise SsoFailure(NOT_VERIFIED, "id_token unreadable") from None
    keys = await _signing_keys(client, provider, fresh=False)
    if header.get("kid") and not any(k.kid == header["kid"] for k in keys.keys):
        keys = await _signing_keys(client, provider, fresh=True)  # the provider rotated keys
    try:
        decoded = jwt.decode(id_token, keys, algorithms=SIGNING_ALGORITHMS)
    except (JoseError, ValueError):
        raise SsoFailure(NOT_VERIFIED, "id_token signature") from None
    registry = jwt.JWTClaimsRegistry(
        now=int(time.time()),
        leeway=CLOCK_LEEWAY,
        iss={"essential": True, "value": provider.issuer},
        sub={"essential": True},
        aud={"essential": True, "value": settings.OIDC_CLIENT_ID},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True, "value": nonce},
    )
    try:
        registry.validate(decoded.claims)
    except JoseError as exc:
        raise SsoFailure(NOT_VERIFIED, f"id_token claim: {exc.error}") from None
    claims = decoded.claims
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != settings.OIDC_CLIENT_ID:
        raise SsoFailure(NOT_VERIFIED, "id_token claim: azp")
    return dict(claims)


async def _userinfo(
    client: AsyncOAuth2Client, provider: Provider, access_token: str, sub: str
) -> dict[str, Any]:
    """OIDC Core §5.3: more claims (groups, email) for the same `sub`, or a failure."""
    assert provider.userinfo_endpoint is not None
    try:
        response = await client.request(
            "GET",
            provider.userinfo_endpoint,
            headers={"Authorization": f"Bearer {access_token}"},
            withhold_token=True,
        )
    except httpx.HTTPError as exc:
        raise SsoFailure(PROVIDER_DOWN, f"userinfo: {type(exc).__name__}") from None
    try:
        body = response.json() if response.status_code == 200 else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise SsoFailure(PROVIDER_DOWN, f"userinfo: HTTP {response.status_code}")
    if body.get("sub") != sub:  # OIDC Core §5.3.2: otherwise the answer must not be used
        raise SsoFailure(NOT_VERIFIED, "userinfo sub differs from the id_token")
    return body


def _claims_of(raw: dict[str, Any]) -> Claims:
    email = raw.get("email")
    groups = raw.get(settings.OIDC_GROUPS_CLAIM) or ()
    if isinstance(groups, str):
        groups = groups.replace(",", " ").split()
    return Claims(
        issuer=settings.OIDC_ISSUER,
        sub=str(raw["sub"]),
        email=email.strip() if isinstance(email, str) and email.strip() else None,
        email_verified=raw.get("email_verified") is True or raw.get("email_verified") == "true",
        groups=tuple(str(g) for g in groups if isinstance(g, str | int)),
    )
