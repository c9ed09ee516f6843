"""The OpenRouter client against httpx.MockTransport: wire format, error mapping, retries,
URL safety and secrecy of the key. Bodies follow shared/reference/openrouter-api.md."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import aiohttp
import httpx
import pytest
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import map_aiohttp_exceptions

from generation.openrouter import (
    ContentDelta,
    OpenRouterClient,
    OpenRouterError,
    StreamEnd,
    StreamEvent,
    get_openrouter_client,
    reset_openrouter_client,
)
from generation.openrouter.api_base import ApiBase
from generation.openrouter.errors import parse_retry_after
from generation.openrouter.sse import Comment, EventDataDecoder

KEY = "sk-or-v1-0123456789abcdef-test-secret"
BASE = "http://openrouter.test/api/v1"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16

Answer = Callable[[httpx.Request], httpx.Response]


class FakeOpenRouter:
    """Plays queued answers in order (the last one repeats) and records every request."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(request)

    @property
    def calls(self) -> int:
        return len(self.requests)

    def body(self, index: int = 0) -> Any:
        return json.loads(self.requests[index].content)


def reply(status: int = 200, body: Any = None, headers: dict[str, str] | None = None) -> Answer:
    def answer(request: httpx.Request) -> httpx.Response:
        if isinstance(body, bytes):
            return httpx.Response(status, content=body, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return answer


def fail(make_exc: Callable[[httpx.Request], Exception]) -> Answer:
    def answer(request: httpx.Request) -> httpx.Response:
        raise make_exc(request)

    return answer


def error_body(code: int, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def client_for(fake: FakeOpenRouter, **options: Any) -> OpenRouterClient:
    settings: dict[str, Any] = {
        "api_key": KEY,
        "base_url": BASE,
        "app_url": "https://gateway.example",
        "retry_backoff": 0.001,
        "transport": httpx.MockTransport(fake),
    }
    return OpenRouterClient(**(settings | options))


def chat_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "id": "gen-abc",
        "provider": "OpenAI",
        "model": "openai/gpt-4o",
        "object": "chat.completion",
        "created": 1790000001,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "native_finish_reason": "stop",
                "message": {"role": "assistant", "content": "Hello there!", "refusal": None},
            }
        ],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 4,
            "total_tokens": 14,
            "cost": 0.00014,
            "is_byok": False,
        },
    }
    return body | overrides


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def job(status: str = "pending", **extra: Any) -> dict[str, Any]:
    return {
        "id": "job-abc123",
        "polling_url": "/api/v1/videos/job-abc123",
        "status": status,
    } | extra


# --- models (reference §2, §5) -------------------------------------------------------------

MODELS = {
    "data": [
        {
            "id": "openai/gpt-4o",
            "name": "GPT-4o",
            "context_length": 128000,
            "architecture": {"input_modalities": ["text", "image"], "output_modalities": ["text"]},
            "pricing": {"prompt": "0.0000025", "completion": "0.00001", "discount": 0},
            "supported_parameters": ["temperature", "max_tokens"],
        },
        {
            "id": "openai/gpt-5-image-mini",
            "name": "GPT-5 Image Mini",
            "context_length": 400000,
            "architecture": {
                "input_modalities": ["text", "image"],
                "output_modalities": ["image", "text"],
            },
            "pricing": {"prompt": "0.0000025", "overrides": [{"x": 1}]},
        },
        {
            "id": "black-forest-labs/flux.2-klein-4b",
            "name": "FLUX.2 klein",
            "context_length": None,
            "architecture": {"input_modalities": ["text"], "output_modalities": ["image"]},
            "pricing": {"image": "0.014"},
        },
        {
            "id": "openai/text-embedding-3-small",
            "name": "Embeddings",
            "context_length": 8192,
            "architecture": {"input_modalities": ["text"], "output_modalities": ["embeddings"]},
            "pricing": {"prompt": "0.00000002"},
        },
    ],
    "total_count": 4,
    "links": {"next": None},
}

VIDEO_MODELS = {
    "data": [
        {
            "id": "google/veo-3.1-fast",
            "name": "Veo 3.1 Fast",
            "supported_durations": [4, 6, 8],
            "supported_frame_images": ["first_frame", "last_frame"],
            "pricing_skus": {"duration_seconds_with_audio": "0.12"},
        },
        {"id": "openai/sora-2-pro", "name": "Sora 2 Pro", "supported_frame_images": None},
    ]
}


@pytest.mark.anyio
async def test_list_models_asks_for_all_output_modalities_with_attribution() -> None:
    fake = FakeOpenRouter(reply(200, MODELS), reply(200, {"data": []}))
    await client_for(fake).list_models()
    request = fake.requests[0]
    assert request.method == "GET"
    assert str(request.url) == f"{BASE}/models?output_modalities=all"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["X-OpenRouter-Title"] == "aigateway"
    assert request.headers["HTTP-Referer"] == "https://gateway.example"


@pytest.mark.anyio
async def test_list_models_classifies_kinds_with_embeddings_as_their_own() -> None:
    fake = FakeOpenRouter(reply(200, MODELS), reply(404, error_body(404, "Not Found")))
    models = {model.id: model for model in await client_for(fake).list_models()}
    assert {k: m.kind for k, m in models.items()} == {
        "openai/gpt-4o": "text",
        "openai/gpt-5-image-mini": "image",
        "black-forest-labs/flux.2-klein-4b": "image",
        "openai/text-embedding-3-small": "embedding",
    }
    gpt = models["openai/gpt-4o"]
    assert gpt.name == "GPT-4o"
    assert gpt.context_length == 128000
    assert gpt.pricing == {"prompt": "0.0000025", "completion": "0.00001", "discount": "0"}
    assert gpt.input_modalities == ("text", "image")
    assert gpt.supported_parameters == ("temperature", "max_tokens")
    assert models["openai/gpt-5-image-mini"].pricing == {"prompt": "0.0000025"}


