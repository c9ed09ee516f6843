"""Single sign-on through the OpenID Connect stand-in (tests/oidc_stub): the whole code
flow with PKCE, state and nonce, every fault switch, linking, groups and PASSWORD_LOGIN."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.contrib.messages import get_messages
from django.test import Client

from accounts import oidc as oidc_client
from core.db import Database
from tests.conftest import PASSWORD, ApiClient, Persona, make_persona
from tests.oidc_stub import OidcServer, OidcUser

SITE = "http://gateway.example.test"
CALLBACK = SITE + "/login/oidc/callback"


@pytest.fixture
def sso(oidc: OidcServer, settings: Any) -> Iterator[OidcServer]:
    """The gateway configured for the stand-in, with `gateway-admins` as the admin group."""
    settings.OIDC_ISSUER = oidc.issuer
    settings.OIDC_CLIENT_ID = oidc.client.client_id
    settings.OIDC_CLIENT_SECRET = oidc.client.client_secret
    settings.SITE_URL = SITE
    settings.ALLOWED_HOSTS = ["testserver", "gateway.example.test", "evil.example"]
    settings.OIDC_ADMIN_GROUPS = ["gateway-admins"]
    oidc.set_redirect_uris([CALLBACK])
    oidc_client.forget_provider()
    yield oidc
    oidc_client.forget_provider()


def start(browser: Client, **extra: Any) -> str:
    """Press the SSO button; return the provider's authorization URL."""
    response = browser.post("/login/oidc", {"next": "/history"}, **extra)
    assert response.status_code == 302, response.content
    return str(response["Location"])


def through_provider(url: str) -> str:
    """What the provider's /authorize redirects to (the gateway's callback, with a code)."""
    response = httpx.get(url, follow_redirects=False)
    assert response.status_code == 302, response.text
    return str(response.headers["location"])


def sign_in(browser: Client) -> Any:
    callback = through_provider(start(browser))
    assert callback.startswith(CALLBACK + "?")
    return browser.get(callback.removeprefix(SITE))


def signed_in_email(browser: Client) -> str | None:
    response = browser.get("/api/users/me")  # pages use the session; the API never does
    assert response.status_code == 401
    page = browser.get("/profile")
    if page.status_code != 200:
        return None
    return str(page.context["gateway_user"].email)


def failure_message(response: Any, browser: Client) -> str:
    assert response.status_code == 302 and response["Location"] == "/login"
    page = browser.get("/login")
    return " ".join(str(m) for m in get_messages(page.wsgi_request)) or page.content.decode()


def audit(database: Database, action: str) -> list[dict[str, Any]]:
    rows = database.read(
        lambda con: con.execute(
            "SELECT actor_email, target_label, detail FROM audit_log WHERE action = ? ORDER BY id",
            [action],
        ).fetchall()
    )
    return [{"actor": r[0], "target": r[1], "detail": json.loads(r[2])} for r in rows]


# -- the flow ----------------------------------------------------------------------------


def test_the_authorize_request_carries_pkce_state_nonce_and_the_configured_redirect(sso):
    url = start(Client())
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(sso.issuer + "/authorize?")
    assert query["response_type"] == ["code"]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) >= 43
    assert query["state"][0] and query["nonce"][0]
    assert query["redirect_uri"] == [CALLBACK]
    assert query["scope"] == ["openid email profile"]


def test_the_redirect_uri_ignores_a_forged_host_header(sso):
    url = start(Client(), headers={"Host": "evil.example"})
    assert parse_qs(urlsplit(url).query)["redirect_uri"] == [CALLBACK]
    assert "evil.example" not in url


def test_first_login_creates_the_user_with_a_session(sso, database, caplog):
    caplog.set_level(logging.INFO)
    browser = Client()
    response = sign_in(browser)
    assert response.status_code == 302 and response["Location"] == "/history"
    assert signed_in_email(browser) == "sso.user@example.com"
    [token] = sso.token_requests()
    assert token["pkce_verified"] and token["auth_method"] == "client_secret_basic"
    assert token["redirect_uri"] == CALLBACK
    secrets = [token["code"], token["code_verifier"], *sso.state.tokens, sso.client.client_secret]
    assert caplog.records and not [s for s in secrets if s in caplog.text]
    [entry] = audit(database, "sso.first_login")
    assert entry["target"] == "sso.user@example.com"
    assert entry["detail"] == {"issuer": sso.issuer, "sub": "oidc-user-0001", "role": "user"}


