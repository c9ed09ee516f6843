"""SPEC §2 "AI" through Django's test client against the OpenRouter stand-in."""

from __future__ import annotations

import base64
import time
import uuid

import pytest

from tests.accounts.test_auth_api import error_code
from tests.conftest import STUB_KEY

PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def body_of(response) -> bytes:
    """The bytes of a (possibly async) streamed file response."""
    import asyncio

    async def collect() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    return asyncio.run(collect())


def usage_rows(database):
    from generation.recorder import get_recorder

    get_recorder().flush_soon()
    database.flush_writes()
    return database.read(
        lambda con: con.execute(
            "SELECT kind, model, tokens_in, tokens_out, cost, status, error_code, user_id"
            " FROM usage_records ORDER BY occurred_at, id"
        ).fetchall()
    )


# -- models -----------------------------------------------------------------------------


def test_models_lists_every_kind_with_pricing_and_modalities(alice, stub):
    items = alice.client.call("GET", "/api/ai/models").json()["items"]
    kinds = {m["kind"] for m in items}
    assert kinds == {"text", "image", "video"}
    flux = next(m for m in items if m["id"] == "black-forest-labs/flux.2-klein-4b")
    assert flux["output_modalities"] == ["image"]
    assert set(flux) >= {"id", "name", "context_length", "pricing", "input_modalities"}


def test_models_filter_by_kind(alice, stub):
    videos = alice.client.call("GET", "/api/ai/models?kind=video").json()["items"]
    assert videos and all(m["kind"] == "video" for m in videos)
    assert alice.client.call("GET", "/api/ai/models?kind=audio").status_code == 400


def test_models_are_cached(alice, stub):
    for _ in range(3):
        alice.client.call("GET", "/api/ai/models")
    assert len(stub.requests("/api/v1/models")) == 1


def test_models_need_a_signed_in_user(anon, stub):
    assert anon.call("GET", "/api/ai/models").status_code == 401


# -- text and chat -----------------------------------------------------------------------


def test_generate_text_returns_text_and_usage_and_records_both(alice, stub, database):
    response = alice.client.call(
        "POST", "/api/generate/text",
        {"model": "openai/gpt-4o-mini", "prompt": "Say hi", "system_prompt": "Be brief"},
    )  # fmt: skip
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model"] == "openai/gpt-4o-mini"
    assert "Say hi" in body["text"]
    assert body["usage"]["prompt_tokens"] > 0 and body["usage"]["cost"] > 0
    sent = stub.requests("/api/v1/chat/completions")[-1]["json"]
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "Say hi"},
    ]
    rows = usage_rows(database)
    assert rows[-1][:2] == ("text", "openai/gpt-4o-mini")
    assert rows[-1][4] == pytest.approx(body["usage"]["cost"])
    assert str(rows[-1][7]) == alice.id
    history = alice.client.call("GET", "/api/generations").json()
    assert history["items"][0]["id"] == body["id"]
    assert history["items"][0]["text"] == body["text"]


def test_chat_is_multi_turn(alice, stub):
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "second"},
    ]
    response = alice.client.call(
        "POST",
        "/api/ai/chat",
        {"model": "openai/gpt-4o-mini", "messages": messages, "temperature": 0.2},
    )
    assert response.status_code == 200, response.content
    assert response.json()["message"]["role"] == "assistant"
    sent = stub.requests("/api/v1/chat/completions")[-1]["json"]
    assert sent["messages"] == messages and sent["temperature"] == 0.2


async def stream_chat(persona, content: str, *, stream: bool = True, accept: str | None = None):
    """Streaming responses are async iterators: they need Django's AsyncClient."""
    from django.test import AsyncClient

    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": content}],
            "stream": stream}  # fmt: skip
    headers = {"Authorization": f"Bearer {persona.access}"}
    if accept is not None:
        headers["Accept"] = accept
    return await AsyncClient().post(
        "/api/ai/chat", body, content_type="application/json", headers=headers
    )


async def read_sse(response) -> list[tuple[str, dict]]:
    import json

    text = b"".join([chunk async for chunk in response.streaming_content]).decode()
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


