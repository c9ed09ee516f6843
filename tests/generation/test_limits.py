"""Spend and access control (issue 10): model allow-lists and budgets, on every route that
reaches OpenRouter, against the stand-in and a real database."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import pytest

from accounts.identity import get_directory
from core.clock import set_clock
from core.db import DatabaseError
from generation import ledger, limits, services, spend
from tests.generation.test_generation_api import submit_video, usage_rows, wait_for_video

CHAT = "openai/gpt-4o-mini"
HI = [{"role": "user", "content": "hi there"}]


@pytest.fixture(autouse=True)
def _system_clock():
    yield
    set_clock(None)


def put_limits(admin, persona, **body):
    response = admin.client.call("PUT", f"/api/users/{persona.id}/limits", body)
    assert response.status_code == 200, response.content
    return response.json()


def put_role(admin, role, **body):
    response = admin.client.call("PUT", f"/api/admin/limits/roles/{role}", body)
    assert response.status_code == 200, response.content
    return response.json()


def user_of(persona):
    return get_directory().user(UUID(persona.id))


def upstream_calls(stub, prefix="/api/v1/"):
    """Requests that could cost money: generations, not catalogue listings or stats."""
    return [r for r in stub.requests(prefix) if r["method"] == "POST"]


def chat_bound(max_tokens: int) -> float:
    """What the gateway reserves for a chat call of HI."""
    from generation.catalog import find_model
    from generation.pricing import chat_demand, upper_bound

    async def bound() -> float:
        model = await find_model(CHAT)
        assert model is not None
        return upper_bound(model, chat_demand(HI, max_tokens=max_tokens), default_cap=1)

    return asyncio.run(bound())


def freeze(moment: datetime) -> None:
    set_clock(lambda: moment)


# -- the limits API ----------------------------------------------------------------------


def test_roles_have_no_limits_until_an_admin_sets_them(admin, alice):
    response = admin.client.call("GET", "/api/admin/limits")
    assert response.status_code == 200
    unlimited = {"allowed_models": None, "budget_usd": None, "budget_period": "month"}
    assert response.json() == {"roles": {"user": unlimited, "admin": unlimited}}
    assert alice.client.call("GET", "/api/admin/limits").status_code == 403
    assert alice.client.call("PUT", "/api/admin/limits/roles/user", {}).status_code == 403
    assert alice.client.call("GET", f"/api/users/{admin.id}/limits").status_code == 403
    assert alice.client.call("PUT", f"/api/users/{alice.id}/limits", {}).status_code == 403


def test_a_role_change_keeps_unnamed_fields_and_is_audited_with_old_and_new_values(admin):
    put_role(admin, "user", allowed_models=["OpenAI/*", " *:free "], budget_usd="5")
    changed = put_role(admin, "user", budget_period="week")
    assert changed == {
        "allowed_models": ["openai/*", "*:free"], "budget_usd": 5.0, "budget_period": "week",
    }  # fmt: skip
    entries = admin.client.call("GET", "/api/admin/audit?action=limits.role_changed").json()
    latest, first = entries["items"][0], entries["items"][1]
    assert latest["target"]["id"] == "user"
    assert latest["detail"]["old"]["budget_period"] == "month"
    assert latest["detail"]["new"]["budget_period"] == "week"
    assert latest["detail"]["new"]["budget_usd"] == "5"
    assert first["detail"]["old"] == {
        "allowed_models": None, "budget_usd": None, "budget_period": None,
    }  # fmt: skip
    assert first["detail"]["new"]["allowed_models"] == ["openai/*", "*:free"]


@pytest.mark.parametrize(
    "body",
    [
        {"allowed_models": ["openai/gpt 4"]},
        {"allowed_models": "openai/*"},
        {"budget_usd": -1},
        {"budget_usd": "a lot"},
        {"budget_period": "year"},
        {"unknown": 1},
    ],
)
def test_bad_limits_are_refused_and_change_nothing(admin, alice, body):
    response = admin.client.call("PUT", f"/api/users/{alice.id}/limits", body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert admin.client.call("GET", f"/api/users/{alice.id}/limits").json()["override"] is None


def test_unknown_roles_and_users_are_404(admin):
    assert admin.client.call("PUT", "/api/admin/limits/roles/owner", {}).status_code == 404
    missing = "00000000-0000-4000-8000-000000000000"
    assert admin.client.call("GET", f"/api/users/{missing}/limits").status_code == 404


def test_a_user_override_beats_the_role_default_field_by_field(admin, alice, stub):
    put_role(admin, "user", allowed_models=["openai/*"], budget_usd="2", budget_period="day")
    report = put_limits(admin, alice, allowed_models=["anthropic/*"])
    assert report["allowed_models"] == ["anthropic/*"]
    assert report["budget_usd"] == 2.0 and report["budget_period"] == "day"  # inherited
    assert report["override"] == {
        "allowed_models": ["anthropic/*"], "budget_usd": None, "budget_period": None,
    }  # fmt: skip
    ids = {m["id"] for m in alice.client.call("GET", "/api/ai/models?kind=text").json()["items"]}
    assert ids == {"anthropic/claude-3.5-haiku"}
    refused = alice.client.call("POST", "/api/generate/text", {"model": CHAT, "prompt": "hi"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "model_not_allowed"
    # null inherits again
    report = put_limits(admin, alice, allowed_models=None)
    assert report["allowed_models"] == ["openai/*"] and report["override"] is None
    entries = admin.client.call("GET", "/api/admin/audit?action=limits.user_changed").json()
    assert entries["items"][0]["target"]["id"] == alice.id
    assert entries["items"][0]["detail"]["old"]["allowed_models"] == ["anthropic/*"]
    assert entries["items"][0]["detail"]["new"]["allowed_models"] is None


def test_an_empty_allow_list_allows_no_model(admin, alice, stub):
    put_limits(admin, alice, allowed_models=[])
    assert alice.client.call("GET", "/api/ai/models").json()["items"] == []
    assert alice.client.call("GET", "/v1/models").json()["data"] == []


def test_me_shows_spend_reserved_remaining_and_the_reset(admin, alice, stub):
    freeze(datetime(2026, 11, 18, 15, 30, tzinfo=UTC))
    mine = alice.client.call("GET", "/api/users/me/limits").json()
    assert mine["remaining_usd"] is None and mine["spent_usd"] == 0
    assert mine["resets_at"] == "2026-12-01T00:00:00Z"
    put_limits(admin, alice, budget_usd="1.5", budget_period="week")
    answer = alice.client.call("POST", "/api/generate/text", {"model": CHAT, "prompt": "hi"})
    assert answer.status_code == 200, answer.content
    cost = answer.json()["usage"]["cost"]
    mine = alice.client.call("GET", "/api/users/me/limits").json()
    assert mine["spent_usd"] == pytest.approx(cost) and mine["reserved_usd"] == 0
    assert mine["remaining_usd"] == pytest.approx(1.5 - cost)
    assert mine["resets_at"] == "2026-11-23T00:00:00Z"  # the next Monday


# -- models outside the allow-list ----------------------------------------------------------


def test_a_disallowed_model_is_missing_from_every_list(admin, alice, stub):
    put_limits(admin, alice, allowed_models=["openai/gpt-4o-mini", "*embed*", "google/veo-*"])
    native = {m["id"] for m in alice.client.call("GET", "/api/ai/models").json()["items"]}
    assert native == {"openai/gpt-4o-mini", "google/veo-3.1-fast"}
    v1 = {m["id"] for m in alice.client.call("GET", "/v1/models").json()["data"]}
    assert v1 == {
        "openai/gpt-4o-mini",
        "openai/text-embedding-3-small",
        "mistralai/mistral-embed-2312",
    }
    assert alice.client.call("GET", "/v1/models/anthropic/claude-3.5-haiku").status_code == 404
    from tests.pages.test_pages import browser, text_of

    page = browser(alice)
    assert "claude" not in text_of(page.get("/generate/text"))
    assert "openai/gpt-4o-mini" in text_of(page.get("/generate/text"))
    assert "flux" not in text_of(page.get("/generate/image"))
    assert "sora" not in text_of(page.get("/generate/video"))
    assert "claude" not in text_of(page.get("/chat"))


def test_v1_refusals_come_in_openais_shape(admin, alice, stub):
    put_limits(admin, alice, allowed_models=["anthropic/*"])
    response = alice.client.call("POST", "/v1/chat/completions", {"model": CHAT, "messages": HI})
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "permission_error"
    assert response.json()["error"]["code"] == "model_not_allowed"
    fallback = alice.client.call(
        "POST", "/v1/chat/completions",
        {"model": "anthropic/claude-3.5-haiku", "models": [CHAT], "messages": HI},
    )  # fmt: skip
    assert fallback.status_code == 403, "a fallback model may not bypass the allow-list"
    put_limits(admin, alice, allowed_models=None, budget_usd="0")
    response = alice.client.call("POST", "/v1/chat/completions", {"model": CHAT, "messages": HI})
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "budget_exceeded"
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert response["x-should-retry"] == "false" and int(response["Retry-After"]) >= 1
    assert upstream_calls(stub) == []


# -- the one choke point --------------------------------------------------------------------

# Every route that can start a billable upstream call, with a body that would start one.
# Reading routes (catalogue, job polls and downloads) start none: they only list models or
# follow jobs already admitted. test_every_post_route_is_classified keeps this list whole.
GENERATING = {
    "api-chat": {"model": CHAT, "messages": HI},
    "api-generate-text": {"model": CHAT, "prompt": "hi"},
    "api-generate-summarize": {"model": CHAT, "text": "A long text to summarize."},
    "api-generate-shorten": {"model": CHAT, "text": "A long text to shorten."},
    "api-generate-image": {"model": "google/gemini-2.5-flash-image", "prompt": "a cat"},
    "api-generate-video": {"model": "google/veo-3.1-fast", "prompt": "a beach", "duration": 4},
    "api-generate-video-from-image": {
        "model": "google/veo-3.1-fast",
        "prompt": "a beach",
        "duration": 4,
        "image_url": "https://example.com/frame.png",
    },
    "openai-chat-completions": {"model": CHAT, "messages": HI},
    "openai-embeddings": {"model": "openai/text-embedding-3-small", "input": "hi"},
    "openai-images-generations": {"model": "google/gemini-2.5-flash-image", "prompt": "a cat"},
    # pages (form posts)
    "generate-text": {"model": CHAT, "prompt": "hi"},
    "generate-image": {"model": "google/gemini-2.5-flash-image", "prompt": "a cat"},
    "generate-video": {"model": "google/veo-3.1-fast", "prompt": "a beach", "duration": "4"},
    "chat-send-new": {"model": CHAT, "content": "hi"},
    "chat-stream-new": {"model": CHAT, "content": "hi"},
    "chat-send": {"content": "hi again"},
    "chat-stream": {"content": "hi again"},
}
# POST routes that never reach OpenRouter.
NOT_GENERATING = {
    "api-register", "api-login", "api-refresh", "api-logout", "api-keys",
    "api-admin-tokens-purge", "api-admin-backup", "register", "login", "logout", "profile",
    "revoke-key", "admin-user-role", "admin-user-active", "admin-user-delete", "admin-tokens",
    "chat-delete", "admin-limits", "admin-limits-role", "admin-limits-user", "oidc-callback",
    "oidc-start", "healthz", "readyz", "openai-not-found",
}  # fmt: skip


def _route_names():
    from django.urls import URLPattern, URLResolver, get_resolver

    def walk(patterns):
        for entry in patterns:
            if isinstance(entry, URLResolver):
                yield from walk(entry.url_patterns)
            elif isinstance(entry, URLPattern) and entry.name:
                yield entry.name, entry.callback

    return dict(walk(get_resolver().url_patterns))


def _accepts_post(callback) -> bool:
    view_class = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
    if view_class is not None:
        return hasattr(view_class, "post")
    source = callback
    while hasattr(source, "__wrapped__"):
        source = source.__wrapped__
    import inspect

    try:
        text = inspect.getsource(callback)
    except (OSError, TypeError):
        return True
    return "require_GET" not in text or "POST" in text


def test_every_post_route_is_classified():
    """A new route that can POST must be added to GENERATING (and so be tested below) or
    to NOT_GENERATING."""
    routes = _route_names()
    posting = {name for name, callback in routes.items() if _accepts_post(callback)}
    unclassified = posting - set(GENERATING) - NOT_GENERATING
    assert not unclassified, f"classify these routes: {sorted(unclassified)}"
    assert set(GENERATING) <= set(routes)


def _post(persona, name, body, conversation_id=None):
    from django.urls import reverse

    from tests.pages.test_pages import browser

    args = [conversation_id] if name in ("chat-send", "chat-stream") else []
    path = reverse(name, args=args)
    if name.startswith(("api-", "openai-")):
        return persona.client.call("POST", path, body)
    return browser(persona).post(path, body, follow=True)


def _refusal_of(response) -> str:
    if response["Content-Type"].startswith("application/json"):
        error = response.json()["error"]
        return error["code"] if "type" in error else f"{error['code']}: {error['message']}"
    return response.content.decode()


@pytest.mark.parametrize("reason", ["model", "budget"])
def test_every_generating_route_is_refused_before_any_upstream_call(admin, alice, stub, reason):
    """The choke point: every route of GENERATING refuses a disallowed model (403
    model_not_allowed) and an exhausted budget (429 budget_exceeded) without a request to
    the stand-in; pages show the error's sentence."""
    opened = alice.client.call("POST", "/api/ai/chat", {"model": CHAT, "messages": HI})
    assert opened.status_code == 200
    conversation = services_conversation(alice)
    stub.reset()
    if reason == "model":
        put_role(admin, "user", allowed_models=["nothing/*"])
    else:
        put_role(admin, "user", budget_usd="0")
    for name, body in GENERATING.items():
        response = _post(alice, name, body, conversation)
        refusal = _refusal_of(response)
        if name.startswith(("api-", "openai-")):
            refusal = refusal.partition(":")[0]
            expected = {"model": (403, "model_not_allowed"), "budget": (429, "budget_exceeded")}
            assert (response.status_code, refusal) == expected[reason], (name, refusal)
        elif reason == "budget":
            assert "budget" in refusal, (name, refusal[:2000])
        else:  # a page: the picker lacks the model, or the turn is refused with a sentence
            assert any(
                sentence in refusal
                for sentence in ("You may not use the model", "Select a valid choice",
                                 "Some fields are invalid")
            ), name  # fmt: skip
    assert upstream_calls(stub) == [], [r["path"] for r in upstream_calls(stub)]


