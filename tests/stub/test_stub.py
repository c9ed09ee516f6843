"""The OpenRouter stub speaks the reference wire format and injects the faults tests ask for."""

from __future__ import annotations

import base64
import json
import math
import struct
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.openrouter_stub import StubServer
from tests.openrouter_stub.catalog import video_price_per_second

API_KEY = "test-stub-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
CHAT = "/chat/completions"
TEXT_MODEL = "openai/gpt-4o-mini"
TEXT_IMAGE_MODEL = "google/gemini-2.5-flash-image"
IMAGE_ONLY_MODEL = "black-forest-labs/flux.2-klein-4b"
EMBEDDING_MODEL = "openai/text-embedding-3-small"


def user_says(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": TEXT_MODEL, "messages": [{"role": "user", "content": text}], **extra}


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with StubServer(api_key=API_KEY, video_seconds=0.3) as server:
        yield server


@pytest.fixture
def client(stub: StubServer) -> Iterator[httpx.Client]:
    stub.reset()
    with httpx.Client(base_url=stub.base_url, headers=AUTH, timeout=5) as http:
        yield http


def sse_events(body: str) -> list[str]:
    return [block for block in body.split("\n\n") if block]


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# -- model listings (reference §2, §5) ---------------------------------------------------------


def test_models_default_to_text_output(client: httpx.Client) -> None:
    body = client.get("/models").json()
    ids = {model["id"] for model in body["data"]}
    assert {"openai/gpt-4o-mini", "anthropic/claude-3.5-haiku", TEXT_IMAGE_MODEL} <= ids
    assert IMAGE_ONLY_MODEL not in ids and "google/veo-3.1-fast" not in ids
    assert body["total_count"] == len(body["data"]) and body["links"] == {"next": None}


def test_models_filter_by_output_modalities(client: httpx.Client) -> None:
    def ids(query: str) -> set[str]:
        return {m["id"] for m in client.get(f"/models?output_modalities={query}").json()["data"]}

    assert ids("video") == {"google/veo-3.1-fast", "openai/sora-2-pro", "kwaivgi/kling-v3.0-pro"}
    assert {IMAGE_ONLY_MODEL, "bytedance-seed/seedream-4.5", TEXT_IMAGE_MODEL} <= ids("image")
    assert TEXT_MODEL not in ids("image")
    assert ids("embeddings") == {EMBEDDING_MODEL, "mistralai/mistral-embed-2312"}
    assert ids("all") == ids("text,image,video,embeddings")
    assert len(ids("all")) == 12
    assert client.get("/models?output_modalities=bogus").status_code == 400


def test_models_carry_every_required_model_field(client: httpx.Client) -> None:
    required = {
        "id",
        "canonical_slug",
        "name",
        "created",
        "description",
        "context_length",
        "architecture",
        "pricing",
        "top_provider",
        "per_request_limits",
        "supported_parameters",
        "default_parameters",
        "supported_voices",
        "links",
    }
    for model in client.get("/models?output_modalities=all").json()["data"]:
        assert required <= set(model), model["id"]
        assert {"modality", "input_modalities", "output_modalities", "tokenizer"} <= set(
            model["architecture"]
        )
        assert all(isinstance(price, str) for price in model["pricing"].values())


def test_video_and_image_model_listings(client: httpx.Client) -> None:
    videos = {m["id"]: m for m in client.get("/videos/models").json()["data"]}
    assert videos["google/veo-3.1-fast"]["supported_durations"] == [4, 6, 8]
    assert videos["openai/sora-2-pro"]["supported_frame_images"] is None
    images = {m["id"] for m in client.get("/images/models").json()["data"]}
    assert IMAGE_ONLY_MODEL in images and TEXT_MODEL not in images


def test_model_listings_need_no_key(stub: StubServer) -> None:
    for path in ("/models", "/videos/models", "/images/models"):
        assert httpx.get(stub.base_url + path).status_code == 200


# -- auth (reference §1) -----------------------------------------------------------------------


def test_it_requires_the_bearer_key(stub: StubServer, client: httpx.Client) -> None:
    missing = httpx.post(stub.base_url + CHAT, json=user_says("hi"))
    assert missing.status_code == 401
    assert missing.json() == {"error": {"message": "No auth credentials found", "code": 401}}
    wrong = httpx.post(stub.base_url + "/videos", headers={"Authorization": "Bearer nope"}, json={})
    assert wrong.status_code == 401
    assert httpx.get(stub.base_url + "/key").status_code == 401


# -- chat completions (reference §3) -----------------------------------------------------------


def test_chat_returns_a_synthetic_chat_result(client: httpx.Client) -> None:
    response = client.post(CHAT, json=user_says("Hello  there"))
    assert response.status_code == 200
    body = response.json()
    assert body["id"].startswith("gen-") and response.headers["x-generation-id"] == body["id"]
    assert body["object"] == "chat.completion" and body["model"] == TEXT_MODEL
    assert body["provider"] == "OpenAI" and "system_fingerprint" in body
    choice = body["choices"][0]
    assert choice["message"]["content"] == "[stub] echo: Hello there"
    assert choice["finish_reason"] == choice["native_finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    expected = usage["prompt_tokens"] * 0.00000015 + usage["completion_tokens"] * 0.0000006
    assert usage["cost"] == pytest.approx(expected)
    assert set(usage["cost_details"]) >= {"upstream_inference_prompt_cost"}


def test_chat_honours_max_tokens(client: httpx.Client) -> None:
    choice = client.post(CHAT, json=user_says("one two three four", max_tokens=2)).json()
    assert choice["choices"][0]["message"]["content"] == "[stub] echo:"
    assert choice["choices"][0]["finish_reason"] == "length"


def test_chat_rejects_bad_requests(client: httpx.Client) -> None:
    bad_json = client.post(CHAT, content=b"{not json", headers={"content-type": "x"})
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == 400
    no_messages = client.post(CHAT, json={"model": TEXT_MODEL})
    assert no_messages.status_code == 400
    unknown = client.post(CHAT, json={**user_says("hi"), "model": "acme/nope"})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["message"] == "acme/nope is not a valid model ID"


def test_chat_streams_server_sent_events(client: httpx.Client) -> None:
    with client.stream("POST", CHAT, json=user_says("a b c", stream=True)) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-generation-id"].startswith("gen-")
        events = sse_events(response.read().decode())
    assert events[0] == ": OPENROUTER PROCESSING"
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(event.removeprefix("data: ")) for event in events[1:-1]]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "[stub] echo: a b c"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["cost"] > 0
    assert sum("usage" in chunk for chunk in chunks) == 1


def test_chat_streams_token_by_token_with_a_delay(stub: StubServer, client: httpx.Client) -> None:
    stub.configure(token_delay=0.05)
    started = time.monotonic()
    with client.stream("POST", CHAT, json=user_says("a b c", stream=True)) as response:
        arrivals = [time.monotonic() - started for _ in response.iter_lines()]
    assert arrivals[-1] >= 0.2  # five tokens, four gaps


def test_text_image_model_returns_png_data_urls(client: httpx.Client) -> None:
    body = {**user_says("a red cube"), "model": TEXT_IMAGE_MODEL, "modalities": ["image", "text"]}
    body["image_config"] = {"aspect_ratio": "16:9", "image_size": "1K"}
    message = client.post(CHAT, json=body).json()["choices"][0]["message"]
    assert message["content"].startswith("[stub] echo:")
    image = message["images"][0]
    assert image["type"] == "image_url"
    prefix, _, data = image["image_url"]["url"].partition(",")
    assert prefix == "data:image/png;base64"
    assert png_size(base64.b64decode(data)) == (64, 64)


def test_image_only_model_refuses_text_output(client: httpx.Client) -> None:
    body = {**user_says("cat"), "model": IMAGE_ONLY_MODEL, "modalities": ["image", "text"]}
    response = client.post(CHAT, json=body)
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == 404
    assert error["message"] == (
        "No endpoints found that support the requested output modalities: image, text"
    )
    assert error["metadata"]["failed_routing_step"] == "Filter by Model Output Modalities"


def test_image_only_model_answers_images_with_empty_content(client: httpx.Client) -> None:
    body = {**user_says("cat"), "model": IMAGE_ONLY_MODEL, "modalities": ["image"]}
    result = client.post(CHAT, json=body).json()
    assert result["choices"][0]["message"]["content"] == ""
    assert len(result["choices"][0]["message"]["images"]) == 1
    assert result["usage"]["cost"] > 0


# -- image API (reference §4.2) ----------------------------------------------------------------


def test_image_api_returns_raw_base64_pngs(client: httpx.Client) -> None:
    body = {"model": "bytedance-seed/seedream-4.5", "prompt": "a lighthouse", "n": 2}
    result = client.post("/images", json={**body, "resolution": "2K", "aspect_ratio": "1:1"})
    assert result.status_code == 200
    payload = result.json()
    assert isinstance(payload["created"], int) and len(payload["data"]) == 2
    item = payload["data"][0]
    assert item["media_type"] == "image/png"
    assert png_size(base64.b64decode(item["b64_json"])) == (64, 64)
    assert payload["usage"]["cost"] > 0
    assert client.post("/images", json={**body, "resolution": "8K"}).status_code == 400
    assert client.post("/images/generations", json=body).status_code == 404


# -- video (reference §5) ----------------------------------------------------------------------


def test_video_job_lifecycle(stub: StubServer, client: httpx.Client) -> None:
    stub.configure(video_seconds=0.6)
    submitted = client.post("/videos", json={"model": "google/veo-3.1-fast", "prompt": "a dog"})
    assert submitted.status_code == 202
    job = submitted.json()
    assert job["status"] == "pending"
    assert job["polling_url"] == f"/api/v1/videos/{job['id']}"
    poll_url = stub.root_url + job["polling_url"]
    assert client.get(poll_url).json()["status"] == "pending"
    time.sleep(0.3)
    assert client.get(poll_url).json()["status"] == "in_progress"
    time.sleep(0.4)
    done = client.get(poll_url).json()
    assert done["status"] == "completed" and done["generation_id"].startswith("gen-")
    assert done["usage"] == {"cost": pytest.approx(0.48), "is_byok": False}
    content_url = done["unsigned_urls"][0]
    assert content_url == f"{stub.base_url}/videos/{job['id']}/content?index=0"
    assert httpx.get(content_url).status_code == 401
    video = client.get(content_url)
    assert video.headers["content-type"] == "video/mp4"
    assert video.content[4:8] == b"ftyp"
    assert client.get("/videos/job-unknown").status_code == 404


def test_video_rejects_values_outside_the_models_sets(client: httpx.Client) -> None:
    base = {"model": "google/veo-3.1-fast", "prompt": "x"}
    assert client.post("/videos", json={**base, "duration": 5}).status_code == 400
    assert client.post("/videos", json={**base, "resolution": "480p"}).status_code == 400
    assert client.post("/videos", json={**base, "aspect_ratio": "1:1"}).status_code == 400
    assert client.post("/videos", json={**base, "model": TEXT_MODEL}).status_code == 400
    ok = {**base, "duration": 8, "resolution": "1080p", "aspect_ratio": "9:16"}
    assert client.post("/videos", json=ok).status_code == 202


def test_video_first_frame_depends_on_the_model(client: httpx.Client) -> None:
    frame = {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
        "frame_type": "first_frame",
    }
    veo = {"model": "google/veo-3.1-fast", "prompt": "x", "frame_images": [frame]}
    assert client.post("/videos", json=veo).status_code == 202
    sora = client.post("/videos", json={**veo, "model": "openai/sora-2-pro"})
    assert sora.status_code == 400
    assert "frame_images" in sora.json()["error"]["message"]


# -- faults ------------------------------------------------------------------------------------


def test_fault_rate_limit_with_retry_after_hits_only_times(
    stub: StubServer, client: httpx.Client
) -> None:
    stub.add_fault(path="/api/v1/chat/completions", status=429, retry_after=7, times=1)
    limited = client.post(CHAT, json=user_says("hi"))
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    assert limited.json()["error"]["code"] == 429
    assert client.post(CHAT, json=user_says("hi")).status_code == 200


def test_fault_503_carries_retry_after_and_402_the_credits_message(
    stub: StubServer, client: httpx.Client
) -> None:
    stub.add_fault(path="/api/v1/chat/completions", status=503, times=1)
    assert client.post(CHAT, json=user_says("hi")).headers["retry-after"] == "1"
    stub.add_fault(path="/api/v1/chat/completions", status=402)
    error = client.post(CHAT, json=user_says("hi")).json()["error"]
    assert error["code"] == 402 and error["message"].startswith("Insufficient credits")


def test_fault_matches_by_model(stub: StubServer, client: httpx.Client) -> None:
    stub.add_fault(path="/api/v1/chat", model="anthropic/claude-3.5-haiku", status=500)
    assert client.post(CHAT, json=user_says("hi")).status_code == 200
    other = {**user_says("hi"), "model": "anthropic/claude-3.5-haiku"}
    assert client.post(CHAT, json=other).status_code == 500


def test_fault_delay_slows_the_answer(stub: StubServer, client: httpx.Client) -> None:
    stub.add_fault(path="/api/v1/models", delay=0.3, times=1)
    started = time.monotonic()
    assert client.get("/models").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_global_latency_applies_to_chat(stub: StubServer, client: httpx.Client) -> None:
    client.post(stub.root_url + "/_stub/faults", json={"latency": 0.3})
    started = time.monotonic()
    client.post(CHAT, json=user_says("hi"))
    assert time.monotonic() - started >= 0.3


def test_fault_breaks_the_stream_mid_way(stub: StubServer, client: httpx.Client) -> None:
    stub.add_fault(path="/api/v1/chat/completions", break_stream_after=3)
    body = user_says("one two three four five", stream=True)
    with client.stream("POST", CHAT, json=body) as response:
        assert response.status_code == 200
        events = sse_events(response.read().decode())
    chunks = [json.loads(event.removeprefix("data: ")) for event in events[1:]]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, None, "error"]
    assert chunks[-1]["error"]["code"] == 502 and "data: [DONE]" not in events