@pytest.mark.anyio
async def test_chat_streams_server_sent_events_token_by_token(alice, stub, database):
    response = await stream_chat(alice, "stream me")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    events = await read_sse(response)
    deltas = [data["content"] for name, data in events if name == "delta"]
    assert len(deltas) > 1
    assert events[-1][0] == "done"
    assert events[-1][1]["usage"]["cost"] > 0
    row = usage_rows(database)[-1]
    assert row[0] == "chat" and row[5] == "ok" and row[4] > 0


@pytest.mark.anyio
@pytest.mark.parametrize(
    "accept",
    ["text/event-stream", "*/*", "text/*", "text/event-stream, application/json;q=0.5",
     "application/json", "text/event-stream; charset=utf-8"],
)  # fmt: skip
async def test_sse_clients_that_say_what_they_accept_can_stream(alice, stub, accept):
    response = await stream_chat(alice, "stream me", accept=accept)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/event-stream"
    assert (await read_sse(response))[-1][0] == "done"


@pytest.mark.anyio
@pytest.mark.parametrize("accept", ["application/json", "*/*", "text/event-stream"])
async def test_a_chat_without_stream_answers_json_whatever_the_client_accepts(alice, stub, accept):
    response = await stream_chat(alice, "one piece", stream=False, accept=accept)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json()["message"]["role"] == "assistant"


@pytest.mark.anyio
async def test_a_refused_stream_is_a_json_error_even_to_an_sse_client(alice, stub):
    response = await stream_chat(alice, "", accept="text/event-stream")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert error_code(response) == "validation_error"


def test_endpoints_that_never_stream_still_refuse_an_event_stream_only_client(alice):
    response = alice.client.call("GET", "/api/users/me", headers={"Accept": "text/event-stream"})
    assert response.status_code == 406
    assert error_code(response) == "not_acceptable"
    page = alice.client.call("POST", "/api/ai/chat", {}, headers={"Accept": "text/html"})
    assert page.status_code == 406


@pytest.mark.anyio
async def test_a_stream_broken_mid_way_ends_with_an_error_event_and_a_failed_usage_row(
    alice, stub, database
):
    stub.add_fault(path="/api/v1/chat/completions", break_stream_after=2)
    response = await stream_chat(alice, "x y z w")
    events = await read_sse(response)
    assert [name for name, _ in events][:2] == ["delta", "delta"]
    assert events[-1][0] == "error"
    assert events[-1][1]["error"]["code"].startswith("upstream_")
    row = usage_rows(database)[-1]
    assert row[0] == "chat" and row[5] == "error"
    from asgiref.sync import sync_to_async

    history = await sync_to_async(alice.client.call)("GET", "/api/generations?kind=chat")
    assert history.json()["items"][0]["status"] == "failed"


def test_an_error_before_the_first_token_is_a_plain_json_error(alice, stub):
    stub.add_fault(path="/api/v1/chat/completions", status=429, retry_after=7)
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}
    response = alice.client.call("POST", "/api/ai/chat", {**body, "stream": True})
    assert response.status_code == 429
    assert response["Retry-After"] == "7"
    assert error_code(response) == "upstream_rate_limited"


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ({"status": 429, "retry_after": 9}, 429, "upstream_rate_limited"),
        ({"status": 500}, 502, "upstream_unavailable"),
        ({"status": 503, "retry_after": 3}, 502, "upstream_unavailable"),
        ({"status": 402}, 502, "upstream_payment_required"),
        ({"drop_connection": True}, 502, "upstream_unavailable"),
    ],
)
def test_upstream_failures_map_to_the_specs_statuses(alice, stub, database, fault, status, code):
    stub.add_fault(path="/api/v1/chat/completions", **fault)
    response = alice.client.call(
        "POST", "/api/generate/text", {"model": "openai/gpt-4o-mini", "prompt": "hi"}
    )
    assert response.status_code == status
    assert error_code(response) == code
    assert STUB_KEY not in response.content.decode()
    row = usage_rows(database)[-1]
    assert row[5] == "error" and row[6] == code