def test_second_login_finds_the_user_by_sub_even_after_an_email_change(sso, database):
    sign_in(Client())
    sso.set_users([OidcUser("oidc-user-0001", "renamed@example.com", "Sam", groups=[])])
    browser = Client()
    sign_in(browser)
    assert signed_in_email(browser) == "sso.user@example.com"  # the account, not a new one
    count = database.read(lambda con: con.execute("SELECT count(*) FROM users").fetchone())
    assert count[0] == 1
    assert len(audit(database, "sso.first_login")) == 1


def test_an_existing_account_is_linked_by_verified_email(sso, database):
    alice = make_persona("alice@example.com")
    sso.set_users([OidcUser("alice-sub", "Alice@Example.com", "Alice")])
    browser = Client()
    sign_in(browser)
    assert signed_in_email(browser) == "alice@example.com"
    [entry] = audit(database, "sso.linked")
    assert entry["target"] == alice.email and entry["detail"]["sub"] == "alice-sub"


def test_an_unverified_email_is_not_linked(sso, database):
    make_persona("alice@example.com")
    sso.set_users([OidcUser("alice-sub", "alice@example.com", "Alice", email_verified=False)])
    browser = Client()
    message = failure_message(sign_in(browser), browser)
    assert "not verified your email" in message
    assert signed_in_email(browser) is None
    assert audit(database, "sso.linked") == []
    found = database.read(
        lambda con: con.execute("SELECT count(*) FROM oidc_identities").fetchone()
    )
    assert found[0] == 0


def test_a_disabled_user_stays_out(sso, admin):
    browser = Client()
    sign_in(browser)
    user_id = browser.get("/profile").context["gateway_user"].id
    assert (
        admin.client.call("PUT", f"/api/users/{user_id}/active", {"is_active": False}).status_code
        == 200
    )
    again = Client()
    assert "disabled" in failure_message(sign_in(again), again)
    assert signed_in_email(again) is None
    assert signed_in_email(browser) is None  # the old session went with the account


def test_closed_registration_refuses_new_people_unless_auto_create(sso, settings):
    settings.REGISTRATION_OPEN = False
    browser = Client()
    assert "no account for you" in failure_message(sign_in(browser), browser)
    settings.OIDC_AUTO_CREATE = True
    sign_in(browser)
    assert signed_in_email(browser) == "sso.user@example.com"


# -- groups -> admin and back -----------------------------------------------------------


def test_the_admin_group_gives_the_admin_role_and_losing_it_takes_it_away(sso, database, admin):
    sso.log_in_as("sso.admin@example.com")
    browser = Client()
    sign_in(browser)
    assert browser.get("/admin/users").status_code == 200
    [created] = audit(database, "sso.first_login")
    assert created["detail"]["role"] == "admin"

    sso.set_users([OidcUser("oidc-admin-0001", "sso.admin@example.com", "Ada", groups=["staff"])])
    browser = Client()
    sign_in(browser)
    assert browser.get("/admin/users").status_code == 403
    [demoted] = audit(database, "user.role_changed")
    assert demoted["actor"] == demoted["target"] == "sso.admin@example.com"
    assert demoted["detail"] == {
        "from": "admin",
        "to": "user",
        "via": "sso_groups",
        "groups_claim": "groups",
    }

    sso.set_users(
        [OidcUser("oidc-admin-0001", "sso.admin@example.com", "Ada", groups=["gateway-admins"])]
    )
    browser = Client()
    sign_in(browser)
    assert browser.get("/admin/users").status_code == 200
    assert [e["detail"]["to"] for e in audit(database, "user.role_changed")] == ["user", "admin"]


def test_the_groups_claim_name_is_configurable(sso, settings):
    settings.OIDC_GROUPS_CLAIM = "roles"
    sso.configure(groups_claim="roles")
    sso.log_in_as("sso.admin@example.com")
    browser = Client()
    sign_in(browser)
    assert browser.get("/admin/users").status_code == 200


def test_without_admin_groups_the_role_is_left_alone(sso, settings, admin):
    settings.OIDC_ADMIN_GROUPS = []
    sso.set_users([OidcUser("admin-sub", admin.email, "Admin", groups=[])])
    browser = Client()
    sign_in(browser)
    assert browser.get("/admin/users").status_code == 200


