"""Budgets and limits with several worker processes (decision 49): on PostgreSQL the
database keeps the books, so independent processes (here: independent database handles,
each with its own connection pool, as workers have) cannot together admit more than a
budget affords; a limits change made by one process is applied by the others."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import pytest
from django.conf import settings

from core import invalidation
from core.db import Database, Tx
from generation import repository as repo
from generation import spend
from generation.limits import Limits
from generation.repository import UsageRecord

ONE_DOLLAR_A_MONTH = Limits(budget_usd=Decimal("1.00"), budget_period="month")
NOON = datetime(2026, 11, 16, 12, 0)


@pytest.fixture
def other_worker(database: Database) -> Iterator[Database]:
    """A second handle on the same database, with a pool of its own: another worker."""
    from core.db.postgres import PostgresDatabase

    other = PostgresDatabase(settings.DATABASE_URL, pool_size=8).open()
    yield other
    other.close()


def reserve(db: Database, user_id: UUID, amount: float) -> bool:
    """One reservation on db, in a thread and event loop of its own (as a worker would)."""
    try:
        asyncio.run(spend.reserve_in(db, user_id, ONE_DOLLAR_A_MONTH, amount, uuid4(), NOON))
    except spend.BudgetExceeded:
        return False
    return True


def in_use(db: Database, user_id: UUID, now: datetime = NOON) -> tuple[float, float]:
    start, end = datetime(2026, 11, 1), datetime(2026, 12, 1)
    return db.read(repo.budget_in_use, user_id, start, end, now)


@pytest.mark.postgresql_only
def test_two_workers_reserving_at_once_admit_no_more_than_the_budget_affords(
    database: Database, other_worker: Database
) -> None:
    """40 reservations of $0.18 against $1.00, alternating between the two handles and all
    in flight together: exactly five fit (0.90), and what is held never exceeds $1."""
    from concurrent.futures import ThreadPoolExecutor

    user_id = uuid4()
    handles = [database, other_worker]
    with ThreadPoolExecutor(max_workers=16) as pool:
        admitted = list(pool.map(lambda n: reserve(handles[n % 2], user_id, 0.18), range(40)))
    assert admitted.count(True) == 5
    spent, held = in_use(other_worker, user_id)
    assert spent == 0 and held == pytest.approx(0.90)


@pytest.mark.postgresql_only
def test_booking_a_cost_ends_its_reservation_in_the_same_commit(
    database: Database, other_worker: Database
) -> None:
    """Worker A holds $0.50 for a call; worker B settles it at $0.30 (usage row and the end
    of the hold in one transaction); A then sees $0.30 spent and nothing held."""
    user_id, call_id = uuid4(), uuid4()
    held = asyncio.run(spend.reserve_in(database, user_id, ONE_DOLLAR_A_MONTH, 0.5, call_id, NOON))
    assert held == 0.5 and in_use(other_worker, user_id) == (0.0, pytest.approx(0.5))
    assert not reserve(other_worker, user_id, 0.6)  # 0.5 held + 0.6 > 1

    def settle(tx: Tx) -> None:
        usage = UsageRecord(NOON, user_id, "chat", "openai/gpt-4o-mini", 10, 20, 0.3, 5.0, "ok")
        repo.insert_usage(tx, [usage])
        spend.note_booked(tx, user_id, released=0.5, cost=0.3, at=NOON, reservation=call_id)

    other_worker.write(settle)
    assert in_use(database, user_id) == (pytest.approx(0.3), 0.0)
    assert reserve(database, user_id, 0.6) and not reserve(other_worker, user_id, 0.2)


@pytest.mark.postgresql_only
def test_a_dead_workers_reservation_stops_holding_when_it_expires(
    database: Database, other_worker: Database
) -> None:
    user_id = uuid4()
    assert reserve(other_worker, user_id, 0.9)
    other_worker.close()  # the worker dies with its call in flight
    assert not reserve(database, user_id, 0.5)
    later = NOON + timedelta(seconds=settings.BUDGET_RESERVATION_SECONDS + 1)
    assert in_use(database, user_id, later) == (0.0, 0.0)
    assert asyncio.run(spend.reserve_in(database, user_id, ONE_DOLLAR_A_MONTH, 0.5, uuid4(), later))


def test_a_limits_change_published_by_another_worker_is_applied_here(
    admin, alice, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """This process caches the rules; another commits a change (written here behind the
    cache's back) and publishes it; applying the publication drops the cache."""
    from accounts.identity import get_directory
    from generation import limits
    from generation.limits import ModelNotAllowed, check_model

    user = get_directory().user(UUID(alice.id))
    assert user is not None
    asyncio.run(check_model(user, "openai/gpt-4o-mini"))  # the rules are cached now
    row = repo.LimitsRow(alice.id, ("anthropic/*",), None, None, NOON)
    database.write(repo.put_user_limits, row)
    asyncio.run(check_model(user, "openai/gpt-4o-mini"))  # stale until told
    invalidation._subscribers[limits.TOPIC].on_change(alice.id)  # what follow() calls
    with pytest.raises(ModelNotAllowed):
        asyncio.run(check_model(user, "openai/gpt-4o-mini"))


def test_every_limits_change_is_published_to_the_other_workers(
    admin, alice, monkeypatch: pytest.MonkeyPatch
) -> None:
    from generation import limits

    published: list[tuple[str, str, bool]] = []
    monkeypatch.setattr(
        invalidation, "publish", lambda topic, key, here=True: published.append((topic, key, here))
    )
    body = {"allowed_models": ["openai/*"]}
    assert admin.client.call("PUT", "/api/admin/limits/roles/user", body).status_code == 200
    assert admin.client.call("PUT", f"/api/users/{alice.id}/limits", body).status_code == 200
    assert admin.client.call("DELETE", f"/api/users/{alice.id}").status_code == 204
    mine = [entry for entry in published if entry[0] == limits.TOPIC]
    assert mine == [
        (limits.TOPIC, "user", False),  # the role's defaults
        (limits.TOPIC, alice.id, False),  # her override
        (limits.TOPIC, alice.id, False),  # her deletion took the override along
    ]
