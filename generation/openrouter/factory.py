"""The process-wide OpenRouter client: one per event loop, built from Django settings."""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import asdict, dataclass

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from .client import DEFAULT_BASE_URL, OpenRouterClient


@dataclass(frozen=True)
class OpenRouterSettings:
    """The OPENROUTER_* settings, read when a client is needed, never at import time."""

    api_key: str
    base_url: str
    app_url: str
    app_title: str
    connect_timeout: float
    read_timeout: float
    stream_read_timeout: float
    max_retries: int
    max_connections: int

    @classmethod
    def from_django(cls) -> OpenRouterSettings:
        return cls(
            api_key=str(getattr(settings, "OPENROUTER_API_KEY", "") or ""),
            base_url=str(getattr(settings, "OPENROUTER_BASE_URL", "") or DEFAULT_BASE_URL),
            app_url=str(getattr(settings, "OPENROUTER_APP_URL", "") or ""),
            app_title=str(getattr(settings, "OPENROUTER_APP_TITLE", "aigateway") or ""),
            connect_timeout=float(getattr(settings, "OPENROUTER_CONNECT_TIMEOUT", 5.0)),
            read_timeout=float(getattr(settings, "OPENROUTER_READ_TIMEOUT", 120.0)),
            stream_read_timeout=float(getattr(settings, "OPENROUTER_STREAM_READ_TIMEOUT", 300.0)),
            max_retries=int(getattr(settings, "OPENROUTER_MAX_RETRIES", 2)),
            max_connections=int(getattr(settings, "OPENROUTER_MAX_CONNECTIONS", 4096)),
        )


# An httpx/aiohttp pool belongs to the loop it was first used on, so each loop gets its own
# client; the entry goes away with the loop.
_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, tuple[OpenRouterSettings, OpenRouterClient]
] = weakref.WeakKeyDictionary()
_closing: set[asyncio.Task[None]] = set()


# The settings as last read: reading them costs ~10 µs, on every upstream call otherwise.
# They change at run time only in tests, which Django tells (setting_changed).
_config: OpenRouterSettings | None = None


@receiver(setting_changed)
def _forget_config(*, setting: str, **kwargs: object) -> None:
    global _config
    if setting.startswith("OPENROUTER_"):
        _config = None


def get_openrouter_client() -> OpenRouterClient:
    """The shared client for the running loop; rebuilt when the settings changed."""
    global _config
    loop = asyncio.get_running_loop()
    config = _config or OpenRouterSettings.from_django()
    _config = config
    current = _clients.get(loop)
    if current is not None and current[0] == config:
        return current[1]
    client = OpenRouterClient(**asdict(config))
    _clients[loop] = (config, client)
    if current is not None:
        # Settings only change at run time in tests: close the old pool instead of leaking it.
        task = loop.create_task(current[1].aclose())
        _closing.add(task)
        task.add_done_callback(_closing.discard)
    return client


async def close_openrouter_client() -> None:
    """Close the running loop's client (ASGI lifespan shutdown)."""
    current = _clients.pop(asyncio.get_running_loop(), None)
    if current is not None:
        await current[1].aclose()


def reset_openrouter_client() -> None:
    """Forget every shared client (tests); the next get_openrouter_client() builds anew."""
    global _config
    _config = None
    _clients.clear()