def test_an_upstream_timeout_is_a_504(alice, stub, settings, database):
    settings.OPENROUTER_READ_TIMEOUT = 0.3
    stub.add_fault(path="/api/v1/chat/completions", delay=2)
    response = alice.client.call(
        "POST", "/api/generate/text", {"model": "openai/gpt-4o-mini", "prompt": "hi"}
    )
    assert response.status_code == 504
    assert error_code(response) == "upstream_timeout"


def test_without_an_api_key_generation_answers_503_and_says_what_to_set(alice, stub, settings):
    settings.OPENROUTER_API_KEY = ""
    response = alice.client.call(
        "POST", "/api/generate/text", {"model": "openai/gpt-4o-mini", "prompt": "x"}
    )
    assert response.status_code == 503
    assert error_code(response) == "upstream_not_configured"
    assert "OPENROUTER_API_KEY" in response.json()["error"]["message"]
    assert alice.client.call("GET", "/api/users/me").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"model": "openai/gpt-4o-mini"},
        {"model": "x", "prompt": 5},
        {"model": "bad model id!", "prompt": "x"},
        {"model": "openai/gpt-4o-mini", "prompt": "x", "temperature": 3},
        {"model": "openai/gpt-4o-mini", "prompt": "x", "max_tokens": "10"},
        {"model": "openai/gpt-4o-mini", "prompt": "x", "extra": 1},
    ],
)
def test_text_input_is_validated_before_any_upstream_call(alice, stub, body):
    assert alice.client.call("POST", "/api/generate/text", body).status_code == 400
    assert stub.requests("/api/v1/chat/completions") == []


@pytest.mark.parametrize(
    "messages",
    [[], [{"role": "system", "content": "x"}], [{"role": "tool", "content": "x"}], "hello"],
)
def test_chat_messages_are_validated(alice, stub, messages):
    body = {"model": "openai/gpt-4o-mini", "messages": messages}
    assert alice.client.call("POST", "/api/ai/chat", body).status_code == 400


# -- images -----------------------------------------------------------------------------


def test_text_and_image_models_use_chat_completions_with_both_modalities(alice, stub):
    response = alice.client.call(
        "POST", "/api/generate/image",
        {"model": "google/gemini-2.5-flash-image", "prompt": "a cat", "aspect_ratio": "16:9"},
    )  # fmt: skip
    assert response.status_code == 201, response.content
    sent = stub.requests("/api/v1/chat/completions")[-1]["json"]
    assert sent["modalities"] == ["image", "text"]
    assert sent["image_config"] == {"aspect_ratio": "16:9"}
    image = response.json()["images"][0]
    served = alice.client.get(image["url"], headers={"Authorization": f"Bearer {alice.access}"})
    assert served.status_code == 200
    assert body_of(served).startswith(b"\x89PNG")


def test_image_only_models_use_the_image_api_never_images_generations(alice, stub):
    response = alice.client.call(
        "POST", "/api/generate/image",
        {"model": "black-forest-labs/flux.2-klein-4b", "prompt": "a dog", "n": 1},
    )  # fmt: skip
    assert response.status_code == 201, response.content
    paths = [r["path"] for r in stub.requests("/api/v1/")]
    assert "/api/v1/images" in paths
    assert "/api/v1/images/generations" not in paths
    assert "/api/v1/chat/completions" not in paths


def test_image_generation_refuses_a_non_image_model(alice, stub):
    response = alice.client.call(
        "POST", "/api/generate/image", {"model": "openai/gpt-4o-mini", "prompt": "x"}
    )
    assert response.status_code == 400
    assert error_code(response) == "unknown_model"


def test_images_are_served_to_their_owner_only(alice, mallory, stub):
    body = alice.client.call(
        "POST", "/api/generate/image", {"model": "google/gemini-2.5-flash-image", "prompt": "x"}
    ).json()
    url = body["images"][0]["url"]
    assert mallory.client.call("GET", url).status_code == 404
    assert mallory.client.call("GET", f"/api/generations/{body['id']}").status_code == 404
    assert alice.client.call("GET", url.replace("/media/0", "/media/5")).status_code == 404


