"""Cross-process invalidation of in-process caches (decision 45).

A worker keeps some database state in memory: the accounts directory, and any cache that
subscribes here. When a commit changes such state, the committing process updates its
own copy in an after-commit callback and publishes `(topic, key)`; every other worker
process, on any machine, applies it before it serves its next request.

With REDIS_URL on PostgreSQL, a publication is an entry of one Redis stream, numbered by
a counter in the same atomic script, written before the publishing request answers.
Every HTTP request first reads the entries its process has not seen (one round trip,
nearly always empty; see `follow`), so a request that starts after a revoking response
was received sees the revocation: the window is zero. A hole in the numbering (the
stream was trimmed past this process, or Redis lost its data), a lost connection, or a
publication that could not be written make every subscriber reload everything. Without
Redis there is one process (DuckDB, or a single PostgreSQL worker: several are refused)
and publishing only tells this process's own subscriber.

A cache hooks in with one line on each side:

    invalidation.subscribe("generation.limits", on_change=forget, on_reset=forget)
    tx.on_commit(lambda: invalidation.publish("generation.limits", role, here=False))

`on_change(key)` and `on_reset()` run on a worker thread (they may read the database)
while requests keep reading the cache: replace entries, never mutate them in place.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

log = logging.getLogger(__name__)

STREAM_LENGTH = 10_000  # entries kept: a process further behind than this reloads everything
READ_BATCH = 1_000
REDIS_TIMEOUT = 2.0  # seconds; a Redis that does not answer is an unreachable one
RESET = "*"  # the topic of "everything may have changed"

# Number the entry and append it in one step, so that numbers follow stream order.
_PUBLISH = """
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*',
           'seq', seq, 'origin', ARGV[1], 'topic', ARGV[2], 'key', ARGV[3])
