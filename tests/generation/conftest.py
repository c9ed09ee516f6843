"""Generation tests talk to the project's OpenRouter stand-in on a loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from generation.catalog import clear_cache
from generation.openrouter import reset_openrouter_client
from tests.openrouter_stub import StubServer

STUB_KEY = "sk-or-v1-stub-secret-key-never-to-be-shown-0123456789"


@pytest.fixture(scope="session")
def _stub_server() -> Iterator[StubServer]:
    with StubServer(api_key=STUB_KEY, video_seconds=0.3) as server:
        yield server


@pytest.fixture
def stub(_stub_server: StubServer, settings: Any) -> Iterator[StubServer]:
    """The stand-in, reset, with the gateway pointed at it."""
    _stub_server.reset()
    settings.OPENROUTER_BASE_URL = _stub_server.base_url
    settings.OPENROUTER_API_KEY = STUB_KEY
    settings.OPENROUTER_MAX_RETRIES = 1
    clear_cache()
    reset_openrouter_client()
    yield _stub_server
    clear_cache()
    reset_openrouter_client()