# -- videos -----------------------------------------------------------------------------


def submit_video(persona, **extra):
    body = {"model": "google/veo-3.1-fast", "prompt": "a beach", "duration": 4, **extra}
    return persona.client.call("POST", "/api/generate/video", body)


def wait_for_video(persona, job_id, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = persona.client.call("GET", f"/api/generate/video/{job_id}").json()
        if job["status"] in ("completed", "failed", "cancelled", "expired") and (
            job["status"] != "completed" or job["video_url"]
        ):
            return job
        time.sleep(0.2)
    raise AssertionError(f"video job {job_id} did not finish: {job}")


@pytest.fixture
def fast_polls(monkeypatch):
    from datetime import timedelta

    from generation import services

    monkeypatch.setattr(services, "POLL_INTERVAL", timedelta(seconds=0.2))


def test_a_video_job_is_accepted_polled_and_downloaded_once(alice, stub, database, fast_polls):
    response = submit_video(alice)
    assert response.status_code == 202, response.content
    job = response.json()
    assert job["status"] == "pending"
    sent = next(r for r in stub.requests("/api/v1/videos") if r["method"] == "POST")["json"]
    assert sent["duration"] == 4 and "duration_seconds" not in sent
    done = wait_for_video(alice, job["id"])
    assert done["status"] == "completed"
    video = alice.client.get(done["video_url"], headers={"Authorization": f"Bearer {alice.access}"})
    assert video.status_code == 200 and video["Content-Type"] == "video/mp4"
    assert len(body_of(video)) > 1000
    alice.client.call("GET", f"/api/generate/video/{job['id']}")
    downloads = [r for r in stub.requests("/api/v1/videos/") if r["path"].endswith("/content")]
    assert len(downloads) == 1
    kinds = [row[0] for row in usage_rows(database)]
    assert "video_submit" in kinds and "video" in kinds and "video_download" in kinds
    cost_rows = [row for row in usage_rows(database) if row[0] == "video"]
    assert cost_rows[0][4] > 0


def test_status_requests_poll_upstream_at_most_once_per_five_seconds(alice, stub):
    job = submit_video(alice).json()
    for _ in range(10):
        alice.client.call("GET", f"/api/generate/video/{job['id']}")
    polls = [r for r in stub.requests("/api/v1/videos/") if not r["path"].endswith("/content")]
    assert len(polls) <= 1


def test_a_failed_video_job_shows_the_reason(alice, stub, fast_polls):
    stub.add_fault(video_outcome="failed", error="Content policy violation", times=1)
    job = submit_video(alice).json()
    done = wait_for_video(alice, job["id"])
    assert done["status"] == "failed"
    assert done["error"] == "Content policy violation"
    history = alice.client.call("GET", f"/api/generations/{job['id']}").json()
    assert history["status"] == "failed"


def test_other_users_cannot_see_a_job_or_its_video(alice, mallory, stub, fast_polls):
    job = submit_video(alice).json()
    done = wait_for_video(alice, job["id"])
    assert mallory.client.call("GET", f"/api/generate/video/{job['id']}").status_code == 404
    assert mallory.client.call("GET", done["video_url"]).status_code == 404
    status = mallory.client.call(
        "GET", f"/api/generate/video/status?polling_url={job['polling_url']}"
    )
    assert status.status_code == 404


def test_the_compat_status_endpoint_answers_for_own_jobs(alice, stub):
    job = submit_video(alice).json()
    response = alice.client.call(
        "GET", f"/api/generate/video/status?polling_url={job['polling_url']}"
    )
    assert response.status_code == 200
    assert response.json()["id"] == job["id"]


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.com/api/v1/videos/x",
        "http://127.0.0.1:1/steal",
        "/api/v1/videos/other",
    ],
)
def test_a_foreign_polling_url_is_refused_without_any_outbound_request(alice, stub, url):
    before = len(stub.requests())
    response = alice.client.call("GET", "/api/generate/video/status", None)
    assert response.status_code == 400
    response = alice.client.get(
        "/api/generate/video/status", {"polling_url": url},
        headers={"Authorization": f"Bearer {alice.access}"},
    )  # fmt: skip
    assert response.status_code == 404
    assert len(stub.requests()) == before


