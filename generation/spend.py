"""Budgets that hold under concurrency: reserve before the call, settle after (decisions 41, 49).

Everything goes through `reserve()`, `note_booked()`, `release()` and `status()`, which keep
the books one of two ways:

- DuckDB (one process, enforced at start-up): per user with a budget, the process keeps
  what was spent in the current period and what calls in flight have reserved. Reserving
  checks `spent + reserved + bound <= budget` and adds the bound in one step under a lock,
  with no await in between, so any number of concurrent calls admit at most what the
  budget affords. `spent` is read from the usage records once per user and period; after
  that every commit that books a cost or releases a reservation updates it through an
  after-commit callback (`note_booked`). The load runs as a write under the publication
  lock, so each commit is counted exactly once: either its row is in the sum or its
  callback runs after the install.
- PostgreSQL (any number of worker processes and machines): the database keeps the books.
  A reservation is a `budget_reservations` row, inserted by a transaction that first takes
  the user's advisory lock and reads spent + held in one statement (one snapshot); the
  transaction that books a call's cost deletes its reservation, so money moves from held to
  spent in one commit. A worker that dies leaves rows that stop counting at `expires_at`
  (or are deleted by the next lone start-up). Only users with a budget pay for this.
"""

from __future__ import annotations

import asyncio
import math
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

from django.conf import settings

from core.clock import utcnow
from core.db import POSTGRESQL, Database, DatabaseError, Tx, get_database
from core.errors import ApiError
from generation import repository as repo
from generation.limits import Limits, LimitsUnavailable, period_bounds

EPSILON = 1e-9  # float sums of six-decimal prices


@dataclass
class _Account:
    period: str
    start: datetime
    end: datetime
    spent: float
    reserved: float


@dataclass(frozen=True)
class SpendStatus:
    """A user's spend in the current period, as the API and pages show it."""

    spent_usd: float
    reserved_usd: float
    remaining_usd: float | None
    budget_usd: Decimal | None
    budget_period: str
    period_start: datetime
    resets_at: datetime

    @property
    def percent(self) -> int:
        """How much of the budget is spent or held, 0-100, for a bar."""
        if self.budget_usd is None:
            return 0
        if self.budget_usd <= 0:
            return 100
        used = (self.spent_usd + self.reserved_usd) / float(self.budget_usd)
        return max(0, min(100, round(100 * used)))


class BudgetExceeded(ApiError):
    status = 429
    code = "budget_exceeded"