def test_fault_drops_the_connection(stub: StubServer, client: httpx.Client) -> None:
    stub.add_fault(path="/api/v1/chat/completions", drop_connection=True, times=1)
    with pytest.raises(httpx.RemoteProtocolError):
        client.post(CHAT, json=user_says("hi"))
    assert client.post(CHAT, json=user_says("hi")).status_code == 200


@pytest.mark.parametrize(
    ("outcome", "error"),
    [("failed", "Content policy violation"), ("expired", "Job exceeded maximum time to live")],
)
def test_fault_makes_the_next_video_job_end_badly(
    stub: StubServer, client: httpx.Client, outcome: str, error: str
) -> None:
    stub.configure(video_seconds=0)
    rule: dict[str, Any] = {"video_outcome": outcome, "times": 1}
    if outcome == "failed":
        rule["error"] = error
    client.post(stub.root_url + "/_stub/faults", json=[rule])
    body = {"model": "kwaivgi/kling-v3.0-pro", "prompt": "x"}
    first, second = (client.post("/videos", json=body).json()["id"] for _ in range(2))
    ended = client.get(f"/videos/{first}").json()
    assert ended["status"] == outcome and ended["error"] == error
    assert "unsigned_urls" not in ended
    assert client.get(f"/videos/{second}").json()["status"] == "completed"


