"""Shared fixtures: a fresh real DuckDB file per test, an API client and personas."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from core.db import Database, use_database
from generation.catalog import clear_cache
from generation.openrouter import reset_openrouter_client
from tests.oidc_stub.fixtures import _oidc_server, oidc  # noqa: F401  (shared fixtures)
from tests.openrouter_stub import StubServer

STUB_KEY = "sk-or-v1-stub-secret-key-never-to-be-shown-0123456789"


@pytest.fixture(autouse=True)
def database(tmp_path: Path, settings: Any) -> Iterator[Database]:
    """Every test gets its own database file and media folder."""
    settings.DUCKDB_PATH = str(tmp_path / "test.duckdb")
    settings.MEDIA_ROOT = tmp_path / "media"
    db = Database(settings.DUCKDB_PATH).open()
    use_database(db)
    yield db
    use_database(None)
    db.close()


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Unit tests never reach the network; e2e tests talk to loopback servers they start."""
    if request.node.get_closest_marker("e2e"):
        return
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        if (
            isinstance(host, str)
            and host not in ("127.0.0.1", "::1", "localhost")
            and "/" not in host
        ):
            raise RuntimeError(f"unit tests must not open network connections (to {host})")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class ApiClient(Client):
    """Django's test client speaking JSON, optionally with a bearer token."""

    def __init__(self, token: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.token = token

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.token:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        return headers

    def call(
        self, method: str, path: str, data: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        kwargs: dict[str, Any] = {"headers": self._headers(headers)}
        if data is not None:
            kwargs["data"] = data
            kwargs["content_type"] = "application/json"
        return getattr(self, method.lower())(path, **kwargs)


@dataclass
class Persona:
    email: str
    password: str
    id: str
    access: str
    refresh: str
    client: ApiClient


PASSWORD = "correct horse battery staple"


def make_persona(email: str, *, admin: bool = False) -> Persona:
    anon = ApiClient()
    response = anon.call("POST", "/api/auth/register", {"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.content
    user_id = response.json()["id"]
    if admin:
        import asyncio
        from uuid import UUID

        from accounts import repository as repo
        from accounts.identity import get_directory
        from core.db import get_database

        directory = get_directory()

        def promote(tx: Any) -> None:
            updated = repo.update_user(tx, UUID(user_id), role="admin")
            assert updated is not None
            tx.on_commit(lambda: directory.put_user(updated))

        asyncio.run(get_database().awrite(promote))
    tokens = anon.call("POST", "/api/auth/login", {"email": email, "password": PASSWORD}).json()
    return Persona(
        email,
        PASSWORD,
        user_id,
        tokens["access_token"],
        tokens["refresh_token"],
        ApiClient(tokens["access_token"]),
    )


@pytest.fixture
def anon() -> ApiClient:
    return ApiClient()


@pytest.fixture
def alice() -> Persona:
    """An ordinary user."""
    return make_persona("alice@example.com")


@pytest.fixture
def mallory() -> Persona:
    """An outsider who must never see or touch anyone else's things."""
    return make_persona("mallory@example.com")


@pytest.fixture
def admin() -> Persona:
    return make_persona("admin@example.com", admin=True)


@pytest.fixture(scope="session")
def _stub_server() -> Iterator[StubServer]:
    with StubServer(api_key=STUB_KEY, video_seconds=0.3) as server:
        yield server


@pytest.fixture
def stub(_stub_server: StubServer, settings: Any) -> Iterator[StubServer]:
    """The project's OpenRouter stand-in, reset, with the gateway pointed at it."""
    _stub_server.reset()
    settings.OPENROUTER_BASE_URL = _stub_server.base_url
    settings.OPENROUTER_API_KEY = STUB_KEY
    settings.OPENROUTER_MAX_RETRIES = 1
    clear_cache()
    reset_openrouter_client()
    yield _stub_server
    clear_cache()
    reset_openrouter_client()