@pytest.mark.anyio
async def test_list_models_merges_video_models_when_models_has_none() -> None:
    fake = FakeOpenRouter(reply(200, MODELS), reply(200, VIDEO_MODELS))
    models = {model.id: model for model in await client_for(fake).list_models()}
    assert fake.requests[1].url.path == "/api/v1/videos/models"
    veo = models["google/veo-3.1-fast"]
    assert veo.kind == "video"
    assert veo.output_modalities == ("video",)
    assert veo.input_modalities == ("text", "image")
    assert veo.pricing == {"duration_seconds_with_audio": "0.12"}
    assert models["openai/sora-2-pro"].input_modalities == ("text",)


@pytest.mark.anyio
async def test_list_models_takes_video_prices_from_the_video_listing() -> None:
    veo = {"id": "google/veo-3.1", "name": "Veo", "architecture": {"output_modalities": ["video"]}}
    listed = {"id": "google/veo-3.1", "name": "Veo 3.1", "supported_durations": [4, 8],
              "pricing_skus": {"duration_seconds_with_audio": "0.40"}}  # fmt: skip
    fake = FakeOpenRouter(
        reply(200, {"data": [*MODELS["data"], veo]}), reply(200, {"data": [listed]})
    )
    models = await client_for(fake).list_models()
    assert fake.calls == 2
    [video] = [m for m in models if m.kind == "video"]
    assert (video.id, video.durations) == ("google/veo-3.1", (4, 8))
    assert video.pricing == {"duration_seconds_with_audio": "0.40"}


@pytest.mark.anyio
async def test_list_models_accepts_a_plain_openai_compatible_listing() -> None:
    ollama = {"object": "list", "data": [{"id": "llama3.2", "object": "model", "owned_by": "me"}]}
    fake = FakeOpenRouter(reply(200, ollama), reply(404, b"404 page not found"))
    [model] = await client_for(fake).list_models()
    assert (model.id, model.name, model.kind, model.context_length) == (
        "llama3.2",
        "llama3.2",
        "text",
        None,
    )


@pytest.mark.anyio
async def test_list_models_without_data_array_is_a_bad_answer() -> None:
    fake = FakeOpenRouter(reply(200, {"models": []}))
    with pytest.raises(OpenRouterError) as caught:
        await client_for(fake).list_models()
    assert (caught.value.status, caught.value.code) == (502, "upstream_error")


@pytest.mark.anyio
@pytest.mark.parametrize("status", [200, 500])
async def test_an_answer_nested_too_deeply_is_a_bad_answer_not_a_crash(status: int) -> None:
    deep = b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    fake = FakeOpenRouter(reply(status, deep))
    with pytest.raises(OpenRouterError) as caught:
        await client_for(fake, max_retries=0).list_models()
    assert caught.value.status == 502


@pytest.mark.anyio
@pytest.mark.parametrize("declared", ["²", "9" * 5000, "-1"])
async def test_a_nonsense_content_length_from_upstream_is_not_a_crash(declared: str) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        body = json.dumps({"data": MODELS["data"][:1]}).encode()
        return httpx.Response(
            200, content=body, headers=[(b"content-length", declared.encode("latin-1"))]
        )

    fake = FakeOpenRouter(answer, reply(200, {"data": []}))
    models = await client_for(fake, max_retries=0).list_models()
    assert [m.id for m in models] == ["openai/gpt-4o"]


# --- retries -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_list_models_retries_a_5xx_then_succeeds() -> None:
    fake = FakeOpenRouter(
        reply(503, error_body(503, "Service temporarily unavailable")),
        reply(200, {"data": MODELS["data"][:1]}),
        reply(404, error_body(404, "Not Found")),
    )
    models = await client_for(fake).list_models()
    assert [m.id for m in models] == ["openai/gpt-4o"]
    assert [r.url.path for r in fake.requests] == ["/api/v1/models"] * 2 + ["/api/v1/videos/models"]


@pytest.mark.anyio
async def test_retries_honour_a_short_retry_after() -> None:
    fake = FakeOpenRouter(
        reply(429, error_body(429, "Rate limit exceeded"), {"Retry-After": "0"}),
        reply(200, job("in_progress")),
    )
    result = await client_for(fake).get_video("job-abc123")
    assert result.status == "in_progress"
    assert fake.calls == 2


@pytest.mark.anyio
async def test_retries_stop_after_max_retries() -> None:
    fake = FakeOpenRouter(fail(lambda request: httpx.ConnectError("refused", request=request)))
    with pytest.raises(OpenRouterError) as caught:
        await client_for(fake, max_retries=2).list_models()
    assert fake.calls == 3
    assert (caught.value.status, caught.value.code) == (502, "upstream_unavailable")


@pytest.mark.anyio
async def test_a_long_retry_after_is_passed_on_instead_of_waited_for() -> None:
    fake = FakeOpenRouter(reply(429, error_body(429, "Rate limit exceeded"), {"Retry-After": "60"}))
    with pytest.raises(OpenRouterError) as caught:
        await client_for(fake, max_retry_wait=1.0).list_models()
    assert fake.calls == 1
    assert (caught.value.status, caught.value.retry_after) == (429, 60)
    assert caught.value.headers == {"Retry-After": "60"}


@pytest.mark.anyio
async def test_client_errors_are_not_retried_even_for_reads() -> None:
    fake = FakeOpenRouter(reply(404, error_body(404, "Job not found")))
    with pytest.raises(OpenRouterError) as caught:
        await client_for(fake).get_video("job-gone")
    assert fake.calls == 1
    assert (caught.value.status, caught.value.code) == (404, "upstream_not_found")


GENERATIONS: list[tuple[str, Callable[[OpenRouterClient], Any]]] = [
    ("chat", lambda c: c.chat({"model": "m", "messages": []}, user="u")),
    ("image_via_chat", lambda c: c.generate_image_via_chat("m", "a cat", user="u")),
    ("images", lambda c: c.generate_images({"model": "m", "prompt": "a cat"}, user="u")),
    ("create_video", lambda c: c.create_video({"model": "m", "prompt": "a cat"}, user="u")),
]

