"""SPEC §3 pages through Django's test client: auth required, forms, CSRF, results."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.conftest import PASSWORD, ApiClient, Persona


def browser(persona: Persona | None = None, **kwargs) -> Client:
    client = Client(**kwargs)
    if persona is not None:
        response = client.post("/login", {"email": persona.email, "password": persona.password})
        assert response.status_code == 302, response.content
    return client


def text_of(response) -> str:
    return response.content.decode()


# -- signed out ---------------------------------------------------------------------------


def test_the_landing_page_invites_to_register(anon):
    page = text_of(Client().get("/"))
    assert "Create an account" in page and "/login" in page


@pytest.mark.parametrize(
    "path",
    ["/generate/text", "/generate/image", "/generate/video", "/chat", "/history", "/profile"],
)
def test_pages_need_a_signed_in_user(path):
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/login?next=")


def test_generate_redirects_to_text():
    response = Client().get("/generate")
    assert response.status_code == 302 and response["Location"] == "/generate/text"


# -- register, log in, log out ------------------------------------------------------------


def test_registering_signs_the_user_in():
    client = Client()
    response = client.post(
        "/register",
        {"email": "new@example.com", "password": PASSWORD, "password_again": PASSWORD},
    )
    assert response.status_code == 302
    assert "new@example.com" in text_of(client.get("/"))


def test_register_shows_errors_next_to_fields_and_keeps_input():
    response = Client().post(
        "/register", {"email": "keep@example.com", "password": "short", "password_again": "short"}
    )
    page = text_of(response)
    assert response.status_code == 200
    assert 'value="keep@example.com"' in page
    assert re.search(r'has-error">\s*<label for="id_password"', page)
    assert "too short" in page


def test_register_refuses_a_taken_email(alice):
    response = Client().post(
        "/register", {"email": alice.email, "password": PASSWORD, "password_again": PASSWORD}
    )
    assert "already exists" in text_of(response)


def test_login_with_a_wrong_password_says_so_and_keeps_the_email(alice):
    response = Client().post("/login", {"email": alice.email, "password": "wrong password!"})
    page = text_of(response)
    assert response.status_code == 200
    assert "Email or password is wrong." in page
    assert f'value="{alice.email}"' in page


def test_login_follows_a_safe_next_only(alice):
    client = Client()
    ok = client.post("/login?next=/history", {"email": alice.email, "password": PASSWORD})
    assert ok["Location"] == "/history"
    evil = Client().post(
        "/login", {"email": alice.email, "password": PASSWORD, "next": "https://evil.example.com/"}
    )
    assert evil["Location"] == "/"


def test_logout_needs_post_and_ends_the_session(alice):
    client = browser(alice)
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 302
    assert client.get("/profile").status_code == 302


def test_logging_out_in_the_browser_revokes_that_login_only(alice):
    client = browser(alice)
    client.post("/logout")
    assert alice.client.call("GET", "/api/users/me").status_code == 200


def test_forms_are_csrf_protected(alice):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/login", {"email": alice.email, "password": PASSWORD})
    assert response.status_code == 403
    assert "This form has expired" in text_of(response)
    page = text_of(client.get("/login"))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = client.post(
        "/login", {"email": alice.email, "password": PASSWORD, "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302


def test_the_session_cookie_is_httponly_and_lax(alice):
    client = Client()
    response = client.post("/login", {"email": alice.email, "password": PASSWORD})
    cookie = response.cookies["sessionid"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"


# -- the user's current state is checked on every request --------------------------------


def test_a_demoted_admin_loses_the_admin_menu_at_once(admin, alice):
    admin.client.call("PUT", f"/api/users/{alice.id}/role", {"role": "admin"})
    client = browser(alice)
    assert 'data-testid="admin-menu"' in text_of(client.get("/"))
    admin.client.call("PUT", f"/api/users/{alice.id}/role", {"role": "user"})
    assert 'data-testid="admin-menu"' not in text_of(client.get("/"))


def test_a_deleted_user_is_signed_out_at_once(admin, alice):
    client = browser(alice)
    admin.client.call("DELETE", f"/api/users/{alice.id}")
    assert client.get("/profile").status_code == 302


# -- profile --------------------------------------------------------------------------------


def test_profile_changes_the_email_with_the_current_password(alice):
    client = browser(alice)
    bad = client.post(
        "/profile", {"action": "email", "email": "a2@example.com", "current_password": "nope"}
    )
    assert "The current password is wrong." in text_of(bad)
    good = client.post(
        "/profile", {"action": "email", "email": "a2@example.com", "current_password": PASSWORD}
    )
    assert good.status_code == 302
    assert "a2@example.com" in text_of(client.get("/profile"))


def test_changing_the_password_keeps_this_browser_signed_in_and_others_out(alice):
    client = browser(alice)
    other = browser(alice)
    response = client.post(
        "/profile",
        {"action": "password", "current_password": PASSWORD, "password": "a brand new passphrase",
         "password_again": "a brand new passphrase"},
    )  # fmt: skip
    assert response.status_code == 302
    assert client.get("/profile").status_code == 200
    assert other.get("/profile").status_code == 302
    assert alice.client.call("GET", "/api/users/me").status_code == 401


def test_the_password_form_offers_to_revoke_api_keys_ticked_by_default(alice):
    page = text_of(browser(alice).get("/profile"))
    box = re.search(r'<input type="checkbox" name="revoke_api_keys"[^>]*>', page)
    assert box is not None and "checked" in box.group(0)
    assert "API keys keep working" in page


def test_changing_the_password_with_the_box_ticked_revokes_api_keys(alice):
    key = alice.client.call("POST", "/api/auth/keys", {"name": "script"}).json()["key"]
    client = browser(alice)
    response = client.post(
        "/profile",
        {"action": "password", "current_password": PASSWORD, "password": "a brand new passphrase",
         "password_again": "a brand new passphrase", "revoke_api_keys": "on"},
        follow=True,
    )  # fmt: skip
    assert "1 API key was revoked" in text_of(response)
    assert ApiClient(key).call("GET", "/api/users/me").status_code == 401


def test_changing_the_password_with_the_box_unticked_says_which_keys_still_work(alice):
    key = alice.client.call("POST", "/api/auth/keys", {"name": "script"}).json()["key"]
    response = browser(alice).post(
        "/profile",
        {"action": "password", "current_password": PASSWORD, "password": "a brand new passphrase",
         "password_again": "a brand new passphrase"},
        follow=True,
    )  # fmt: skip
    assert "Your 1 API key still works" in text_of(response)
    assert ApiClient(key).call("GET", "/api/users/me").status_code == 200


def test_an_api_key_is_shown_once_and_can_be_revoked(alice):
    client = browser(alice)
    page = text_of(client.post("/profile", {"action": "key", "name": "laptop"}))
    key = re.search(r'data-testid="new-key">([^<]+)<', page).group(1)
    assert key.startswith("agw_")
    again = text_of(client.get("/profile"))
    assert key not in again and "laptop" in again
    key_id = re.search(r"/profile/keys/([0-9a-f-]+)/revoke", again).group(1)
    client.post(f"/profile/keys/{key_id}/revoke")
    assert "No API keys yet." in text_of(client.get("/profile"))


def test_someone_elses_key_cannot_be_revoked(alice, mallory):
    key_id = alice.client.call("POST", "/api/auth/keys", {"name": "k"}).json()["id"]
    client = browser(mallory)
    page = text_of(client.post(f"/profile/keys/{key_id}/revoke", follow=True))
    assert "No such API key." in page
    assert len(alice.client.call("GET", "/api/auth/keys").json()["items"]) == 1


# -- generate, chat, history against the stand-in ----------------------------------------


def test_generate_text_shows_the_answer_and_keeps_the_form(alice, stub):
    client = browser(alice)
    page = text_of(client.get("/generate/text"))
    assert "openai/gpt-4o-mini" in page and "flux" not in page  # text models only
    response = client.post(
        "/generate/text", {"model": "openai/gpt-4o-mini", "prompt": "hello page"}
    )
    page = text_of(response)
    assert 'data-testid="text-result"' in page and "hello page" in page


def test_generate_text_answers_htmx_with_the_panel_only(alice, stub):
    client = browser(alice)
    response = client.post(
        "/generate/text",
        {"model": "openai/gpt-4o-mini", "prompt": "hi"},
        headers={"HX-Request": "true"},
    )
    page = text_of(response)
    assert page.lstrip().startswith('<div id="panel"') and "<html" not in page


def test_an_upstream_failure_shows_its_sentence_not_a_trace(alice, stub):
    stub.add_fault(path="/api/v1/chat/completions", status=402)
    client = browser(alice)
    page = text_of(client.post("/generate/text", {"model": "openai/gpt-4o-mini", "prompt": "x"}))
    assert "credits" in page.lower() or "payment" in page.lower()
    assert "Traceback" not in page


def test_without_an_api_key_the_pickers_explain_what_to_set(alice, stub, settings):
    settings.OPENROUTER_API_KEY = ""
    page = text_of(browser(alice).get("/generate/image"))
    assert "OPENROUTER_API_KEY" in page


def test_generate_image_shows_the_image_inline_and_serves_it_to_the_owner(alice, mallory, stub):
    client = browser(alice)
    page = text_of(
        client.post(
            "/generate/image", {"model": "google/gemini-2.5-flash-image", "prompt": "a cat"}
        )
    )
    src = re.search(r'<img src="(/media/[^"]+)"', page).group(1)
    assert client.get(src).status_code == 200
    assert browser(mallory).get(src).status_code == 404


def test_image_picker_lists_image_models_only(alice, stub):
    page = text_of(browser(alice).get("/generate/image"))
    assert "black-forest-labs/flux.2-klein-4b" in page and "openai/gpt-4o-mini" not in page


def test_submitting_a_video_leads_to_its_job_page_which_polls(alice, stub):
    client = browser(alice)
    response = client.post(
        "/generate/video", {"model": "google/veo-3.1-fast", "prompt": "waves", "duration": 4}
    )
    assert response.status_code == 302
    job_page = text_of(client.get(response["Location"]))
    assert 'hx-trigger="every 3s"' in job_page


def test_the_video_form_keeps_input_on_errors(alice, stub):
    client = browser(alice)
    page = text_of(
        client.post(
            "/generate/video", {"model": "google/veo-3.1-fast", "prompt": "waves", "tab": "image"}
        )
    )
    assert "Upload an image or give an image URL" in page and "waves" in page


def test_history_lists_own_generations_and_filters(alice, mallory, stub):
    alice.client.call(
        "POST", "/api/generate/text", {"model": "openai/gpt-4o-mini", "prompt": "mine"}
    )
    mallory.client.call(
        "POST", "/api/generate/text", {"model": "openai/gpt-4o-mini", "prompt": "hers"}
    )
    client = browser(alice)
    page = text_of(client.get("/history"))
    assert "mine" in page and "hers" not in page
    assert "Nothing here yet." in text_of(client.get("/history?kind=image"))


def test_chat_without_javascript_stores_the_conversation(alice, stub):
    client = browser(alice)
    response = client.post(
        "/chat/send", {"model": "openai/gpt-4o-mini", "content": "first question"}
    )
    assert response.status_code == 302
    page = text_of(client.get(response["Location"]))
    assert "first question" in page and "bubble assistant" in page
    assert "first question" in text_of(client.get("/chat"))  # listed in the sidebar


def test_other_users_conversations_are_not_found(alice, mallory, stub):
    client = browser(alice)
    location = client.post("/chat/send", {"model": "openai/gpt-4o-mini", "content": "secret"})[
        "Location"
    ]
    assert browser(mallory).get(location).status_code == 404


def test_the_dashboard_shows_recent_generations_and_usage(alice, stub):
    alice.client.call(
        "POST", "/api/generate/text", {"model": "openai/gpt-4o-mini", "prompt": "dash"}
    )
    page = text_of(browser(alice).get("/"))
    assert "dash" in page
    assert '<div class="stat">1</div><div class="stat-label">call to the provider' in page


def test_error_pages_use_the_sites_look():
    response = Client().get("/no/such/page")
    assert response.status_code == 404
    assert "Page not found" in text_of(response) and "aigateway" in text_of(response)


# -- staff pages ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/admin/users", "/admin/stats", "/admin/health", "/admin/tokens", "/admin/audit"]
)
def test_staff_pages_are_refused_to_users_and_open_to_admins(alice, admin, path):
    assert Client().get(path).status_code == 302
    refused = browser(alice).get(path)
    assert refused.status_code == 403 and "Not allowed" in text_of(refused)
    assert browser(admin).get(path).status_code == 200


def test_admin_searches_users_and_changes_a_role(admin, alice, mallory):
    client = browser(admin)
    page = text_of(client.get("/admin/users?q=mall"))
    assert mallory.email in page and alice.email not in page
    client.post(f"/admin/users/{alice.id}/role", {"role": "admin"})
    assert alice.client.call("GET", "/api/users").status_code == 200


def test_deleting_a_user_needs_the_confirmation(admin, alice):
    client = browser(admin)
    page = text_of(client.post(f"/admin/users/{alice.id}/delete", {}, follow=True))
    assert "Tick the confirmation box" in page
    assert alice.client.call("GET", "/api/users/me").status_code == 200
    client.post(f"/admin/users/{alice.id}/delete", {"confirm": "yes"})
    assert alice.client.call("GET", "/api/users/me").status_code == 401


def test_the_last_admin_cannot_demote_themself_from_the_page(admin):
    page = text_of(
        browser(admin).post(f"/admin/users/{admin.id}/role", {"role": "user"}, follow=True)
    )
    assert "last active admin" in page


def test_stats_draw_charts_from_usage(admin, alice, stub):
    alice.client.call("POST", "/api/generate/text", {"model": "openai/gpt-4o-mini", "prompt": "x"})
    page = text_of(browser(admin).get("/admin/stats"))
    assert 'class="bars"' in page and "openai/gpt-4o-mini" in page and alice.email in page


def test_purging_tokens_from_the_page_is_audited(admin, alice):
    client = browser(admin)
    alice.client.call("POST", "/api/auth/logout", {"refresh_token": alice.refresh})
    page = text_of(client.post("/admin/tokens", follow=True))
    assert "Purged 1 expired or revoked refresh token." in page
    assert "tokens.purged" in text_of(client.get("/admin/audit"))


def test_the_login_form_is_rate_limited_per_address(alice, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "auth": "3/min"}
    from django.core.cache import cache

    cache.clear()
    client = Client()
    for _ in range(3):
        assert (
            client.post("/login", {"email": alice.email, "password": "wrong one!"}).status_code
            == 200
        )
    limited = client.post("/login", {"email": alice.email, "password": PASSWORD})
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) >= 1
    assert "Too many attempts" in text_of(limited)
    cache.clear()


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"--XX\r\n\r\n--XX--\r\n"),
        (
            "multipart/form-data; boundary=XX",
            b'--XX\r\nContent-Disposition: form-data; name="image"; filename="'
            + b"a" * 5000
            + b'.png"\r\n\r\nx\r\n--XX--\r\n',
        ),
    ],
)
def test_a_broken_multipart_form_is_a_400_page_that_says_why(alice, content_type, body):
    response = browser(alice).post(
        "/generate/video?tab=image", data=body, content_type=content_type
    )
    assert response.status_code == 400
    assert "not a valid multipart form" in text_of(response)
