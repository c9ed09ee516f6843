"""SPEC §2 "AI" against the real server: uvicorn + a DuckDB file, talking over loopback to
the project's OpenRouter stand-in (tests/openrouter_stub), with a distinctive fake API key.

One stand-in and one gateway serve the whole module (the stand-in is reset before every
test); tests that need other settings (a short read timeout) start a gateway of their own.
Every response the tests receive is captured, and the last test scans all of them and the
servers' logs for the API key.

Usage rows are buffered by the server and written in batches, so tests that check them stop
the server gracefully (which flushes), read the DuckDB file directly, and start it again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import signal
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import PASSWORD, bearer, log_in, unique_email
from tests.openrouter_stub import StubServer
from tests.servers import GatewayServer

# Distinctive, so a leak anywhere is found by a plain substring search.
API_KEY = "sk-or-v1-e2e-" + hashlib.sha256(b"aigateway e2e key").hexdigest()[:40]
CHAT_MODEL = "openai/gpt-4o-mini"
CHAT_IMAGE_MODEL = "google/gemini-2.5-flash-image"
IMAGE_ONLY_MODEL = "black-forest-labs/flux.2-klein-4b"
VIDEO_MODEL = "google/veo-3.1-fast"
TERMINAL = ("completed", "failed", "cancelled", "expired")
# A prompt the stand-in echoes back as ~30 streamed tokens.
LONG_PROMPT = " ".join(f"word{n}" for n in range(28))
NO_LIMITS = {"RATE_LIMIT_USER": "off", "RATE_LIMIT_ANON": "off", "RATE_LIMIT_AUTH": "off"}
VIDEO_WAIT = 30.0  # upstream is polled at most once per 5 s per job


def tiny_png(width: int = 4, height: int = 4) -> bytes:
    """A real, decodable RGB PNG (signature, IHDR, IDAT, IEND with correct CRCs)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\x00" + bytes([200, 40, 90]) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


# -- capture of everything the tests see ------------------------------------------------


@dataclass
class Capture:
    """Every response (headers and body) and every server log of this module."""

    responses: list[httpx.Response] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)  # bodies read as streams
    servers: list[GatewayServer] = field(default_factory=list)

    def hook(self, response: httpx.Response) -> None:
        self.responses.append(response)

    def own_job_paths(self) -> set[str]:
        """Upstream paths of the video jobs the gateway started during this module."""
        paths = set()
        for response in self.responses:
            if response.status_code == 202 and response.request.url.path.startswith(
                "/api/generate/video"
            ):
                polling_url = httpx.URL(response.json()["polling_url"])
                paths.add(polling_url.path)
        return paths

    def texts(self) -> Iterator[tuple[str, str]]:
        """(where, text) pairs to search."""
        for response in self.responses:
            where = f"{response.request.method} {response.request.url.path}"
            headers = "\n".join(f"{k!r}: {v!r}" for k, v in response.headers.raw)
            yield where + " headers", headers
            try:
                body = response.content
            except httpx.ResponseNotRead:
                continue  # a stream: its bytes are in `raw`
            yield where + " body", body.decode("latin-1")
        for number, body in enumerate(self.raw):
            yield f"stream #{number}", body.decode("latin-1")
        for server in self.servers:
            yield f"log of {server.base_url}", server.log_text()


@dataclass
class User:
    email: str
    id: str
    access: str


class Api:
    """An httpx client for one gateway and one user, recording every response."""

    def __init__(self, server: GatewayServer, capture: Capture, user: User | None) -> None:
        self.server = server
        self.capture = capture
        self.user = user
        self.http = server.client(
            headers=bearer(user.access) if user else {},
            event_hooks={"response": [capture.hook]},
        )

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        if body is not None:
            kwargs["json"] = body
        return self.http.post(path, **kwargs)

    def stream_chat(
        self,
        content: str,
        *,
        stop_after_deltas: int | None = None,
        model: str = CHAT_MODEL,
    ) -> SseResult:
        """POST /api/ai/chat with stream: true; read the events (optionally hang up early)."""
        body = {"model": model, "messages": [{"role": "user", "content": content}], "stream": True}
        result = SseResult()
        with self.http.stream("POST", "/api/ai/chat", json=body) as response:
            result.status = response.status_code
            result.headers = response.headers
            parser = SseParser()
            raw = bytearray()
            try:
                for piece in response.iter_raw():
                    raw += piece
                    result.events.extend(parser.feed(piece))
                    deltas = sum(1 for name, _ in result.events if name == "delta")
                    if stop_after_deltas is not None and deltas >= stop_after_deltas:
                        break  # leaving the block closes the connection mid-stream
            finally:
                self.capture.raw.append(bytes(raw))
            result.body = bytes(raw)
        return result


