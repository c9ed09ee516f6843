"""The model catalogue: OpenRouter's model list, cached in the process for ten minutes."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from uuid import UUID

from generation.openrouter import ModelInfo, get_openrouter_client
from generation.usage import recorded_call

log = logging.getLogger(__name__)

CACHE_SECONDS = 600.0


@dataclass
class _Cache:
    models: list[ModelInfo]
    fetched_at: float


_cache: _Cache | None = None
_inflight: dict[asyncio.AbstractEventLoop, asyncio.Task[list[ModelInfo]]] = {}


async def list_models(user_id: UUID | None = None) -> list[ModelInfo]:
    """The cached catalogue; concurrent callers share one upstream fetch. When a refresh
    fails and an older list exists, the older list is served rather than an error."""
    global _cache
    cache = _cache
    if cache is not None and time.monotonic() - cache.fetched_at < CACHE_SECONDS:
        return cache.models
    loop = asyncio.get_running_loop()
    task = _inflight.get(loop)
    if task is None or task.done():
        task = loop.create_task(_fetch(user_id))
        _inflight[loop] = task
    try:
        models = await asyncio.shield(task)
    except Exception:
        if cache is not None:
            log.warning("model list refresh failed; serving the list from %.0f s ago",
                        time.monotonic() - cache.fetched_at)  # fmt: skip
            return cache.models
        raise
    finally:
        if task.done():
            _inflight.pop(loop, None)
    _cache = _Cache(models, time.monotonic())
    return models


async def _fetch(user_id: UUID | None) -> list[ModelInfo]:
    async with recorded_call(user_id, "models", None):
        return await get_openrouter_client().list_models()


async def find_model(model_id: str) -> ModelInfo | None:
    return next((m for m in await list_models() if m.id == model_id), None)


def clear_cache() -> None:
    global _cache
    _cache = None
    _inflight.clear()