def test_fault_rules_are_validated(stub: StubServer) -> None:
    response = httpx.post(stub.root_url + "/_stub/faults", json={"paht": "/api"})
    assert response.status_code == 400


# -- request log and reset ---------------------------------------------------------------------


def test_request_log_records_requests_without_the_key(
    stub: StubServer, client: httpx.Client
) -> None:
    client.post(CHAT, json=user_says("logged"), headers={"X-Title": "stub tests"})
    httpx.post(stub.base_url + CHAT, json=user_says("anonymous"))
    entries = httpx.get(stub.root_url + "/_stub/requests").json()["requests"]
    assert [entry["auth"] for entry in entries] == [
        {"present": True, "valid": True},
        {"present": False, "valid": False},
    ]
    first = entries[0]
    assert first["method"] == "POST" and first["path"] == "/api/v1/chat/completions"
    assert first["json"]["messages"][0]["content"] == "logged"
    assert first["headers"]["x-title"] == "stub tests"
    assert "authorization" not in first["headers"]
    assert API_KEY not in json.dumps(entries)


def test_reset_clears_faults_log_jobs_and_settings(stub: StubServer, client: httpx.Client) -> None:
    stub.add_fault(path="/api/v1/chat/completions", status=500)
    stub.configure(latency=5)
    job = client.post("/videos", json={"model": "google/veo-3.1-fast", "prompt": "x"}).json()
    assert httpx.post(stub.root_url + "/_stub/reset").json() == {"ok": True}
    assert stub.requests() == [] and stub.state.faults == []
    assert client.get(f"/videos/{job['id']}").status_code == 404
    assert client.post(CHAT, json=user_says("hi")).status_code == 200


