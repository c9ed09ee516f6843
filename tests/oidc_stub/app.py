"""The provider's ASGI application: discovery, /authorize, /token, /jwks, /userinfo and the
`/_oidc/` control API. Plumbing (request, responses) is the OpenRouter stand-in's."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode

from tests.openrouter_stub.asgi import (
    Receive,
    Request,
    Response,
    Scope,
    Send,
    json_response,
    read_body,
    send_response,
)

from .state import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REDIRECT_URI,
    AccessToken,
    AuthorizationCode,
    ConfigError,
    OidcClient,
    OidcState,
    OidcUser,
)
from .tokens import Signer, id_token_claims, new_access_token, user_claims

Handler = Callable[["OidcApp", Request], Awaitable[Response]]

SCOPES = ["openid", "email", "profile", "groups"]
_VERIFIER_RE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
NO_STORE = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]


class OAuthError(Exception):
    """An RFC 6749 §5.2 error answered as JSON (`error`, `error_description`)."""

    def __init__(
        self,
        error: str,
        description: str,
        status: int = 400,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.headers = headers or []

    def response(self) -> Response:
        body = {"error": self.error, "error_description": self.description}
        return json_response(body, self.status, [*NO_STORE, *self.headers])


def _redirect(location: str) -> Response:
    return Response(
        302, b"", content_type=b"text/plain", headers=[(b"location", location.encode()), *NO_STORE]
    )


def _with_query(uri: str, params: dict[str, str]) -> str:
    return uri + ("&" if "?" in uri else "?") + urlencode(params)


def s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL(SHA256(ASCII(code_verifier))), unpadded."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class OidcApp:
    """Raw ASGI callable: a small, strict OpenID Connect provider for tests."""

    def __init__(self, state: OidcState, signer: Signer | None = None) -> None:
        self.state = state
        self.signer = signer or Signer()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(
            method=scope["method"],
            path=scope["path"].rstrip("/") or "/",
            query_string=scope.get("query_string", b"").decode("latin-1"),
            headers=scope["headers"],
            body=await read_body(receive),
        )
        await send_response(send, await self.dispatch(request))

    async def dispatch(self, request: Request) -> Response:
        route = ROUTES.get((request.method, request.path))
        control = request.path.startswith("/_oidc/")
        if route is None:
            known = any(path == request.path for _, path in ROUTES)
            return json_response({"error": "not_found"}, 405 if known else 404)
        if not control and self.state.fault("down"):
            return json_response(
                {"error": "temporarily_unavailable", "error_description": "provider is down"},
                503,
                [(b"retry-after", b"1")],
            )
        try:
            return await route(self, request)
        except OAuthError as error:
            return error.response()

    @property
    def issuer(self) -> str:
        return self.state.issuer

    # -- OpenID Connect Discovery 1.0 §4 ------------------------------------------------
    async def discovery(self, request: Request) -> Response:
        issuer = self.issuer
        return json_response(
            {
                "issuer": issuer,
                "authorization_endpoint": issuer + "/authorize",
                "token_endpoint": issuer + "/token",
                "userinfo_endpoint": issuer + "/userinfo",
                "jwks_uri": issuer + "/jwks",
                "response_types_supported": ["code"],
                "response_modes_supported": ["query"],
                "grant_types_supported": ["authorization_code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": SCOPES,
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
                "code_challenge_methods_supported": ["S256"],
                "claims_supported": [
                    "iss",
                    "sub",
                    "aud",
                    "exp",
                    "iat",
                    "auth_time",
                    "nonce",
                    "at_hash",
                    "email",
                    "email_verified",
                    "name",
                    self.state.groups_claim,
                ],
            }
        )

    async def jwks(self, request: Request) -> Response:
        return json_response(self.signer.jwks())

    # -- OIDC Core §3.1.2 authorization endpoint ----------------------------------------
    async def authorize(self, request: Request) -> Response:
        params = request.query
        self.state.authorize_requests.append({"time": time.time(), **params})
        client = self.state.clients.get(params.get("client_id", ""))
        if client is None:
            raise OAuthError("invalid_request", "unknown client_id")
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in client.redirect_uris:
            raise OAuthError("invalid_request", "redirect_uri is not registered for this client")

        state = params.get("state")
        echo = {"state": state} if state else {}

        def refuse(error: str, description: str) -> Response:
            return _redirect(
                _with_query(
                    redirect_uri, {"error": error, "error_description": description, **echo}
                )
            )

        if params.get("response_type") != "code":
            return refuse("unsupported_response_type", "only response_type=code is supported")
        scope = params.get("scope", "")
        if "openid" not in scope.split():
            return refuse("invalid_scope", "scope must contain openid")
        if not state:
            return refuse("invalid_request", "state is required")
        if not params.get("nonce"):
            return refuse("invalid_request", "nonce is required")
        if not params.get("code_challenge") or params.get("code_challenge_method") != "S256":
            return refuse("invalid_request", "PKCE with code_challenge_method=S256 is required")
        if self.state.fault("deny_consent"):
            return refuse("access_denied", "the user denied the request")
        hint = params.get("login_hint")
        user = self.state.find_user(hint) if hint else None
        if user is None and not hint and self.state.current_user is not None:
            user = self.state.users.get(self.state.current_user)
        if user is None:
            return refuse("login_required", "no such user can sign in")

        code = AuthorizationCode(
            code=secrets.token_urlsafe(32),
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            scope=scope,
            nonce=params["nonce"],
            code_challenge=params["code_challenge"],
            sub=user.sub,
            expires_at=self.state.now() + self.state.code_ttl,
        )
        self.state.add_code(code)
        return _redirect(_with_query(redirect_uri, {"code": code.code, "state": state}))

    # -- OIDC Core §3.1.3 token endpoint ------------------------------------------------
    def _authenticate_client(
        self, request: Request, form: dict[str, str]
    ) -> tuple[OidcClient, str]:
        """RFC 6749 §2.3.1: HTTP Basic (form-urlencoded id and secret) or body parameters."""
        header = request.header(b"authorization")
        basic = header is not None and header[:6].lower() == b"basic "
        challenge = [(b"www-authenticate", b'Basic realm="oidc-stub"')]
        if basic and "client_secret" in form:
            raise OAuthError("invalid_request", "use one client authentication method, not two")
        if basic:
            assert header is not None
            try:
                decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                raise OAuthError(
                    "invalid_client", "malformed Basic credentials", 401, challenge
                ) from None
            raw_id, _, raw_secret = decoded.partition(":")
            client_id, secret, method = unquote(raw_id), unquote(raw_secret), "client_secret_basic"
            if form.get("client_id", client_id) != client_id:
                raise OAuthError("invalid_request", "client_id differs from the Basic credentials")
        elif "client_secret" in form:
            client_id, secret = form.get("client_id", ""), form["client_secret"]
            method = "client_secret_post"
            challenge = []
        else:
            raise OAuthError("invalid_client", "client authentication required", 401, challenge)
        client = self.state.clients.get(client_id)
        if client is None or not secrets.compare_digest(client.client_secret, secret):
            raise OAuthError("invalid_client", "client authentication failed", 401, challenge)
        return client, method

    async def token(self, request: Request) -> Response:
        form = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        record: dict[str, Any] = {
            "time": time.time(),
            **{key: value for key, value in form.items() if key != "client_secret"},
            "client_secret_sent": "client_secret" in form,
            "auth_method": None,
        }
        self.state.token_requests.append(record)
        try:
            response = self._exchange_code(request, form, record)
        except OAuthError as error:
            record["outcome"] = error.error
            raise
        record["outcome"] = "ok"
        return response

    def _exchange_code(
        self, request: Request, form: dict[str, str], record: dict[str, Any]
    ) -> Response:
        client, record["auth_method"] = self._authenticate_client(request, form)
        if self.state.fault("token_error"):
            raise OAuthError("invalid_grant", "the provider refused the grant")
        if form.get("grant_type") != "authorization_code":
            raise OAuthError("unsupported_grant_type", "only authorization_code is supported")
        code, problem = self.state.redeem_code(form.get("code", ""))
        if code is None or problem is not None:
            raise OAuthError("invalid_grant", problem or "unknown authorization code")
        if code.client_id != client.client_id:
            raise OAuthError("invalid_grant", "the code was issued to another client")
        if form.get("redirect_uri") != code.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri differs from the authorize request")
        verifier = form.get("code_verifier", "")
        if not _VERIFIER_RE.match(verifier):
            raise OAuthError("invalid_request", "code_verifier missing or malformed")
        if not secrets.compare_digest(s256(verifier), code.code_challenge):
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
        record["pkce_verified"] = True
        user = self.state.users.get(code.sub)
        if user is None:
            raise OAuthError("invalid_grant", "the user is gone")

        access = AccessToken(
            token=new_access_token(),
            client_id=client.client_id,
            sub=user.sub,
            scope=code.scope,
            expires_at=self.state.now() + self.state.token_ttl,
        )
        self.state.add_token(access)
        claims = id_token_claims(code, user, access.token, self.state)
        id_token = self.signer.sign(claims, rogue=self.state.fault("bad_signature"))
        return json_response(
            {
                "access_token": access.token,
                "token_type": "Bearer",
                "expires_in": int(self.state.token_ttl),
                "scope": code.scope,
                "id_token": id_token,
            },
            headers=NO_STORE,
        )

    # -- OIDC Core §5.3 UserInfo --------------------------------------------------------
    async def userinfo(self, request: Request) -> Response:
        header = request.header(b"authorization") or b""
        value = header[7:].decode("latin-1").strip() if header[:7].lower() == b"bearer " else ""
        token = self.state.tokens.get(value) if value else None
        self.state.userinfo_requests.append({"time": time.time(), "token_known": token is not None})
        if token is None or self.state.now() > token.expires_at:
            raise OAuthError(
                "invalid_token",
                "access token missing, unknown or expired",
                401,
                [(b"www-authenticate", b'Bearer error="invalid_token"')],
            )
        user = self.state.users.get(token.sub)
        if user is None:
            raise OAuthError("invalid_token", "the user is gone", 401)
        return json_response(user_claims(user, self.state))

    # -- /_oidc/ control ----------------------------------------------------------------
    async def control_health(self, request: Request) -> Response:
        return json_response({"ok": True})

    async def control_state(self, request: Request) -> Response:
        return json_response(
            {
                **self.state.settings(),
                "users": [user.to_json() for user in self.state.users.values()],
                "clients": [
                    {"client_id": c.client_id, "redirect_uris": c.redirect_uris}
                    for c in self.state.clients.values()
                ],
            }
        )

    async def control_config(self, request: Request) -> Response:
        """Body: switches (`{"bad_signature": true}`) and settings (`groups_claim`,
        `code_ttl`, `token_ttl`, `current_user`)."""
        body = _json_object(request)
        try:
            self.state.configure(body)
        except ConfigError as exc:
            raise OAuthError("invalid_request", str(exc)) from None
        return await self.control_state(request)

    async def control_users(self, request: Request) -> Response:
        """Body: `{"users": [{sub, email, name, email_verified?, groups?}], "current_user"?}`."""
        body = _json_object(request)
        try:
            raw_users = body.get("users")
            if not isinstance(raw_users, list) or not raw_users:
                raise ConfigError("users must be a non-empty list")
            users = [OidcUser.from_json(raw) for raw in raw_users]
            self.state.set_users(users, body.get("current_user"))
        except ConfigError as exc:
            raise OAuthError("invalid_request", str(exc)) from None
        return await self.control_state(request)

    async def control_clients(self, request: Request) -> Response:
        """Body: `{client_id, client_secret, redirect_uris: [...]}`; adds or replaces it."""
        body = _json_object(request)
        uris = body.get("redirect_uris")
        if (
            not isinstance(body.get("client_id"), str)
            or not isinstance(body.get("client_secret"), str)
            or not isinstance(uris, list)
            or not all(isinstance(uri, str) for uri in uris)
        ):
            raise OAuthError("invalid_request", "client_id, client_secret, redirect_uris needed")
        self.state.register_client(OidcClient(body["client_id"], body["client_secret"], uris))
        return await self.control_state(request)

    async def control_requests(self, request: Request) -> Response:
        """What the provider received: authorize params, token requests, userinfo calls."""
        return json_response(self.state.records())

    async def control_reset(self, request: Request) -> Response:
        self.state.reset()
        return json_response({"ok": True})


def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        raise OAuthError("invalid_request", "body must be JSON") from None
    if not isinstance(body, dict):
        raise OAuthError("invalid_request", "body must be a JSON object")
    return body


ROUTES: dict[tuple[str, str], Handler] = {
    ("GET", "/.well-known/openid-configuration"): OidcApp.discovery,
    ("GET", "/authorize"): OidcApp.authorize,
    ("POST", "/token"): OidcApp.token,
    ("GET", "/jwks"): OidcApp.jwks,
    ("GET", "/userinfo"): OidcApp.userinfo,
    ("POST", "/userinfo"): OidcApp.userinfo,
    ("GET", "/_oidc/health"): OidcApp.control_health,
    ("GET", "/_oidc/state"): OidcApp.control_state,
    ("POST", "/_oidc/config"): OidcApp.control_config,
    ("POST", "/_oidc/users"): OidcApp.control_users,
    ("POST", "/_oidc/clients"): OidcApp.control_clients,
    ("GET", "/_oidc/requests"): OidcApp.control_requests,
    ("POST", "/_oidc/reset"): OidcApp.control_reset,
}


def create_app(
    issuer: str = "",
    *,
    client_id: str | None = None,
    client_secret: str | None = None,
    redirect_uris: list[str] | None = None,
) -> OidcApp:
    """A fresh provider with one registered client and the default users."""
    client = OidcClient(
        client_id or DEFAULT_CLIENT_ID,
        client_secret or DEFAULT_CLIENT_SECRET,
        list(redirect_uris or [DEFAULT_REDIRECT_URI]),
    )
    state = OidcState(issuer=issuer, clients={client.client_id: client})
    return OidcApp(state)
