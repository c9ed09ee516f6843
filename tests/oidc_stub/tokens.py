"""RS256 keys and ID tokens, signed with joserfc (OpenID Connect Core §2, §3.1.3.6)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey

from .state import AuthorizationCode, OidcState, OidcUser

ALGORITHM = "RS256"
KEY_SIZE = 2048


def _signing_key() -> RSAKey:
    return RSAKey.generate_key(KEY_SIZE, parameters={"use": "sig", "alg": ALGORITHM}, auto_kid=True)


@dataclass
class Signer:
    """The published key, and a rogue one with the same `kid` for the bad_signature switch."""

    key: RSAKey = field(default_factory=_signing_key)
    rogue: RSAKey = field(init=False)

    def __post_init__(self) -> None:
        self.rogue = RSAKey.generate_key(
            KEY_SIZE, parameters={"use": "sig", "alg": ALGORITHM, "kid": self.key.kid}
        )

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.as_dict(private=False)]}

    def sign(self, claims: dict[str, Any], *, rogue: bool = False) -> str:
        header = {"alg": ALGORITHM, "typ": "JWT", "kid": self.key.kid}
        return jwt.encode(header, claims, self.rogue if rogue else self.key)


def new_access_token() -> str:
    return secrets.token_urlsafe(32)


def at_hash(access_token: str) -> str:
    """Left half of SHA-256 of the access token, base64url (OIDC Core §3.1.3.6)."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def user_claims(user: OidcUser, state: OidcState) -> dict[str, Any]:
    """The person's claims, shared by the ID token and /userinfo."""
    return {
        "sub": user.sub,
        "email": user.email,
        "email_verified": user.email_verified and not state.fault("email_unverified"),
        "name": user.name,
        state.groups_claim: list(user.groups),
    }


def id_token_claims(
    code: AuthorizationCode, user: OidcUser, access_token: str, state: OidcState
) -> dict[str, Any]:
    """ID token claims; each ID-token switch bends exactly one of them."""
    now = int(state.now())
    issued = now - 7200 if state.fault("expired_token") else now
    expires = now - 3600 if state.fault("expired_token") else now + int(state.token_ttl)
    return {
        "iss": state.issuer + "/not-the-issuer" if state.fault("wrong_issuer") else state.issuer,
        "aud": "some-other-client" if state.fault("wrong_audience") else code.client_id,
        "exp": expires,
        "iat": issued,
        "auth_time": issued,
        "nonce": "not-" + code.nonce if state.fault("wrong_nonce") else code.nonce,
        "at_hash": at_hash(access_token),
        **user_claims(user, state),
    }
