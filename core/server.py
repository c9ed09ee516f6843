"""uvicorn's HTTP protocol with the two connection guards uvicorn lacks.

uvicorn arms its keep-alive timer only after a response, so a socket that connects and
never sends a request, or sends its headers a byte at a time, stays open forever; and
`limit_concurrency` answers 503 to *requests* past the limit but keeps accepting
connections. 20,000 idle sockets exhausted the process's file descriptors and /healthz
failed. This protocol:

- closes a connection that has not finished a request's headers `header_timeout`
  seconds after it opened or after its previous response (a streaming response, SSE or a
  long download, is never cut: its headers were complete long ago);
- closes a connection on arrival while `limit_concurrency` connections are open, so
  sockets a client opens cost the process nothing for longer than an accept.
"""

from __future__ import annotations

import asyncio
from typing import Any

from django.conf import settings
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"retry-after: 1\r\nconnection: close\r\ncontent-length: 19\r\n\r\nService Unavailable"
)


class GuardedHttpProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a request-header deadline (settings.SERVER_HEADER_TIMEOUT) and
    a cap on open connections.

    The deadline is read from the settings rather than baked into a class made for it:
    uvicorn spawns its worker processes with the config pickled, and a class pickles as its
    import path.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = float(settings.SERVER_HEADER_TIMEOUT)
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limit = self.limit_concurrency
        if limit is not None and len(self.connections) > limit:
            transport.write(BUSY)
            transport.close()
            return
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._headers_arrived()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._headers_arrived()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # uvicorn armed its keep-alive timer: the connection is idle until the next request,
        # whose headers must then arrive in time too.
        if self.timeout_keep_alive_task is not None:
            self._await_headers()

    def _await_headers(self) -> None:
        self._headers_arrived()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_late)

    def _headers_arrived(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_late(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()