# -- every failure: one sentence, no session -------------------------------------------

FAULTS = {
    "bad_signature": "could not be verified",
    "wrong_audience": "could not be verified",
    "wrong_issuer": "could not be verified",
    "wrong_nonce": "could not be verified",
    "expired_token": "could not be verified",
    "email_unverified": "not verified your email",
    "deny_consent": "cancelled or refused",
    "token_error": "took too long or was already used",
}


@pytest.mark.parametrize("switch", sorted(FAULTS))
def test_each_fault_switch_is_refused_with_a_sentence_and_no_session(sso, database, switch, caplog):
    caplog.set_level(logging.INFO)
    sso.configure(**{switch: True})
    browser = Client()
    callback = through_provider(start(browser))
    response = browser.get(callback.removeprefix(SITE))
    message = failure_message(response, browser)
    assert FAULTS[switch] in message
    assert message.count(".") == 1  # one sentence
    assert signed_in_email(browser) is None
    assert "uid" not in browser.session
    count = database.read(lambda con: con.execute("SELECT count(*) FROM users").fetchone())
    assert count[0] == 0
    code = parse_qs(urlsplit(callback).query).get("code", [""])[0]
    assert not code or code not in caplog.text


def test_a_provider_that_is_down_ends_on_the_login_page(sso):
    sso.configure(down=True)
    browser = Client()
    response = browser.post("/login/oidc")
    assert "could not be reached" in failure_message(response, browser)


def test_a_provider_that_answers_503_to_the_code_exchange_ends_on_the_login_page(sso):
    browser = Client()
    callback = through_provider(start(browser))
    sso.configure(down=True)
    response = browser.get(callback.removeprefix(SITE))
    assert "could not be reached" in failure_message(response, browser)
    assert signed_in_email(browser) is None


def test_a_provider_that_goes_away_mid_flow_ends_on_the_login_page(sso):
    browser = Client()
    callback = through_provider(start(browser))
    with sso.offline():
        response = browser.get(callback.removeprefix(SITE))
    assert "could not be reached" in failure_message(response, browser)
    assert signed_in_email(browser) is None


def test_a_replayed_code_is_refused(sso):
    browser = Client()
    callback = through_provider(start(browser))
    assert browser.get(callback.removeprefix(SITE))["Location"] == "/history"
    thief = Client()
    thief.session  # noqa: B018
    response = thief.get(callback.removeprefix(SITE))
    assert "took too long" in failure_message(response, thief)
    assert signed_in_email(thief) is None


def test_a_callback_with_a_foreign_state_is_refused(sso):
    victim, attacker = Client(), Client()
    start(victim)
    callback = through_provider(start(attacker))  # the attacker's own code, sent to the victim
    response = victim.get(callback.removeprefix(SITE).replace("state=", "state=x"))
    assert "could not be matched" in failure_message(response, victim)
    assert signed_in_email(victim) is None


def test_a_callback_with_a_garbled_state_is_refused(sso):
    browser = Client()
    start(browser)
    response = browser.get("/login/oidc/callback", {"state": "é\u0000x", "code": "c"})
    assert "could not be matched" in failure_message(response, browser)


def test_an_expired_code_is_refused(sso):
    sso.configure(code_ttl=0.001)
    browser = Client()
    callback = through_provider(start(browser))
    assert "took too long" in failure_message(browser.get(callback.removeprefix(SITE)), browser)


def test_the_start_needs_a_post_with_csrf(sso):
    browser = Client(enforce_csrf_checks=True)
    assert browser.get("/login/oidc").status_code == 405
    assert browser.post("/login/oidc").status_code == 403


def test_the_login_page_shows_the_button_only_when_configured(sso, settings):
    page = Client().get("/login").content.decode()
    assert "Sign in with single sign-on" in page and 'name="password"' in page
    settings.OIDC_BUTTON_LABEL = "Sign in with Keycloak"
    assert "Sign in with Keycloak" in Client().get("/login").content.decode()
    settings.OIDC_ISSUER = ""
    assert "Sign in with" not in Client().get("/login").content.decode()


def test_api_clients_get_nothing_new(sso):
    assert Client().get("/api/auth/oidc/callback").status_code == 404
    assert Client().post("/api/auth/oidc").status_code == 404