RETRYABLE_FAILURES: list[tuple[str, Answer]] = [
    ("503", reply(503, error_body(503, "Service temporarily unavailable"))),
    ("429", reply(429, error_body(429, "Rate limit exceeded"), {"Retry-After": "0"})),
    ("connect", fail(lambda request: httpx.ConnectError("refused", request=request))),
    ("timeout", fail(lambda request: httpx.ReadTimeout("slow", request=request))),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("name", "call"), GENERATIONS, ids=[g[0] for g in GENERATIONS])
@pytest.mark.parametrize(
    ("failure", "answer"), RETRYABLE_FAILURES, ids=[f[0] for f in RETRYABLE_FAILURES]
)
async def test_generations_are_never_retried(
    name: str, call: Callable[[OpenRouterClient], Any], failure: str, answer: Answer
) -> None:
    fake = FakeOpenRouter(answer, reply(200, chat_body()))
    with pytest.raises(OpenRouterError):
        await call(client_for(fake, max_retries=5))
    assert fake.calls == 1


# --- error mapping (SPEC §2, reference §6) -------------------------------------------------

# upstream status, what OpenRouter said, the status and code we answer, text our message keeps
STATUS_CASES: list[tuple[int, str | bytes | dict[str, Any], int, str, str]] = [
    (429, "Rate limit exceeded", 429, "upstream_rate_limited", "Rate limit exceeded"),
    (500, "Internal Server Error", 502, "upstream_unavailable", "HTTP 500"),
    (502, "Provider returned error", 502, "upstream_unavailable", "Provider returned error"),
    (503, "Service temporarily unavailable", 502, "upstream_unavailable", "HTTP 503"),
    (502, b"<html><body>Bad gateway</body></html>", 502, "upstream_unavailable", "HTTP 502"),
    (402, "Insufficient credits.", 502, "upstream_payment_required", "Insufficient credits"),
    (400, "foo/bar is not a valid model ID", 400, "upstream_rejected", "not a valid model ID"),
    (404, "No endpoints found that support …", 400, "upstream_rejected", "No endpoints found"),
    (401, "No auth credentials found", 502, "upstream_auth_failed", "OpenRouter key was refused"),
    (403, "Only management keys can …", 502, "upstream_auth_failed", "OpenRouter key was refused"),
    (408, "Operation timed out.", 504, "upstream_timeout", "in time"),
    (524, b"", 504, "upstream_timeout", "in time"),
    (413, "Payload too large", 413, "upstream_payload_too_large", "too large"),
    (409, {"error": "conflict"}, 502, "upstream_error", "HTTP 409: conflict"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("upstream", "said", "status", "code", "says"),
    STATUS_CASES,
    ids=[f"{case[0]}-{case[3]}" for case in STATUS_CASES],
)
async def test_upstream_statuses_map_to_the_error_shape(
    upstream: int, said: str | bytes | dict[str, Any], status: int, code: str, says: str
) -> None:
    body = error_body(upstream, said) if isinstance(said, str) else said
    fake = FakeOpenRouter(reply(upstream, body))
    with pytest.raises(OpenRouterError) as caught:
        await client_for(fake).chat({"model": "foo/bar", "messages": []}, user="u")
    error = caught.value
    assert (error.status, error.code, error.upstream_status) == (status, code, upstream)
    assert says in error.message
    assert "<html" not in error.message
    assert isinstance(error.latency_ms, int)


@pytest.mark.anyio
async def test_moderation_is_a_400_naming_the_reasons() -> None:
    metadata = {"reasons": ["violence", "hate"], "flagged_input": "...", "provider_name": "OpenAI"}
    fake = FakeOpenRouter(reply(403, error_body(403, "Input was flagged", metadata=metadata)))
    with pytest.raises(OpenRouterError) as caught:
        await client_for(fake).chat({"messages": []}, user="u")
    assert (caught.value.status, caught.value.code) == (400, "upstream_moderation")
    assert "violence, hate" in caught.value.message


@pytest.mark.anyio
async def test_rate_limit_passes_retry_after_on() -> None:
    fake = FakeOpenRouter(reply(429, error_body(429, "Rate limit exceeded"), {"Retry-After": "7"}))
    with pytest.raises(OpenRouterError) as caught:
        await client_for(fake).chat({"messages": []}, user="u")
    assert (caught.value.retry_after, caught.value.headers) == (7, {"Retry-After": "7"})


@pytest.mark.anyio
async def test_rate_limit_without_retry_after_suggests_five_seconds() -> None:
    fake = FakeOpenRouter(reply(429, error_body(429, "Rate limit exceeded")))
    with pytest.raises(OpenRouterError) as caught:
        await client_for(fake).chat({"messages": []}, user="u")
    assert caught.value.retry_after == 5
    assert caught.value.headers == {"Retry-After": "5"}


@pytest.mark.anyio
async def test_auth_failures_never_blame_the_end_user() -> None:
    fake = FakeOpenRouter(reply(401, error_body(401, "User not found.")))
    with pytest.raises(OpenRouterError) as caught:
        await client_for(fake).chat({"messages": []}, user="u")
    assert caught.value.status == 502
    assert "OPENROUTER_API_KEY" in caught.value.message


TRANSPORT_CASES: list[tuple[str, Callable[[httpx.Request], Exception], int, str]] = [
    (
        "connect-error",
        lambda r: httpx.ConnectError("refused", request=r),
        502,
        "upstream_unavailable",
    ),
    ("read-error", lambda r: httpx.ReadError("reset", request=r), 502, "upstream_unavailable"),
    ("read-timeout", lambda r: httpx.ReadTimeout("slow", request=r), 504, "upstream_timeout"),
    ("connect-timeout", lambda r: httpx.ConnectTimeout("slow", request=r), 504, "upstream_timeout"),
    ("pool-timeout", lambda r: httpx.PoolTimeout("busy", request=r), 504, "upstream_timeout"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "make_exc", "status", "code"), TRANSPORT_CASES, ids=[c[0] for c in TRANSPORT_CASES]
)
async def test_transport_failures_map_to_502_or_504(
    name: str, make_exc: Callable[[httpx.Request], Exception], status: int, code: str
) -> None:
    fake = FakeOpenRouter(fail(make_exc))
    with pytest.raises(OpenRouterError) as caught:
        await client_for(fake).chat({"messages": []}, user="u")
    assert (caught.value.status, caught.value.code) == (status, code)


def aiohttp_failure(error: Exception) -> Answer:
    """Raise what httpx-aiohttp raises for an aiohttp error, using its own mapping."""

    def answer(request: httpx.Request) -> httpx.Response:
        with map_aiohttp_exceptions():
            raise error
        raise AssertionError("unreachable")

    return answer


@pytest.mark.anyio
async def test_connection_failures_labelled_timeouts_by_httpx_aiohttp_are_502() -> None:
    # httpx-aiohttp turns every aiohttp.ClientConnectionError into httpx.ConnectTimeout.
    fake = FakeOpenRouter(aiohttp_failure(aiohttp.ServerDisconnectedError()))
    with pytest.raises(OpenRouterError) as caught:
        await client_for(fake, max_retries=0).chat({"messages": []}, user="u")
    assert (caught.value.status, caught.value.code) == (502, "upstream_unavailable")


@pytest.mark.anyio
async def test_aiohttp_socket_timeouts_are_504() -> None:
    fake = FakeOpenRouter(aiohttp_failure(aiohttp.SocketTimeoutError("slow")))
    with pytest.raises(OpenRouterError) as caught:
        await client_for(fake).chat({"messages": []}, user="u")
    assert (caught.value.status, caught.value.code) == (504, "upstream_timeout")


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


# --- configuration --------------------------------------------------------------------------

EVERY_CALL: list[tuple[str, Callable[[OpenRouterClient], Any]]] = [
    *GENERATIONS,
    ("list_models", lambda c: c.list_models()),
    ("get_video", lambda c: c.get_video("job-abc123")),
    ("get_video_url", lambda c: c.get_video("/api/v1/videos/job-abc123")),
    ("download_video", lambda c: c.download_video("job-abc123")),
    ("stream_chat", lambda c: collect(c.stream_chat({"messages": []}, user="u"))),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("name", "call"), EVERY_CALL, ids=[c[0] for c in EVERY_CALL])
async def test_without_api_key_every_call_is_503_without_a_request(
    name: str, call: Callable[[OpenRouterClient], Any]
) -> None:
    fake = FakeOpenRouter(reply(200, chat_body()))
    with pytest.raises(OpenRouterError) as caught:
        await call(client_for(fake, api_key="  "))
    assert (caught.value.status, caught.value.code) == (503, "upstream_not_configured")
    assert "OPENROUTER_API_KEY" in caught.value.message
    assert fake.calls == 0


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("base_url", "ftp://openrouter.test/api", "OPENROUTER_BASE_URL"),
        ("base_url", "not a url", "OPENROUTER_BASE_URL"),
        ("app_title", "Gateway\r\nX-Evil: 1", "OPENROUTER_APP_TITLE"),
        ("api_key", "sk-or with space", "OPENROUTER_API_KEY"),
    ],
)
async def test_bad_configuration_is_503_naming_the_setting(
    option: str, value: str, named: str
) -> None:
    fake = FakeOpenRouter(reply(200, chat_body()))
    with pytest.raises(OpenRouterError) as caught:
        await client_for(fake, **{option: value}).chat({"messages": []}, user="u")
    assert (caught.value.status, caught.value.code) == (503, "upstream_not_configured")
    assert named in caught.value.message
    assert "sk-or with space" not in caught.value.message
    assert fake.calls == 0


