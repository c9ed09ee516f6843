"""Usage records: one per call to OpenRouter.

`measured_call()` times one upstream call and says how it ended; the call ledger commits
its record with the call's history row. `recorded_call()` buffers the record instead, for
calls nobody is billed for and no response reports (catalogue listings).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from core.clock import utcnow
from core.errors import UpstreamError
from generation.recorder import record_usage
from generation.repository import UsageRecord


@dataclass
class CallOutcome:
    """Filled in by the caller inside measured_call(): what the call reported."""

    user_id: UUID | None
    kind: str
    model: str | None = None
    generation_id: UUID | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost: float | None = None
    latency_ms: float | None = None
    status: str = "ok"  # ok | error
    error_code: str | None = None
    started: float = field(default_factory=time.perf_counter)

    def usage(self, usage: Any) -> None:
        """Take tokens and cost from an openrouter Usage (or None)."""
        if usage is not None:
            self.tokens_in = usage.prompt_tokens
            self.tokens_out = usage.completion_tokens
            self.cost = usage.cost

    def failed(self, code: str) -> None:
        self.status, self.error_code = "error", code

    def note_failure(self, exc: BaseException) -> None:
        if isinstance(exc, UpstreamError):
            self.failed(exc.code)
            if exc.latency_ms is not None:
                self.latency_ms = exc.latency_ms
        elif isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
            # The client went away mid-call (or stopped reading a stream): the call still
            # happened and may cost.
            self.failed("cancelled")
        else:
            self.failed("internal_error")

    def record(self) -> UsageRecord:
        latency = self.latency_ms
        if latency is None:
            latency = (time.perf_counter() - self.started) * 1000
        return UsageRecord(
            occurred_at=utcnow(), user_id=self.user_id, kind=self.kind, model=self.model,
            tokens_in=self.tokens_in, tokens_out=self.tokens_out, cost=self.cost,
            latency_ms=float(latency), status=self.status, error_code=self.error_code,
            generation_id=self.generation_id,
        )  # fmt: skip


@asynccontextmanager
async def measured_call(
    user_id: UUID | None, kind: str, model: str | None, generation_id: UUID | None = None
) -> AsyncIterator[CallOutcome]:
    """Time the upstream call made inside the block and note how it ended (errors re-raised)."""
    outcome = CallOutcome(user_id=user_id, kind=kind, model=model, generation_id=generation_id)
    try:
        yield outcome
    except BaseException as exc:
        outcome.note_failure(exc)
        raise


@asynccontextmanager
async def recorded_call(
    user_id: UUID | None, kind: str, model: str | None, generation_id: UUID | None = None
) -> AsyncIterator[CallOutcome]:
    """measured_call() whose record is buffered (inserted within about a second)."""
    outcome = CallOutcome(user_id=user_id, kind=kind, model=model, generation_id=generation_id)
    try:
        yield outcome
    except BaseException as exc:
        outcome.note_failure(exc)
        raise
    finally:
        record_usage(outcome.record())