def services_conversation(persona):
    """A conversation of the persona's made through the chat page."""
    from tests.pages.test_pages import browser

    response = browser(persona).post("/chat/send", {"model": CHAT, "content": "first"})
    assert response.status_code == 302, response.content
    return UUID(response["Location"].rstrip("/").split("/")[-1])


# -- budgets ------------------------------------------------------------------------------


def test_a_refused_call_says_why_and_when_the_budget_resets(admin, alice, stub):
    freeze(datetime(2026, 11, 30, 22, 0, tzinfo=UTC))
    put_limits(admin, alice, budget_usd="0.00001", budget_period="day")
    response = alice.client.call("POST", "/api/ai/chat", {"model": CHAT, "messages": HI})
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "budget_exceeded"
    assert "resets at 2026-12-01 00:00 UTC" in error["message"]
    assert response["x-should-retry"] == "false"
    assert response["Retry-After"] == str(2 * 3600)
    assert upstream_calls(stub) == []


@pytest.mark.duckdb_only  # the journal's window (decision 52); PostgreSQL commits at once
def test_a_call_answered_but_not_yet_committed_does_not_hold_its_bound_against_the_next(
    admin, alice, stub, database
):
    per_call = chat_bound(40)
    put_limits(admin, alice, budget_usd=str(round(per_call * 1.5, 6)), budget_period="month")
    body = {"model": CHAT, "messages": HI, "max_tokens": 40}
    assert alice.client.call("GET", "/api/users/me/limits").status_code == 200  # loaded
    gate = threading.Event()
    database.write_soon(lambda tx: gate.wait(30))  # answers are journaled, not committed
    threading.Timer(0.5, gate.set).start()
    try:
        first = alice.client.call("POST", "/api/ai/chat", body)
        assert first.status_code == 200, first.content
        # Its bound is still held until the commit: the next call waits for it, and fits.
        second = alice.client.call("POST", "/api/ai/chat", body)
        assert second.status_code == 200, second.content
    finally:
        gate.set()