def test_video_from_an_uploaded_image_sends_a_first_frame(alice, stub):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("frame.png", PNG_1PX, content_type="image/png")
    response = alice.client.post(
        "/api/generate/video/from-image",
        {"model": "google/veo-3.1-fast", "prompt": "move", "duration": "4", "image": upload},
        headers={"Authorization": f"Bearer {alice.access}"},
    )
    assert response.status_code == 202, response.content
    frame = stub.requests("/api/v1/videos")[-1]["json"]["frame_images"][0]
    assert frame["frame_type"] == "first_frame"
    assert frame["image_url"]["url"].startswith("data:image/png;base64,")


def test_video_from_an_image_url_passes_the_url_through(alice, stub):
    response = alice.client.call(
        "POST", "/api/generate/video/from-image",
        {"model": "google/veo-3.1-fast", "prompt": "move", "image_url": "https://example.com/a.png"},
    )  # fmt: skip
    assert response.status_code == 202
    frame = stub.requests("/api/v1/videos")[-1]["json"]["frame_images"][0]
    assert frame["image_url"]["url"] == "https://example.com/a.png"


def test_video_from_an_image_takes_an_upload_or_a_url_as_its_schema_says(alice, stub):
    from django.core.files.uploadedfile import SimpleUploadedFile

    as_json = alice.client.call(
        "POST", "/api/generate/video/from-image", {"model": "google/veo-3.1-fast", "prompt": "move"}
    )
    assert as_json.status_code == 400
    assert set(as_json.json()["error"]["fields"]) == {"image_url"}
    upload = SimpleUploadedFile("frame.png", PNG_1PX, content_type="image/png")
    both = alice.client.post(
        "/api/generate/video/from-image",
        {"model": "google/veo-3.1-fast", "prompt": "move", "image": upload, "image_url": "x"},
        headers={"Authorization": f"Bearer {alice.access}"},
    )
    assert both.status_code == 400
    assert set(both.json()["error"]["fields"]) == {"image_url"}
    assert [r for r in stub.requests("/api/v1/videos") if r["method"] == "POST"] == []


@pytest.mark.parametrize(
    ("name", "data"),
    [("evil.png", b"<script>alert(1)</script>"), ("../../etc/passwd", b"GIF89a....")],
)
def test_hostile_uploads_are_refused(alice, stub, name, data):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile(name, data, content_type="image/png")
    response = alice.client.post(
        "/api/generate/video/from-image",
        {"model": "google/veo-3.1-fast", "prompt": "move", "image": upload},
        headers={"Authorization": f"Bearer {alice.access}"},
    )
    assert response.status_code == 400
    assert [r for r in stub.requests("/api/v1/videos") if r["method"] == "POST"] == []


def test_video_needs_a_video_model(alice, stub):
    response = alice.client.call(
        "POST", "/api/generate/video", {"model": "openai/gpt-4o-mini", "prompt": "x"}
    )
    assert response.status_code == 400


def test_an_out_of_set_duration_is_refused_upstream_with_a_clear_message(alice, stub):
    response = submit_video(alice, duration=7)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "upstream_rejected"


# -- history ----------------------------------------------------------------------------


def test_history_is_own_newest_first_paginated_and_filterable(alice, mallory, stub):
    for prompt in ("one", "two", "three"):
        alice.client.call(
            "POST", "/api/generate/text", {"model": "openai/gpt-4o-mini", "prompt": prompt}
        )
    mallory.client.call(
        "POST", "/api/generate/text", {"model": "openai/gpt-4o-mini", "prompt": "hers"}
    )
    page = alice.client.call("GET", "/api/generations?page_size=2").json()
    assert page["total"] == 3
    assert [g["prompt"] for g in page["items"]] == ["three", "two"]
    assert alice.client.call("GET", "/api/generations?kind=image").json()["total"] == 0
    assert alice.client.call("GET", "/api/generations?kind=nope").status_code == 400
    assert alice.client.call("GET", f"/api/generations/{uuid.uuid4()}").status_code == 404
