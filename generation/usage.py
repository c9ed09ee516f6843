"""Usage records: one per call to OpenRouter, buffered so no response waits for a commit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from core.clock import utcnow
from core.errors import UpstreamError
from generation.recorder import record_usage
from generation.repository import UsageRecord


@dataclass
class CallOutcome:
    """Filled in by the caller inside recorded_call(): what the call reported."""

    model: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost: float | None = None
    latency_ms: float | None = None
    generation_id: UUID | None = None
    kind: str | None = None  # overrides the kind (e.g. a poll that completes a video)

    def usage(self, usage: Any) -> None:
        """Take tokens and cost from an openrouter Usage (or None)."""
        if usage is not None:
            self.tokens_in = usage.prompt_tokens
            self.tokens_out = usage.completion_tokens
            self.cost = usage.cost


@asynccontextmanager
async def recorded_call(
    user_id: object, kind: str, model: str | None, generation_id: UUID | None = None
) -> AsyncIterator[CallOutcome]:
    """Record one usage row for the upstream call made inside the block, success or not."""
    outcome = CallOutcome(model=model, generation_id=generation_id)
    started = time.perf_counter()
    status, error_code = "ok", None
    try:
        yield outcome
    except UpstreamError as exc:
        status, error_code = "error", exc.code
        if exc.latency_ms is not None:
            outcome.latency_ms = exc.latency_ms
        raise
    except (asyncio.CancelledError, GeneratorExit):
        # The client went away mid-call (or stopped reading a stream): the call still
        # happened and may cost.
        status, error_code = "error", "cancelled"
        raise
    except Exception:
        status, error_code = "error", "internal_error"
        raise
    finally:
        latency = outcome.latency_ms
        if latency is None:
            latency = (time.perf_counter() - started) * 1000
        record_usage(
            UsageRecord(
                occurred_at=utcnow(),
                user_id=user_id if isinstance(user_id, UUID) else None,
                kind=outcome.kind or kind,
                model=outcome.model,
                tokens_in=outcome.tokens_in,
                tokens_out=outcome.tokens_out,
                cost=outcome.cost,
                latency_ms=float(latency),
                status=status,
                error_code=error_code,
                generation_id=outcome.generation_id,
            )
        )
