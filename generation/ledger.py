"""The call ledger: every billable upstream call is a history row that is durable before
anyone hears of it (decisions 20, 52), and the one check-reserve-settle point of budgets and
model allow-lists (decisions 40, 41).

A call is first *admitted*: the model is checked against the catalogue and the caller's
allow-list, and the upper bound of its cost is reserved from the caller's budget, before
anything is written or sent. Running it writes the history row as `pending` while the upstream
call is in flight (the write overlaps the call instead of delaying it), and *settles* it —
the final row and the usage row of the call together — before the caller may answer with an
id, a cost or a job. If the process dies in between, start-up books the pending row as
`interrupted` with a usage row at the call's reserved upper bound (`book_interrupted_calls`):
never free, never lost.

Both writes are journaled (core/db/journal.py, decisions 52, 56). On DuckDB a write is kept
once its line is in the journal's file, which survives the death of the process, and durable
once the journal's thread has synced it; the writer commits it right after, batched with its
neighbours, and start-up replays what a crash left in the journal before it books anything as
interrupted. The pending row is journaled as the call starts and synced while the upstream
works; the settle waits for that sync (long done, as a rule) and for its own line to be
written, not synced. So a killed process loses nothing it acknowledged, and a power loss
after an answer books that call as interrupted at its upper bound: never free, never lost.

The pending row is committed only once the call has run for PENDING_ROW_DELAY (decision 48),
so history shows it as pending, or once a stream sends its id: a call that settles sooner
commits its final row with one insert instead of an insert and an update, and its pending
line stays in the journal until then. On PostgreSQL both writes simply commit, the pending
row on the same terms: there is no journal to hold it meanwhile, so there a process killed
in a fast call's first 25 ms leaves no row (decision 56).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple
from uuid import UUID, uuid4

from django.conf import settings

from accounts.repository import User
from core.clock import utcnow
from core.db import DatabaseError, Journaled, JournalEntry, Tx, get_database
from core.errors import UpstreamError, ValidationFailed
from generation import repository as repo
from generation import spend
from generation.catalog import find_model
from generation.limits import Limits, check_model
from generation.openrouter import ModelInfo
from generation.pricing import Demand, Unpriceable, upper_bound
from generation.pseudonym import upstream_user
from generation.repository import Generation, UsageRecord
from generation.usage import CallOutcome

log = logging.getLogger(__name__)

# The catalogue kind a generation kind needs, and the usage kind of its upstream call.
MODEL_KIND = {
    "text": "text",
    "chat": "text",
    "image": "image",
    "video": "video",
    "embedding": "embedding",
    "summarize": "text",  # the presets (generation/presets.py)
    "shorten": "text",
}
USAGE_KIND = {"video": "video_submit"}
# How long a call runs before its pending row is committed (see the module doc).
PENDING_ROW_DELAY = 0.025
# Ledger calls between admission and settle in this process: a call alone waits for its
# pending row's sync on the event loop, instead of being woken (decision 54).
_running = 0
# Where a client finds the models of a catalogue kind.
_MODEL_LIST = {"embedding": "/v1/models"}


@dataclass(frozen=True)
class Admission:
    """A call the gateway agreed to make: the model exists, is of the right kind and
    allowed, and the most it can cost is held from the caller's budget."""

    user: User
    kind: str
    model: ModelInfo
    reserved_cost: float | None = None  # the upper bound of the cost (None: no fixed price)
    held: float = 0.0  # what the budget holds for it (0 without a budget)
    completion_cap: int | None = None  # max_tokens to send when the client set none
    call_id: UUID = field(default_factory=uuid4)  # the history row's id; names the hold

    def cap(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The upstream payload with the completion cap the reservation assumed."""
        if self.completion_cap is not None and not (
            payload.get("max_tokens") or payload.get("max_completion_tokens")
        ):
            payload["max_tokens"] = self.completion_cap
        return payload


async def admit(
    user: User,
    kind: str,
    model_id: str,
    demand: Demand,
    *,
    fallbacks: Sequence[str] = (),
) -> Admission:
    """Check a call and reserve its worst-case cost before anything is written or sent
    upstream (4xx changes nothing): 400 unknown_model, 403 model_not_allowed, 429
    budget_exceeded, 503 limits_unavailable. `fallbacks` are OpenRouter's `models`, each
    checked like the model; the bound is the dearest of them."""
    model_kind = MODEL_KIND[kind]
    model = await find_model(model_id)
    if model is None or model.kind != model_kind:
        raise ValidationFailed(
            f"'{model_id}' is not a {model_kind} model of this gateway's catalogue.",
            code="unknown_model",
            fields={"model": f"Choose a {model_kind} model from {_models_of(model_kind)}."},
        )
    limits = await check_model(user, model.id)
    candidates = [model]
    for fallback_id in fallbacks:
        fallback = await find_model(fallback_id)
        if fallback is None or fallback.kind != model_kind:
            raise ValidationFailed(
                f"'{fallback_id}' is not a {model_kind} model of this gateway's catalogue.",
                code="unknown_model",
                fields={"models": f"Use {model_kind} models from {_models_of(model_kind)}."},
            )
        await check_model(user, fallback.id, limits)
        candidates.append(fallback)
    cap = None
    if limits.budget_usd is not None and model_kind == "text" and demand.max_tokens is None:
        cap = settings.BUDGET_DEFAULT_MAX_TOKENS
    bound = _bound(candidates, demand, limits)
    call_id = uuid4()
    held = await spend.reserve(user.id, limits, bound or 0.0, call_id)
    return Admission(user, kind, model, bound, held, cap, call_id)


def _bound(models: Sequence[ModelInfo], demand: Demand, limits: Limits) -> float | None:
    try:
        cap = settings.BUDGET_DEFAULT_MAX_TOKENS
        return max(upper_bound(m, demand, default_cap=cap) for m in models)
    except Unpriceable:
        if limits.budget_usd is None:
            return None
        raise spend.BudgetExceeded(
            f"The catalogue gives no fixed price for '{models[0].id}', so it cannot be used "
            "under a budget.",
            headers={"x-should-retry": "false"},
        ) from None


def release(admission: Admission) -> None:
    """Give back the reservation of an admission that will never run (e.g. what had to
    happen between admitting and calling failed)."""
    spend.release(admission.user.id, admission.held, admission.call_id)


def _models_of(model_kind: str) -> str:
    return _MODEL_LIST.get(model_kind, f"/api/ai/models?kind={model_kind}")


@dataclass
class Call:
    """One admitted upstream call while it runs; the block that made it fills in the result."""

    row: Generation  # the pending history row; answered() fills in the final fields
    outcome: CallOutcome  # the usage record of the upstream call
    pending: JournalEntry  # the pending row's write, journaled as the call starts
    _timer: asyncio.TimerHandle | None = None  # queues that write after PENDING_ROW_DELAY
    pieces: list[str] = field(default_factory=list)  # text streamed so far
    upstream_id: str | None = None  # OpenRouter's generation id, once the upstream said it
    held: float = 0.0  # the budget reservation, released when the call settles
    holds_reservation: bool = False  # a video job keeps it until the job ends
    costed_later: bool = False  # an abandoned stream: its late cost booking ends the hold
    _also: list[Callable[[Tx], None]] = field(default_factory=list)
    _answered: bool = False

    @property
    def id(self) -> UUID:
        return self.row.id

    async def durable(self) -> None:
        """Until the pending row is durable and committed for reads, so the call's id
        survives a crash (streams send it before the call settles). A failed write is
        settled as an insert later."""
        with contextlib.suppress(DatabaseError):
            await self.pending.durable()

    @property
    def upstream_user(self) -> str:
        """The `user` every upstream generation request of this call must carry."""
        return upstream_user(self.row.user_id)

    def answered(
        self,
        *,
        model: str | None,
        latency_ms: float | None,
        usage: Any = None,
        **fields: Any,
    ) -> None:
        """What the upstream answered: tokens and cost from its usage, plus row fields
        (output_text, media; status and finished_at default to completed, now)."""
        fields.setdefault("status", "completed")
        fields.setdefault("finished_at", utcnow())
        self.outcome.model = model or self.outcome.model
        self.outcome.latency_ms = latency_ms
        self.outcome.usage(usage)
        o = self.outcome
        self.row = replace(
            self.row, model=o.model or self.row.model, tokens_in=o.tokens_in,
            tokens_out=o.tokens_out, cost=o.cost, **fields,
        )  # fmt: skip
        self._answered = True

    def update(self, **fields: Any) -> None:
        """More of the final row, learnt after the answer (e.g. the stored media)."""
        self.row = replace(self.row, **fields)

    def also_commit(self, write: Callable[[Tx], None]) -> None:
        """Another write that must commit with the settled row (e.g. the video job)."""
        self._also.append(write)


@asynccontextmanager
async def run(
    admission: Admission,
    prompt: str,
    params: Mapping[str, Any],
    *,
    conversation_id: UUID | None = None,
) -> AsyncIterator[Call]:
    """Run the upstream call made inside the block as a ledger entry.

    The pending row is journaled on entry; on exit the call is settled — completed, failed or
    cancelled — and that commit is awaited, even if the client has gone away.
    """
    now = utcnow()
    user, kind = admission.user, admission.kind
    row = Generation(
        id=admission.call_id, user_id=user.id, kind=kind, model=admission.model.id, prompt=prompt,
        params=dict(params), status="pending", output_text=None, media=(), error_code=None,
        error_message=None, tokens_in=None, tokens_out=None, cost=None, created_at=now,
        finished_at=None, reserved_cost=admission.reserved_cost, conversation_id=conversation_id,
    )  # fmt: skip
    outcome = CallOutcome(user.id, USAGE_KIND.get(kind, kind), admission.model.id, row.id)
    try:
        pending = get_database().journal(PENDING, row, sync_now=True, defer=True)
    except BaseException:
        release(admission)
        raise
    call = Call(row, outcome, pending, held=admission.held)
    call._timer = asyncio.get_running_loop().call_later(PENDING_ROW_DELAY, pending.queue)
    global _running
    _running += 1
    try:
        try:
            yield call
        except BaseException as exc:
            outcome.note_failure(exc)
            abandoned = (
                isinstance(exc, (asyncio.CancelledError, GeneratorExit)) and call.upstream_id
            )
            call.holds_reservation = call.costed_later = bool(abandoned)  # until the late cost
            await _settle(call, _ended(call, exc))
            if abandoned and call.upstream_id:
                _cost_later(call, outcome.kind, call.upstream_id)
            raise
        if not call._answered:  # a bug in the block: still never leave the row pending
            outcome.failed("internal_error")
            await _settle(call, _ended(call, None))
            raise RuntimeError("a ledger call ended without an answer")
        await _settle(call, call.row)
    finally:
        _running -= 1


def _ended(call: Call, error: BaseException | None) -> Generation:
    """The settled row of a call that did not complete."""
    text = call.row.output_text or ("".join(call.pieces) or None)
    now = utcnow()
    if isinstance(error, UpstreamError):
        return replace(
            call.row, status="failed", output_text=text, error_code=error.code,
            error_message=error.message, finished_at=now,
        )  # fmt: skip
    if isinstance(error, (asyncio.CancelledError, GeneratorExit)):
        return replace(
            call.row, status="cancelled", output_text=text, error_code="cancelled",
            error_message="The client stopped the answer.", finished_at=now,
        )  # fmt: skip
    return replace(
        call.row, status="failed", output_text=text, error_code="internal_error",
        error_message="Something went wrong on our side.", finished_at=now,
    )  # fmt: skip


async def _settle(call: Call, final: Generation) -> None:
    """Commit the final row and the usage record; shielded, so a client that goes away
    cannot leave the call pending. The commit releases the call's reservation and counts
    its cost (a video job or an abandoned stream keeps the reservation for later)."""
    usage = call.outcome.record()
    released = 0.0 if call.holds_reservation else call.held
    # The hold's row in the database ends here unless a late cost booking ends it; a video
    # job's row, committed with this settle, holds its amount until the job ends.
    ends = call.id if call.held and not call.costed_later else None
    try:
        await asyncio.shield(_commit(call, final, (usage, released, ends)))
    except BaseException:
        spend.release(call.row.user_id, released, ends)
        raise


class Settle(NamedTuple):
    """A settled call as the ledger writes it."""

    final: Generation
    usage: UsageRecord
    released: float  # the reservation given back
    ends: UUID | None  # the id of the budget hold that ends with it
    row_written: bool  # its pending row's write did not fail: replace that row


def _write_calls(tx: Tx, items: Sequence[Generation | Settle]) -> list[None]:
    """The ledger's one batched write: pending rows (Generation) and settled calls (Settle)
    in whatever mix the writer gathered, in three or four statements: pending rows first,
    then the settled rows, then, after the commit, the budgets. One function for all of
    them, so a batch is never cut into a run per kind where pending rows and settles
    alternate (decision 54). A call whose pending row and settle share the batch (a stream,
    or a call just past PENDING_ROW_DELAY) costs one insert of its final row."""
    settles = [item for item in items if isinstance(item, Settle)]
    settled_ids = {s.final.id for s in settles}
    pending = [item for item in items if isinstance(item, Generation)]
    fresh = {row.id for row in pending} & settled_ids  # pending and settled in this batch
    repo.insert_pending_generations(tx, [row for row in pending if row.id not in fresh])
    repo.record_settled(
        tx,
        [(s.final, s.usage) for s in settles if s.row_written and s.final.id not in fresh],
        [(s.final, s.usage) for s in settles if not s.row_written or s.final.id in fresh],
    )
    for s in settles:
        spend.note_booked(
            tx, s.final.user_id, released=s.released, cost=s.usage.cost, at=s.usage.occurred_at,
            reservation=s.ends,
        )  # fmt: skip
    return [None] * len(items)


def _settled_line(item: Settle) -> list[Any]:
    return repo.settled_line(item.final, item.usage)


# The ledger's writes are journaled (decisions 52, 56): kept once their journal line is
# written, durable once it is synced, committed by the writer right after; a crash in between
# is replayed at start-up.
PENDING = Journaled(
    "generation.ledger:PENDING", _write_calls, Generation.as_insert_row, repo.replay_pending
)
SETTLE = Journaled("generation.ledger:SETTLE", _write_calls, _settled_line, repo.replay_settled)
# The key journal lines of calls settled without a pending row had before decision 54
# (and, from decision 54 to 56, those of calls that settled within 25 ms).
INSERT_SETTLED = Journaled(
    "generation.ledger:INSERT_SETTLED", _write_calls, _settled_line, repo.replay_settled
)


async def _commit(
    call: Call, final: Generation, booking: tuple[UsageRecord, float, UUID | None]
) -> None:
    usage, released, ends = booking
    db = get_database()
    if call._timer is not None:  # settled before its pending row was due: never commit it
        call._timer.cancel()
        call._timer = None
    if call._also:  # committed with the job below, after the pending row
        call.pending.queue()
    # The pending row's line was synced while the upstream worked (on PostgreSQL, the row
    # committed): from then on a power loss can only book this call as interrupted, so the
    # settle need only be kept, its line written and not synced.
    try:
        await call.pending.synced(here=_running <= 1)
        written = call.pending.queued
    except DatabaseError:  # the settle writes the row instead
        written = False
    settled = Settle(final, usage, released, ends, row_written=written)
    if not call._also:
        await db.journal(SETTLE, settled, replaces=call.pending).kept()
        return

    def settle_all(tx: Tx) -> None:
        _write_calls(tx, [settled])
        for write in call._also:
            write(tx)

    await db.awrite(settle_all)


# An abandoned stream never sees its usage chunk, but OpenRouter still bills what it made:
# ask GET /generation for the cost (it answers 404 for a moment first) and book it.
LATE_COST_WAITS = (0.0, 1.0, 2.0, 4.0, 8.0)
_late: set[asyncio.Task[None]] = set()


def _cost_later(call: Call, usage_kind: str, upstream_id: str) -> None:
    task = asyncio.get_running_loop().create_task(
        _book_late_cost(call.id, call.row.user_id, usage_kind, upstream_id, call.held)
    )
    _late.add(task)
    task.add_done_callback(_late.discard)


async def _book_late_cost(
    generation_id: UUID, user_id: UUID, usage_kind: str, upstream_id: str, held: float
) -> None:
    from generation.openrouter import get_openrouter_client

    for wait in LATE_COST_WAITS:
        await asyncio.sleep(wait)
        try:
            usage = await get_openrouter_client().generation_stats(upstream_id)
        except UpstreamError as exc:
            log.info("costing abandoned call %s failed: %s", generation_id, exc.code)
            continue
        if usage is not None and usage.cost is not None:
            await get_database().awrite(
                _book_late, generation_id, user_id, usage_kind, usage.prompt_tokens,
                usage.completion_tokens, usage.cost, held,
            )  # fmt: skip
            return
    if held:  # never free: what the budget held is booked as its cost
        log.warning("no cost for abandoned call %s; booked at its reservation", generation_id)
        await get_database().awrite(
            _book_late, generation_id, user_id, usage_kind, None, None, held, held
        )
        return
    log.warning("no cost for abandoned call %s: OpenRouter never reported it", generation_id)


def _book_late(
    tx: Tx, generation_id: UUID, user_id: UUID, usage_kind: str, tokens_in: int | None,
    tokens_out: int | None, cost: float, held: float,
) -> None:  # fmt: skip
    booked = repo.book_late_cost(tx, generation_id, usage_kind, tokens_in, tokens_out, cost)
    spend.note_booked(
        tx, user_id, released=held, cost=cost if booked else None,
        reservation=generation_id if held else None,
    )  # fmt: skip


async def wait_for_late_costs() -> None:
    """Until every abandoned call has been costed or given up on (shutdown, tests)."""
    while _late:
        await asyncio.gather(*_late, return_exceptions=True)


def book_interrupted_calls() -> int:
    """At start-up, before serving: book what a crash left pending (see the module doc)."""
    count = get_database().write(repo.book_interrupted_calls, utcnow())
    if count:
        log.warning("booked %d call(s) a previous run left unfinished as interrupted", count)
    return count