@pytest.mark.anyio
async def test_no_referer_header_when_app_url_is_empty() -> None:
    fake = FakeOpenRouter(reply(200, chat_body()))
    await client_for(fake, app_url="", app_title="My Gateway").chat({"messages": []}, user="u")
    assert "HTTP-Referer" not in fake.requests[0].headers
    assert fake.requests[0].headers["X-OpenRouter-Title"] == "My Gateway"


def test_production_client_uses_the_aiohttp_transport_with_a_large_pool() -> None:
    client = OpenRouterClient(api_key=KEY, max_connections=4096)
    transport = client._http._transport
    assert isinstance(transport, AiohttpTransport)
    assert transport.limits.max_connections == 4096
    assert client._timeout.read == 120.0 and client._stream_timeout.read == 300.0


# --- secrecy of the key ----------------------------------------------------------------------

LEAKY_ANSWERS: list[Answer] = [
    reply(401, error_body(401, f"Incorrect API key provided: {KEY}")),
    reply(400, error_body(400, f"bad request from key {KEY}")),
    reply(200, chat_body(choices=[{"finish_reason": "error", "error": {"message": KEY}}])),
    fail(lambda request: httpx.ConnectError("refused", request=request)),
    reply(200, b"not json"),
]


@pytest.mark.anyio
@pytest.mark.parametrize("answer", LEAKY_ANSWERS)
async def test_the_key_never_appears_in_errors_or_logs(
    answer: Answer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeOpenRouter(answer)
    client = client_for(fake)
    with pytest.raises(OpenRouterError) as caught:
        await client.chat({"messages": []}, user="u")
    error = caught.value
    for text in (str(error), repr(error), error.message, json.dumps(error.as_dict()), repr(client)):
        assert KEY not in text
    assert KEY not in caplog.text
    # No httpx exception (which holds the request and its headers) is chained.
    assert error.__cause__ is None and error.__context__ is None


# --- chat (reference §3) ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_chat_returns_text_model_usage_and_latency() -> None:
    fake = FakeOpenRouter(reply(200, chat_body(), {"X-Generation-Id": "gen-header"}))
    result = await client_for(fake).chat(
        {"model": "openai/gpt-4o", "messages": [], "stream": True}, user="u"
    )
    assert fake.body() == {
        "model": "openai/gpt-4o",
        "messages": [],
        "stream": False,
        "user": "u",
    }
    assert fake.requests[0].url == f"{BASE}/chat/completions"
    assert result.text == "Hello there!"
    assert result.model == "openai/gpt-4o"
    assert result.generation_id == "gen-header"
    assert result.finish_reason == "stop"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (10, 4)
    assert result.usage.cost == pytest.approx(0.00014)
    assert result.images == ()
    assert isinstance(result.latency_ms, int) and result.latency_ms >= 0


@pytest.mark.anyio
async def test_chat_takes_the_generation_id_from_the_body_without_header() -> None:
    fake = FakeOpenRouter(reply(200, chat_body(usage=None)))
    result = await client_for(fake).chat({"messages": []}, user="u")
    assert result.generation_id == "gen-abc"
    assert (result.usage.prompt_tokens, result.usage.cost) == (0, None)


@pytest.mark.anyio
async def test_chat_finish_reason_error_raises_with_the_provider_message() -> None:
    choice = {
        "index": 0,
        "finish_reason": "error",
        "message": {"role": "assistant", "content": ""},
        "error": {"code": 502, "message": "Provider crashed", "metadata": {"error_type": "x"}},
    }
    fake = FakeOpenRouter(reply(200, chat_body(choices=[choice])))
    with pytest.raises(OpenRouterError) as caught:
        await client_for(fake).chat({"messages": []}, user="u")
    assert (caught.value.status, caught.value.code) == (502, "upstream_error")
    assert "Provider crashed" in caught.value.message
    assert isinstance(caught.value.latency_ms, int)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "body",
    [chat_body(choices=[]), b"<html>oops</html>", b"[1, 2]"],
    ids=["no-choices", "html", "list"],
)
async def test_chat_with_an_unreadable_answer_is_502(body: Any) -> None:
    fake = FakeOpenRouter(reply(200, body))
    with pytest.raises(OpenRouterError) as caught:
        await client_for(fake).chat({"messages": []}, user="u")
    assert (caught.value.status, caught.value.code) == (502, "upstream_error")


