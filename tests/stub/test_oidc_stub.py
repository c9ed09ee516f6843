"""The OIDC stand-in runs the whole code + PKCE flow strictly, and each switch breaks one thing."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import KeySet

from tests.oidc_stub import FAULT_SWITCHES, OidcServer, OidcUser

CALLBACK = "http://127.0.0.1:8000/login/oidc/callback"


@pytest.fixture
def http(oidc: OidcServer) -> Iterator[httpx.Client]:
    oidc.set_redirect_uris([CALLBACK])
    with httpx.Client(base_url=oidc.issuer, timeout=5, trust_env=False) as client:
        yield client


@dataclass
class Flow:
    """What a careful relying party keeps between the redirect and the callback."""

    state: str
    nonce: str
    verifier: str

    @classmethod
    def new(cls) -> Flow:
        return cls(secrets.token_urlsafe(16), secrets.token_urlsafe(16), secrets.token_urlsafe(48))

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode()).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_params(oidc: OidcServer, flow: Flow, **overrides: Any) -> dict[str, Any]:
    params = {
        "response_type": "code",
        "client_id": oidc.client.client_id,
        "redirect_uri": CALLBACK,
        "scope": "openid email profile",
        "state": flow.state,
        "nonce": flow.nonce,
        "code_challenge": flow.challenge,
        "code_challenge_method": "S256",
        **overrides,
    }
    return {key: value for key, value in params.items() if value is not None}


def authorize(http: httpx.Client, oidc: OidcServer, flow: Flow, **overrides: Any) -> dict[str, str]:
    """GET /authorize and return the query of the redirect back to the callback."""
    response = http.get("/authorize", params=authorize_params(oidc, flow, **overrides))
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(CALLBACK + "?")
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


def exchange(
    http: httpx.Client, oidc: OidcServer, code: str, verifier: str, *, basic: bool = True
) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
    }
    client = oidc.client
    if basic:
        return http.post("/token", data=form, auth=(client.client_id, client.client_secret))
    form |= {"client_id": client.client_id, "client_secret": client.client_secret}
    return http.post("/token", data=form)


def sign_in(http: httpx.Client, oidc: OidcServer, **overrides: Any) -> tuple[Flow, dict[str, Any]]:
    flow = Flow.new()
    back = authorize(http, oidc, flow, **overrides)
    response = exchange(http, oidc, back["code"], flow.verifier)
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return flow, tokens


def verify_id_token(
    http: httpx.Client, oidc: OidcServer, id_token: str, nonce: str
) -> dict[str, Any]:
    """What the gateway's client must do: JWKS signature, iss, aud, exp, nonce."""
    config = http.get("/.well-known/openid-configuration").json()
    keys = KeySet.import_key_set(http.get(config["jwks_uri"]).json())
    token = jwt.decode(id_token, keys, algorithms=["RS256"])
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": config["issuer"]},
        aud={"essential": True, "value": oidc.client.client_id},
        nonce={"essential": True, "value": nonce},
        sub={"essential": True},
        exp={"essential": True},
    ).validate(token.claims)
    return dict(token.claims)


# -- the happy path ----------------------------------------------------------------------------