@dataclass
class SseResult:
    status: int = 0
    headers: httpx.Headers = field(default_factory=httpx.Headers)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    body: bytes = b""

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    @property
    def text(self) -> str:
        return "".join(data["content"] for name, data in self.events if name == "delta")


class SseParser:
    """Incremental text/event-stream parser: `event:` and `data:` lines, blank-line framed."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[tuple[str, dict[str, Any]]]:
        self._buffer += data
        events = []
        while b"\n\n" in self._buffer:
            block, self._buffer = self._buffer.split(b"\n\n", 1)
            name, payload = "message", []
            for line in block.decode().splitlines():
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    payload.append(line[5:].strip())
            if payload:
                events.append((name, json.loads("\n".join(payload))))
        return events


# -- fixtures ---------------------------------------------------------------------------


def gateway_env(stub: StubServer, **extra: str) -> dict[str, str]:
    return {
        "OPENROUTER_BASE_URL": stub.base_url,
        "OPENROUTER_API_KEY": API_KEY,
        **NO_LIMITS,
        **extra,
    }


@pytest.fixture(scope="module")
def capture() -> Capture:
    return Capture()


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with StubServer(api_key=API_KEY, video_seconds=1.0) as server:
        yield server


@pytest.fixture(scope="module")
def ai_gateway(
    tmp_path_factory: pytest.TempPathFactory, stub: StubServer, capture: Capture
) -> Iterator[GatewayServer]:
    server = GatewayServer(tmp_path_factory.mktemp("ai-gateway"), env=gateway_env(stub))
    capture.servers.append(server)
    try:
        yield server.start()
    finally:
        try:
            server.stop()
        finally:
            server.kill()


@pytest.fixture(autouse=True)
def _fresh_stub(stub: StubServer) -> None:
    stub.reset()


def register(server: GatewayServer, prefix: str, capture: Capture) -> User:
    with server.client(event_hooks={"response": [capture.hook]}) as http:
        email = unique_email(prefix)
        made = http.post("/api/auth/register", json={"email": email, "password": PASSWORD})
        assert made.status_code == 201, made.text
        tokens = log_in(http, email, PASSWORD)
    return User(email, made.json()["id"], tokens["access_token"])


@pytest.fixture(scope="module")
def alice_user(ai_gateway: GatewayServer, capture: Capture) -> User:
    return register(ai_gateway, "alice", capture)


@pytest.fixture(scope="module")
def mallory_user(ai_gateway: GatewayServer, capture: Capture) -> User:
    return register(ai_gateway, "mallory", capture)


@pytest.fixture
def api_for(ai_gateway: GatewayServer, capture: Capture) -> Iterator[Callable[..., Api]]:
    made: list[Api] = []

    def make(user: User | None, server: GatewayServer | None = None) -> Api:
        api = Api(server or ai_gateway, capture, user)
        made.append(api)
        return api

    yield make
    for api in made:
        api.close()


@pytest.fixture
def alice(api_for: Callable[..., Api], alice_user: User) -> Api:
    return api_for(alice_user)


@pytest.fixture
def mallory(api_for: Callable[..., Api], mallory_user: User) -> Api:
    return api_for(mallory_user)


@pytest.fixture
def fresh_user(api_for: Callable[..., Api], ai_gateway: GatewayServer, capture: Capture) -> Api:
    """A user with no history yet."""
    return api_for(register(ai_gateway, "fresh", capture))


# -- helpers ----------------------------------------------------------------------------


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "fields"}, error
    if code is not None:
        assert error["code"] == code, error
    return dict(error)


def upstream_paths(stub: StubServer, prefix: str = "/api/v1/") -> list[str]:
    return [entry["path"] for entry in stub.requests(prefix)]


def wait_for_video(api: Api, job_id: str, timeout: float = VIDEO_WAIT) -> dict[str, Any]:
    """Poll the job until it is terminal and, if completed, its video is stored."""
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = api.get(f"/api/generate/video/{job_id}")
        assert response.status_code == 200, response.text
        job = response.json()
        if job["status"] in TERMINAL and (job["status"] != "completed" or job["video_url"]):
            return job
        time.sleep(0.25)
    raise AssertionError(f"video job {job_id} did not finish within {timeout} s: {job}")


def wait_for_generation(
    api: Api, generation_id: str, statuses: tuple[str, ...], timeout: float = 10.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: httpx.Response | None = None
    while time.monotonic() < deadline:
        last = api.get(f"/api/generations/{generation_id}")
        if last.status_code == 200 and last.json()["status"] in statuses:
            return dict(last.json())
        time.sleep(0.1)
    raise AssertionError(f"generation {generation_id} never reached {statuses}: {last}")


def read_usage_rows(server: GatewayServer, where: str, params: list[Any]) -> list[dict[str, Any]]:
    """Stop the server (a graceful stop flushes buffered usage rows), read its database
    directly, and start it again on the same port and database."""
    # uvicorn re-raises SIGTERM after a clean shutdown, so -15 is a graceful exit too.
    assert server.stop() in (0, -signal.SIGTERM), server.log_tail()
    assert "Application shutdown complete." in server.log_tail(8), server.log_tail()
    names = ["kind", "model", "status", "error_code", "tokens_in", "tokens_out", "cost",
             "user_id", "generation_id"]  # fmt: skip
    try:
        rows = server.query(
            "SELECT kind, model, status, error_code, tokens_in, tokens_out, cost,"
            " CAST(user_id AS VARCHAR) AS user_id,"
            " CAST(generation_id AS VARCHAR) AS generation_id"
            f" FROM usage_records WHERE {where} ORDER BY id",
            params,
        )
        return [dict(zip(names, row, strict=True)) for row in rows]
    finally:
        server.start()


# -- models -----------------------------------------------------------------------------


def test_models_list_every_kind_is_filtered_by_kind_and_cached(
    alice: Api, api_for: Callable[..., Api], stub: StubServer
) -> None:
    response = alice.get("/api/ai/models")
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert {m["kind"] for m in items} == {"text", "image", "video"}
    flux = next(m for m in items if m["id"] == IMAGE_ONLY_MODEL)
    assert flux["output_modalities"] == ["image"] and flux["kind"] == "image"
    assert set(flux) >= {"id", "name", "context_length", "pricing", "input_modalities"}

    for kind in ("text", "image", "video"):
        filtered = alice.get("/api/ai/models", params={"kind": kind}).json()["items"]
        assert filtered and all(m["kind"] == kind for m in filtered)
        assert {m["id"] for m in filtered} == {m["id"] for m in items if m["kind"] == kind}
    assert_error(alice.get("/api/ai/models", params={"kind": "audio"}), 400)
    assert_error(api_for(None).get("/api/ai/models"), 401)
    # Cached: at most the first of these calls (if the cache was cold) reached upstream.
    assert len(stub.requests("/api/v1/models")) <= 1


# -- text and chat ----------------------------------------------------------------------


def test_generate_text_answers_with_usage_and_lands_in_history(
    alice: Api, mallory: Api, stub: StubServer
) -> None:
    response = alice.post(
        "/api/generate/text", {"model": CHAT_MODEL, "prompt": "Say hi", "system_prompt": "Be brief"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == CHAT_MODEL and "Say hi" in body["text"]
    assert body["usage"]["prompt_tokens"] > 0 and body["usage"]["cost"] > 0
    sent = stub.requests("/api/v1/chat/completions")[-1]
    assert sent["json"]["messages"] == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "Say hi"},
    ]
    assert sent["auth"] == {"present": True, "valid": True}

    one = alice.get(f"/api/generations/{body['id']}")
    assert one.status_code == 200, one.text
    assert one.json()["kind"] == "text" and one.json()["text"] == body["text"]
    assert one.json()["status"] == "completed"
    # Another user's generation does not exist for mallory.
    assert_error(mallory.get(f"/api/generations/{body['id']}"), 404)
    theirs = mallory.get("/api/generations").json()["items"]
    assert body["id"] not in {g["id"] for g in theirs}


def test_chat_is_multi_turn_json(alice: Api, stub: StubServer) -> None:
    messages = [
        {"role": "system", "content": "terse"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "second"},
    ]
    response = alice.post(
        "/api/ai/chat",
        {"model": CHAT_MODEL, "messages": messages, "temperature": 0.2, "max_tokens": 50},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["message"]["role"] == "assistant" and "second" in body["message"]["content"]
    assert set(body) >= {"id", "model", "message", "usage"}
    sent = stub.requests("/api/v1/chat/completions")[-1]["json"]
    assert sent["messages"] == messages
    assert sent["temperature"] == 0.2 and sent["max_tokens"] == 50
    assert sent.get("stream") is False


def test_chat_streams_server_sent_events_token_by_token(alice: Api, stub: StubServer) -> None:
    result = alice.stream_chat("stream me please, token by token")
    assert result.status == 200
    assert result.headers["content-type"].startswith("text/event-stream")
    assert result.headers["cache-control"] == "no-cache"
    deltas = [data for name, data in result.events if name == "delta"]
    assert len(deltas) > 3 and all(set(d) == {"content"} for d in deltas)
    assert result.names[-1] == "done" and result.names.count("done") == 1
    assert "error" not in result.names
    done = result.events[-1][1]
    assert set(done) == {"id", "model", "usage"}
    assert done["model"] == CHAT_MODEL and done["usage"]["cost"] > 0
    assert done["usage"]["completion_tokens"] == len(deltas)
    assert stub.requests("/api/v1/chat/completions")[-1]["json"]["stream"] is True

    stored = alice.get(f"/api/generations/{done['id']}").json()
    assert stored["kind"] == "chat" and stored["status"] == "completed"
    assert stored["text"] == result.text


def test_an_error_before_the_first_token_is_a_plain_json_error(
    alice: Api, stub: StubServer
) -> None:
    stub.add_fault(path="/api/v1/chat/completions", status=429, retry_after=7, times=1)
    result = alice.stream_chat("x")
    assert result.status == 429
    assert result.headers["retry-after"] == "7"
    assert json.loads(result.body)["error"]["code"] == "upstream_rate_limited"


def only_chat_generation(api: Api, timeout: float = 10.0) -> dict[str, Any]:
    """The one chat generation of a fresh user, once it is recorded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = api.get("/api/generations", params={"kind": "chat"})
        assert listed.status_code == 200, listed.text
        items = listed.json()["items"]
        if items:
            assert len(items) == 1, items
            return dict(items[0])
        time.sleep(0.1)
    raise AssertionError("no chat generation was recorded")


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ({"break_stream_after": 3}, "upstream_error"),  # an in-band error event
        ({"break_stream_after": 3, "drop_connection": True}, "upstream_stream_broken"),
    ],
    ids=["error-event", "connection-dropped"],
)
def test_a_stream_broken_mid_way_ends_with_an_error_event_and_a_failed_usage_row(
    fresh_user: Api, ai_gateway: GatewayServer, stub: StubServer, fault: dict[str, Any], code: str
) -> None:
    stub.add_fault(path="/api/v1/chat/completions", times=1, **fault)
    result = fresh_user.stream_chat(LONG_PROMPT)
    assert result.status == 200
    assert result.names == ["delta", "delta", "delta", "error"], result.names
    error = result.events[-1][1]["error"]
    assert error["code"] == code and error["message"]

    generation = only_chat_generation(fresh_user)
    assert generation["status"] == "failed"
    assert generation["error"]["code"] == code
    assert generation["text"] == result.text

    rows = read_usage_rows(ai_gateway, "generation_id = ?", [generation["id"]])
    assert len(rows) == 1, rows
    assert rows[0]["kind"] == "chat" and rows[0]["status"] == "error"
    assert fresh_user.user is not None
    assert rows[0]["error_code"] == code and rows[0]["user_id"] == fresh_user.user.id