# -- embeddings (reference §8) -----------------------------------------------------------------


def embed(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post("/embeddings", json={"model": EMBEDDING_MODEL, **body})


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(value * value for value in vector))


def test_embeddings_are_deterministic_unit_vectors(client: httpx.Client) -> None:
    response = embed(client, input="The quick brown fox")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list" and body["model"] == EMBEDDING_MODEL
    assert body["id"].startswith("gen-") and response.headers["x-generation-id"] == body["id"]
    (item,) = body["data"]
    assert item["object"] == "embedding" and item["index"] == 0
    assert len(item["embedding"]) == 1536 and norm(item["embedding"]) == pytest.approx(1.0)
    again = embed(client, input="The quick brown fox").json()["data"][0]["embedding"]
    other = embed(client, input="A lazy dog").json()["data"][0]["embedding"]
    assert again == item["embedding"] and other != item["embedding"]
    usage = body["usage"]
    assert usage["prompt_tokens"] == usage["total_tokens"] == 5  # 19 characters
    assert usage["cost"] == pytest.approx(5 * 0.00000002) and usage["is_byok"] is False


def test_embeddings_in_base64_decode_to_the_float_vectors(client: httpx.Client) -> None:
    texts = ["first", "second"]
    floats = embed(client, input=texts).json()["data"]
    packed = embed(client, input=texts, encoding_format="base64").json()["data"]
    assert [item["index"] for item in packed] == [0, 1]
    for as_float, as_base64 in zip(floats, packed, strict=True):
        raw = base64.b64decode(as_base64["embedding"])
        assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == as_float["embedding"]


def test_embeddings_dimensions_shorten_and_renormalise(client: httpx.Client) -> None:
    full = embed(client, input="shorten me").json()["data"][0]["embedding"]
    short = embed(client, input="shorten me", dimensions=256).json()["data"][0]["embedding"]
    assert len(short) == 256 and norm(short) == pytest.approx(1.0)
    scale = norm(full[:256])
    assert short == pytest.approx([value / scale for value in full[:256]], rel=1e-5)


def test_embeddings_accept_token_arrays(client: httpx.Client) -> None:
    one = embed(client, input=[1, 2, 3]).json()
    assert len(one["data"]) == 1 and one["usage"]["prompt_tokens"] == 3
    two = embed(client, input=[[1, 2], [3]]).json()
    assert len(two["data"]) == 2 and two["usage"]["prompt_tokens"] == 3