def test_forty_concurrent_calls_never_exceed_the_budget(admin, alice, stub, database):
    stub.configure(token_delay=0.005)
    per_call = chat_bound(40)
    budget = Decimal(str(round(per_call * 5.5, 6)))
    put_limits(admin, alice, budget_usd=str(budget), budget_period="month")
    user = user_of(alice)

    async def one() -> str:
        try:
            await services.complete_chat(user, CHAT, HI, options={"max_tokens": 40})
        except spend.BudgetExceeded:
            return "refused"
        return "answered"

    async def forty() -> list[str]:
        return await asyncio.gather(*(one() for _ in range(40)))

    outcomes = asyncio.run(forty())
    answered = outcomes.count("answered")
    assert answered >= 1 and "refused" in outcomes
    booked = sum(row[4] or 0 for row in usage_rows(database) if row[0] == "chat")
    cheapest = min(row[4] for row in usage_rows(database) if row[0] == "chat")
    assert booked <= float(budget)
    assert answered <= float(budget) // cheapest
    assert len(upstream_calls(stub)) == answered
    mine = alice.client.call("GET", "/api/users/me/limits").json()
    assert mine["spent_usd"] == pytest.approx(booked) and mine["reserved_usd"] == 0


def test_calls_under_a_budget_are_capped_at_the_default_completion_tokens(
    admin, alice, stub, settings
):
    settings.BUDGET_DEFAULT_MAX_TOKENS = 64
    alice.client.call("POST", "/api/ai/chat", {"model": CHAT, "messages": HI})
    assert "max_tokens" not in stub.requests("/api/v1/chat/completions")[-1]["json"]
    put_limits(admin, alice, budget_usd="5")
    alice.client.call("POST", "/api/ai/chat", {"model": CHAT, "messages": HI})
    assert stub.requests("/api/v1/chat/completions")[-1]["json"]["max_tokens"] == 64
    alice.client.call("POST", "/api/ai/chat", {"model": CHAT, "messages": HI, "max_tokens": 9})
    assert stub.requests("/api/v1/chat/completions")[-1]["json"]["max_tokens"] == 9


