"""The OpenAI-compatible API (/v1/) through Django's test client against the stand-in; the
official SDKs drive it end to end in tests/e2e/test_openai_sdk_e2e.py."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import uuid

import pytest

from core.errors import Forbidden
from generation.pseudonym import upstream_user
from tests.generation.test_generation_api import PNG_1PX

CHAT = "openai/gpt-4o-mini"
HI = [{"role": "user", "content": "hi there"}]


def chat(persona, **body):
    return persona.client.call(
        "POST", "/v1/chat/completions", {"model": CHAT, "messages": HI, **body}
    )


async def stream(persona, **body):
    from django.test import AsyncClient

    response = await AsyncClient().post(
        "/v1/chat/completions",
        {"model": CHAT, "messages": HI, "stream": True, **body},
        content_type="application/json",
        headers={"Authorization": f"Bearer {persona.access}"},
    )
    if not response.streaming:
        return response, []
    text = b"".join([chunk async for chunk in response.streaming_content]).decode()
    return response, [block for block in text.split("\n\n") if block]


def chunks_of(blocks):
    return [json.loads(b[6:]) for b in blocks if b.startswith("data: {")]


# -- the pseudonym ------------------------------------------------------------------------


def test_every_generation_endpoint_sends_the_users_pseudonym(alice, mallory, stub):
    stub.configure(require_user=True)  # the stand-in refuses a generation without one
    call = alice.client.call
    ok = (200, 201, 202)
    assert call("POST", "/api/generate/text", {"model": CHAT, "prompt": "p"}).status_code in ok
    assert call("POST", "/api/ai/chat", {"model": CHAT, "messages": HI}).status_code in ok
    for model in ("google/gemini-2.5-flash-image", "black-forest-labs/flux.2-klein-4b"):
        answer = call("POST", "/api/generate/image", {"model": model, "prompt": "a cat"})
        assert answer.status_code == 201, answer.content
        answer = call("POST", "/v1/images/generations", {"model": model, "prompt": "a cat"})
        assert answer.status_code == 200, answer.content
    video = {"model": "google/veo-3.1-fast", "prompt": "a dog"}
    assert call("POST", "/api/generate/video", video).status_code == 202
    frame = "data:image/png;base64," + base64.b64encode(PNG_1PX).decode()
    from_image = call("POST", "/api/generate/video/from-image", {**video, "image_url": frame})
    assert from_image.status_code == 202, from_image.content
    assert chat(alice).status_code == 200
    embedding = {"model": "openai/text-embedding-3-small", "input": "x"}
    assert call("POST", "/v1/embeddings", embedding).status_code == 200
    native_stream = asyncio.run(_native_stream(alice))
    assert b"event: done" in native_stream
    response, blocks = asyncio.run(stream(alice))
    assert response.status_code == 200 and blocks[-1] == "data: [DONE]"
    assert mallory.client.call("POST", "/api/generate/text", {"model": CHAT, "prompt": "p"})

    sent = stub.users("/api/v1/")
    assert len(sent) == 13
    alices = upstream_user(uuid.UUID(alice.id))
    assert sent[:-1] == [alices] * 12
    assert sent[-1] == upstream_user(uuid.UUID(mallory.id)) != alices
    for who in (alice, mallory):
        assert who.email not in sent and who.id not in sent
        assert who.id.replace("-", "") not in "".join(sent)
    paths = {entry["path"] for entry in stub.requests("/api/v1/") if entry["method"] == "POST"}
    assert paths == {
        "/api/v1/chat/completions", "/api/v1/images", "/api/v1/videos", "/api/v1/embeddings",
    }  # fmt: skip


async def _native_stream(persona) -> bytes:
    from django.test import AsyncClient

    response = await AsyncClient().post(
        "/api/ai/chat",
        {"model": CHAT, "messages": HI, "stream": True},
        content_type="application/json",
        headers={"Authorization": f"Bearer {persona.access}"},
    )
    return b"".join([chunk async for chunk in response.streaming_content])


def test_the_pseudonym_is_stable_and_keyed_by_the_server_secret(settings):
    user_id = uuid.uuid4()
    first = upstream_user(user_id)
    assert first == upstream_user(user_id) and first.startswith("agw-") and len(first) == 36
    assert upstream_user(uuid.uuid4()) != first
    settings.UPSTREAM_USER_KEY = "another secret"
    assert upstream_user(user_id) != first


# -- models ---------------------------------------------------------------------------------


def test_models_lists_what_v1_can_use_in_openais_shape(alice, stub):
    body = alice.client.call("GET", "/v1/models").json()
    assert body["object"] == "list"
    kinds = {m["id"]: m["output_modalities"] for m in body["data"]}
    assert "openai/text-embedding-3-small" in kinds and CHAT in kinds
    assert "google/veo-3.1-fast" not in kinds  # no /v1/ route makes videos
    for model in body["data"]:
        assert model["object"] == "model" and isinstance(model["created"], int)
        assert model["owned_by"] == model["id"].split("/")[0]
    one = alice.client.call("GET", "/v1/models/openai/gpt-4o-mini")
    assert one.status_code == 200 and one.json()["id"] == CHAT
    missing = alice.client.call("GET", "/v1/models/openai/gpt-9")
    assert missing.status_code == 404
    assert missing.json()["error"] == {
        "message": "The model 'openai/gpt-9' does not exist.",
        "type": "not_found_error",
        "param": None,
        "code": "model_not_found",
    }


def test_the_native_model_list_keeps_embeddings_out(alice, stub):
    items = alice.client.call("GET", "/api/ai/models").json()["items"]
    assert {m["kind"] for m in items} == {"text", "image", "video"}
    assert alice.client.call("GET", "/api/ai/models?kind=embedding").status_code == 400


# -- chat ---------------------------------------------------------------------------------


def test_a_completion_is_openrouters_answer_with_our_generation_id(alice, stub, database):
    response = chat(alice, temperature=0.3, max_completion_tokens=50, seed=3, stop=["zzz"])
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"]
    assert body["usage"]["cost"] > 0
    history = alice.client.call("GET", f"/api/generations/{body['id']}").json()
    assert history["kind"] == "chat" and history["status"] == "completed"
    assert history["usage"]["cost"] == pytest.approx(body["usage"]["cost"])
    assert history["params"]["api"] == "openai"
    sent = stub.requests("/api/v1/chat/completions")[-1]["json"]
    assert sent["temperature"] == 0.3 and sent["max_completion_tokens"] == 50
    assert sent["seed"] == 3 and sent["stop"] == ["zzz"]


def test_the_allow_listed_fields_reach_openrouter_and_user_is_ours(alice, stub):
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    response = chat(
        alice,
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        ]}],
        tools=[tool], tool_choice="auto", parallel_tool_calls=False, top_p=0.5, n=1,
        response_format={"type": "json_object"}, reasoning_effort="low",
        models=["anthropic/claude-3.5-haiku"], provider={"sort": "price"}, user="me@corp",
    )  # fmt: skip
    assert response.status_code == 200, response.content
    sent = stub.requests("/api/v1/chat/completions")[-1]["json"]
    assert sent["tools"] == [tool] and sent["tool_choice"] == "auto"
    assert sent["reasoning"] == {"effort": "low"} and "reasoning_effort" not in sent
    assert sent["models"] == ["anthropic/claude-3.5-haiku"] and sent["provider"] == {
        "sort": "price"
    }
    assert sent["user"] == upstream_user(uuid.UUID(alice.id))
    assert sent["messages"][0]["content"][1]["image_url"]["url"] == "https://example.com/a.png"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"logit_bias": {"1": 2}}, "logit_bias"),
        ({"messages": [{"role": "user", "content": "x", "extra": 1}]}, "messages.0.extra"),
        ({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "messages.0"),
        ({"temperature": "hot"}, "temperature"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"models": ["video/none"]}, None),
        ({"provider": {"bribe": 1}}, "provider.bribe"),
    ],
)
def test_anything_outside_the_allow_list_is_a_400_and_nothing_is_sent(alice, stub, body, param):
    response = chat(alice, **body)
    assert response.status_code in (400, 404), response.content
    error = response.json()["error"]
    if param is not None:
        assert response.status_code == 400 and error["type"] == "invalid_request_error"
        assert (error["param"] or "").startswith(param)
    assert not stub.requests("/api/v1/chat/completions")


def test_an_upstream_failure_of_a_generation_tells_the_sdk_not_to_retry(alice, stub):
    stub.add_fault(path="/api/v1/chat/completions", status=500, times=1)
    response = chat(alice)
    assert response.status_code == 502
    assert response["x-should-retry"] == "false"
    assert response.json()["error"]["type"] == "api_error"


def test_an_upstream_rate_limit_is_a_429_the_sdk_may_retry_after_waiting(alice, stub):
    stub.add_fault(path="/api/v1/chat/completions", status=429, retry_after=7, times=1)
    response = chat(alice)
    assert response.status_code == 429 and response["Retry-After"] == "7"
    assert "x-should-retry" not in response
    assert response.json()["error"]["type"] == "rate_limit_error"


def test_a_refusal_by_the_ledger_is_a_403(alice, stub, monkeypatch):
    from generation import ledger

    async def refuse(*args, **kwargs):
        raise Forbidden("This model is not allowed for you.", code="model_not_allowed")

    monkeypatch.setattr(ledger, "admit", refuse)
    response = chat(alice)
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "permission_error"
    assert response.json()["error"]["code"] == "model_not_allowed"


def test_unknown_v1_paths_and_bad_keys_answer_in_openais_shape(alice, anon, stub):
    missing = alice.client.call("GET", "/v1/assistants")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    refused = anon.call("GET", "/v1/models", headers={"Authorization": "Bearer agw_x_y"})
    assert refused.status_code == 401
    assert refused.json()["error"]["type"] == "authentication_error"
    assert refused["X-Request-ID"]


@pytest.mark.anyio
async def test_a_stream_passes_chunks_and_keepalives_and_usage_only_when_asked(alice, stub):
    response, blocks = await stream(alice)
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    assert blocks[0].startswith(": ")  # OpenRouter's keep-alive comment, passed through
    assert blocks[-1] == "data: [DONE]"
    chunks = chunks_of(blocks)
    assert all(c["choices"] and "usage" not in c for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "[stub] echo: hi there"
    sent = stub.requests("/api/v1/chat/completions")[-1]["json"]
    assert sent["stream_options"] == {"include_usage": True}  # asked upstream always

    response, blocks = await stream(alice, stream_options={"include_usage": True})
    chunks = chunks_of(blocks)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["cost"] > 0
    assert blocks[-1] == "data: [DONE]"


def test_a_mid_stream_failure_ends_with_an_error_chunk_and_no_done(alice, stub):
    stub.add_fault(path="/api/v1/chat/completions", break_stream_after=2, status=502, times=1)
    response, blocks = asyncio.run(stream(alice))
    assert response.status_code == 200
    last = chunks_of(blocks)[-1]
    assert last["error"]["type"] == "api_error" and last["error"]["message"]
    assert last["choices"][0]["finish_reason"] == "error"
    assert "data: [DONE]" not in blocks
    row = alice.client.call("GET", f"/api/generations/{last['id']}").json()
    assert row["status"] == "failed"


@pytest.mark.anyio
async def test_a_stream_refused_upstream_is_an_http_error(alice, stub):
    stub.add_fault(path="/api/v1/chat/completions", status=400, message="bad", times=1)
    response, blocks = await stream(alice)
    assert response.status_code == 400 and not blocks
    assert json.loads(response.content)["error"]["code"] == "upstream_rejected"


# -- embeddings and images ------------------------------------------------------------------


def test_embeddings_come_as_floats_or_base64_of_the_same_vector(alice, stub, database):
    body = {"model": "openai/text-embedding-3-small", "input": ["a", "b"], "dimensions": 8}
    floats = alice.client.call("POST", "/v1/embeddings", body).json()
    packed = alice.client.call("POST", "/v1/embeddings", {**body, "encoding_format": "base64"})
    assert floats["object"] == "list" and len(floats["data"]) == 2
    vector = floats["data"][0]["embedding"]
    raw = base64.b64decode(packed.json()["data"][0]["embedding"])
    assert list(struct.unpack("<8f", raw)) == pytest.approx(vector)
    assert floats["usage"]["prompt_tokens"] > 0 and floats["usage"]["cost"] > 0
    history = alice.client.call("GET", "/api/generations").json()["items"][0]
    assert history["kind"] == "embedding" and history["status"] == "completed"


def test_a_chat_model_cannot_embed(alice, stub):
    response = alice.client.call("POST", "/v1/embeddings", {"model": CHAT, "input": "x"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


@pytest.mark.parametrize(
    "model", ["google/gemini-2.5-flash-image", "black-forest-labs/flux.2-klein-4b"]
)
def test_images_are_returned_and_kept_in_the_history(alice, stub, model):
    response = alice.client.call(
        "POST", "/v1/images/generations", {"model": model, "prompt": "a cat", "size": "1024x1024"}
    )
    assert response.status_code == 200, response.content
    image = base64.b64decode(response.json()["data"][0]["b64_json"])
    assert image.startswith(b"\x89PNG")
    history = alice.client.call("GET", "/api/generations").json()["items"][0]
    assert history["kind"] == "image" and len(history["media"]) == 1
    linked = alice.client.call(
        "POST",
        "/v1/images/generations",
        {"model": model, "prompt": "a cat", "response_format": "url"},
    ).json()["data"][0]["url"]
    assert linked.startswith("http://testserver/api/generations/")


def test_an_unconfigured_gateway_tells_the_sdk_a_retry_cannot_help(alice, settings):
    from generation.catalog import clear_cache
    from generation.openrouter import reset_openrouter_client

    settings.OPENROUTER_API_KEY = ""
    clear_cache()
    reset_openrouter_client()
    response = alice.client.call("GET", "/v1/models")
    assert response.status_code == 503 and response["x-should-retry"] == "false"
    assert response.json()["error"]["code"] == "upstream_not_configured"