@pytest.mark.parametrize(
    "body",
    [
        {"input": ""},
        {"input": []},
        {"input": ["ok", ""]},
        {"input": "x", "encoding_format": "hex"},
        {"input": "x", "dimensions": 4096},
        {"input": "x", "model": TEXT_MODEL},
        {"input": "x", "model": "mistralai/mistral-embed-2312", "dimensions": 256},
    ],
)
def test_embeddings_reject_bad_requests(client: httpx.Client, body: dict[str, Any]) -> None:
    response = embed(client, **body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 400


def test_embedding_models_are_listed(stub: StubServer) -> None:
    listed = httpx.get(stub.base_url + "/embeddings/models").json()["data"]
    assert {model["id"] for model in listed} == {EMBEDDING_MODEL, "mistralai/mistral-embed-2312"}
    assert all(m["architecture"]["output_modalities"] == ["embeddings"] for m in listed)
    assert all(float(m["pricing"]["prompt"]) > 0 for m in listed)


# -- the `user` field (reference §8) -----------------------------------------------------------

VIDEO_BODY = {"model": "google/veo-3.1-fast", "prompt": "a dog"}
IMAGE_BODY = {"model": "bytedance-seed/seedream-4.5", "prompt": "a lighthouse"}


def generation_requests(user: str | None) -> list[tuple[str, dict[str, Any]]]:
    extra = {} if user is None else {"user": user}
    return [
        (CHAT, {**user_says("hi"), **extra}),
        (CHAT, {**user_says("hi", stream=True), **extra}),
        ("/images", {**IMAGE_BODY, **extra}),
        ("/videos", {**VIDEO_BODY, **extra}),
        ("/embeddings", {"model": EMBEDDING_MODEL, "input": "hi", **extra}),
    ]


def test_every_generation_request_records_its_user(stub: StubServer, client: httpx.Client) -> None:
    for path, body in generation_requests("pseudonym-7f3a"):
        assert client.post(path, json=body).status_code in (200, 202), path
    client.post(CHAT, json=user_says("nobody"))
    client.get("/models")
    stub.add_fault(path="/api/v1/embeddings", status=429, times=1)
    limited = {"model": EMBEDDING_MODEL, "input": "x", "user": "pseudonym-7f3a"}
    assert client.post("/embeddings", json=limited).status_code == 429
    httpx.post(stub.base_url + CHAT, json={**user_says("no key"), "user": "anonymous"})
    assert stub.users() == ["pseudonym-7f3a"] * 5 + [None, "pseudonym-7f3a"]
    assert stub.users("/api/v1/embeddings") == ["pseudonym-7f3a"] * 2  # faulted ones too
    entries = httpx.get(stub.root_url + "/_stub/users?path=/api/v1/chat").json()["users"]
    assert [(e["path"], e["model"], e["user"]) for e in entries] == [
        ("/api/v1/chat/completions", TEXT_MODEL, "pseudonym-7f3a"),
        ("/api/v1/chat/completions", TEXT_MODEL, "pseudonym-7f3a"),
        ("/api/v1/chat/completions", TEXT_MODEL, None),
    ]
    assert {g.user for g in stub.generations()} == {"pseudonym-7f3a", None}


@pytest.mark.parametrize("user", [None, "", "   "])
def test_require_user_refuses_generation_requests_without_one(
    stub: StubServer, client: httpx.Client, user: str | None
) -> None:
    stub.configure(require_user=True)
    for path, body in generation_requests(user):
        response = client.post(path, json=body)
        assert response.status_code == 400, path
        error = response.json()["error"]
        assert error["code"] == 400 and '"user"' in error["message"]
        assert error["metadata"] == {"error_type": "invalid_request"}
    assert stub.generations() == [] and stub.state.jobs == {}
    assert len(stub.users()) == 5  # refused requests are recorded too
    assert client.get("/models").status_code == 200


def test_require_user_lets_requests_with_a_user_through(
    stub: StubServer, client: httpx.Client
) -> None:
    client.post(stub.root_url + "/_stub/config", json={"require_user": True})
    for path, body in generation_requests("u-1"):
        assert client.post(path, json=body).status_code in (200, 202), path
    assert client.post(CHAT, json={**user_says("hi"), "user": 42}).status_code == 400
    assert httpx.post(stub.root_url + "/_stub/config", json={"require_user": 1}).status_code == 400


# -- generation stats (reference §7, §8) -------------------------------------------------------


def stats(client: httpx.Client, generation_id: str) -> dict[str, Any]:
    response = client.get("/generation", params={"id": generation_id})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def test_generation_stats_report_a_chats_usage(client: httpx.Client) -> None:
    headers = {"HTTP-Referer": "https://gateway.example", "User-Agent": "stub-tests"}
    response = client.post(CHAT, json={**user_says("hi"), "user": "u-9"}, headers=headers)
    body = response.json()
    data = stats(client, response.headers["x-generation-id"])
    usage = body["usage"]
    assert data["id"] == body["id"] and data["model"] == TEXT_MODEL
    assert data["total_cost"] == data["usage"] == usage["cost"]
    assert data["tokens_prompt"] == data["native_tokens_prompt"] == usage["prompt_tokens"]
    assert data["tokens_completion"] == usage["completion_tokens"]
    assert data["native_tokens_completion"] == usage["completion_tokens"]
    assert data["native_tokens_reasoning"] == 0 and data["native_tokens_cached"] == 0
    assert data["api_type"] == "completions" and data["provider_name"] == "OpenAI"
    assert data["streamed"] is False and data["cancelled"] is False
    assert data["finish_reason"] == "stop" and data["external_user"] == "u-9"
    assert data["http_referer"] == "https://gateway.example" and data["user_agent"] == "stub-tests"
    assert data["created_at"].endswith("+00:00") and data["is_byok"] is False


def test_generation_stats_cover_streams_images_embeddings_and_videos(
    stub: StubServer, client: httpx.Client
) -> None:
    stub.configure(video_seconds=0.3)
    with client.stream("POST", CHAT, json=user_says("a b", stream=True)) as response:
        chunks = [json.loads(e[6:]) for e in sse_events(response.read().decode())[1:-1]]
    streamed = stats(client, response.headers["x-generation-id"])
    assert streamed["streamed"] is True and streamed["total_cost"] == chunks[-1]["usage"]["cost"]

    image = client.post("/images", json={**IMAGE_BODY, "n": 2})
    image_stats = stats(client, image.headers["x-generation-id"])
    assert image_stats["api_type"] == "image" and image_stats["num_media_completion"] == 2
    assert image_stats["total_cost"] == image.json()["usage"]["cost"]

    embedding = embed(client, input="x").json()
    embedding_stats = stats(client, embedding["id"])
    assert embedding_stats["api_type"] == "embeddings"
    assert embedding_stats["total_cost"] == embedding["usage"]["cost"]

    job = client.post("/videos", json=VIDEO_BODY).json()
    time.sleep(0.35)
    done = client.get(f"/videos/{job['id']}").json()
    video_stats = stats(client, done["generation_id"])
    assert video_stats["api_type"] == "video" and video_stats["total_cost"] == done["usage"]["cost"]


def test_generation_stats_answer_404_until_known(stub: StubServer, client: httpx.Client) -> None:
    assert client.get("/generation", params={"id": "gen-unknown"}).status_code == 404
    assert client.get("/generation").status_code == 400
    assert httpx.get(stub.base_url + "/generation?id=x").status_code == 401
    stub.configure(generation_stats_lag=0.3)
    generation_id = client.post(CHAT, json=user_says("hi")).json()["id"]
    early = client.get("/generation", params={"id": generation_id})
    assert early.status_code == 404 and early.json()["error"]["code"] == 404
    time.sleep(0.35)
    assert stats(client, generation_id)["id"] == generation_id


def test_video_generation_stats_appear_when_the_job_ends(
    stub: StubServer, client: httpx.Client
) -> None:
    stub.configure(video_seconds=0.4)
    client.post("/videos", json=VIDEO_BODY)
    (generation,) = stub.generations()
    assert client.get("/generation", params={"id": generation.id}).status_code == 404
    time.sleep(0.45)
    assert stats(client, generation.id)["total_cost"] == pytest.approx(0.48)


# -- abandoned streams -------------------------------------------------------------------------

LONG_TEXT = " ".join(f"word{index}" for index in range(40))


def test_a_client_abandoning_a_stream_is_recorded_with_the_full_cost(
    stub: StubServer, client: httpx.Client
) -> None:
    full_cost = client.post(CHAT, json=user_says(LONG_TEXT)).json()["usage"]["cost"]
    stub.configure(token_delay=0.05)  # ~42 tokens: ~2 s if nobody hung up
    started = time.monotonic()
    with client.stream("POST", CHAT, json=user_says(LONG_TEXT, stream=True)) as response:
        generation_id = response.headers["x-generation-id"]
        lines = response.iter_lines()
        while "word0" not in next(lines):
            pass
    generation = stub.wait_until_abandoned(generation_id, timeout=1.5)
    assert time.monotonic() - started < 1.5
    assert generation.abandoned and not generation.stream_finished
    assert 1 <= generation.events_sent < 10
    data = stats(client, generation_id)
    assert data["cancelled"] is True and data["streamed"] is True
    assert data["total_cost"] == pytest.approx(full_cost)
    control = httpx.get(f"{stub.root_url}/_stub/generations/{generation_id}").json()
    assert control["abandoned"] is True and control["events_sent"] == generation.events_sent


def test_a_stream_read_to_the_end_is_not_abandoned(stub: StubServer, client: httpx.Client) -> None:
    with client.stream("POST", CHAT, json=user_says("a b c", stream=True)) as response:
        response.read()
    generation = stub.generation(response.headers["x-generation-id"])
    time.sleep(0.1)
    assert generation.stream_finished and not generation.abandoned
    listed = httpx.get(stub.root_url + "/_stub/generations").json()["generations"]
    assert [(g["id"], g["abandoned"]) for g in listed] == [(generation.id, False)]


# -- chat features the openai SDK exercises ----------------------------------------------------

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["location", "unit"],
        },
    },
}
TIME_TOOL = {"type": "function", "function": {"name": "get_time", "parameters": {}}}


