"""A local, synthetic stand-in for OpenRouter's HTTP API ("the stub").

This is a test and development tool only: no production code path imports it. It speaks
OpenRouter's wire format as documented in `/work/shared/reference/openrouter-api.md`
(cited below as "reference §N") under `/api/v1`, answers with obviously synthetic content
("[stub] echo: ..."), tiny generated PNGs and a bundled two-second clip, and lets a test
inject faults through `/_stub/*` or the `StubServer` methods.

Run it standalone::

    python -m tests.openrouter_stub --host 127.0.0.1 --port 8099 --api-key KEY

or inside a test::

    with StubServer(api_key="k", video_seconds=0.3) as stub:
        httpx.post(stub.base_url + "/chat/completions", ...)
"""

from .app import StubApp, create_app
from .server import StubServer
from .state import FaultRule, Generation, StubState, VideoJob

__all__ = [
    "FaultRule",
    "Generation",
    "StubApp",
    "StubServer",
    "StubState",
    "VideoJob",
    "create_app",
]
