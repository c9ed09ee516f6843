"""With REDIS_URL, the workers of a deployment share one upstream fetch of the catalogue."""

from __future__ import annotations

import pytest

from generation.catalog import clear_cache, list_models


@pytest.mark.anyio
async def test_a_second_worker_takes_the_catalogue_from_redis(stub, redis_cache):
    first = await list_models()
    clear_cache()  # another worker: nothing in its own memory
    second = await list_models()
    assert second == first and len(first) > 1
    assert len(stub.requests("/api/v1/models")) == 1


@pytest.mark.anyio
async def test_without_redis_each_worker_fetches_its_own(stub, settings):
    settings.REDIS_URL = ""
    await list_models()
    clear_cache()
    await list_models()
    assert len(stub.requests("/api/v1/models")) == 2