def test_discovery_names_its_own_endpoints(oidc: OidcServer, http: httpx.Client) -> None:
    config = http.get("/.well-known/openid-configuration").json()
    assert config["issuer"] == oidc.issuer
    for name, path in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("userinfo_endpoint", "/userinfo"),
        ("jwks_uri", "/jwks"),
    ]:
        assert config[name] == oidc.issuer + path
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert config["id_token_signing_alg_values_supported"] == ["RS256"]
    assert set(config["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }
    (key,) = http.get("/jwks").json()["keys"]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig"
    assert "d" not in key  # public half only


def test_the_whole_code_flow_with_pkce(oidc: OidcServer, http: httpx.Client) -> None:
    flow = Flow.new()
    back = authorize(http, oidc, flow)
    assert back["state"] == flow.state and set(back) == {"code", "state"}
    response = exchange(http, oidc, back["code"], flow.verifier)
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    tokens = response.json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3600
    claims = verify_id_token(http, oidc, tokens["id_token"], flow.nonce)
    assert claims["sub"] == "oidc-user-0001" and claims["email"] == "sso.user@example.com"
    assert claims["email_verified"] is True and claims["name"] == "Sam Sign-On"
    assert claims["groups"] == ["staff"] and claims["exp"] > time.time() > claims["iat"] - 5
    digest = hashlib.sha256(tokens["access_token"].encode()).digest()
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()

    info = http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert info.json() == {
        "sub": "oidc-user-0001",
        "email": "sso.user@example.com",
        "email_verified": True,
        "name": "Sam Sign-On",
        "groups": ["staff"],
    }
    assert http.get("/userinfo", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_client_secret_post_works_as_well_as_basic(oidc: OidcServer, http: httpx.Client) -> None:
    flow = Flow.new()
    back = authorize(http, oidc, flow)
    assert exchange(http, oidc, back["code"], flow.verifier, basic=False).status_code == 200
    flow = Flow.new()
    back = authorize(http, oidc, flow)
    assert exchange(http, oidc, back["code"], flow.verifier).status_code == 200
    methods = [record["auth_method"] for record in oidc.token_requests()]
    assert methods == ["client_secret_post", "client_secret_basic"]


def test_it_records_what_the_client_sent(oidc: OidcServer, http: httpx.Client) -> None:
    flow, _ = sign_in(http, oidc)
    (seen,) = oidc.authorize_requests()
    assert seen["state"] == flow.state and seen["nonce"] == flow.nonce
    assert seen["code_challenge"] == flow.challenge and seen["code_challenge_method"] == "S256"
    assert seen["redirect_uri"] == CALLBACK and seen["client_id"] == oidc.client.client_id
    (token,) = oidc.token_requests()
    assert token["code_verifier"] == flow.verifier and token["pkce_verified"] is True
    assert token["outcome"] == "ok" and token["redirect_uri"] == CALLBACK
    assert "client_secret" not in token and oidc.client.client_secret not in str(token)
    recorded = http.get("/_oidc/requests").json()
    assert recorded["authorize"][0]["nonce"] == flow.nonce and len(recorded["token"]) == 1


def test_users_groups_claim_and_login_hint_are_configurable(
    oidc: OidcServer, http: httpx.Client
) -> None:
    oidc.configure(groups_claim="roles")
    _, tokens = sign_in(http, oidc, login_hint="SSO.Admin@example.com")
    claims = jwt.decode(tokens["id_token"], KeySet.import_key_set(http.get("/jwks").json())).claims
    assert claims["sub"] == "oidc-admin-0001" and claims["roles"] == ["staff", "gateway-admins"]
    assert "groups" not in claims

    newcomer = {"sub": "s-9", "email": "new@example.org", "name": "New Comer"}
    response = http.post("/_oidc/users", json={"users": [newcomer], "current_user": "s-9"})
    assert response.status_code == 200
    flow, tokens = sign_in(http, oidc)
    claims = verify_id_token(http, oidc, tokens["id_token"], flow.nonce)
    assert (claims["sub"], claims["email"], claims["roles"]) == ("s-9", "new@example.org", [])

    oidc.set_users([OidcUser("s-1", "one@example.com", "One"), OidcUser("s-2", "two@x.io", "Two")])
    oidc.log_in_as("two@x.io")
    _, tokens = sign_in(http, oidc)
    info = http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert info.json()["sub"] == "s-2"
    refused = authorize(http, oidc, Flow.new(), login_hint="stranger@example.com")
    assert refused["error"] == "login_required"


# -- what the provider refuses -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "email profile"}, "invalid_scope"),
        ({"nonce": None}, "invalid_request"),
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
    ],
)
def test_authorize_refuses_careless_requests_back_at_the_callback(
    oidc: OidcServer, http: httpx.Client, overrides: dict[str, Any], error: str
) -> None:
    flow = Flow.new()
    back = authorize(http, oidc, flow, **overrides)
    assert back["error"] == error and back["state"] == flow.state and "code" not in back


def test_authorize_without_state_is_refused(oidc: OidcServer, http: httpx.Client) -> None:
    back = authorize(http, oidc, Flow.new(), state=None)
    assert back["error"] == "invalid_request" and "state" not in back


@pytest.mark.parametrize(
    "overrides",
    [
        {"client_id": "someone-else"},
        {"redirect_uri": CALLBACK + "/"},
        {"redirect_uri": "http://127.0.0.1:8000/login/oidc/callback?next=/"},
        {"redirect_uri": None},
    ],
)
def test_authorize_never_redirects_to_an_unregistered_place(
    oidc: OidcServer, http: httpx.Client, overrides: dict[str, Any]
) -> None:
    response = http.get("/authorize", params=authorize_params(oidc, Flow.new(), **overrides))
    assert response.status_code == 400 and "location" not in response.headers
    assert response.json()["error"] == "invalid_request"


def test_codes_are_one_time_and_bound_to_the_verifier(oidc: OidcServer, http: httpx.Client) -> None:
    flow = Flow.new()
    code = authorize(http, oidc, flow)["code"]
    wrong = exchange(http, oidc, code, Flow.new().verifier)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    again = exchange(http, oidc, code, flow.verifier)  # a code is spent on first presentation
    assert again.json() == {
        "error": "invalid_grant",
        "error_description": "authorization code already used",
    }
    flow = Flow.new()
    code = authorize(http, oidc, flow)["code"]
    missing = exchange(http, oidc, code, "")
    assert missing.json()["error"] == "invalid_request"
    outcomes = [record["outcome"] for record in oidc.token_requests()]
    assert outcomes == ["invalid_grant", "invalid_grant", "invalid_request"]


def test_codes_expire(oidc: OidcServer, http: httpx.Client) -> None:
    assert oidc.state.code_ttl == 60
    oidc.configure(code_ttl=0.2)
    flow = Flow.new()
    code = authorize(http, oidc, flow)["code"]
    time.sleep(0.3)
    expired = exchange(http, oidc, code, flow.verifier)
    assert expired.json()["error_description"] == "authorization code expired"


def test_token_endpoint_authenticates_the_client(oidc: OidcServer, http: httpx.Client) -> None:
    flow = Flow.new()
    code = authorize(http, oidc, flow)["code"]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": flow.verifier,
    }
    client_id = oidc.client.client_id
    wrong = http.post("/token", data=form, auth=(client_id, "wrong"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert wrong.headers["www-authenticate"].startswith("Basic")
    nobody = http.post("/token", data=form)
    assert nobody.status_code == 401
    both = http.post(
        "/token",
        data={**form, "client_secret": oidc.client.client_secret},
        auth=(client_id, oidc.client.client_secret),
    )
    assert both.status_code == 400 and both.json()["error"] == "invalid_request"
    # The code survived all of that: client authentication comes first.
    assert exchange(http, oidc, code, flow.verifier).status_code == 200


def test_token_exchange_needs_the_same_redirect_uri(oidc: OidcServer, http: httpx.Client) -> None:
    oidc.set_redirect_uris([CALLBACK, CALLBACK + "2"])
    flow = Flow.new()
    code = authorize(http, oidc, flow)["code"]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK + "2",
        "code_verifier": flow.verifier,
    }
    response = http.post(
        "/token", data=form, auth=(oidc.client.client_id, oidc.client.client_secret)
    )
    assert response.json()["error"] == "invalid_grant"


# -- fault switches ----------------------------------------------------------------------------


def test_bad_signature_is_caught_by_the_jwks(oidc: OidcServer, http: httpx.Client) -> None:
    oidc.configure(bad_signature=True)
    flow, tokens = sign_in(http, oidc)
    header = jws.extract_compact(tokens["id_token"].encode()).protected
    assert header["kid"] == http.get("/jwks").json()["keys"][0]["kid"]  # same kid, other key
    with pytest.raises(BadSignatureError):
        verify_id_token(http, oidc, tokens["id_token"], flow.nonce)


@pytest.mark.parametrize(
    ("switch", "claim"),
    [("wrong_audience", "aud"), ("wrong_issuer", "iss"), ("wrong_nonce", "nonce")],
)
def test_claim_switches_make_exactly_that_claim_wrong(
    oidc: OidcServer, http: httpx.Client, switch: str, claim: str
) -> None:
    good_flow, good = sign_in(http, oidc)
    good_claims = verify_id_token(http, oidc, good["id_token"], good_flow.nonce)
    oidc.configure(**{switch: True})
    flow, tokens = sign_in(http, oidc)
    keys = KeySet.import_key_set(http.get("/jwks").json())
    claims = jwt.decode(tokens["id_token"], keys).claims  # the signature is still good
    expected = {"aud": oidc.client.client_id, "iss": oidc.issuer, "nonce": flow.nonce}
    assert claims[claim] != expected[claim]
    with pytest.raises(JoseError):
        verify_id_token(http, oidc, tokens["id_token"], flow.nonce)
    untouched = set(good_claims) - {claim, "nonce", "at_hash", "exp", "iat", "auth_time"}
    assert {key: claims[key] for key in untouched} == {key: good_claims[key] for key in untouched}


def test_expired_token_has_its_expiry_in_the_past(oidc: OidcServer, http: httpx.Client) -> None:
    oidc.configure(expired_token=True)
    flow, tokens = sign_in(http, oidc)
    claims = jwt.decode(tokens["id_token"], KeySet.import_key_set(http.get("/jwks").json())).claims
    assert claims["exp"] < time.time() and claims["nonce"] == flow.nonce
    with pytest.raises(JoseError):
        verify_id_token(http, oidc, tokens["id_token"], flow.nonce)


def test_email_unverified_reaches_token_and_userinfo(oidc: OidcServer, http: httpx.Client) -> None:
    oidc.configure(email_unverified=True)
    flow, tokens = sign_in(http, oidc)
    claims = verify_id_token(http, oidc, tokens["id_token"], flow.nonce)
    assert claims["email_verified"] is False
    info = http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert info.json()["email_verified"] is False


def test_deny_consent_sends_the_user_back_with_access_denied(
    oidc: OidcServer, http: httpx.Client
) -> None:
    http.post("/_oidc/config", json={"deny_consent": True})
    flow = Flow.new()
    back = authorize(http, oidc, flow)
    assert back == {
        "error": "access_denied",
        "error_description": "the user denied the request",
        "state": flow.state,
    }


def test_token_error_refuses_the_grant(oidc: OidcServer, http: httpx.Client) -> None:
    oidc.configure(token_error=True)
    flow = Flow.new()
    response = exchange(http, oidc, authorize(http, oidc, flow)["code"], flow.verifier)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_down_makes_every_endpoint_answer_503(oidc: OidcServer, http: httpx.Client) -> None:
    oidc.configure(down=True)
    for method, path in [
        ("GET", "/.well-known/openid-configuration"),
        ("GET", "/authorize"),
        ("POST", "/token"),
        ("GET", "/jwks"),
        ("GET", "/userinfo"),
    ]:
        response = http.request(method, path)
        assert response.status_code == 503, path
        assert response.json()["error"] == "temporarily_unavailable"
    assert http.get("/_oidc/health").status_code == 200  # control stays up
    oidc.configure(down=False)
    assert http.get("/jwks").status_code == 200


def test_offline_refuses_connections_and_keeps_state(oidc: OidcServer, http: httpx.Client) -> None:
    oidc.configure(groups_claim="roles")
    with oidc.offline(), pytest.raises(httpx.ConnectError):
        httpx.get(oidc.discovery_url, timeout=2)
    assert http.get("/.well-known/openid-configuration").json()["issuer"] == oidc.issuer
    assert oidc.state.groups_claim == "roles"


def test_switches_are_validated_and_reset(oidc: OidcServer, http: httpx.Client) -> None:
    assert http.post("/_oidc/config", json={"bad_sig": True}).status_code == 400
    assert http.post("/_oidc/config", json={"down": "yes"}).status_code == 400
    assert http.post("/_oidc/config", json={"current_user": "ghost"}).status_code == 400
    assert http.post("/_oidc/users", json={"users": [{"sub": "x"}]}).status_code == 400
    every = {switch: True for switch in FAULT_SWITCHES}
    assert http.post("/_oidc/config", json=every).json()["faults"] == sorted(FAULT_SWITCHES)
    assert http.post("/_oidc/reset").json() == {"ok": True}
    state = http.get("/_oidc/state").json()
    assert state["faults"] == [] and state["current_user"] == "oidc-user-0001"
    assert oidc.authorize_requests() == [] and oidc.token_requests() == []