def stream_chunks(client: httpx.Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    with client.stream("POST", CHAT, json={**body, "stream": True}) as response:
        events = sse_events(response.read().decode())
    assert events[-1] == "data: [DONE]"
    return [json.loads(event[6:]) for event in events if event.startswith("data: {")]


def test_tools_get_a_deterministic_tool_call(client: httpx.Client) -> None:
    body = user_says("call get_weather for Paris", tools=[TIME_TOOL, WEATHER_TOOL])
    first = client.post(CHAT, json=body).json()
    choice = first["choices"][0]
    assert choice["finish_reason"] == choice["native_finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"]["name"] == "get_weather"  # the tool the user mentions
    arguments = json.loads(call["function"]["arguments"])
    assert arguments == {"location": "Paris, France", "unit": "celsius"}
    again = client.post(CHAT, json=body).json()["choices"][0]["message"]["tool_calls"]
    assert again == [call]
    usage = first["usage"]
    expected = usage["prompt_tokens"] * 0.00000015 + usage["completion_tokens"] * 0.0000006
    assert usage["cost"] == pytest.approx(expected)


def test_tool_calls_stream_as_deltas(client: httpx.Client) -> None:
    body = user_says("weather?", tools=[WEATHER_TOOL], tool_choice="required")
    whole = client.post(CHAT, json=body).json()["choices"][0]["message"]["tool_calls"][0]
    chunks = stream_chunks(client, body)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    calls = [call for delta in deltas for call in delta.get("tool_calls", [])]
    assert calls[0] == {"index": 0, "id": whole["id"], "type": "function"} | {
        "function": {"name": "get_weather", "arguments": ""}
    }
    assert all(call["index"] == 0 and set(call) == {"index", "function"} for call in calls[1:])
    assert (
        "".join(call["function"]["arguments"] for call in calls) == whole["function"]["arguments"]
    )
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["completion_tokens"] == len(calls)


def test_tool_choice_steers_the_answer(client: httpx.Client) -> None:
    tools = [WEATHER_TOOL, TIME_TOOL]

    def answer(**extra: Any) -> dict[str, Any]:
        message: dict[str, Any] = client.post(
            CHAT, json=user_says("weather?", tools=tools, **extra)
        ).json()["choices"][0]["message"]
        return message

    named = {"type": "function", "function": {"name": "get_time"}}
    assert answer(tool_choice=named)["tool_calls"][0]["function"] == {
        "name": "get_time",
        "arguments": "{}",
    }
    assert "tool_calls" not in answer(tool_choice="none")
    assert answer(tool_choice="none")["content"] == "[stub] echo: weather?"
    call = answer()["tool_calls"][0]
    history = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny, 21 C"},
    ]
    closing = client.post(CHAT, json={"model": TEXT_MODEL, "messages": history, "tools": tools})
    choice = closing.json()["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["content"] == "[stub] tool result: sunny, 21 C"


def test_tools_are_refused_when_wrong_or_unsupported(client: httpx.Client) -> None:
    unsupported = client.post(
        CHAT, json={**user_says("hi", tools=[WEATHER_TOOL]), "model": TEXT_IMAGE_MODEL}
    )
    assert unsupported.status_code == 404
    assert unsupported.json()["error"]["message"].startswith(
        "No endpoints found that support tool use."
    )
    unknown = {"type": "function", "function": {"name": "nope"}}
    for body in (
        user_says("hi", tools=[WEATHER_TOOL], tool_choice=unknown),
        user_says("hi", tools=[WEATHER_TOOL], tool_choice="sometimes"),
        user_says("hi", tools=[{"type": "function", "function": {"name": "bad name!"}}]),
        user_says("hi", tools={"not": "a list"}),
    ):
        assert client.post(CHAT, json=body).status_code == 400, body


def test_json_object_mode_answers_valid_json(client: httpx.Client) -> None:
    body = user_says("give me json", response_format={"type": "json_object"})
    content = client.post(CHAT, json=body).json()["choices"][0]["message"]["content"]
    assert json.loads(content) == {"stub": True, "echo": "give me json"}
    streamed = stream_chunks(client, body)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in streamed if c["choices"])
    assert text == content