def test_after_sso_a_person_can_create_an_api_key_for_sdks(sso):
    browser = Client()
    sign_in(browser)
    page = browser.post("/profile", {"action": "key", "name": "sdk"})
    key = page.context["new_key"]
    assert ApiClient(key).call("GET", "/api/users/me").json()["email"] == "sso.user@example.com"


# -- PASSWORD_LOGIN=false ---------------------------------------------------------------


def test_password_login_off_hides_the_form_and_refuses_password_users(sso, settings):
    alice = make_persona("alice@example.com")
    settings.PASSWORD_LOGIN = False
    page = Client().get("/login").content.decode()
    assert 'name="password"' not in page and "Sign in with single sign-on" in page
    response = ApiClient().call(
        "POST", "/api/auth/login", {"email": alice.email, "password": PASSWORD}
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "password_login_disabled"
    wrong = ApiClient().call("POST", "/api/auth/login", {"email": alice.email, "password": "nope"})
    assert wrong.json()["error"]["code"] == "invalid_credentials"  # reveals nothing more
    form = Client().post("/login", {"email": alice.email, "password": PASSWORD})
    assert form.status_code == 200 and "switched off" in form.content.decode()
    register = ApiClient().call(
        "POST", "/api/auth/register", {"email": "new@example.com", "password": PASSWORD}
    )
    assert register.status_code == 403
    sign_in(Client())  # single sign-on still works


def test_password_login_off_still_lets_a_break_glass_admin_in(sso, settings, capsys):
    from django.core.management import call_command

    admin: Persona = make_persona("promoted@example.com", admin=True)  # an admin, not break-glass
    call_command("createadmin", "--email", "root@example.com", "--password", PASSWORD)
    settings.PASSWORD_LOGIN = False
    root = ApiClient().call(
        "POST", "/api/auth/login", {"email": "root@example.com", "password": PASSWORD}
    )
    assert root.status_code == 200
    other = ApiClient().call(
        "POST", "/api/auth/login", {"email": admin.email, "password": PASSWORD}
    )
    assert other.status_code == 403
    page = Client().get("/login?password=1").content.decode()
    assert 'name="password"' in page


def test_the_login_page_lets_its_sso_form_reach_the_provider_and_nothing_else(sso, settings):
    csp = Client().get("/login")["Content-Security-Policy"]
    assert f"form-action 'self' {sso.issuer};" in csp
    settings.OIDC_ISSUER = ""
    assert "form-action 'self';" in Client().get("/login")["Content-Security-Policy"]


def test_password_login_off_offers_no_account_creation_on_the_pages(sso, settings):
    settings.PASSWORD_LOGIN = False
    for path in ("/", "/login"):
        assert 'href="/register"' not in Client().get(path).content.decode()
    settings.PASSWORD_LOGIN = True
    assert 'href="/register"' in Client().get("/").content.decode()


def test_the_profile_of_an_sso_account_explains_where_email_and_password_live(sso, alice):
    browser = Client()
    sign_in(browser)
    page = browser.get("/profile").content.decode()
    assert 'data-testid="sso-only"' in page and "Change password" not in page
    assert "Create key" in page
    linked = Client()
    sso.set_users([OidcUser("alice-sub", alice.email, "Alice")])
    sign_in(linked)  # a linked account keeps its password, and the forms to change it
    assert "Change password" in linked.get("/profile").content.decode()


def test_a_deleted_account_takes_its_identity_along(sso, admin, database):
    browser = Client()
    sign_in(browser)
    user_id = browser.get("/profile").context["gateway_user"].id
    assert admin.client.call("DELETE", f"/api/users/{user_id}").status_code == 204
    assert (
        database.read(lambda con: con.execute("SELECT count(*) FROM oidc_identities").fetchone())[0]
        == 0
    )
    again = Client()
    sign_in(again)  # a new account, not a dangling identity
    assert signed_in_email(again) == "sso.user@example.com"
    assert len(audit(database, "sso.first_login")) == 2


def test_a_rate_limited_login_page_still_offers_a_working_sso_button(sso, settings):
    from django.core.cache import cache

    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "auth": "1/min"}
    cache.clear()
    browser = Client()
    browser.post("/login", {"email": "a@example.com", "password": "wrong one!"})
    limited = browser.post("/login", {"email": "a@example.com", "password": "wrong one!"})
    cache.clear()
    assert limited.status_code == 429
    assert "Sign in with single sign-on" in limited.content.decode()
    assert f"form-action 'self' {sso.issuer};" in limited["Content-Security-Policy"]