def test_a_video_dearer_than_what_is_left_is_refused_without_an_upstream_request(
    admin, alice, stub
):
    # veo-3.1-fast: 4 s at up to $0.30 a second may cost $1.20
    put_limits(admin, alice, budget_usd="1.00")
    response = submit_video(alice)
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "budget_exceeded"
    assert "$1.2000" in response.json()["error"]["message"]
    assert upstream_calls(stub, "/api/v1/videos") == []
    cheaper = submit_video(alice, resolution="720p", generate_audio=False)  # $0.08 a second
    assert cheaper.status_code == 202, cheaper.content
    assert len(upstream_calls(stub, "/api/v1/videos")) == 1


def test_a_video_holds_its_reservation_until_the_job_ends_then_books_its_cost(
    admin, alice, stub, monkeypatch, database
):
    from generation import services as generation_services

    monkeypatch.setattr(generation_services, "POLL_INTERVAL", timedelta(seconds=0.2))
    put_limits(admin, alice, budget_usd="10")
    job = submit_video(alice, resolution="720p", generate_audio=False).json()
    held = alice.client.call("GET", "/api/users/me/limits").json()
    assert held["reserved_usd"] == pytest.approx(0.32)  # 4 s x $0.08
    done = wait_for_video(alice, job["id"])
    assert done["status"] == "completed"
    after = alice.client.call("GET", "/api/users/me/limits").json()
    assert after["reserved_usd"] == 0
    cost = next(row[4] for row in usage_rows(database) if row[0] == "video")
    assert 0 < cost <= 0.32 and after["spent_usd"] == pytest.approx(cost)


