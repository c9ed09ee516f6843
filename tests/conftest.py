"""Shared fixtures: a fresh real database per test, an API client and personas.

`--database` chooses the backend the whole suite runs on: `duckdb` (default: a fresh file
per test) or `postgresql` (a fresh schema per test in the server at TEST_DATABASE_URL, or
in a throwaway server, see tests/services.py). Tests marked `duckdb_only` or
`postgresql_only` are deselected on the other backend.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from core.db import Database, close_database, database_from_settings, use_database
from generation.catalog import clear_cache
from generation.openrouter import reset_openrouter_client
from tests import services
from tests.oidc_stub.fixtures import _oidc_server, oidc  # noqa: F401  (shared fixtures)
from tests.openrouter_stub import StubServer
from tests.services import with_schema

STUB_KEY = "sk-or-v1-stub-secret-key-never-to-be-shown-0123456789"
BACKENDS = ("duckdb", "postgresql")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--database",
        choices=BACKENDS,
        default=os.environ.get("TEST_BACKEND") or "duckdb",
        help="the backend every test's database runs on (default: duckdb, or $TEST_BACKEND)",
    )


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def pytest_configure(config: pytest.Config) -> None:
    os.environ["TEST_BACKEND"] = config.getoption("--database")  # for servers tests start
    if config.getoption("--database") != "postgresql":
        return
    url, how = services.postgres_url()
    config.stash[_POSTGRES] = (url, how)
    if url is None and _in_ci():
        pytest.exit(f"CI needs the PostgreSQL suite, but {how}", returncode=1)
    if url is not None:
        os.environ["TEST_DATABASE_URL"] = url  # servers started by tests find it too


_POSTGRES = pytest.StashKey[tuple[str | None, str]]()


def pytest_report_header(config: pytest.Config) -> str:
    if config.getoption("--database") != "postgresql":
        return "database: duckdb (a fresh file per test)"
    return f"database: postgresql (a fresh schema per test) in {config.stash[_POSTGRES][1]}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    backend = config.getoption("--database")
    other = {"duckdb": "postgresql_only", "postgresql": "duckdb_only"}[backend]
    kept = [item for item in items if not item.get_closest_marker(other)]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept
    if backend == "postgresql" and config.stash[_POSTGRES][0] is None:
        reason = f"no PostgreSQL: {config.stash[_POSTGRES][1]}"
        for item in items:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def backend(pytestconfig: pytest.Config) -> str:
    """The backend of this run: duckdb or postgresql."""
    return str(pytestconfig.getoption("--database"))


@pytest.fixture(scope="session")
def postgres_server(pytestconfig: pytest.Config) -> Iterator[Any]:
    """An autocommit admin connection to the PostgreSQL the suite uses (for schemas)."""
    import psycopg

    url, how = pytestconfig.stash.get(_POSTGRES, None) or services.postgres_url()
    if url is None:
        pytest.skip(f"no PostgreSQL: {how}")
    with psycopg.connect(url, autocommit=True) as con:
        yield con, url


@pytest.fixture
def make_postgres_schema(postgres_server: Any) -> Iterator[Callable[[], str]]:
    """Makes fresh, empty schemas: each call gives the URL of a database living in a new
    one. All are dropped after the test."""
    con, url = postgres_server
    made: list[str] = []

    def make() -> str:
        schema = f"test_{uuid.uuid4().hex[:16]}"
        con.execute(f"CREATE SCHEMA {schema}")
        made.append(schema)
        return with_schema(url, schema)

    yield make
    for schema in made:
        con.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def postgres_schema(make_postgres_schema: Callable[[], str]) -> str:
    """The URL of a database in a fresh, empty schema (dropped after the test)."""
    return make_postgres_schema()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis the suite uses: TEST_REDIS_URL, or a throwaway server (tests/services.py).
    Missing Redis skips the test, except in CI, where it fails."""
    url, how = services.redis_url()
    if url is None:
        if _in_ci():
            pytest.fail(f"CI needs Redis, but {how}")
        pytest.skip(f"no Redis: {how}")
    return url


@pytest.fixture
def redis_key_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix no other test uses; its keys are deleted afterwards (never FLUSHDB: the
    Redis may be shared)."""
    prefix = f"aigateway-test-{uuid.uuid4().hex[:12]}:"
    yield prefix
    services.delete_redis_keys(redis_url, prefix)


@pytest.fixture(autouse=True)
def database(request: pytest.FixtureRequest, tmp_path: Path, settings: Any) -> Iterator[Database]:
    """Every test gets its own database (a DuckDB file or a PostgreSQL schema) and media."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.DUCKDB_PATH = str(tmp_path / "test.duckdb")
    if request.config.getoption("--database") == "postgresql":
        settings.DATABASE_URL = request.getfixturevalue("postgres_schema")
    else:
        settings.DATABASE_URL = ""
    db = database_from_settings().open()
    use_database(db)
    yield db
    close_database()  # a test may have put another one in its place (commands close theirs)
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


@pytest.fixture
def redis_cache(settings: Any, redis_url: str, redis_key_prefix: str) -> Any:
    """Django's cache in Redis under this test's own prefix, shared as by every worker of a
    deployment (REDIS_URL set too); gives the settings for further changes."""
    settings.REDIS_URL = redis_url
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": redis_key_prefix,
        }
    }
    return settings