# --- streaming (reference §3 "Streaming") -------------------------------------------------------


class ChunkStream(httpx.AsyncByteStream):
    """A response body delivered in the given pieces, then optionally a failure."""

    def __init__(self, chunks: Sequence[bytes], then: Exception | None = None) -> None:
        self.chunks = chunks
        self.then = then
        self.sent = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.sent += 1
            yield chunk
        if self.then is not None:
            raise self.then

    async def aclose(self) -> None:
        self.closed = True


def sse(stream: ChunkStream, headers: dict[str, str] | None = None) -> Answer:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"Content-Type": "text/event-stream", **(headers or {})}, stream=stream
        )

    return answer


def event(payload: dict[str, Any] | str) -> bytes:
    # ensure_ascii=False puts raw UTF-8 on the wire, so reads can split a character.
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n".encode()


def delta(text: str, finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "gen-stream",
        "provider": "OpenAI",
        "model": "openai/gpt-4o",
        "object": "chat.completion.chunk",
        "created": 1790000001,
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish_reason}],
    }


USAGE_CHUNK = {
    "id": "gen-stream",
    "model": "openai/gpt-4o",
    "object": "chat.completion.chunk",
    "choices": [],
    "usage": {"prompt_tokens": 12, "completion_tokens": 3, "cost": 0.0002},
}


async def collect(events: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    return [item async for item in events]


@pytest.mark.anyio
async def test_stream_parses_keep_alives_split_reads_usage_and_done() -> None:
    wire = (
        b": OPENROUTER PROCESSING\n\n"
        + event(delta("Hel"))
        + b": OPENROUTER PROCESSING\r\n\r\n"
        + event(delta("lo été"))
        + event(delta("!", "stop"))
        + event(USAGE_CHUNK)
        + b"data: [DONE]\n\n"
    )
    # Cut the wire into 7-byte reads: splits lines, "data:" and a UTF-8 character.
    chunks = [wire[i : i + 7] for i in range(0, len(wire), 7)]
    fake = FakeOpenRouter(sse(ChunkStream(chunks), {"X-Generation-Id": "gen-header"}))
    events = await collect(
        client_for(fake).stream_chat({"model": "openai/gpt-4o", "messages": []}, user="u")
    )
    assert fake.body()["stream"] is True
    assert events[:-1] == [ContentDelta("Hel"), ContentDelta("lo été"), ContentDelta("!")]
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert (end.text, end.model, end.generation_id, end.finish_reason) == (
        "Hello été!",
        "openai/gpt-4o",
        "gen-header",
        "stop",
    )
    assert end.usage is not None
    assert (end.usage.prompt_tokens, end.usage.completion_tokens) == (12, 3)
    assert end.usage.cost == pytest.approx(0.0002)


@pytest.mark.anyio
async def test_stream_joins_multi_line_data_and_yields_streamed_images() -> None:
    image = {"type": "image_url", "image_url": {"url": data_url(PNG)}}
    chunk = delta("")
    chunk["choices"][0]["delta"]["images"] = [image]
    text = json.dumps(chunk, indent=1)  # a JSON document over several data: lines
    wire = "".join(f"data: {line}\n" for line in text.splitlines()).encode() + b"\n"
    wire += event(delta("", "stop")) + b"data: [DONE]\n\n"
    fake = FakeOpenRouter(sse(ChunkStream([wire])))
    events = await collect(client_for(fake).stream_chat({"messages": []}, user="u"))
    assert events[0] == ContentDelta("", (data_url(PNG),))
    assert isinstance(events[-1], StreamEnd) and events[-1].usage is None


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        ({"code": 502, "message": "Provider disconnected"}, 502, "upstream_error"),
        ({"code": "server_error", "message": "Provider disconnected"}, 502, "upstream_error"),
        ({"code": 429, "message": "Rate limit exceeded"}, 429, "upstream_rate_limited"),
    ],
)
async def test_a_mid_stream_error_event_raises_after_the_earlier_deltas(
    error: dict[str, Any], status: int, code: str
) -> None:
    failing = delta("", "error") | {"error": error | {"metadata": {"error_type": "x"}}}
    stream = ChunkStream([event(delta("Hi")), event(failing), b"data: [DONE]\n\n"])
    fake = FakeOpenRouter(sse(stream))
    received: list[StreamEvent] = []
    with pytest.raises(OpenRouterError) as caught:
        async for item in client_for(fake).stream_chat({"messages": []}, user="u"):
            received.append(item)
    assert received == [ContentDelta("Hi")]
    assert (caught.value.status, caught.value.code) == (status, code)
    assert "Provider disconnected" in caught.value.message or status == 429
    assert isinstance(caught.value.latency_ms, int)
    assert stream.closed


