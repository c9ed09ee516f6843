"""Single sign-on in real headless Chromium: the gateway under uvicorn with PASSWORD_LOGIN
off, signing in through the OpenID Connect stand-in, then summarizing on the text page."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.browser import assert_accessible, needs_chromium, new_page, problems
from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, serve_with_admin
from tests.oidc_stub import OidcServer, OidcUser
from tests.openrouter_stub import StubServer
from tests.servers import GatewayServer, free_port

STUB_KEY = "sk-or-v1-sso-browser-test-key-" + "c" * 30
LABEL = "Sign in with Keycloak"

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def idp() -> Iterator[OidcServer]:
    with OidcServer() as server:
        yield server


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with StubServer(api_key=STUB_KEY) as server:
        yield server


@pytest.fixture(scope="module")
def site(
    idp: OidcServer, stub: StubServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = GatewayServer(
        tmp_path_factory.mktemp("sso-browser"),
        port=port,
        env={
            "OPENROUTER_BASE_URL": stub.base_url,
            "OPENROUTER_API_KEY": STUB_KEY,
            "SITE_URL": base,
            "OIDC_ISSUER": idp.issuer,
            "OIDC_CLIENT_ID": idp.client.client_id,
            "OIDC_CLIENT_SECRET": idp.client.client_secret,
            "OIDC_BUTTON_LABEL": LABEL,
            "OIDC_ADMIN_GROUPS": "gateway-admins",
            "PASSWORD_LOGIN": "false",
            "RATE_LIMIT_AUTH": "off",
        },
    )
    yield from serve_with_admin(server)


@pytest.fixture(autouse=True)
def _fresh_provider(idp: OidcServer, site: GatewayServer) -> None:
    idp.reset()
    idp.set_redirect_uris([site.base_url + "/login/oidc/callback"])


@pytest.mark.usefixtures("axe_core")
def test_a_person_signs_in_through_the_provider_and_summarizes(browser, site, idp):  # type: ignore[no-untyped-def]
    page = new_page(browser, site)
    page.goto("/login")
    assert page.locator("input[name=password]").count() == 0  # PASSWORD_LOGIN=false
    assert_accessible(page, "login-sso")
    page.get_by_role("button", name=LABEL).click()
    page.wait_for_url(site.base_url + "/")
    assert page.get_by_text("sso.user@example.com").count() >= 1
    assert page.locator("[data-testid=admin-menu]").count() == 0
    [authorize] = idp.authorize_requests()
    assert authorize["code_challenge_method"] == "S256"
    assert authorize["redirect_uri"] == site.base_url + "/login/oidc/callback"

    page.goto("/generate/text")
    page.get_by_role("link", name="Summarize").click()
    page.wait_for_url("**/generate/text?mode=summarize")
    page.fill("#id_text", "The committee met on Tuesday and agreed on the budget. " * 10)
    page.select_option("#id_length", "short")
    page.click("#panel button[type=submit]")
    result = page.wait_for_selector("[data-testid=text-result]")
    assert result.inner_text().strip()
    assert page.locator("#panel input[name=mode]").get_attribute("value") == "summarize"
    assert_accessible(page, "generate-summarize")
    page.goto("/history?kind=summarize")
    assert page.get_by_text("1 generation of kind summarize").is_visible()
    problems(page).assert_none()
    page.context.close()


def test_the_admin_group_opens_the_admin_pages(browser, site, idp):  # type: ignore[no-untyped-def]
    idp.log_in_as("sso.admin@example.com")
    page = new_page(browser, site)
    page.goto("/login")
    page.get_by_role("button", name=LABEL).click()
    page.wait_for_url(site.base_url + "/")
    assert page.locator("[data-testid=admin-menu]").count() == 1
    problems(page).assert_none()
    page.context.close()


@pytest.mark.parametrize(
    ("switch", "sentence"),
    [
        ("deny_consent", "The sign-in was cancelled or refused at the provider."),
        ("wrong_nonce", "could not be verified"),
    ],
)
def test_a_refused_sign_in_ends_on_the_login_page_with_a_sentence(
    browser, site, idp, switch, sentence
):  # type: ignore[no-untyped-def]
    idp.configure(**{switch: True})
    page = new_page(browser, site)
    page.goto("/login")
    page.get_by_role("button", name=LABEL).click()
    page.wait_for_url(site.base_url + "/login")
    assert page.get_by_text(sentence).is_visible()
    page.goto("/profile")
    assert "/login" in page.url  # no session
    page.context.close()


def test_an_unverified_email_cannot_take_over_an_account(browser, site, idp):  # type: ignore[no-untyped-def]
    idp.set_users([OidcUser("attacker", ADMIN_EMAIL, "Mallory", email_verified=False)])
    page = new_page(browser, site)
    page.goto("/login")
    page.get_by_role("button", name=LABEL).click()
    page.wait_for_url(site.base_url + "/login")
    assert page.get_by_text("has not verified your email address").is_visible()
    page.context.close()


def test_the_break_glass_admin_still_logs_in_with_a_password(browser, site):  # type: ignore[no-untyped-def]
    page = new_page(browser, site)
    page.goto("/login")
    page.get_by_role("link", name="log in with a password").click()
    page.fill("#id_email", ADMIN_EMAIL)
    page.fill("#id_password", ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in", exact=True).click()
    page.wait_for_url(site.base_url + "/")
    assert page.locator("[data-testid=admin-menu]").count() == 1
    page.context.close()
