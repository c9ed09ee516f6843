"""The OpenRouter stub speaks the reference wire format and injects the faults tests ask for."""

from __future__ import annotations

import base64
import json
import struct
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.openrouter_stub import StubServer

API_KEY = "test-stub-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
CHAT = "/chat/completions"
TEXT_MODEL = "openai/gpt-4o-mini"
TEXT_IMAGE_MODEL = "google/gemini-2.5-flash-image"
IMAGE_ONLY_MODEL = "black-forest-labs/flux.2-klein-4b"


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
    assert ids("all") == ids("text,image,video")
    assert len(ids("all")) == 10
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