@pytest.mark.anyio
@pytest.mark.parametrize(
    "failure",
    [httpx.ReadError("connection reset"), httpx.RemoteProtocolError("peer closed")],
    ids=["read-error", "protocol-error"],
)
async def test_a_broken_connection_mid_stream_is_upstream_stream_broken(failure: Exception) -> None:
    stream = ChunkStream([event(delta("Hi"))], then=failure)
    fake = FakeOpenRouter(sse(stream))
    with pytest.raises(OpenRouterError) as caught:
        await collect(client_for(fake).stream_chat({"messages": []}, user="u"))
    assert (caught.value.status, caught.value.code) == (502, "upstream_stream_broken")
    assert stream.closed


@pytest.mark.anyio
async def test_a_silent_stream_times_out_with_504() -> None:
    stream = ChunkStream([event(delta("Hi"))], then=httpx.ReadTimeout("silent"))
    fake = FakeOpenRouter(sse(stream))
    with pytest.raises(OpenRouterError) as caught:
        await collect(client_for(fake).stream_chat({"messages": []}, user="u"))
    assert (caught.value.status, caught.value.code) == (504, "upstream_timeout")


@pytest.mark.anyio
async def test_a_stream_that_stops_mid_answer_is_broken() -> None:
    fake = FakeOpenRouter(sse(ChunkStream([event(delta("Hi"))])))
    with pytest.raises(OpenRouterError) as caught:
        await collect(client_for(fake).stream_chat({"messages": []}, user="u"))
    assert caught.value.code == "upstream_stream_broken"


@pytest.mark.anyio
async def test_a_stream_that_finished_without_done_still_ends() -> None:
    fake = FakeOpenRouter(sse(ChunkStream([event(delta("Hi", "stop")), event(USAGE_CHUNK)])))
    events = await collect(client_for(fake).stream_chat({"messages": []}, user="u"))
    assert isinstance(events[-1], StreamEnd) and events[-1].text == "Hi"


@pytest.mark.anyio
async def test_a_malformed_stream_event_is_502() -> None:
    fake = FakeOpenRouter(sse(ChunkStream([b"data: {not json\n\n"])))
    with pytest.raises(OpenRouterError) as caught:
        await collect(client_for(fake).stream_chat({"messages": []}, user="u"))
    assert (caught.value.status, caught.value.code) == (502, "upstream_error")


@pytest.mark.anyio
async def test_stream_errors_before_the_first_byte_surface_on_first_step() -> None:
    fake = FakeOpenRouter(reply(402, error_body(402, "Insufficient credits")))
    stream = client_for(fake).stream_chat({"messages": []}, user="u")
    with pytest.raises(OpenRouterError) as caught:
        await anext(stream)
    assert (caught.value.status, caught.value.code) == (502, "upstream_payment_required")
    assert isinstance(caught.value.latency_ms, int)


@pytest.mark.anyio
async def test_closing_the_stream_early_closes_the_upstream_response() -> None:
    stream = ChunkStream([event(delta(str(n))) for n in range(100)])
    fake = FakeOpenRouter(sse(stream))
    events = client_for(fake).stream_chat({"messages": []}, user="u")
    assert await anext(events) == ContentDelta("0")
    await events.aclose()  # what a disconnecting browser causes
    assert stream.closed
    assert stream.sent < 100


def test_event_data_decoder_follows_the_event_stream_rules() -> None:
    decoder = EventDataDecoder()
    lines = [
        ": comment",
        "event: message",
        "id: 7",
        "data:first",
        "data: second",
        "",
        "",
        "data: x",
    ]
    expected = [Comment("comment"), None, None, None, None, "first\nsecond", None, None]
    assert [decoder.feed(line) for line in lines] == expected
    assert decoder.flush() == "x"
    assert decoder.flush() is None


# --- images (reference §4) -------------------------------------------------------------------


def image_chat_body(*urls: str, content: str | None = "Here it is") -> dict[str, Any]:
    images = [{"type": "image_url", "image_url": {"url": url}} for url in urls]
    message = {"role": "assistant", "content": content, "images": images}
    return chat_body(
        model="google/gemini-2.5-flash-image",
        choices=[{"index": 0, "finish_reason": "stop", "message": message}],
    )


@pytest.mark.anyio
async def test_image_via_chat_sends_modalities_and_decodes_data_urls() -> None:
    fake = FakeOpenRouter(reply(200, image_chat_body(data_url(PNG), data_url(JPEG, "image/png"))))
    result = await client_for(fake).generate_image_via_chat(
        "google/gemini-2.5-flash-image", "a cat", image_config={"aspect_ratio": "16:9"}, user="u"
    )
    assert fake.body() == {
        "model": "google/gemini-2.5-flash-image",
        "messages": [{"role": "user", "content": "a cat"}],
        "modalities": ["image", "text"],
        "image_config": {"aspect_ratio": "16:9"},
        "stream": False,
        "user": "u",
    }
    assert [(i.data, i.media_type) for i in result.images] == [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
    ]
    assert result.text == "Here it is"
    assert result.usage.cost == pytest.approx(0.00014)
    assert result.model == "google/gemini-2.5-flash-image"


@pytest.mark.anyio
async def test_image_via_chat_for_image_only_models_sends_image_modality_only() -> None:
    fake = FakeOpenRouter(reply(200, image_chat_body(data_url(PNG), content=None)))
    result = await client_for(fake).generate_image_via_chat(
        "black-forest-labs/flux.2-klein-4b", "a cat", modalities=["image"], user="u"
    )
    assert fake.body()["modalities"] == ["image"]
    assert "image_config" not in fake.body()
    assert result.text == ""


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("data:image/png;base64,@@not-base64@@", "upstream_error"),
        ("data:image/svg+xml,<svg/>", "upstream_error"),
        ("https://cdn.example/cat.png", "upstream_error"),
    ],
    ids=["bad-base64", "not-base64", "remote-url"],
)
async def test_image_via_chat_refuses_images_it_cannot_decode(url: str, code: str) -> None:
    fake = FakeOpenRouter(reply(200, image_chat_body(url)))
    with pytest.raises(OpenRouterError) as caught:
        await client_for(fake).generate_image_via_chat("m", "a cat", user="u")
    assert (caught.value.status, caught.value.code) == (502, code)
    assert fake.calls == 1  # a remote image URL is never fetched


