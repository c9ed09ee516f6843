"""Mutable provider state: users, clients, switches, codes, tokens and what was received."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

RECORD_LOG_SIZE = 1000

# Each switch makes exactly one thing wrong (README "Fault switches").
FAULT_SWITCHES = frozenset(
    {
        "bad_signature",  # ID token signed with a key that is not in the JWKS
        "wrong_audience",  # ID token `aud` is another client
        "wrong_issuer",  # ID token `iss` is not the discovery issuer
        "wrong_nonce",  # ID token `nonce` is not the one sent to /authorize
        "expired_token",  # ID token `exp` (and `iat`) in the past
        "email_unverified",  # every user's `email_verified` is false
        "deny_consent",  # /authorize redirects back with error=access_denied
        "down",  # every provider endpoint answers 503
        "token_error",  # /token answers 400 invalid_grant
    }
)

DEFAULT_CLIENT_ID = "aigateway-test"
DEFAULT_CLIENT_SECRET = "oidc-stub-client-secret-for-tests-only"
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8000/login/oidc/callback"


class ConfigError(ValueError):
    """A control request asked for a switch, setting or user the provider does not know."""


@dataclass(slots=True)
class OidcUser:
    """A person the provider can sign in."""

    sub: str
    email: str
    name: str
    email_verified: bool = True
    groups: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, raw: Any) -> OidcUser:
        if not isinstance(raw, dict):
            raise ConfigError("a user must be an object")
        unknown = set(raw) - {"sub", "email", "name", "email_verified", "groups"}
        if unknown:
            raise ConfigError(f"unknown user field(s): {', '.join(sorted(unknown))}")
        try:
            user = cls(**raw)
        except TypeError as exc:
            raise ConfigError(f"user needs sub, email and name: {exc}") from None
        if not all(isinstance(value, str) and value for value in (user.sub, user.email)):
            raise ConfigError("sub and email must be non-empty strings")
        if not isinstance(user.groups, list) or not all(isinstance(g, str) for g in user.groups):
            raise ConfigError("groups must be a list of strings")
        return user

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class OidcClient:
    """A registered relying party (the gateway)."""

    client_id: str
    client_secret: str
    redirect_uris: list[str]


@dataclass(slots=True)
class AuthorizationCode:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    nonce: str
    code_challenge: str
    sub: str
    expires_at: float
    used: bool = False


@dataclass(slots=True)
class AccessToken:
    token: str
    client_id: str
    sub: str
    scope: str
    expires_at: float


def default_users() -> list[OidcUser]:
    return [
        OidcUser(
            sub="oidc-user-0001",
            email="sso.user@example.com",
            name="Sam Sign-On",
            groups=["staff"],
        ),
        OidcUser(
            sub="oidc-admin-0001",
            email="sso.admin@example.com",
            name="Ada Admin",
            groups=["staff", "gateway-admins"],
        ),
    ]


@dataclass
class OidcState:
    """Everything the provider remembers; shared by the ASGI app and the controlling test."""

    issuer: str = ""  # set by the server once its port is known
    users: dict[str, OidcUser] = field(default_factory=dict)
    clients: dict[str, OidcClient] = field(default_factory=dict)
    current_user: str | None = None  # the `sub` signed in at /authorize without login_hint
    groups_claim: str = "groups"
    code_ttl: float = 60.0
    token_ttl: float = 3600.0
    faults: set[str] = field(default_factory=set)
    codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    tokens: dict[str, AccessToken] = field(default_factory=dict)
    authorize_requests: deque[dict[str, Any]] = field(
        default_factory=lambda: deque(maxlen=RECORD_LOG_SIZE)
    )
    token_requests: deque[dict[str, Any]] = field(
        default_factory=lambda: deque(maxlen=RECORD_LOG_SIZE)
    )
    userinfo_requests: deque[dict[str, Any]] = field(
        default_factory=lambda: deque(maxlen=RECORD_LOG_SIZE)
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _initial_clients: list[OidcClient] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if not self.users:
            self.set_users(default_users())
        self._initial_clients = [OidcClient(**asdict(c)) for c in self.clients.values()]

    # -- users and clients ---------------------------------------------------------------
    def set_users(self, users: list[OidcUser], current: str | None = None) -> None:
        """Replace the users; the current user becomes `current` or the first one."""
        self.users = {user.sub: user for user in users}
        self.current_user = current if current is not None else next(iter(self.users), None)
        if self.current_user is not None and self.current_user not in self.users:
            raise ConfigError(f"no user with sub {self.current_user!r}")

    def find_user(self, hint: str) -> OidcUser | None:
        """A user by `sub` or (case-insensitively) by email."""
        if hint in self.users:
            return self.users[hint]
        wanted = hint.strip().lower()
        return next((u for u in self.users.values() if u.email.lower() == wanted), None)

    def register_client(self, client: OidcClient) -> None:
        self.clients[client.client_id] = client

    # -- switches and settings -----------------------------------------------------------
    def configure(self, values: dict[str, Any]) -> None:
        """Switches (`name: bool`) and settings; everything is checked before anything changes."""
        for key, value in values.items():
            if key in FAULT_SWITCHES:
                if not isinstance(value, bool):
                    raise ConfigError(f"{key} must be true or false")
            elif key in ("code_ttl", "token_ttl"):
                if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                    raise ConfigError(f"{key} must be a positive number of seconds")
            elif key == "groups_claim":
                if not isinstance(value, str) or not value:
                    raise ConfigError("groups_claim must be a non-empty string")
            elif key == "current_user":
                if value is not None and self.find_user(str(value)) is None:
                    raise ConfigError(f"no user with sub or email {value!r}")
            else:
                raise ConfigError(f"unknown switch or setting: {key}")
        for key, value in values.items():
            if key in FAULT_SWITCHES:
                (self.faults.add if value else self.faults.discard)(key)
            elif key == "current_user":
                found = self.find_user(str(value)) if value is not None else None
                self.current_user = found.sub if found is not None else None
            else:
                setattr(self, key, float(value) if key.endswith("_ttl") else value)

    def fault(self, name: str) -> bool:
        return name in self.faults

    def settings(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "faults": sorted(self.faults),
            "groups_claim": self.groups_claim,
            "code_ttl": self.code_ttl,
            "token_ttl": self.token_ttl,
            "current_user": self.current_user,
        }

    # -- codes and tokens ----------------------------------------------------------------
    def add_code(self, code: AuthorizationCode) -> None:
        with self._lock:
            self.codes[code.code] = code

    def redeem_code(self, value: str) -> tuple[AuthorizationCode | None, str | None]:
        """(the code, None) the first time; (code or None, why not) otherwise. One use only."""
        with self._lock:
            code = self.codes.get(value)
            if code is None:
                return None, "unknown authorization code"
            if code.used:
                return code, "authorization code already used"
            code.used = True
        if self.now() > code.expires_at:
            return code, "authorization code expired"
        return code, None

    def add_token(self, token: AccessToken) -> None:
        with self._lock:
            self.tokens[token.token] = token

    def records(self) -> dict[str, list[dict[str, Any]]]:
        return {
            "authorize": list(self.authorize_requests),
            "token": list(self.token_requests),
            "userinfo": list(self.userinfo_requests),
        }

    def reset(self) -> None:
        """Default users and clients, no switches, default settings; forget codes and logs."""
        self.set_users(default_users())
        self.clients = {c.client_id: OidcClient(**asdict(c)) for c in self._initial_clients}
        self.groups_claim = "groups"
        self.code_ttl = 60.0
        self.token_ttl = 3600.0
        self.faults.clear()
        with self._lock:
            self.codes.clear()
            self.tokens.clear()
        self.authorize_requests.clear()
        self.token_requests.clear()
        self.userinfo_requests.clear()

    @staticmethod
    def now() -> float:
        return time.time()