def test_a_failed_video_releases_its_reservation(admin, alice, stub, monkeypatch):
    from generation import services as generation_services

    monkeypatch.setattr(generation_services, "POLL_INTERVAL", timedelta(seconds=0.2))
    put_limits(admin, alice, budget_usd="10")
    stub.add_fault(video_outcome="failed", error="Content policy violation", times=1)
    job = submit_video(alice).json()
    assert wait_for_video(alice, job["id"])["status"] == "failed"
    after = alice.client.call("GET", "/api/users/me/limits").json()
    assert after["reserved_usd"] == 0 and after["spent_usd"] == 0


def test_an_abandoned_stream_is_booked_at_its_real_cost(admin, alice, stub, database):
    stub.configure(token_delay=0.02)
    put_limits(admin, alice, budget_usd="5")
    user = user_of(alice)
    long_question = [{"role": "user", "content": "tell me a long story " * 20}]

    async def abandon() -> None:
        pieces = services.stream_chat(user, CHAT, long_question)
        await anext(pieces)
        await anext(pieces)
        await pieces.aclose()  # the client hangs up
        await ledger.wait_for_late_costs()

    asyncio.run(abandon())
    rows = [row for row in usage_rows(database) if row[0] == "chat"]
    assert rows[0][5:7] == ("error", "cancelled")
    billed = [g for g in stub.generations() if g.abandoned]
    assert billed and rows[0][4] == pytest.approx(billed[0].cost) and rows[0][4] > 0
    mine = alice.client.call("GET", "/api/users/me/limits").json()
    assert mine["spent_usd"] == pytest.approx(rows[0][4]) and mine["reserved_usd"] == 0


