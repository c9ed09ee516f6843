"""`OidcServer`: the provider under uvicorn on a loopback port, in a background thread."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import uvicorn

from tests.openrouter_stub.server import uvicorn_config

from .app import OidcApp, create_app
from .state import OidcClient, OidcState, OidcUser

STARTUP_TIMEOUT = 10.0


class OidcServer:
    """The OpenID Connect stand-in on `127.0.0.1:<free port>`; its issuer is its base URL.

    >>> with OidcServer(redirect_uris=["http://127.0.0.1:8000/login/oidc/callback"]) as idp:
    ...     httpx.get(idp.discovery_url)
    """

    def __init__(
        self,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        redirect_uris: list[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.app: OidcApp = create_app(
            client_id=client_id, client_secret=client_secret, redirect_uris=redirect_uris
        )
        self._client_id = next(iter(self.app.state.clients))
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> OidcState:
        return self.app.state

    @property
    def issuer(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def discovery_url(self) -> str:
        return self.issuer + "/.well-known/openid-configuration"

    @property
    def client(self) -> OidcClient:
        """The client registered at start-up (what the gateway's settings should name)."""
        return self.state.clients[self._client_id]

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> OidcServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self.state.issuer = self.issuer
        server = uvicorn.Server(uvicorn_config(self.app, self.host, self.port))
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="oidc-stub", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise RuntimeError("OIDC stub did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=10)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    @contextlib.contextmanager
    def offline(self) -> Iterator[None]:
        """Nothing listens on the port meanwhile (connection refused); state is kept."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def __enter__(self) -> OidcServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- control (same effects as the /_oidc/ endpoints) -------------------------------
    def configure(self, **values: Any) -> None:
        """Switches and settings, e.g. `configure(bad_signature=True, groups_claim="roles")`."""
        self.state.configure(values)

    def set_users(self, users: list[OidcUser], current: str | None = None) -> None:
        self.state.set_users(users, current)

    def log_in_as(self, sub_or_email: str | None) -> None:
        """The user /authorize signs in when the request carries no login_hint."""
        self.state.configure({"current_user": sub_or_email})

    def register_client(
        self, client_id: str, client_secret: str, redirect_uris: list[str]
    ) -> OidcClient:
        client = OidcClient(client_id, client_secret, list(redirect_uris))
        self.state.register_client(client)
        return client

    def set_redirect_uris(self, redirect_uris: list[str]) -> None:
        """Point the start-up client at the gateway under test (its port is known late)."""
        self.client.redirect_uris = list(redirect_uris)

    def authorize_requests(self) -> list[dict[str, Any]]:
        """Query parameters of every /authorize request, oldest first."""
        return list(self.state.authorize_requests)

    def token_requests(self) -> list[dict[str, Any]]:
        """Form fields of every /token request (client_secret left out), with `auth_method`,
        `pkce_verified` and `outcome`."""
        return list(self.state.token_requests)

    def userinfo_requests(self) -> list[dict[str, Any]]:
        return list(self.state.userinfo_requests)

    def reset(self) -> None:
        """Default users and client, no switches, default settings, nothing recorded."""
        self.state.reset()
