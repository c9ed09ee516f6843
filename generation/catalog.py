"""The model catalogue: OpenRouter's model list, cached in the process for ten minutes.

With REDIS_URL the list fetched by one worker is also kept in Redis (Django's cache) for
the rest of its ten minutes, so the other workers and machines take it from there instead
of asking OpenRouter again: one upstream fetch per ten minutes for the deployment.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from uuid import UUID

from django.conf import settings
from django.core.cache import cache as shared_cache

from generation.openrouter import ModelInfo, get_openrouter_client
from generation.usage import recorded_call

log = logging.getLogger(__name__)

CACHE_SECONDS = 600.0
SHARED_KEY = "generation:catalogue"


@dataclass
class _Cache:
    models: list[ModelInfo]
    fetched_at: float


_cache: _Cache | None = None
_inflight: dict[asyncio.AbstractEventLoop, asyncio.Task[tuple[list[ModelInfo], float]]] = {}


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
        models, age = await asyncio.shield(task)
    except Exception:
        if cache is not None:
            log.warning("model list refresh failed; serving the list from %.0f s ago",
                        time.monotonic() - cache.fetched_at)  # fmt: skip
            return cache.models
        raise
    finally:
        if task.done():
            _inflight.pop(loop, None)
    _cache = _Cache(models, time.monotonic() - age)
    return models


async def _fetch(user_id: UUID | None) -> tuple[list[ModelInfo], float]:
    """The list and its age in seconds: another worker's copy if Redis holds a fresh one."""
    shared = bool(settings.REDIS_URL)
    if shared:
        found = await shared_cache.aget(SHARED_KEY)
        if found is not None:
            fetched_at, models = found
            age = time.time() - fetched_at
            if 0 <= age < CACHE_SECONDS:
                return models, age
    async with recorded_call(user_id, "models", None):
        models = await get_openrouter_client().list_models()
    if shared:
        await shared_cache.aset(SHARED_KEY, (time.time(), models), timeout=CACHE_SECONDS)
    return models, 0.0


async def find_model(model_id: str) -> ModelInfo | None:
    return next((m for m in await list_models() if m.id == model_id), None)


def clear_cache() -> None:
    global _cache
    _cache = None
    _inflight.clear()