def test_json_schema_mode_fills_the_required_properties(client: httpx.Client) -> None:
    schema = {  # the shape the openai SDK derives from a Pydantic model
        "$defs": {
            "Step": {
                "type": "object",
                "properties": {"explanation": {"type": "string"}, "output": {"type": "string"}},
                "required": ["explanation", "output"],
                "additionalProperties": False,
            }
        },
        "type": "object",
        "properties": {
            "steps": {"type": "array", "items": {"$ref": "#/$defs/Step"}},
            "final_answer": {"type": "string"},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "email": {"type": "string", "format": "email"},
            "note": {"anyOf": [{"type": "null"}, {"type": "string"}]},
            "done": {"type": "boolean"},
            "optional": {"type": "string"},
        },
        "required": ["steps", "final_answer", "confidence", "email", "note", "done"],
        "additionalProperties": False,
    }
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "math", "strict": True, "schema": schema},
    }
    body = user_says("solve", response_format=response_format)
    content = client.post(CHAT, json=body).json()["choices"][0]["message"]["content"]
    answer = json.loads(content)
    assert set(answer) == set(schema["required"])
    assert answer["steps"] == [{"explanation": "stub explanation", "output": "stub output"}]
    assert isinstance(answer["final_answer"], str) and 0 <= answer["confidence"] <= 1
    assert answer["email"] == "user@example.com" and answer["note"] == "stub note"
    assert answer["done"] is True
    bad = user_says("x", response_format={"type": "json_schema", "json_schema": {}})
    assert client.post(CHAT, json=bad).status_code == 400
    assert (
        client.post(CHAT, json=user_says("x", response_format={"type": "xml"})).status_code == 400
    )


def test_n_asks_for_several_choices(client: httpx.Client) -> None:
    single = client.post(CHAT, json=user_says("one two")).json()["usage"]
    body = user_says("one two", n=3)
    result = client.post(CHAT, json=body).json()
    assert [choice["index"] for choice in result["choices"]] == [0, 1, 2]
    assert {c["message"]["content"] for c in result["choices"]} == {"[stub] echo: one two"}
    assert result["usage"]["completion_tokens"] == 3 * single["completion_tokens"]
    chunks = stream_chunks(client, body)
    texts: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            texts[choice["index"]] = texts.get(choice["index"], "") + choice["delta"]["content"]
    assert texts == {
        0: "[stub] echo: one two",
        1: "[stub] echo: one two",
        2: "[stub] echo: one two",
    }
    finishes = [
        c["choices"][0] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]
    ]
    assert [choice["index"] for choice in finishes] == [0, 1, 2]
    assert client.post(CHAT, json=user_says("x", n=0)).status_code == 400


def test_stop_sequences_cut_the_answer(client: httpx.Client) -> None:
    body = user_says("alpha beta gamma", stop=["gamma", "zeta"])
    choice = client.post(CHAT, json=body).json()["choices"][0]
    assert choice["message"]["content"] == "[stub] echo: alpha beta"
    assert choice["finish_reason"] == "stop"
    assert client.post(CHAT, json=user_says("x", stop=["a"] * 5)).status_code == 400


def test_max_completion_tokens_truncates_with_length(client: httpx.Client) -> None:
    body = user_says("one two three four", max_completion_tokens=3, seed=7)
    result = client.post(CHAT, json=body).json()
    assert result["choices"][0]["message"]["content"] == "[stub] echo: one"
    assert result["choices"][0]["finish_reason"] == "length"
    assert result["usage"]["completion_tokens"] == 3
    chunks = stream_chunks(client, body)
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert client.post(CHAT, json=user_says("x", seed="7")).status_code == 400


def test_usage_is_sent_even_without_include_usage(client: httpx.Client) -> None:
    for options in ({"include_usage": False}, {"include_usage": True}, None):
        body = user_says("hi") if options is None else user_says("hi", stream_options=options)
        chunks = stream_chunks(client, body)
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["cost"] > 0


def test_streams_send_keep_alive_comments_while_waiting(
    stub: StubServer, client: httpx.Client
) -> None:
    stub.configure(latency=0.35, keepalive_interval=0.1)
    with client.stream("POST", CHAT, json=user_says("hi", stream=True)) as response:
        events = sse_events(response.read().decode())
    comments = [event for event in events if event.startswith(":")]
    assert comments == [": OPENROUTER PROCESSING"] * len(comments) and len(comments) >= 3
    assert events[-1] == "data: [DONE]"


# -- pricing -----------------------------------------------------------------------------------