def test_spend_starts_again_in_a_new_period(admin, alice, stub):
    freeze(datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
    budget = round(chat_bound(300) + 0.000001, 6)  # one call, not two
    put_limits(admin, alice, budget_usd=str(budget), budget_period="day")
    body = {"model": CHAT, "messages": HI, "max_tokens": 300}
    first = alice.client.call("POST", "/api/ai/chat", body)
    assert first.status_code == 200, first.content
    again = alice.client.call("POST", "/api/ai/chat", body)
    assert again.status_code == 429
    freeze(datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC))
    mine = alice.client.call("GET", "/api/users/me/limits").json()
    assert mine["spent_usd"] == 0 and mine["resets_at"] == "2026-12-02T00:00:00Z"
    later = alice.client.call("POST", "/api/ai/chat", body)
    assert later.status_code == 200, later.content


def test_calls_are_refused_with_503_when_limits_cannot_be_read(alice, stub, monkeypatch):
    from generation import repository

    def broken(con):
        raise DatabaseError("the database is down")

    monkeypatch.setattr(repository, "all_limits", broken)
    limits.invalidate_limits()
    response = alice.client.call("POST", "/api/ai/chat", {"model": CHAT, "messages": HI})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "limits_unavailable"
    assert upstream_calls(stub) == []


def test_a_budgets_spend_cannot_be_read_means_503(admin, alice, stub, monkeypatch, database):
    from generation import repository

    put_limits(admin, alice, budget_usd="5")
    database._extensions.pop("generation.spend", None)  # not loaded yet

    def broken(con, *args):
        raise DatabaseError("the database is down")

    monkeypatch.setattr(repository, "spent_between", broken)  # DuckDB: the counters' load
    monkeypatch.setattr(repository, "budget_in_use", broken)  # PostgreSQL: every reservation
    response = alice.client.call("POST", "/api/ai/chat", {"model": CHAT, "messages": HI})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "limits_unavailable"
    assert upstream_calls(stub) == []


def test_after_a_restart_the_spend_is_read_again_and_a_crashs_reservation_is_booked(
    admin, alice, stub, database
):
    """What a crash left pending was booked at its bound by start-up recovery; a restarted
    process reads the spend from the usage records (in-flight reservations died with the
    process, video jobs' are held by their rows)."""
    put_limits(admin, alice, budget_usd="5")
    assert (
        alice.client.call("POST", "/api/ai/chat", {"model": CHAT, "messages": HI}).status_code
        == 200
    )
    submit_video(alice, resolution="720p", generate_audio=False)
    database._extensions.pop("generation.spend", None)  # what a restart forgets
    mine = alice.client.call("GET", "/api/users/me/limits").json()
    spent = sum(row[4] or 0 for row in usage_rows(database))
    assert mine["spent_usd"] == pytest.approx(spent)
    assert mine["reserved_usd"] == pytest.approx(0.32)  # the video job still runs