def test_a_client_hanging_up_mid_stream_leaves_the_server_well_and_a_cancelled_row(
    fresh_user: Api, ai_gateway: GatewayServer, stub: StubServer
) -> None:
    stub.configure(token_delay=0.3)  # ~30 tokens: ~9 s if nobody hung up
    log_before = len(ai_gateway.log_text())
    started = time.monotonic()
    result = fresh_user.stream_chat(LONG_PROMPT, stop_after_deltas=1)
    assert result.status == 200 and result.names[:1] == ["delta"]
    assert "done" not in result.names

    generation = wait_for_generation(
        fresh_user, only_chat_generation(fresh_user)["id"], ("cancelled", "failed", "completed")
    )
    assert generation["status"] == "cancelled", generation
    assert time.monotonic() - started < 6, "the gateway kept streaming after the hang-up"
    with ai_gateway.client() as http:
        assert http.get("/healthz").status_code == 200
    still = fresh_user.post("/api/generate/text", {"model": CHAT_MODEL, "prompt": "still"})
    assert still.status_code == 200, still.text
    new_log = ai_gateway.log_text()[log_before:]
    assert "Traceback" not in new_log, new_log

    rows = read_usage_rows(ai_gateway, "generation_id = ?", [generation["id"]])
    assert len(rows) == 1, rows
    assert fresh_user.user is not None
    assert rows[0]["kind"] == "chat" and rows[0]["user_id"] == fresh_user.user.id
    assert rows[0]["status"] == "error" and rows[0]["error_code"] == "cancelled", rows


