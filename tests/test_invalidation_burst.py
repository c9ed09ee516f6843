"""core/invalidation.py under a burst: concurrent requests share the stream reads, so a
process holds one Redis connection for them however many requests it serves at once, and
no request is answered from a read sent before it began."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from core import invalidation


@pytest.fixture
def stream(redis_url: str, redis_key_prefix: str, settings: Any) -> invalidation.Stream:
    settings.REDIS_URL = redis_url
    settings.REDIS_KEY_PREFIX = redis_key_prefix
    settings.DATABASE_URL = settings.DATABASE_URL or "postgresql://unused@127.0.0.1/unused"
    made = invalidation.Stream(redis_url, redis_key_prefix)
    made.start()
    return made


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    events: list[str] = []
    monkeypatch.setattr(invalidation, "_subscribers", {})
    invalidation.subscribe("t", on_change=events.append, on_reset=lambda: events.append("*"))
    return events


def publish_elsewhere(
    stream: invalidation.Stream, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(invalidation, "_ORIGIN", "another-process")
        stream.publish("t", key)


def count_reads(stream: invalidation.Stream, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the XREADs the stream's client sends; the list's one item is the count."""
    client = stream._aclient()
    real = client.xread
    sent = [0]

    async def xread(*args: Any, **kwargs: Any) -> Any:
        sent[0] += 1
        return await real(*args, **kwargs)

    monkeypatch.setattr(client, "xread", xread)
    return sent


@pytest.mark.anyio
async def test_a_burst_of_requests_shares_reads_instead_of_a_connection_each(
    stream: invalidation.Stream, seen: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = count_reads(stream, monkeypatch)
    publish_elsewhere(stream, monkeypatch, "user-1")
    # redis-py's pool refuses a 101st connection: one read per request failed here.
    await asyncio.gather(*(stream.follow() for _ in range(500)))
    assert seen == ["user-1"]
    assert 1 <= sent[0] <= 2


@pytest.mark.anyio
async def test_a_request_arriving_during_a_read_waits_for_the_next_one(
    stream: invalidation.Stream, seen: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = stream._aclient()
    real = client.xread
    in_flight, release = asyncio.Event(), asyncio.Event()

    async def slow_xread(*args: Any, **kwargs: Any) -> Any:
        found = await real(*args, **kwargs)
        in_flight.set()
        await release.wait()  # the answer is on its way; a publication happens meanwhile
        return found

    monkeypatch.setattr(client, "xread", slow_xread)
    first = asyncio.create_task(stream.follow())
    await in_flight.wait()
    publish_elsewhere(stream, monkeypatch, "revoked-meanwhile")
    second = asyncio.create_task(stream.follow())
    await asyncio.sleep(0)
    monkeypatch.setattr(client, "xread", real)
    release.set()
    await first
    assert seen == []  # the first read was sent before the publication
    await second
    assert seen == ["revoked-meanwhile"]


@pytest.mark.anyio
async def test_a_failed_shared_read_refuses_every_request_that_waited_for_it(
    stream: invalidation.Stream, seen: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis

    async def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise redis.ConnectionError("connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(stream._aclient(), "xread", unreachable)
        outcomes = await asyncio.gather(
            *(stream.follow() for _ in range(20)), return_exceptions=True
        )
    assert all(isinstance(o, invalidation.CoordinationUnavailable) for o in outcomes)
    await stream.follow()
    assert seen == ["*"]  # what was missed is unknown: everything reloaded
