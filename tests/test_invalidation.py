"""core/invalidation.py: what one process publishes reaches the subscribers of the others
before their next request; a missed entry or a lost Redis makes them reload everything;
under a burst, concurrent requests share the stream reads."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from core import invalidation
from core.db import one_process_only


@pytest.fixture
def stream(redis_url, redis_key_prefix, settings):
    settings.REDIS_URL = redis_url
    settings.REDIS_KEY_PREFIX = redis_key_prefix
    settings.DATABASE_URL = settings.DATABASE_URL or "postgresql://unused@127.0.0.1/unused"
    made = invalidation.Stream(redis_url, redis_key_prefix)
    made.start()
    return made


@pytest.fixture
def seen(monkeypatch):
    events: list[str] = []
    monkeypatch.setattr(invalidation, "_subscribers", {})
    invalidation.subscribe(
        "t", on_change=lambda key: events.append(key), on_reset=lambda: events.append("*reset*")
    )
    return events


def publish_elsewhere(stream, monkeypatch, topic, key):
    """As another process would: another origin, the same stream."""
    with monkeypatch.context() as patch:
        patch.setattr(invalidation, "_ORIGIN", "another-process")
        stream.publish(topic, key)


@pytest.mark.anyio
async def test_another_process_change_reaches_the_subscriber_before_the_next_request(
    stream, seen, monkeypatch
):
    publish_elsewhere(stream, monkeypatch, "t", "user-1")
    publish_elsewhere(stream, monkeypatch, "t", "user-2")
    await stream.follow()
    assert seen == ["user-1", "user-2"]
    await stream.follow()  # nothing new: nothing applied twice
    assert seen == ["user-1", "user-2"]


@pytest.mark.anyio
async def test_this_process_own_publications_are_not_applied_again(stream, seen):
    stream.publish("t", "mine")
    await stream.follow()
    assert seen == []


def test_publish_tells_this_process_subscriber_unless_told_not_to(seen, settings):
    settings.REDIS_URL = ""
    invalidation.publish("t", "here")
    invalidation.publish("t", "not-here", here=False)
    assert seen == ["here"]


@pytest.mark.anyio
async def test_a_gap_in_the_numbering_reloads_everything(stream, seen, monkeypatch):
    import redis

    client = redis.Redis.from_url(stream.url)
    client.incr(stream.keys[1])  # an entry this process will never see
    client.close()
    publish_elsewhere(stream, monkeypatch, "t", "after-the-gap")
    await stream.follow()
    assert seen == ["*reset*"]
    publish_elsewhere(stream, monkeypatch, "t", "next")
    await stream.follow()
    assert seen == ["*reset*", "next"]


@pytest.mark.anyio
async def test_a_lost_redis_refuses_the_request_then_reloads_everything(stream, seen, monkeypatch):
    async def unreachable(*args, **kwargs):
        import redis

        raise redis.ConnectionError("connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(type(stream._aclient()), "xread", unreachable)
        with pytest.raises(invalidation.CoordinationUnavailable):
            await stream.follow()
    await stream.follow()
    assert seen == ["*reset*"]


def test_several_workers_on_postgresql_need_redis(settings):
    settings.DATABASE_URL = "postgresql://someone@127.0.0.1/somewhere"
    settings.REDIS_URL = ""
    reason = one_process_only(3)
    assert reason is not None and reason.startswith("3 workers on PostgreSQL need REDIS_URL")
    assert one_process_only(1) is None
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    assert one_process_only(3) is None


# -- a burst: concurrent requests share the stream reads (decision 47) ------------------


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
    publish_elsewhere(stream, monkeypatch, "t", "user-1")
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
    publish_elsewhere(stream, monkeypatch, "t", "revoked-meanwhile")
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
    assert seen == ["*reset*"]  # what was missed is unknown: everything reloaded
