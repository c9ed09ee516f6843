"""Minimal raw-ASGI plumbing for the stub: the request object, response types, errors."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_TYPE = b"application/json"
SSE_TYPE = b"text/event-stream"

_NO_BODY = object()


def dumps(payload: Any) -> bytes:
    """Compact JSON, the way OpenRouter sends it."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


# Reference §6: default message and `error_type` per status.
ERROR_DEFAULTS: dict[int, tuple[str, str | None]] = {
    400: ("Invalid request parameters", "invalid_request"),
    401: ("No auth credentials found", "authentication"),
    402: ("Insufficient credits. Add more using https://openrouter.ai/credits", "payment_required"),
    403: ("Only management keys can perform this operation", "permission_denied"),
    404: ("Resource not found", "not_found"),
    405: ("Method not allowed", None),
    408: ("Operation timed out. Please try again later.", None),
    413: ("Payload too large", "payload_too_large"),
    429: ("Rate limit exceeded", "rate_limit_exceeded"),
    500: ("Internal Server Error", "server"),
    502: ("Provider returned error", "provider_unavailable"),
    503: ("Service temporarily unavailable", "provider_overloaded"),
    524: ("Provider timed out", None),
    529: ("Provider overloaded", None),
}


def error_payload(
    status: int, message: str | None = None, metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Reference §6: `{"error": {"code", "message", "metadata"?}}`."""
    default_message, error_type = ERROR_DEFAULTS.get(status, ("Error", None))
    error: dict[str, Any] = {"code": status, "message": message or default_message}
    if metadata is not None:
        error["metadata"] = metadata
    elif error_type is not None:
        error["metadata"] = {"error_type": error_type}
    return {"error": error}


class ApiError(Exception):
    """Raised by handlers; rendered as an OpenRouter error response (reference §6)."""

    def __init__(
        self,
        status: int,
        message: str | None = None,
        *,
        metadata: dict[str, Any] | None = None,
        retry_after: float | None = None,
        payload: dict[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.payload = payload or error_payload(status, message, metadata)
        self.retry_after = retry_after
        super().__init__(self.payload["error"]["message"])


@dataclass(slots=True)
class Response:
    """A complete response sent in one body message."""

    status: int
    body: bytes = b""
    content_type: bytes = JSON_TYPE
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


@dataclass(slots=True)
class StreamResponse:
    """A response whose body is produced piece by piece (SSE).

    `on_disconnect(chunks_sent)` is called, and producing stops at once, when the client
    hangs up before the last chunk.
    """

    chunks: AsyncIterator[bytes]
    status: int = 200
    content_type: bytes = SSE_TYPE
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    on_disconnect: Callable[[int], None] | None = None


class DropConnection(Exception):
    """Raised to close the client's socket without (finishing) an answer."""


def json_response(
    payload: Any, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None
) -> Response:
    return Response(status=status, body=dumps(payload), headers=headers or [])


def error_response(error: ApiError) -> Response:
    """Reference §6; 429 and 503 always carry `Retry-After` (1 s unless a fault says more)."""
    headers: list[tuple[bytes, bytes]] = []
    if error.status in (429, 503) or error.retry_after is not None:
        retry_after = error.retry_after if error.retry_after is not None else 1
        headers.append((b"retry-after", _format_seconds(retry_after)))
    return json_response(error.payload, error.status, headers)


def _format_seconds(seconds: float) -> bytes:
    return str(math.ceil(seconds)).encode()  # HTTP's Retry-After takes whole seconds


@dataclass(slots=True)
class Request:
    """What a handler sees: parsed path, query, headers and (lazily) the JSON body."""

    method: str
    path: str
    query_string: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    path_params: dict[str, str] = field(default_factory=dict)
    _json: Any = _NO_BODY
    _query: dict[str, str] | None = None

    @property
    def query(self) -> dict[str, str]:
        if self._query is None:
            self._query = dict(parse_qsl(self.query_string, keep_blank_values=True))
        return self._query

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def json(self) -> Any:
        """The body as JSON; raises a 400 ApiError on malformed JSON."""
        if self._json is _NO_BODY:
            if not self.body:
                self._json = None
            else:
                try:
                    self._json = json.loads(self.body)
                except (ValueError, UnicodeDecodeError) as exc:
                    raise ApiError(400, f"Invalid JSON in request body: {exc}") from None
        return self._json

    def json_or_none(self) -> Any:
        """The body as JSON, or None when it is absent or malformed (for logging)."""
        try:
            return self.json()
        except ApiError:
            return None

    def json_object(self) -> dict[str, Any]:
        body = self.json()
        if not isinstance(body, dict):
            raise ApiError(400, "Request body must be a JSON object")
        return body

    def origin(self) -> str:
        """`http://host:port` as the client addressed us (for absolute URLs)."""
        host = self.header(b"host")
        return "http://" + (host.decode("latin-1") if host else "127.0.0.1")


async def read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def send_response(send: Send, response: Response) -> None:
    headers = [
        (b"content-type", response.content_type),
        (b"content-length", str(len(response.body)).encode()),
        *response.headers,
    ]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


async def send_stream(send: Send, receive: Receive, response: StreamResponse) -> None:
    """Send chunks as they are produced while watching for the client hanging up.

    uvicorn's `send` silently drops writes once the client is gone, so the producer is
    raced against `receive()` reporting `http.disconnect`: a hang-up cancels production.
    """
    headers = [
        (b"content-type", response.content_type),
        (b"cache-control", b"no-cache"),
        *response.headers,
    ]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    sent = 0

    async def produce() -> None:
        nonlocal sent
        async for chunk in response.chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent += 1

    producer = asyncio.ensure_future(produce())
    watcher = asyncio.ensure_future(_wait_for_disconnect(receive))
    try:
        await asyncio.wait({producer, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not producer.done():
            producer.cancel()
        watcher.cancel()
        await asyncio.gather(producer, watcher, return_exceptions=True)
        closer = getattr(response.chunks, "aclose", None)
        if closer is not None:
            await closer()
    if producer.cancelled():
        if response.on_disconnect is not None:
            response.on_disconnect(sent)
        return
    if isinstance(producer.exception(), DropConnection):
        await drop_connection(receive)
        return
    producer.result()
    await send({"type": "http.response.body", "body": b""})


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def drop_connection(receive: Receive) -> None:
    """Close the client's socket without (finishing) an answer.

    ASGI has no "abort" message, so this reaches for uvicorn's transport, which its
    `receive` callable is bound to; then it waits for the disconnect so uvicorn does
    not answer 500 on our behalf. Elsewhere it falls back to raising.
    """
    cycle = getattr(receive, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise DropConnection("cannot reach the transport to drop the connection")
    transport.close()
    try:
        async with asyncio.timeout(2):
            while (await receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        pass