# -- upstream failures ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ({"status": 429, "retry_after": 9}, 429, "upstream_rate_limited"),
        ({"status": 500}, 502, "upstream_unavailable"),
        ({"status": 503, "retry_after": 3}, 502, "upstream_unavailable"),
        ({"status": 402, "message": "Insufficient credits"}, 502, "upstream_payment_required"),
        ({"drop_connection": True}, 502, "upstream_unavailable"),
    ],
    ids=["429", "500", "503", "402", "dropped"],
)
@pytest.mark.parametrize("endpoint", ["/api/generate/text", "/api/ai/chat"])
def test_upstream_failures_map_to_the_specs_statuses(
    alice: Api, stub: StubServer, fault: dict[str, Any], status: int, code: str, endpoint: str
) -> None:
    stub.add_fault(path="/api/v1/chat/completions", times=1, **fault)
    if endpoint == "/api/generate/text":
        body: dict[str, Any] = {"model": CHAT_MODEL, "prompt": "hi"}
    else:
        body = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}]}
    response = alice.post(endpoint, body)
    assert_error(response, status, code)
    if status == 429:
        assert response.headers["retry-after"] == "9"
    assert len(stub.requests("/api/v1/chat/completions")) == 1  # a generation: no repeat


def test_unknown_or_unsuitable_models_are_4xx(alice: Api, stub: StubServer) -> None:
    text = alice.post("/api/generate/text", {"model": "nope/nothing", "prompt": "hi"})
    error = assert_error(text, 400, "unknown_model")
    assert "nope/nothing" in error["message"]
    assert_error(alice.post("/api/generate/image", {"model": "nope/x", "prompt": "x"}), 400)
    assert_error(
        alice.post("/api/generate/image", {"model": CHAT_MODEL, "prompt": "x"}),
        400,
        "unknown_model",
    )
    assert_error(alice.post("/api/generate/video", {"model": CHAT_MODEL, "prompt": "x"}), 400)
    assert (
        stub.requests("/api/v1/images") == []
        and [r for r in stub.requests("/api/v1/videos") if r["method"] == "POST"] == []
    )
    assert stub.requests("/api/v1/chat/completions") == []  # refused before any upstream call


