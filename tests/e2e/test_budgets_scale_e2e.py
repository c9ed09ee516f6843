"""Budgets and limits on three worker processes (PostgreSQL + Redis, WEB_CONCURRENCY=3;
decision 49): concurrent calls spread over every worker admit no more than one budget
affords, and a limits change made through one worker holds on the next request to any.

The cluster is the scale tests' (tests/e2e/test_scale_e2e.py), started for this module.
"""

from __future__ import annotations

import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, bearer
from tests.e2e.test_scale_e2e import (  # noqa: F401 - the scale tests' fixtures
    WORKERS,
    Fresh,
    cluster,
    log_in,
    redis_prefix,
    register,
    served_by,
    stub,
    tag,
)
from tests.openrouter_stub import StubServer
from tests.servers import GatewayServer

pytestmark = pytest.mark.postgresql_only

CHAT = "openai/gpt-4o-mini"
HI = [{"role": "user", "content": "hi there"}]
CALLS = 40
MAX_TOKENS = 20_000  # a bound the refusal's four decimals state to 0.5 %
_BOUND = re.compile(r"could cost up to \$([0-9.]+)")


def chat(fresh: Fresh, headers: dict[str, str], request_tag: str = "") -> httpx.Response:
    body = {"model": CHAT, "messages": HI, "max_tokens": MAX_TOKENS}
    return fresh.send("POST", "/api/ai/chat", request_tag, json=body, headers=headers)


def admin_and_user(fresh: Fresh, prefix: str) -> tuple[dict[str, str], str, dict[str, str]]:
    """The admin's headers, and a new user's id and headers."""
    admin = bearer(log_in(fresh, ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"])
    email, user_id = register(fresh, prefix)
    return admin, user_id, bearer(log_in(fresh, email)["access_token"])


def upstream_chats(server: StubServer) -> int:
    return len([r for r in server.requests("/api/v1/chat/completions") if r["method"] == "POST"])


def test_forty_concurrent_calls_over_three_workers_never_exceed_one_budget(
    cluster: GatewayServer,  # noqa: F811
    stub: StubServer,  # noqa: F811
) -> None:
    with Fresh(cluster) as fresh:
        admin, user_id, user = admin_and_user(fresh, "budgeted")

        def set_budget(amount: str) -> None:
            body = {"budget_usd": amount, "budget_period": "month"}
            put = fresh.send("PUT", f"/api/users/{user_id}/limits", json=body, headers=admin)
            assert put.status_code == 200, put.text

        set_budget("0")  # the refusal says what one call reserves
        refused = chat(fresh, user)
        assert refused.status_code == 429, refused.text
        found = _BOUND.search(refused.json()["error"]["message"])
        assert found, refused.text
        bound = float(found.group(1))
        budget = round(bound * 5.5, 6)  # affords five reservations at once
        assert bound >= 0.001, refused.text
        set_budget(f"{budget:.6f}")

        stub.configure(latency=1.0)  # all forty are in flight together
        before = upstream_chats(stub)
        tags = [tag("budget") for _ in range(CALLS)]
        try:
            with ThreadPoolExecutor(max_workers=CALLS) as pool:
                statuses = list(pool.map(lambda t: chat(fresh, user, t).status_code, tags))
        finally:
            stub.configure(latency=0.0)
        answered = statuses.count(200)
        assert Counter(statuses).keys() <= {200, 429}, statuses
        assert 1 <= answered <= 5 and statuses.count(429) >= CALLS - 5
        assert upstream_chats(stub) - before == answered  # refused: no upstream request
        mine = fresh.send("GET", "/api/users/me/limits", headers=user).json()
    assert mine["reserved_usd"] == 0
    assert 0 < mine["spent_usd"] <= budget
    workers = served_by(cluster)
    assert len({workers[t] for t in tags}) == WORKERS


def test_a_model_disallowed_through_one_worker_is_refused_on_the_next_request_to_any(
    cluster: GatewayServer,  # noqa: F811
) -> None:
    with Fresh(cluster) as fresh:
        admin, user_id, user = admin_and_user(fresh, "restricted")
        tags: list[str] = []
        for _ in range(10):
            body = {"allowed_models": ["anthropic/*"]}
            put = fresh.send("PUT", f"/api/users/{user_id}/limits", json=body, headers=admin)
            assert put.status_code == 200, put.text
            for _ in range(WORKERS):
                tags.append(tag("disallowed"))
                refused = chat(fresh, user, tags[-1])
                assert refused.status_code == 403, refused.text
                assert refused.json()["error"]["code"] == "model_not_allowed"
            body = {"allowed_models": None}
            put = fresh.send("PUT", f"/api/users/{user_id}/limits", json=body, headers=admin)
            assert put.status_code == 200, put.text
            tags.append(tag("allowed"))
            assert chat(fresh, user, tags[-1]).status_code == 200
    workers = served_by(cluster)
    assert len({workers[t] for t in tags}) == WORKERS