class _Book:
    """The counters of this process, one account per user who has used a budget."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.accounts: dict[UUID, _Account] = {}
        self.loading: dict[
            tuple[asyncio.AbstractEventLoop, UUID, datetime], asyncio.Task[None]
        ] = {}

    def booked(self, user_id: UUID, released: float, cost: float, at: datetime) -> None:
        with self.lock:
            account = self.accounts.get(user_id)
            if account is None:  # not loaded yet: the load's sum will hold this cost
                return
            account.reserved = max(0.0, account.reserved - released)
            if account.start <= at < account.end:
                account.spent += cost

    def install(
        self, user_id: UUID, period: str, start: datetime, end: datetime, spent: float,
        held: float,
    ) -> None:  # fmt: skip
        with self.lock:
            account = self.accounts.get(user_id)
            if account is None:  # the first use in this process: videos still hold theirs
                self.accounts[user_id] = _Account(period, start, end, spent, held)
            elif (account.period, account.start) != (period, start):  # a new period
                account.period, account.start, account.end = period, start, end
                account.spent = spent  # calls in flight keep their reservations


def _book() -> _Book:
    return get_database().extension("generation.spend", lambda db: _Book())


def _in_database() -> bool:
    """True when the database keeps the books (PostgreSQL: other processes reserve too)."""
    return get_database().dialect == POSTGRESQL


def note_booked(
    tx: Tx, user_id: UUID | None, *, released: float = 0.0, cost: float | None = None,
    at: datetime | None = None, reservation: UUID | None = None,
) -> None:  # fmt: skip
    """In the transaction that books a cost: release `released` and count the cost. On
    PostgreSQL the row of `reservation` (the call's id; None: nothing held, or held on)
    is deleted in tx itself, the cost being the usage row tx writes; on DuckDB the
    process's counters follow after the commit."""
    if user_id is None:
        return
    if tx.dialect == POSTGRESQL:  # a video job's row takes over its hold (services.py)
        if reservation is not None:
            repo.delete_budget_reservations(tx, [reservation])
        return
    if not released and not cost:
        return
    book, when = _book(), at or utcnow()
    tx.on_commit(lambda: book.booked(user_id, released, cost or 0.0, when))


def release(user_id: UUID, amount: float, reservation: UUID | None = None) -> None:
    """Give back a reservation no call used (the call never started, or its settle failed).
    On PostgreSQL the row is deleted by a queued write; if that fails too, it expires."""
    if not amount:
        return
    if _in_database():
        if reservation is not None:
            get_database().write_soon(repo.delete_budget_reservations, [reservation])
        return
    _book().booked(user_id, amount, 0.0, utcnow())


async def _account(user_id: UUID, limits: Limits, now: datetime) -> _Account:
    """The user's account for the current period, loaded (once) if needed."""
    book = _book()
    start, end = period_bounds(limits.budget_period, now)
    account = book.accounts.get(user_id)
    if account is None or (account.period, account.start) != (limits.budget_period, start):
        key = (asyncio.get_running_loop(), user_id, start)
        task = book.loading.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(
                get_database().awrite(_load, book, user_id, limits.budget_period, start, end)
            )
            book.loading[key] = task
            task.add_done_callback(lambda _: book.loading.pop(key, None))
        try:
            await asyncio.shield(task)
        except DatabaseError as exc:
            raise LimitsUnavailable() from exc
        loaded = book.accounts.get(user_id)
        if loaded is None:  # the load committed but its install did not run
            raise LimitsUnavailable()
        account = loaded
    return account


def _load(tx: Tx, book: _Book, user_id: UUID, period: str, start: datetime, end: datetime) -> None:
    tx.serialize_publication()
    spent = repo.spent_between(tx, user_id, start, end)
    held = repo.held_video_reservations(tx, user_id)
    tx.on_commit(lambda: book.install(user_id, period, start, end, spent, held))


async def reserve(
    user_id: UUID, limits: Limits, bound: float, reservation: UUID | None = None
) -> float:
    """Hold `bound` USD of the user's budget for a call, or refuse it (429 budget_exceeded).
    Returns the amount held (0 without a budget). `reservation` names the hold (the call's
    id), which the commit booking the call's cost ends."""
    if limits.budget_usd is None:
        return 0.0
    now = utcnow()
    if _in_database():
        db = get_database()
        return await reserve_in(db, user_id, limits, bound, reservation or uuid4(), now)
    account = await _account(user_id, limits, now)
    budget = float(limits.budget_usd)
    book = _book()
    for last_try in (False, True):
        with book.lock:
            if account.spent + account.reserved + bound <= budget + EPSILON:
                account.reserved += bound
                return bound
            left = max(0.0, budget - account.spent - account.reserved)
        if last_try:
            break
        # Calls already answered may still hold their upper bound until their commit
        # (decision 52): before refusing, let those commits swap it for their cost.
        await get_database().acaught_up()
    raise _exceeded(limits, bound, left, account.end, now)


async def reserve_in(
    db: Database, user_id: UUID, limits: Limits, bound: float, reservation: UUID,
    now: datetime,
) -> float:  # fmt: skip
    """reserve() on a PostgreSQL database given (tests open several, as workers do)."""
    start, end = period_bounds(limits.budget_period, now)
    budget = float(limits.budget_usd or 0)
    expires = now + timedelta(seconds=settings.BUDGET_RESERVATION_SECONDS)

    def decide(tx: Tx) -> float | None:
        """None if held, else what was left; the advisory lock makes the read and the
        insert one step for this user across every process."""
        repo.lock_budget(tx, user_id)
        spent, held = repo.budget_in_use(tx, user_id, start, end, now)
        if spent + held + bound > budget + EPSILON:
            return max(0.0, budget - spent - held)
        repo.insert_budget_reservation(tx, reservation, user_id, bound, expires)
        return None

    try:
        left = await db.awrite(decide)
    except DatabaseError as exc:
        raise LimitsUnavailable() from exc
    if left is None:
        return bound
    raise _exceeded(limits, bound, left, end, now)


def _exceeded(limits: Limits, bound: float, left: float, end: datetime, now: datetime) -> ApiError:
    wait = max(1, math.ceil((end - now).total_seconds()))
    period = {"day": "daily", "week": "weekly", "month": "monthly"}[limits.budget_period]
    return BudgetExceeded(
        f"This call could cost up to ${bound:.4f}, more than the ${left:.4f} left of your "
        f"${limits.budget_usd:.2f} {period} budget, which resets at "
        f"{end:%Y-%m-%d %H:%M} UTC.",
        headers={"Retry-After": str(wait), "x-should-retry": "false"},
    )


async def status(user_id: UUID, limits: Limits) -> SpendStatus:
    """Spent, reserved and remaining in the current period (reads the usage records for
    users without a budget, whose spend the process does not follow)."""
    now = utcnow()
    start, end = period_bounds(limits.budget_period, now)
    if limits.budget_usd is None:
        try:
            spent = await get_database().aread(repo.spent_between, user_id, start, end)
        except DatabaseError as exc:
            raise LimitsUnavailable() from exc
        return SpendStatus(spent, 0.0, None, None, limits.budget_period, start, end)
    if _in_database():
        try:
            spent, reserved = await get_database().aread(
                repo.budget_in_use, user_id, start, end, now
            )
        except DatabaseError as exc:
            raise LimitsUnavailable() from exc
    else:
        await get_database().acaught_up()  # the counters follow commits: include the last answer
        account = await _account(user_id, limits, now)
        with _book().lock:
            spent, reserved = account.spent, account.reserved
    remaining = max(0.0, float(limits.budget_usd) - spent - reserved)
    return SpendStatus(
        spent, reserved, remaining, limits.budget_usd, limits.budget_period, start, end
    )
