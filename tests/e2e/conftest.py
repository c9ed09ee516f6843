"""End-to-end fixtures: the real gateway under uvicorn (Argon2, DEBUG off) on a loopback
port, with an admin made by `manage.py createadmin` before the server started."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.servers import GatewayServer

HERE = Path(__file__).resolve().parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "correct horse battery staple"
ADMIN_EMAIL = "root@example.com"
ADMIN_PASSWORD = "admin horse battery staple"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark everything under tests/e2e as e2e: the root conftest then allows loopback HTTP."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.e2e)


@dataclass(frozen=True)
class Account:
    email: str
    password: str
    id: str
    access: str
    refresh: str

    @property
    def auth(self) -> dict[str, str]:
        return bearer(self.access)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def log_in(http: httpx.Client, email: str, password: str) -> dict[str, str]:
    response = http.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    tokens: dict[str, str] = response.json()
    return tokens


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    """One server per test module; its database is a file of its own, not the test's."""
    yield from serve_with_admin(GatewayServer(tmp_path_factory.mktemp("gateway")))


@pytest.fixture
def http(gateway: GatewayServer) -> Iterator[httpx.Client]:
    with gateway.client() as client:
        yield client


@pytest.fixture(scope="module")
def admin(gateway: GatewayServer) -> Account:
    with gateway.client() as client:
        tokens = log_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)
        me = client.get("/api/users/me", headers=bearer(tokens["access_token"])).json()
    assert me["role"] == "admin"
    return Account(
        ADMIN_EMAIL, ADMIN_PASSWORD, me["id"], tokens["access_token"], tokens["refresh_token"]
    )


@pytest.fixture
def make_account(http: httpx.Client) -> Callable[..., Account]:
    """Register a fresh user with a unique email and log in."""

    def make(prefix: str = "user") -> Account:
        email = unique_email(prefix)
        response = http.post("/api/auth/register", json={"email": email, "password": PASSWORD})
        assert response.status_code == 201, response.text
        tokens = log_in(http, email, PASSWORD)
        return Account(
            email,
            PASSWORD,
            response.json()["id"],
            tokens["access_token"],
            tokens["refresh_token"],
        )

    return make


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's headless Chromium through Playwright, one per test module."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


def serve_with_admin(server: GatewayServer) -> Iterator[GatewayServer]:
    """For a module's server fixture: make the admin, then run."""
    server.create_admin(ADMIN_EMAIL, ADMIN_PASSWORD)
    with server:
        yield server


@pytest.fixture
def axe_core() -> None:
    """Skips a test that checks accessibility when axe-core is missing (fails in CI)."""
    from tests.e2e.browser import require_axe_core

    require_axe_core()