def test_an_upstream_timeout_is_a_504(
    tmp_path: Path, stub: StubServer, capture: Capture, api_for: Callable[..., Api]
) -> None:
    server = GatewayServer(tmp_path / "gw", env=gateway_env(stub, OPENROUTER_READ_TIMEOUT="1"))
    capture.servers.append(server)
    with server:
        api = api_for(register(server, "timeout", capture), server)
        stub.add_fault(path="/api/v1/chat/completions", delay=3, times=1)
        started = time.monotonic()
        response = api.post("/api/generate/text", {"model": CHAT_MODEL, "prompt": "slow"})
        elapsed = time.monotonic() - started
        assert_error(response, 504, "upstream_timeout")
        assert elapsed < 2.9, elapsed
        # The server is fine afterwards.
        ok = api.post("/api/generate/text", {"model": CHAT_MODEL, "prompt": "fast"})
        assert ok.status_code == 200, ok.text


# -- images -----------------------------------------------------------------------------


def test_text_and_image_models_use_chat_completions_and_images_are_served_to_the_owner(
    alice: Api, mallory: Api, stub: StubServer
) -> None:
    response = alice.post(
        "/api/generate/image",
        {"model": CHAT_IMAGE_MODEL, "prompt": "a cat", "aspect_ratio": "16:9"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    sent = stub.requests("/api/v1/chat/completions")[-1]["json"]
    assert sent["model"] == CHAT_IMAGE_MODEL
    assert sent["modalities"] == ["image", "text"]
    assert sent["image_config"] == {"aspect_ratio": "16:9"}
    assert "/api/v1/images" not in upstream_paths(stub)

    url = body["images"][0]["url"]
    assert url.startswith("/api/") and "data:" not in url
    served = alice.get(url)
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/png"
    assert served.content.startswith(b"\x89PNG\r\n\x1a\n")

    assert_error(mallory.get(url), 404)
    assert_error(mallory.get(f"/api/generations/{body['id']}"), 404)
    assert_error(alice.get(url.replace("/media/0", "/media/5")), 404)
    assert alice.get(f"/api/generations/{body['id']}").json()["kind"] == "image"


def test_image_only_models_use_the_image_api(alice: Api, stub: StubServer) -> None:
    response = alice.post(
        "/api/generate/image", {"model": IMAGE_ONLY_MODEL, "prompt": "a dog", "n": 1}
    )
    assert response.status_code == 201, response.text
    paths = upstream_paths(stub)
    assert "/api/v1/images" in paths
    assert "/api/v1/images/generations" not in paths
    assert "/api/v1/chat/completions" not in paths
    sent = stub.requests("/api/v1/images")[-1]["json"]
    assert sent["model"] == IMAGE_ONLY_MODEL and sent["prompt"] == "a dog"
    served = alice.get(response.json()["images"][0]["url"])
    assert served.status_code == 200 and served.content.startswith(b"\x89PNG")


# -- videos -----------------------------------------------------------------------------


def test_a_video_job_is_accepted_polled_downloaded_and_kept_private(
    alice: Api, mallory: Api, stub: StubServer
) -> None:
    submitted = alice.post(
        "/api/generate/video", {"model": VIDEO_MODEL, "prompt": "a beach", "duration": 4}
    )
    assert submitted.status_code == 202, submitted.text
    job = submitted.json()
    assert job["status"] == "pending" and job["video_url"] is None
    sent = next(r for r in stub.requests("/api/v1/videos") if r["method"] == "POST")["json"]
    assert sent["model"] == VIDEO_MODEL and sent["duration"] == 4

    done = wait_for_video(alice, job["id"])
    assert done["status"] == "completed" and done["error"] is None
    video = alice.get(done["video_url"])
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"
    assert video.content[4:8] == b"ftyp" and len(video.content) > 1000
    assert int(video.headers["content-length"]) == len(video.content)
    # Downloaded from upstream once; our copy is served from now on.
    assert alice.get(done["video_url"]).status_code == 200
    downloads = [p for p in upstream_paths(stub, "/api/v1/videos/") if p.endswith("/content")]
    assert len(downloads) == 1

    history = alice.get(f"/api/generations/{job['id']}").json()
    assert history["kind"] == "video" and history["status"] == "completed"
    listed = alice.get("/api/generations", params={"kind": "video"}).json()["items"]
    assert job["id"] in {g["id"] for g in listed}

    # Compatibility endpoint: the job's own polling URL (absolute, or relative as
    # OpenRouter sends it) answers for its owner and nobody else.
    own = alice.get("/api/generate/video/status", params={"polling_url": job["polling_url"]})
    assert own.status_code == 200 and own.json()["id"] == job["id"]
    relative = "/" + job["polling_url"].split("/", 3)[3]
    assert relative.startswith("/api/v1/videos/")
    again = alice.get("/api/generate/video/status", params={"polling_url": relative})
    assert again.status_code == 200 and again.json()["id"] == job["id"]

    assert_error(mallory.get(f"/api/generate/video/{job['id']}"), 404)
    assert_error(mallory.get(done["video_url"]), 404)
    assert_error(mallory.get(f"/api/generations/{job['id']}"), 404)
    assert_error(
        mallory.get("/api/generate/video/status", params={"polling_url": job["polling_url"]}), 404
    )


def test_video_from_an_uploaded_png_sends_it_as_the_first_frame(
    alice: Api, stub: StubServer
) -> None:
    png = tiny_png()
    response = alice.post(
        "/api/generate/video/from-image",
        data={"model": VIDEO_MODEL, "prompt": "make it move", "duration": "4"},
        files={"image": ("frame.png", png, "image/png")},
    )
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "pending"
    sent = stub.requests("/api/v1/videos")[-1]["json"]
    assert sent["duration"] == 4
    frame = sent["frame_images"][0]
    assert frame["frame_type"] == "first_frame" and frame["type"] == "image_url"
    prefix = "data:image/png;base64,"
    assert frame["image_url"]["url"].startswith(prefix)
    assert base64.b64decode(frame["image_url"]["url"][len(prefix) :]) == png


def test_video_from_an_image_url_passes_the_url_through(alice: Api, stub: StubServer) -> None:
    response = alice.post(
        "/api/generate/video/from-image",
        {"model": VIDEO_MODEL, "prompt": "move", "image_url": "https://example.com/a.png"},
    )
    assert response.status_code == 202, response.text
    frame = stub.requests("/api/v1/videos")[-1]["json"]["frame_images"][0]
    assert frame["image_url"]["url"] == "https://example.com/a.png"


def test_hostile_uploads_are_refused_before_any_upstream_call(alice: Api, stub: StubServer) -> None:
    for name, data in (("evil.png", b"<script>alert(1)</script>"), ("../../x.png", b"GIF89a...")):
        response = alice.post(
            "/api/generate/video/from-image",
            data={"model": VIDEO_MODEL, "prompt": "move"},
            files={"image": (name, data, "image/png")},
        )
        assert_error(response, 400)
    assert [r for r in stub.requests("/api/v1/videos") if r["method"] == "POST"] == []


class TrapListener:
    """A loopback TCP listener that only counts connection attempts."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def test_a_foreign_polling_url_is_refused_without_any_outbound_request(
    alice: Api, mallory: Api, stub: StubServer, capture: Capture
) -> None:
    # Mallory has a job of her own, so "some job matches" is not the same as "hers".
    theirs = mallory.post("/api/generate/video", {"model": VIDEO_MODEL, "prompt": "hers"})
    assert theirs.status_code == 202, theirs.text
    trap = TrapListener()
    try:
        foreign = [
            f"http://127.0.0.1:{trap.port}/api/v1/videos/job-trap",
            "https://evil.example.com/api/v1/videos/job-x",
            stub.base_url + "/videos/job-not-ours",
            "/api/v1/videos/job-not-ours-either",
            theirs.json()["polling_url"],  # another user's real job
            "file:///etc/passwd",
        ]
        assert_error(alice.get("/api/generate/video/status"), 400)
        before = stub.requests()
        for url in foreign:
            response = alice.get("/api/generate/video/status", params={"polling_url": url})
            assert_error(response, 404, "video_job_not_found")
        after = stub.requests()
    finally:
        trap.close()
    assert trap.connections == 0
    # Meanwhile the background watcher may poll jobs the gateway itself started; nothing
    # else went out.
    own_jobs = capture.own_job_paths()
    new = [entry["path"] for entry in after[len(before) :]]
    assert [path for path in new if path not in own_jobs] == [], new
    assert not any("not-ours" in entry["path"] for entry in after)


def test_a_video_job_completes_across_a_hard_kill_and_restart(
    alice: Api, ai_gateway: GatewayServer, stub: StubServer
) -> None:
    stub.configure(video_seconds=4)
    submitted = alice.post("/api/generate/video", {"model": VIDEO_MODEL, "prompt": "durable"})
    assert submitted.status_code == 202, submitted.text
    job = submitted.json()
    ai_gateway.kill()  # SIGKILL right after the 202: the job row must already be committed
    ai_gateway.start()

    restarted = alice.get(f"/api/generate/video/{job['id']}")
    assert restarted.status_code == 200, restarted.text
    assert restarted.json()["status"] in ("pending", "in_progress", "completed")
    done = wait_for_video(alice, job["id"])
    assert done["status"] == "completed"
    video = alice.get(done["video_url"])
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"
    history = alice.get(f"/api/generations/{job['id']}").json()
    assert history["status"] == "completed" and history["media"]


# -- history ----------------------------------------------------------------------------


def test_history_is_own_newest_first_paginated_and_filterable(
    fresh_user: Api, mallory: Api, stub: StubServer
) -> None:
    ids = []
    for prompt in ("one", "two", "three"):
        made = fresh_user.post("/api/generate/text", {"model": CHAT_MODEL, "prompt": prompt})
        assert made.status_code == 200, made.text
        ids.append(made.json()["id"])
    page = fresh_user.get("/api/generations", params={"page_size": 2})
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["total"] == 3
    assert [g["prompt"] for g in body["items"]] == ["three", "two"]
    second = fresh_user.get("/api/generations", params={"page_size": 2, "page": 2}).json()
    assert [g["id"] for g in second["items"]] == [ids[0]]
    assert fresh_user.get("/api/generations", params={"kind": "text"}).json()["total"] == 3
    assert fresh_user.get("/api/generations", params={"kind": "image"}).json()["total"] == 0
    assert_error(fresh_user.get("/api/generations", params={"kind": "nope"}), 400)
    assert_error(fresh_user.get("/api/generations/00000000-0000-0000-0000-000000000000"), 404)
    assert not {g["id"] for g in mallory.get("/api/generations").json()["items"]} & set(ids)


# -- the key never shows ----------------------------------------------------------------


def test_no_response_and_no_log_line_ever_contains_the_api_key(
    alice: Api, stub: StubServer, capture: Capture
) -> None:
    # A few more ways to fail, including upstream refusing the key itself.
    stub.add_fault(path="/api/v1/chat/completions", status=401, message="bad key", times=1)
    assert_error(alice.post("/api/generate/text", {"model": CHAT_MODEL, "prompt": "x"}), 502)
    stub.add_fault(path="/api/v1/chat/completions", status=400, message=f"echo {API_KEY}", times=1)
    response = alice.post("/api/generate/text", {"model": CHAT_MODEL, "prompt": "x"})
    assert response.status_code in (400, 502), response.text

    needles = (API_KEY, API_KEY[len("sk-or-v1-") :], API_KEY[-24:])
    scanned = 0
    for where, text in capture.texts():
        scanned += 1
        for needle in needles:
            assert needle not in text, f"the API key appears in {where}"
    # Every response was looked at (headers and body), plus streams and logs.
    assert scanned >= 2 * len(capture.responses) >= 4


# -- durability: what is acknowledged survives kill -9; what is cut off is booked -------------


def test_acknowledged_answers_and_their_usage_survive_a_hard_kill(
    alice: Api, ai_gateway: GatewayServer, stub: StubServer
) -> None:
    answers = []
    for index in range(3):
        response = alice.post(
            "/api/generate/text", {"model": CHAT_MODEL, "prompt": f"durable {index}"}
        )
        assert response.status_code == 200, response.text
        answers.append(response.json())
    streamed = alice.stream_chat("durable stream")
    done = streamed.events[-1]
    assert done[0] == "done", streamed.events
    ids = [answer["id"] for answer in answers] + [done[1]["id"]]
    ai_gateway.kill()  # SIGKILL right after the answers: their rows must already be durable
    ai_gateway.start()  # replays what the journal holds (decision 52)
    costs = {answer["id"]: answer["usage"]["cost"] for answer in answers}
    costs[done[1]["id"]] = done[1]["usage"]["cost"]
    for generation_id, cost in costs.items():
        stored = alice.get(f"/api/generations/{generation_id}")
        assert stored.status_code == 200, stored.text
        assert stored.json()["status"] == "completed"
        assert stored.json()["usage"]["cost"] == cost
    ai_gateway.stop()
    try:
        usage = ai_gateway.query(
            "SELECT CAST(generation_id AS VARCHAR), status, cost FROM usage_records"
            " WHERE CAST(generation_id AS VARCHAR) = ANY(?::VARCHAR[])",
            [ids],
        )
    finally:
        ai_gateway.start()
    assert sorted(usage) == sorted((gid, "ok", cost) for gid, cost in costs.items())


def test_a_call_cut_off_by_a_hard_kill_is_booked_as_interrupted_on_restart(
    alice: Api, ai_gateway: GatewayServer, stub: StubServer
) -> None:
    stub.add_fault(path="/api/v1/chat/completions", delay=30)
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            with ai_gateway.client(timeout=60) as http:
                http.post(
                    "/api/generate/text",
                    json={"model": CHAT_MODEL, "prompt": "never answered"},
                    headers=bearer(alice.user.access) if alice.user else {},
                )
        except httpx.HTTPError as exc:  # the server dies under it
            errors.append(exc)

    caller = threading.Thread(target=ask, daemon=True)
    caller.start()
    deadline = time.monotonic() + 10
    pending: list[dict[str, Any]] = []
    while not pending and time.monotonic() < deadline:
        items = alice.get("/api/generations?kind=text").json()["items"]
        pending = [item for item in items if item["status"] == "pending"]
        time.sleep(0.05)
    assert pending, "the call's pending row never appeared"
    ai_gateway.kill()
    caller.join(timeout=10)
    ai_gateway.start()
    stub.clear_faults()

    booked = alice.get(f"/api/generations/{pending[0]['id']}").json()
    assert booked["status"] == "interrupted"
    assert booked["error"]["code"] == "interrupted"
    usage = read_usage_rows(ai_gateway, "CAST(generation_id AS VARCHAR) = ?", [booked["id"]])
    assert [(row["status"], row["error_code"]) for row in usage] == [("error", "interrupted")]
