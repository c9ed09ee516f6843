"""A request's objects are freed the moment it ends, by reference counting: none of them is
left in a reference cycle for the garbage collector, whose passes hold the event loop for
as long as what they walk (decision 55).

The request goes through the project's ASGI application as uvicorn drives it: once the
response is complete, the next receive() says the client has disconnected.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections import Counter
from typing import Any

import pytest

pytestmark = pytest.mark.anyio

# Where the objects of a request come from. Not asyncio's transports: an upstream
# connection outlives requests, and an earlier test's loop may leave one behind. The
# stand-in runs in this process too, and its server's objects are not the gateway's.
GATEWAY_MODULES = ("django.", "rest_framework.", "httpx.", "aiohttp.client", "core.",
                   "generation.", "accounts.", "_asyncio")  # fmt: skip


async def asgi_chat(token: str, path: str, stream: bool) -> int:
    from aigateway.asgi import application

    body = json.dumps(
        {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}],
         "stream": stream}
    ).encode()  # fmt: skip
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(),
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "headers": [(b"host", b"localhost"), (b"authorization", f"Bearer {token}".encode()),
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    }  # fmt: skip
    complete = asyncio.Event()
    statuses: list[int] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await complete.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])
        elif not message.get("more_body", False):
            complete.set()

    await application(scope, receive, send)
    return statuses[0]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("path", ["/api/ai/chat", "/v1/chat/completions"])
async def test_a_chat_request_leaves_nothing_for_the_garbage_collector(alice, stub, path, stream):
    assert await asgi_chat(alice.access, path, stream) == 200  # caches fill, connections open
    while gc.collect():  # what earlier tests left, finalizers included
        pass
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds stays in gc.garbage
    try:
        for _ in range(3):
            assert await asgi_chat(alice.access, path, stream) == 200
        gc.collect()
        left = Counter(
            f"{type(o).__module__}.{type(o).__qualname__}"
            for o in gc.garbage
            if type(o).__module__.startswith(GATEWAY_MODULES)
        )
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert not left, left.most_common(10)