def test_a_model_without_a_fixed_price_cannot_be_used_under_a_budget():
    from generation.openrouter import ModelInfo
    from generation.pricing import Demand, Unpriceable, upper_bound

    auto = ModelInfo("openrouter/auto", "Auto", None, {"prompt": "-1", "completion": "-1"},
                     ("text",), ("text",), "text")  # fmt: skip
    with pytest.raises(Unpriceable):
        upper_bound(auto, Demand(prompt_tokens=10), default_cap=10)


def test_video_bounds_take_the_dearest_fitting_sku():
    from generation.openrouter import ModelInfo
    from generation.pricing import Demand, upper_bound

    skus = {
        "duration_seconds_with_audio": "0.12", "duration_seconds_with_audio_4k": "0.30",
        "duration_seconds_without_audio": "0.10", "duration_seconds_without_audio_720p": "0.08",
    }  # fmt: skip
    veo = ModelInfo("google/veo", "Veo", None, skus, ("text",), ("video",), "video",
                    durations=(4, 6, 8))  # fmt: skip
    assert upper_bound(veo, Demand(), default_cap=1) == pytest.approx(8 * 0.30)
    assert upper_bound(veo, Demand(video_seconds=4, audio=False), default_cap=1) == pytest.approx(
        0.40
    )
    assert upper_bound(
        veo, Demand(video_seconds=4, audio=False, resolution="720p"), default_cap=1
    ) == pytest.approx(0.32)


def test_prompt_estimates_err_high():
    from generation.pricing import chat_demand

    text = "héllo wörld, 你好" * 10
    demand = chat_demand([{"role": "user", "content": text}], max_tokens=5)
    assert demand.prompt_tokens >= len(text.encode())
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 10_000}}
    with_image = chat_demand([{"role": "user", "content": [{"type": "text", "text": "x"}, image]}])
    assert with_image.input_images == 1 and with_image.prompt_tokens < 1_000


def test_periods_are_utc_calendar_days_weeks_and_months():
    now = datetime(2026, 12, 31, 13, 0)
    assert limits.period_bounds("day", now) == (datetime(2026, 12, 31), datetime(2027, 1, 1))
    assert limits.period_bounds("week", now) == (datetime(2026, 12, 28), datetime(2027, 1, 4))
    assert limits.period_bounds("month", now) == (datetime(2026, 12, 1), datetime(2027, 1, 1))


def test_deleting_a_user_deletes_their_override(admin, alice, database):
    put_limits(admin, alice, budget_usd="3")
    count = "SELECT count(*) FROM user_limits"
    assert database.read(lambda con: con.execute(count).fetchone()[0]) == 1
    assert admin.client.call("DELETE", f"/api/users/{alice.id}").status_code == 204
    assert database.read(lambda con: con.execute(count).fetchone()[0]) == 0


def test_a_crashs_reservation_is_released_on_restart_and_the_call_booked_at_its_bound(
    admin, alice, stub, database
):
    """A call in flight when the process died: its reservation lived only in that process;
    start-up books the call at the bound it reserved, which the new process reads as spent."""
    from tests.generation.test_ledger import pending_row

    put_limits(admin, alice, budget_usd="1")
    bound = chat_bound(500)

    async def reserve() -> float:
        return await spend.reserve(UUID(alice.id), await limits.limits_for(user_of(alice)), bound)

    assert asyncio.run(reserve()) == pytest.approx(bound)
    mine = alice.client.call("GET", "/api/users/me/limits").json()
    assert mine["reserved_usd"] == pytest.approx(bound)
    database.write(
        lambda tx: ledger.repo.insert_generations(tx, [pending_row(UUID(alice.id), "chat", bound)])
    )
    database._extensions.pop("generation.spend", None)  # the process dies with its counters
    assert ledger.book_interrupted_calls() == 1  # the next start-up
    mine = alice.client.call("GET", "/api/users/me/limits").json()
    assert mine["reserved_usd"] == 0
    assert mine["spent_usd"] == pytest.approx(bound)
    assert mine["remaining_usd"] == pytest.approx(1 - bound)