def test_every_model_has_complete_pricing(client: httpx.Client) -> None:
    for model in client.get("/models?output_modalities=all").json()["data"]:
        assert {"prompt", "completion", "request", "image"} <= set(model["pricing"]), model["id"]
        if "image" in model["architecture"]["output_modalities"]:
            assert float(model["pricing"]["image_output"]) > 0, model["id"]
        elif "video" not in model["architecture"]["output_modalities"]:
            assert float(model["pricing"]["prompt"]) > 0, model["id"]
    for video in client.get("/videos/models").json()["data"]:
        for resolution in [*video["supported_resolutions"], None]:
            for audio in (True, False):
                res = resolution.lower() if resolution else None
                assert video_price_per_second(video, res, audio) > 0, (video["id"], resolution)


def price(model: dict[str, Any], key: str) -> float:
    return float(model["pricing"].get(key, "0"))


def test_reported_costs_follow_the_listed_prices(client: httpx.Client) -> None:
    listing = {m["id"]: m for m in client.get("/models?output_modalities=all").json()["data"]}

    picture = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    vision = {"role": "user", "content": [{"type": "text", "text": "what is it"}, picture]}
    usage = client.post(CHAT, json={"model": TEXT_MODEL, "messages": [vision]}).json()["usage"]
    gpt = listing[TEXT_MODEL]
    expected = (
        usage["prompt_tokens"] * price(gpt, "prompt")
        + price(gpt, "image")
        + usage["completion_tokens"] * price(gpt, "completion")
    )
    assert usage["cost"] == pytest.approx(expected)

    body = {**user_says("a red cube"), "model": TEXT_IMAGE_MODEL, "modalities": ["image", "text"]}
    usage = client.post(CHAT, json=body).json()["usage"]
    gemini = listing[TEXT_IMAGE_MODEL]
    image_tokens = usage["completion_tokens_details"]["image_tokens"]
    expected = (
        usage["prompt_tokens"] * price(gemini, "prompt")
        + (usage["completion_tokens"] - image_tokens) * price(gemini, "completion")
        + image_tokens * price(gemini, "image_output")
    )
    assert image_tokens == 1290 and usage["cost"] == pytest.approx(expected)

    usage = client.post("/images", json={**IMAGE_BODY, "n": 2, "resolution": "2K"}).json()["usage"]
    seedream = listing[IMAGE_BODY["model"]]
    assert usage["completion_tokens"] == 2 * 4096 * 4
    assert usage["cost"] == pytest.approx(
        usage["completion_tokens"] * price(seedream, "image_output")
    )

    usage = embed(client, input=["one", "two"]).json()["usage"]
    assert usage["cost"] == pytest.approx(
        usage["prompt_tokens"] * price(listing[EMBEDDING_MODEL], "prompt")
    )


@pytest.mark.parametrize(
    ("body", "cost"),
    [
        ({"model": "openai/sora-2-pro"}, 4 * 0.30),
        ({"model": "openai/sora-2-pro", "resolution": "1080p", "duration": 8}, 8 * 0.50),
        ({"model": "google/veo-3.1-fast", "resolution": "4K", "generate_audio": False}, 4 * 0.25),
        ({"model": "google/veo-3.1-fast", "size": "1280x720", "duration": 6}, 6 * 0.10),
        ({"model": "kwaivgi/kling-v3.0-pro", "duration": 10, "generate_audio": False}, 10 * 0.112),
    ],
)
def test_video_costs_follow_the_pricing_skus(
    stub: StubServer, client: httpx.Client, body: dict[str, Any], cost: float
) -> None:
    stub.configure(video_seconds=0)
    job = client.post("/videos", json={**body, "prompt": "x"}).json()
    assert client.get(f"/videos/{job['id']}").json()["usage"]["cost"] == pytest.approx(cost)


# -- video jobs the upstream forgets -----------------------------------------------------------


def test_fault_makes_video_jobs_forgotten_after_some_polls(
    stub: StubServer, client: httpx.Client
) -> None:
    stub.configure(video_seconds=0)
    stub.add_fault(forget_video_after=1, times=1)
    forgotten = client.post("/videos", json=VIDEO_BODY).json()["id"]
    kept = client.post("/videos", json=VIDEO_BODY).json()["id"]
    assert client.get(f"/videos/{forgotten}").json()["status"] == "completed"
    lost = client.get(f"/videos/{forgotten}")
    assert lost.status_code == 404
    assert lost.json() == {
        "error": {
            "code": 404,
            "message": "Video generation job not found",
            "metadata": {"error_type": "not_found"},
        }
    }
    assert client.get(f"/videos/{forgotten}/content?index=0").status_code == 404
    job = stub.video_job(forgotten)
    assert (job.polls, job.downloads, job.forgotten) == (2, 1, True)
    for _ in range(3):
        assert client.get(f"/videos/{kept}").status_code == 200
    assert stub.video_job(kept).polls == 3


def test_video_jobs_can_be_forgotten_and_counted_through_the_control_api(
    stub: StubServer, client: httpx.Client
) -> None:
    job_id = client.post("/videos", json={**VIDEO_BODY, "user": "u-2"}).json()["id"]
    client.get(f"/videos/{job_id}")
    forgot = httpx.post(f"{stub.root_url}/_stub/videos/{job_id}/forget")
    assert forgot.status_code == 200 and forgot.json()["forgotten"] is True
    assert client.get(f"/videos/{job_id}").status_code == 404
    jobs = httpx.get(stub.root_url + "/_stub/videos").json()["jobs"]
    assert [(j["id"], j["polls"], j["user"], j["forgotten"]) for j in jobs] == [
        (job_id, 2, "u-2", True)
    ]
    assert httpx.get(f"{stub.root_url}/_stub/videos/job-nope").status_code == 404
    assert (
        httpx.post(stub.root_url + "/_stub/faults", json={"forget_video_after": -1}).status_code
        == 400
    )
