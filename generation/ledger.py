"""The call ledger: every billable upstream call is a history row that is durable before
anyone hears of it (decision 20).

A call is first *admitted*: the model is checked against the catalogue before anything
is written or sent. Running it writes the history row as `pending` while the upstream
call is in flight (the write overlaps the call instead of delaying it), and *settles* it —
the final row and the usage row of the call, in one group commit — before the caller may
answer with an id, a cost or a job. If the process dies in between, start-up books the
pending row as `interrupted` with a usage row at the call's reserved upper bound
(`book_interrupted_calls`): never free, never lost.

The pending row is written only once the call has run for PENDING_ROW_DELAY (decision 48):
a call that settles sooner commits its final row with one insert instead of an insert and
an update, which halves the writes of the common fast call. Nothing has been acknowledged
before the settle, so the only thing a crash in that first instant can lose is an upstream
call nobody was told about.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any
from uuid import UUID, uuid4

from accounts.repository import User
from core.clock import utcnow
from core.db import DatabaseError, Tx, get_database
from core.errors import UpstreamError, ValidationFailed
from generation import repository as repo
from generation.catalog import find_model
from generation.openrouter import ModelInfo
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
# How long a call runs before its pending row is written (see the module doc).
PENDING_ROW_DELAY = 0.025
# Where a client finds the models of a catalogue kind.
_MODEL_LIST = {"embedding": "/v1/models"}


@dataclass(frozen=True)
class Admission:
    """A call the gateway agreed to make: the model exists and is of the right kind."""

    user: User
    kind: str
    model: ModelInfo
    reserved_cost: float | None = None


async def admit(user: User, kind: str, model_id: str) -> Admission:
    """Check a call before anything is written or sent upstream (4xx changes nothing)."""
    model_kind = MODEL_KIND[kind]
    model = await find_model(model_id)
    if model is None or model.kind != model_kind:
        raise ValidationFailed(
            f"'{model_id}' is not a {model_kind} model of this gateway's catalogue.",
            code="unknown_model",
            fields={"model": f"Choose a {model_kind} model from {_models_of(model_kind)}."},
        )
    return Admission(user, kind, model)


def _models_of(model_kind: str) -> str:
    return _MODEL_LIST.get(model_kind, f"/api/ai/models?kind={model_kind}")


@dataclass
class Call:
    """One admitted upstream call while it runs; the block that made it fills in the result."""

    row: Generation  # the pending history row; answered() fills in the final fields
    outcome: CallOutcome  # the usage record of the upstream call
    pending: asyncio.Future[None] | None = None  # the pending row's write, once started
    _timer: asyncio.TimerHandle | None = None  # starts that write after PENDING_ROW_DELAY
    pieces: list[str] = field(default_factory=list)  # text streamed so far
    upstream_id: str | None = None  # OpenRouter's generation id, once the upstream said it
    _also: list[Callable[[Tx], None]] = field(default_factory=list)
    _answered: bool = False

    @property
    def id(self) -> UUID:
        return self.row.id

    def write_pending(self) -> asyncio.Future[None]:
        """Start writing the pending row now, if that has not started yet."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.pending is None:
            self.pending = get_database().awrite_batched(repo.insert_pending_generations, self.row)
        return self.pending

    async def durable(self) -> None:
        """Until the pending row is committed, so the call's id survives a crash (streams
        send it before the call settles). A failed write is settled as an insert later."""
        with contextlib.suppress(DatabaseError):
            await asyncio.shield(self.write_pending())

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

    The pending row is queued on entry; on exit the call is settled — completed, failed or
    cancelled — and that commit is awaited, even if the client has gone away.
    """
    now = utcnow()
    user, kind = admission.user, admission.kind
    row = Generation(
        id=uuid4(), user_id=user.id, kind=kind, model=admission.model.id, prompt=prompt,
        params=dict(params), status="pending", output_text=None, media=(), error_code=None,
        error_message=None, tokens_in=None, tokens_out=None, cost=None, created_at=now,
        finished_at=None, reserved_cost=admission.reserved_cost, conversation_id=conversation_id,
    )  # fmt: skip
    outcome = CallOutcome(user.id, USAGE_KIND.get(kind, kind), admission.model.id, row.id)
    call = Call(row, outcome)
    call._timer = asyncio.get_running_loop().call_later(PENDING_ROW_DELAY, call.write_pending)
    try:
        yield call
    except BaseException as exc:
        outcome.note_failure(exc)
        await _settle(call, _ended(call, exc))
        if isinstance(exc, (asyncio.CancelledError, GeneratorExit)) and call.upstream_id:
            _cost_later(call.id, outcome.kind, call.upstream_id)
        raise
    if not call._answered:  # a bug in the block: still never leave the row pending
        outcome.failed("internal_error")
        await _settle(call, _ended(call, None))
        raise RuntimeError("a ledger call ended without an answer")
    await _settle(call, call.row)


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
    cannot leave the call pending."""
    usage = call.outcome.record()
    await asyncio.shield(_commit(call, final, usage))


async def _commit(call: Call, final: Generation, usage: UsageRecord) -> None:
    db = get_database()
    if call._timer is not None:  # settled before its pending row was due: never write it
        call._timer.cancel()
        call._timer = None
    inserted = False
    if call.pending is not None:
        try:
            await call.pending
            inserted = True
        except DatabaseError:
            log.warning("the pending row of call %s was not written; writing it settled", call.id)
    if not call._also:
        settle = repo.settle_generations if inserted else repo.insert_settled_generations
        await db.awrite_batched(settle, (final, usage))
        return

    def settle_all(tx: Tx) -> None:
        if inserted:
            repo.settle_generations(tx, [(final, usage)])
        else:
            repo.insert_generations(tx, [final])
            repo.insert_usage(tx, [usage])
        for write in call._also:
            write(tx)

    await db.awrite(settle_all)


# An abandoned stream never sees its usage chunk, but OpenRouter still bills what it made:
# ask GET /generation for the cost (it answers 404 for a moment first) and book it.
LATE_COST_WAITS = (0.0, 1.0, 2.0, 4.0, 8.0)
_late: set[asyncio.Task[None]] = set()


def _cost_later(generation_id: UUID, usage_kind: str, upstream_id: str) -> None:
    task = asyncio.get_running_loop().create_task(
        _book_late_cost(generation_id, usage_kind, upstream_id)
    )
    _late.add(task)
    task.add_done_callback(_late.discard)


async def _book_late_cost(generation_id: UUID, usage_kind: str, upstream_id: str) -> None:
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
                repo.book_late_cost, generation_id, usage_kind,
                usage.prompt_tokens, usage.completion_tokens, usage.cost,
            )  # fmt: skip
            return
    log.warning("no cost for abandoned call %s: OpenRouter never reported it", generation_id)


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
