"""The staff Limits page, spend on the users list, and the signed-in user's spend on the
dashboard and generate pages (issue 10)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from core.clock import set_clock
from tests.pages.test_pages import browser, text_of

CHAT = "openai/gpt-4o-mini"


@pytest.fixture(autouse=True)
def _system_clock():
    yield
    set_clock(None)


def test_the_limits_page_is_for_admins_only(alice, admin):
    assert browser(alice).get("/admin/limits").status_code in (302, 403)
    page = text_of(browser(admin).get("/admin/limits"))
    assert "Role defaults" in page and "alice@example.com" in page


def test_an_admin_sets_a_roles_defaults_on_the_limits_page(admin, alice):
    client = browser(admin)
    response = client.post(
        "/admin/limits/roles/user",
        {"role-user-models_mode": "only", "role-user-allowed_models": "openai/*\n*:free",
         "role-user-budget_usd": "2.50", "role-user-budget_period": "week"},
        follow=True,
    )  # fmt: skip
    assert "The user role&#x27;s limits were saved." in text_of(response)
    limits = alice.client.call("GET", "/api/users/me/limits").json()
    assert limits["allowed_models"] == ["openai/*", "*:free"]
    assert limits["budget_usd"] == 2.5 and limits["budget_period"] == "week"
    page = text_of(client.get("/admin/limits"))
    assert "openai/*\n*:free</textarea>" in page  # the form shows what is saved
    audit = admin.client.call("GET", "/api/admin/audit?action=limits.role_changed").json()
    assert audit["items"][0]["detail"]["new"]["budget_usd"] == "2.5"


def test_a_bad_pattern_is_shown_next_to_the_field_and_what_was_typed_stays(admin):
    response = browser(admin).post(
        "/admin/limits/roles/user",
        {"role-user-models_mode": "only", "role-user-allowed_models": "openai/gpt 4o",
         "role-user-budget_usd": "", "role-user-budget_period": "month"},
    )  # fmt: skip
    assert response.status_code == 400
    page = text_of(response)
    assert "is not a model pattern" in page and "openai/gpt 4o</textarea>" in page
    assert (
        admin.client.call("GET", "/api/admin/limits").json()["roles"]["user"]["allowed_models"]
        is None
    )


def test_an_admin_overrides_one_users_limits_on_the_limits_page(admin, alice, stub):
    client = browser(admin)
    prefix = f"user-{alice.id}"
    client.post(
        f"/admin/limits/users/{alice.id}",
        {f"{prefix}-models_mode": "inherit", f"{prefix}-allowed_models": "",
         f"{prefix}-budget_usd": "0", f"{prefix}-budget_period": "day"},
    )  # fmt: skip
    mine = alice.client.call("GET", "/api/users/me/limits").json()
    assert mine["budget_usd"] == 0 and mine["budget_period"] == "day"
    refused = text_of(browser(alice).post("/generate/text", {"model": CHAT, "prompt": "hi"}))
    assert "more than the $0.0000 left of your $0.00 daily budget" in refused
    assert "Traceback" not in refused
    assert stub.requests("/api/v1/chat/completions") == []


def test_the_users_list_shows_spend_and_budget(admin, alice, stub):
    admin.client.call("PUT", f"/api/users/{alice.id}/limits", {"budget_usd": "3"})
    alice.client.call("POST", "/api/generate/text", {"model": CHAT, "prompt": "hi"})
    page = text_of(browser(admin).get("/admin/users?q=alice"))
    assert "Spend this period" in page and "$3.00</span> / month" in page
    spent = page.split('data-testid="spend">')[1].split("</td>")[0]
    assert "$0.00<" not in spent and "this month" in spent  # a small but real cost


def test_the_dashboard_and_generate_pages_show_spend_remaining_and_the_reset(admin, alice, stub):
    set_clock(lambda: datetime(2026, 11, 18, 9, 0, tzinfo=UTC))
    admin.client.call(
        "PUT", f"/api/users/{alice.id}/limits", {"budget_usd": "4", "budget_period": "month"}
    )
    client = browser(alice)
    for path in ("/", "/generate/text", "/generate/image", "/generate/video", "/chat"):
        page = text_of(client.get(path))
        assert 'data-testid="spend"' in page, path
        assert (
            '$4.00</span> left of <span class="money">$4.00</span>' in page
            and "Resets 1 Dec 2026, 00:00 UTC." in page
        ), path
    admin.client.call("PUT", f"/api/users/{alice.id}/limits", {"budget_usd": None})
    page = text_of(client.get("/"))
    assert "no budget applies to you" in page and 'svg class="track"' not in page


def spend_bar_sent_out_of_band(page: str) -> str:
    """The spend card an htmx answer carries for htmx to swap in place of the page's."""
    match = re.search(r'<section id="spend" hx-swap-oob="true".*?</section>', page, re.S)
    assert match, "no out-of-band spend bar in the htmx answer"
    return match.group(0)


NOTHING_SPENT = "$0.00</span> spent"


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("/generate/text", {"model": CHAT, "prompt": "hello"}),
        ("/generate/image", {"model": "google/gemini-2.5-flash-image", "prompt": "a cat"}),
    ],
)
def test_an_htmx_generation_updates_the_spend_bar_without_a_reload(admin, alice, stub, path, form):
    admin.client.call("PUT", f"/api/users/{alice.id}/limits", {"budget_usd": "4"})
    client = browser(alice)
    assert NOTHING_SPENT in text_of(client.get(path))
    bar = spend_bar_sent_out_of_band(
        text_of(client.post(path, form, headers={"HX-Request": "true"}))
    )
    assert NOTHING_SPENT not in bar and 'left of <span class="money">$4.00</span>' in bar
    assert text_of(client.get(path)).count('<section id="spend"') == 1  # the page: one, in place


def test_the_chat_sidebar_refresh_after_an_answer_updates_the_spend_bar(admin, alice, stub):
    admin.client.call("PUT", f"/api/users/{alice.id}/limits", {"budget_usd": "4"})
    client = browser(alice)
    sent = client.post("/chat/send", {"model": CHAT, "content": "first question"})
    page = text_of(client.get(sent["Location"], headers={"HX-Request": "true"}))
    assert NOTHING_SPENT not in spend_bar_sent_out_of_band(page)