@pytest.mark.anyio
async def test_image_via_chat_without_images_says_what_the_model_said() -> None:
    fake = FakeOpenRouter(reply(200, image_chat_body(content="I cannot draw that.")))
    with pytest.raises(OpenRouterError) as caught:
        await client_for(fake).generate_image_via_chat("m", "a cat", user="u")
    assert (caught.value.status, caught.value.code) == (502, "upstream_no_output")
    assert "I cannot draw that." in caught.value.message


@pytest.mark.anyio
async def test_images_api_decodes_b64_json_and_reports_cost() -> None:
    body = {
        "created": 1748372400,
        "data": [
            {"b64_json": base64.b64encode(PNG).decode().rstrip("="), "media_type": "image/png"}
        ],
        "usage": {
            "prompt_tokens": 0,
            "completion_tokens": 4175,
            "total_tokens": 4175,
            "cost": 0.04,
        },
    }
    fake = FakeOpenRouter(reply(200, body, {"X-Generation-Id": "gen-img"}))
    payload = {"model": "bytedance-seed/seedream-4.5", "prompt": "a cat", "aspect_ratio": "1:1"}
    result = await client_for(fake).generate_images(payload, user="u")
    assert fake.requests[0].url == f"{BASE}/images"
    assert fake.body() == {**payload, "user": "u"}
    assert [(i.data, i.media_type) for i in result.images] == [(PNG, "image/png")]
    assert (result.usage.completion_tokens, result.usage.cost) == (4175, 0.04)
    assert (result.model, result.generation_id) == ("bytedance-seed/seedream-4.5", "gen-img")


@pytest.mark.anyio
async def test_images_api_with_empty_data_is_no_output() -> None:
    fake = FakeOpenRouter(reply(200, {"created": 1, "data": []}))
    with pytest.raises(OpenRouterError) as caught:
        await client_for(fake).generate_images({"model": "m", "prompt": "a cat"}, user="u")
    assert caught.value.code == "upstream_no_output"


# --- videos (reference §5) ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_create_video_returns_the_pending_job_with_an_absolute_polling_url() -> None:
    fake = FakeOpenRouter(reply(202, job()))
    payload = {"model": "google/veo-3.1-fast", "prompt": "a dog", "duration": 8}
    result = await client_for(fake).create_video(payload, user="u")
    payload["user"] = "u"
    assert fake.requests[0].method == "POST"
    assert fake.requests[0].url == f"{BASE}/videos"
    assert fake.body() == payload
    assert (result.id, result.status) == ("job-abc123", "pending")
    assert result.polling_url == f"{BASE}/videos/job-abc123"
    assert (result.error, result.cost, result.unsigned_urls) == (None, None, ())


@pytest.mark.anyio
async def test_get_video_reports_a_completed_job() -> None:
    completed = job(
        "completed",
        generation_id="gen-xyz789",
        unsigned_urls=["https://openrouter.ai/api/v1/videos/job-abc123/content?index=0"],
        usage={"cost": 0.5, "is_byok": False},
    )
    fake = FakeOpenRouter(reply(200, completed))
    result = await client_for(fake).get_video("job-abc123")
    assert fake.requests[0].method == "GET"
    assert fake.requests[0].url == f"{BASE}/videos/job-abc123"
    assert fake.requests[0].headers["Authorization"] == f"Bearer {KEY}"
    assert (result.status, result.cost, result.generation_id) == ("completed", 0.5, "gen-xyz789")
    assert result.unsigned_urls == (completed["unsigned_urls"][0],)


@pytest.mark.anyio
async def test_get_video_reports_a_failed_job_verbatim() -> None:
    fake = FakeOpenRouter(reply(200, job("failed", error="Content policy violation")))
    result = await client_for(fake).get_video("job-abc123")
    assert (result.status, result.error) == ("failed", "Content policy violation")


@pytest.mark.anyio
async def test_get_video_with_an_unknown_status_is_502() -> None:
    fake = FakeOpenRouter(reply(200, job("exploded")))
    with pytest.raises(OpenRouterError) as caught:
        await client_for(fake).get_video("job-abc123")
    assert (caught.value.status, caught.value.code) == (502, "upstream_error")


@pytest.mark.anyio
async def test_get_video_is_retried() -> None:
    fake = FakeOpenRouter(reply(502, error_body(502, "Provider returned error")), reply(200, job()))
    await client_for(fake).get_video("job-abc123")
    assert fake.calls == 2


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("base", "polling_url", "expected"),
    [
        (BASE, "/api/v1/videos/job-1", f"{BASE}/videos/job-1"),
        (BASE, f"{BASE}/videos/job-1", f"{BASE}/videos/job-1"),
        (BASE, "http://OPENROUTER.test:80/api/v1/videos/job-1", f"{BASE}/videos/job-1"),
        (
            "http://127.0.0.1:9000/api/v1",
            "/api/v1/videos/x",
            "http://127.0.0.1:9000/api/v1/videos/x",
        ),
        (
            "https://openrouter.ai/api/v1",
            "https://openrouter.ai/api/v1/videos/j?x=1",
            "https://openrouter.ai/api/v1/videos/j?x=1",
        ),
    ],
)
async def test_polling_urls_inside_the_api_are_followed(
    base: str, polling_url: str, expected: str
) -> None:
    fake = FakeOpenRouter(reply(200, job()))
    await client_for(fake, base_url=base).get_video(polling_url)
    assert str(fake.requests[0].url) == expected