return seq
"""


class CoordinationUnavailable(Exception):
    """Redis cannot be reached, so this process cannot know what other processes changed."""

    message = (
        "The gateway cannot reach Redis to learn of changes made by its other workers; "
        "try again in a moment."
    )


@dataclass(frozen=True)
class Subscriber:
    on_change: Callable[[str], None]
    on_reset: Callable[[], None]


_subscribers: dict[str, Subscriber] = {}
_ORIGIN = uuid.uuid4().hex  # this process


def subscribe(
    topic: str, *, on_change: Callable[[str], None], on_reset: Callable[[], None]
) -> None:
    """Call on_change(key) when a commit changed `key` of `topic`, and on_reset() when
    anything may have changed. One subscriber per topic: a later call replaces it."""
    _subscribers[topic] = Subscriber(on_change, on_reset)


def publish(topic: str, key: str, *, here: bool = True) -> None:
    """Tell every process that a commit changed `key` of `topic`; call it after the commit,
    before the change is reported. here=False when this process updated its copy itself."""
    if here and (subscriber := _subscribers.get(topic)) is not None:
        subscriber.on_change(key)
    stream = _stream()
    if stream is not None:
        stream.publish(topic, key)


def follows_others() -> bool:
    """True when other processes may change the database (PostgreSQL with REDIS_URL)."""
    return bool(settings.DATABASE_URL and settings.REDIS_URL)


def start() -> None:
    """Mark where this process starts following; call before subscribers load (start-up)."""
    stream = _stream()
    if stream is not None:
        stream.start()


async def follow() -> None:
    """Apply what other processes published since this process last looked (every request
    calls this first). Raises CoordinationUnavailable while Redis cannot be reached."""
    stream = _stream()
    if stream is not None:
        await stream.follow()


def reset_all() -> None:
    """Have every subscriber of this process reload everything."""
    for topic, subscriber in list(_subscribers.items()):
        try:
            subscriber.on_reset()
        except Exception:
            log.exception("reloading %s failed", topic)
            raise


class Stream:
    """The Redis stream of publications, and this process's position in it."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis

        self.url, self.prefix = url, prefix
        self.keys = [f"{prefix}invalidations", f"{prefix}invalidations:seq"]
        self._client = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
        )
        self._script = self._client.register_script(_PUBLISH)
        self._aclients: dict[int, Any] = {}  # per event loop
        self._last_id: str | None = None  # None: not following yet, or lost: reload first
        self._seq = 0
        self._owe_reset = False  # a publication failed: everyone must reload
        self._applying: asyncio.Lock | None = None
        self._lock = threading.Lock()
        self._next_read: asyncio.Future[None] | None = None  # what arriving requests await
        self._reader: asyncio.Task[None] | None = None

    # -- publishing (any thread; after-commit callbacks) --------------------------------

    def publish(self, topic: str, key: str) -> None:
        import redis

        try:
            self.pay_reset()
            self._script(keys=self.keys, args=[_ORIGIN, topic, key, STREAM_LENGTH])
        except redis.RedisError as exc:
            # Committed but unannounced: every process reloads once Redis answers again.
            self._owe_reset = True
            log.error("could not publish a change of %s to Redis: %s", topic, exc)

    def pay_reset(self) -> None:
        """After a failed publication: have every process reload (raises RedisError)."""
        if self._owe_reset:
            self._script(keys=self.keys, args=[_ORIGIN, RESET, "", STREAM_LENGTH])
            self._owe_reset = False

    # -- following ----------------------------------------------------------------------

    def start(self) -> None:
        """Take the stream's current end as this process's position (sync, at start-up)."""
        import redis

        try:
            with self._client.pipeline(transaction=True) as pipe:
                pipe.xrevrange(self.keys[0], count=1)
                pipe.get(self.keys[1])
                newest, counter = pipe.execute()
        except redis.RedisError as exc:
            raise CoordinationUnavailable(CoordinationUnavailable.message) from exc
        self._set_position(newest, counter)

    def _set_position(self, newest: list[Any], counter: bytes | None) -> None:
        with self._lock:
            if newest:
                entry_id, fields = newest[0]
                self._last_id, self._seq = _text(entry_id), int(fields[b"seq"])
            else:
                self._last_id, self._seq = "0-0", int(counter or 0)

    async def follow(self) -> None:
        """Concurrent requests share one read: the next one sent after each of them began
        (a read already in flight may predate a publication the newcomer must see). So a
        process has at most one read in flight, on one Redis connection, however many
        requests it serves at once; redis-py refuses a 101st connection, which made a burst
        of requests answer 503, and a read per request cost ~0.2 ms of CPU each."""
        loop = asyncio.get_running_loop()
        if self._reader is not None and self._reader.get_loop() is not loop:
            self._next_read, self._reader = None, None  # a new event loop (tests)
        if self._next_read is None:
            self._next_read = loop.create_future()
            if self._reader is None or self._reader.done():
                self._reader = loop.create_task(self._read_for_waiters())
        await asyncio.shield(self._next_read)

    async def _read_for_waiters(self) -> None:
        while (waiting := self._next_read) is not None:
            self._next_read = None  # who arrives from now on waits for the read after this
            try:
                await self._read()
            except asyncio.CancelledError:
                waiting.cancel()
                raise
            except Exception as exc:
                waiting.set_exception(exc)
                waiting.exception()  # retrieved: its waiters may all have gone
            else:
                waiting.set_result(None)

    async def _read(self) -> None:
        import redis

        client = self._aclient()
        try:
            if self._owe_reset:
                await asyncio.to_thread(self.pay_reset)
            last_id = self._last_id
            if last_id is None:
                async with self._applying_lock():
                    if self._last_id is None:
                        await self._reload(client)
                return
            while True:
                found = await client.xread({self.keys[0]: last_id}, count=READ_BATCH)
                entries = found[0][1] if found else []
                if not entries:
                    return
                await self._apply(client, entries)
                if len(entries) < READ_BATCH or self._last_id is None:
                    return
                last_id = self._last_id
        except redis.RedisError as exc:
            self._last_id = None  # what was missed meanwhile is unknown: reload on return
            log.warning("lost Redis while following other workers' changes: %s", exc)
            raise CoordinationUnavailable(CoordinationUnavailable.message) from exc

    async def _apply(self, client: Any, entries: list[Any]) -> None:
        async with self._applying_lock():
            if self._last_id is None:
                await self._reload(client)
                return
            changes: list[tuple[str, str]] = []
            seq, last_id = self._seq, self._last_id
            for entry_id, fields in entries:
                number = int(fields[b"seq"])
                if number <= seq:
                    continue  # applied by a request that read the same entries
                if number != seq + 1:
                    log.warning("missed changes %d-%d of other workers: reloading", seq + 1, number)
                    await self._reload(client)
                    return
                seq, last_id = number, _text(entry_id)
                topic = _text(fields[b"topic"])
                if topic == RESET:
                    await self._reload(client)
                    return
                if _text(fields[b"origin"]) != _ORIGIN:
                    changes.append((topic, _text(fields[b"key"])))
            if changes:
                await asyncio.to_thread(_dispatch, changes)
            self._seq, self._last_id = seq, last_id

    async def _reload(self, client: Any) -> None:
        """Take the stream's end as the position, then have everything reloaded: what was
        committed before is in the reload, what is published after gets applied."""
        async with client.pipeline(transaction=True) as pipe:
            pipe.xrevrange(self.keys[0], count=1)
            pipe.get(self.keys[1])
            newest, counter = await pipe.execute()
        self._last_id = None
        await asyncio.to_thread(reset_all)
        self._set_position(newest, counter)
        log.info("reloaded the in-process caches after missing other workers' changes")

    def _applying_lock(self) -> asyncio.Lock:
        if self._applying is None:
            self._applying = asyncio.Lock()
        return self._applying

    def _aclient(self) -> Any:
        import redis.asyncio

        loop = asyncio.get_running_loop()
        client = self._aclients.get(id(loop))
        if client is None:
            client = redis.asyncio.Redis.from_url(
                self.url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
            )
            self._aclients = {id(loop): client}
            self._applying = None
        return client


def _dispatch(changes: list[tuple[str, str]]) -> None:
    for topic, key in changes:
        subscriber = _subscribers.get(topic)
        if subscriber is not None:
            subscriber.on_change(key)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


_current: Stream | None = None
_current_lock = threading.Lock()


def _stream() -> Stream | None:
    global _current
    if not follows_others():
        return None
    url, prefix = str(settings.REDIS_URL), str(settings.REDIS_KEY_PREFIX)
    stream = _current
    if stream is None or (stream.url, stream.prefix) != (url, prefix):
        with _current_lock:
            if _current is None or (_current.url, _current.prefix) != (url, prefix):
                _current = Stream(url, prefix)
            stream = _current
    return stream