@pytest.mark.anyio
@pytest.mark.parametrize(
    "polling_url",
    [
        "https://evil.example/api/v1/videos/job-1",
        "http://openrouter.test:8080/api/v1/videos/job-1",
        "https://openrouter.test/api/v1/videos/job-1",
        "/api/v2/videos/job-1",
        "/api/v1/../../admin",
        "/api/v1/videos/%2e%2e/%2e%2e/admin",
        "//evil.example/api/v1/videos/job-1",
        "http://user:pass@openrouter.test/api/v1/videos/job-1",
        "http://openrouter.test.evil.example/api/v1/videos/job-1",
        "../x",
        "file:///etc/passwd",
    ],
)
async def test_foreign_polling_urls_are_refused_without_a_request(polling_url: str) -> None:
    fake = FakeOpenRouter(reply(200, job()))
    with pytest.raises(OpenRouterError) as caught:
        await client_for(fake).get_video(polling_url)
    assert (caught.value.status, caught.value.code) == (502, "upstream_url_refused")
    assert fake.calls == 0


@pytest.mark.anyio
@pytest.mark.parametrize("job_id", ["..", "job?x=1", "job#1", "", "job 1"])
async def test_odd_job_ids_are_refused_without_a_request(job_id: str) -> None:
    fake = FakeOpenRouter(reply(200, job()))
    with pytest.raises(OpenRouterError):
        await client_for(fake).download_video(job_id)
    assert fake.calls == 0


@pytest.mark.anyio
async def test_a_foreign_polling_url_in_a_job_is_replaced_by_the_canonical_one() -> None:
    fake = FakeOpenRouter(reply(202, job(polling_url="https://evil.example/videos/job-abc123")))
    result = await client_for(fake).create_video({"model": "m", "prompt": "p"}, user="u")
    assert result.polling_url == f"{BASE}/videos/job-abc123"


def test_api_base_keeps_scheme_host_port_and_path() -> None:
    base = ApiBase.parse("http://127.0.0.1:9000/api/v1/")
    assert (base.scheme, base.host, base.port, base.path) == ("http", "127.0.0.1", 9000, "/api/v1")
    assert str(base.endpoint("/models")) == "http://127.0.0.1:9000/api/v1/models"
    with pytest.raises(ValueError, match="credentials"):
        ApiBase.parse("https://user:pw@openrouter.ai/api/v1")


@pytest.mark.anyio
async def test_download_video_fetches_the_content_with_the_key() -> None:
    video = b"\x00\x00\x00\x18ftypmp42" + b"\x01" * 1000
    fake = FakeOpenRouter(
        reply(503, error_body(503, "busy")),
        lambda request: httpx.Response(200, content=video, headers={"Content-Type": "video/mp4"}),
    )
    result = await client_for(fake).download_video("job-abc123", index=1)
    assert fake.calls == 2
    assert str(fake.requests[1].url) == f"{BASE}/videos/job-abc123/content?index=1"
    assert fake.requests[1].headers["Authorization"] == f"Bearer {KEY}"
    assert (result.data, result.media_type) == (video, "video/mp4")


@pytest.mark.anyio
async def test_download_video_refuses_a_declared_oversize_body() -> None:
    fake = FakeOpenRouter(
        lambda request: httpx.Response(
            200, content=b"x" * 2048, headers={"Content-Type": "video/mp4"}
        )
    )
    with pytest.raises(OpenRouterError) as caught:
        await client_for(fake, max_video_bytes=1024).download_video("job-abc123")
    assert (caught.value.status, caught.value.code) == (502, "upstream_too_large")
    assert fake.calls == 1


@pytest.mark.anyio
async def test_download_video_stops_reading_an_oversize_stream() -> None:
    body = ChunkStream([b"x" * 512] * 10)
    fake = FakeOpenRouter(lambda request: httpx.Response(200, stream=body))
    with pytest.raises(OpenRouterError) as caught:
        await client_for(fake, max_video_bytes=1024).download_video("job-abc123")
    assert caught.value.code == "upstream_too_large"
    assert body.sent == 3 and body.closed


# --- the shared client -------------------------------------------------------------------------


@pytest.fixture
def openrouter_settings(settings: Any) -> Any:
    settings.OPENROUTER_API_KEY = KEY
    settings.OPENROUTER_BASE_URL = "http://127.0.0.1:9000/api/v1"
    settings.OPENROUTER_APP_TITLE = "aigateway-test"
    reset_openrouter_client()
    yield settings
    reset_openrouter_client()


@pytest.mark.anyio
async def test_the_shared_client_is_built_from_settings_once_per_loop(
    openrouter_settings: Any,
) -> None:
    client = get_openrouter_client()
    assert get_openrouter_client() is client
    assert client.base_url == "http://127.0.0.1:9000/api/v1"
    openrouter_settings.OPENROUTER_BASE_URL = "http://127.0.0.1:9001/api/v1"
    rebuilt = get_openrouter_client()
    assert rebuilt is not client
    assert rebuilt.base_url == "http://127.0.0.1:9001/api/v1"
    await rebuilt.aclose()


def test_each_event_loop_gets_its_own_shared_client(openrouter_settings: Any) -> None:
    async def shared() -> OpenRouterClient:
        return get_openrouter_client()

    first, second = asyncio.run(shared()), asyncio.run(shared())
    assert first is not second


@pytest.mark.anyio
async def test_cookies_set_by_the_upstream_never_reach_the_next_request() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        return httpx.Response(
            200,
            json={"data": [], "total_count": 0, "links": {"next": None}},
            headers={"set-cookie": "session=someone-elses; Path=/"},
        )

    client = OpenRouterClient(
        api_key="k", base_url="https://openrouter.ai/api/v1", transport=httpx.MockTransport(handler)
    )
    await client.list_models()
    await client.list_models()
    await client.aclose()
    assert seen and all(cookie is None for cookie in seen)


# --- generation stats (reference §7) ---------------------------------------------------------


@pytest.mark.anyio
async def test_generation_stats_report_the_cost_or_none_while_unknown() -> None:
    stats = {
        "data": {"id": "gen-1", "total_cost": 0.0021, "tokens_prompt": 7, "tokens_completion": 3}
    }
    fake = FakeOpenRouter(reply(404, error_body(404, "Not Found")), reply(200, stats))
    client = client_for(fake, max_retries=0)
    assert await client.generation_stats("gen-1") is None
    usage = await client.generation_stats("gen-1")
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cost) == (7, 3, 0.0021)
    assert str(fake.requests[-1].url) == f"{BASE}/generation?id=gen-1"
