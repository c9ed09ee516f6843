"""The one async OpenRouter client (STYLE 8); section numbers refer to
shared/reference/openrouter-api.md.

Every request goes through `_send` (one attempt: URL check, auth header, error mapping);
`_request` adds timing, bounded body reading and retries for idempotent reads.
Generations (chat, images, video submission) are never retried: a repeat could be billed
twice. Every failure is an OpenRouterError (a subclass of core.errors.UpstreamError)
carrying `latency_ms`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping, Sequence
from contextlib import aclosing, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from httpx_aiohttp import HttpxAiohttpClient

from core.params import ascii_whole_number
from core.parsers import load_json

from .api_base import ApiBase
from .errors import (
    TRANSPORT_ERRORS,
    OpenRouterError,
    bad_answer,
    for_inband_error,
    for_status,
    for_transport_failure,
    not_configured,
    stream_broken,
    too_large,
    url_refused,
)
from .results import (
    ChatResult,
    ChunkEvent,
    ContentDelta,
    EmbeddingResult,
    ImageResult,
    KeepAlive,
    ModelInfo,
    StreamChunk,
    StreamEnd,
    StreamEvent,
    Usage,
    VideoContent,
    VideoJob,
    content_text,
    first_choice,
    image_urls,
    video_error,
    video_status,
)
from .sse import Comment, EventDataDecoder

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"
MIB = 1024 * 1024
_ERROR_BODY_LIMIT = 64 * 1024  # an error explanation is short; never buffer a huge one
_HEADER_SAFE = re.compile(r"[\x20-\x7e]*")  # printable ASCII: nothing that breaks a header
_KEY_SAFE = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True)
class _Answer:
    """A fully read 2xx answer."""

    status: int
    headers: httpx.Headers
    content: bytes
    latency_ms: int

    @property
    def generation_id(self) -> str | None:
        return self.headers.get("x-generation-id") or None  # reference §1

    def json_object(self) -> dict[str, Any]:
        try:
            body = load_json(self.content)
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            raise _stamped(bad_answer("the answer is not a JSON object."), self.latency_ms)
        return body


@dataclass
class _ChatStream:
    """What a chat stream has said so far (reference §3 "Streaming")."""

    secret: str
    generation_id: str | None
    model: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    parts: list[str] = field(default_factory=list)

    def absorb(self, data: str) -> StreamChunk:
        try:
            chunk = load_json(data)
        except ValueError:
            chunk = None
        if not isinstance(chunk, dict):
            raise bad_answer("a stream event is not a JSON object.")
        choices = chunk.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else {}
        choice = choice if isinstance(choice, dict) else {}
        # Mid-stream errors keep HTTP 200 and arrive as one event with a top-level error.
        if chunk.get("error") is not None or choice.get("finish_reason") == "error":
            raise for_inband_error(chunk.get("error") or choice.get("error"), secret=self.secret)
        self._remember(chunk, choice)
        delta = choice.get("delta")
        # With n > 1 the choices arrive interleaved; the first one is the answer kept.
        delta = delta if isinstance(delta, dict) and choice.get("index", 0) == 0 else {}
        text, images = content_text(delta.get("content")), image_urls(delta.get("images"))
        self.parts.append(text)
        delta = ContentDelta(text, images, self.generation_id) if text or images else None
        return StreamChunk(chunk, delta)

    def _remember(self, chunk: dict[str, Any], choice: dict[str, Any]) -> None:
        if isinstance(chunk.get("model"), str):
            self.model = chunk["model"]
        if not self.generation_id and isinstance(chunk.get("id"), str):
            self.generation_id = chunk["id"]
        if isinstance(chunk.get("usage"), dict):  # once, in the last chunk, empty choices
            self.usage = Usage.from_json(chunk["usage"])
        if isinstance(choice.get("finish_reason"), str):
            self.finish_reason = choice["finish_reason"]

    def end(self, latency_ms: int) -> StreamEnd:
        return StreamEnd(
            text="".join(self.parts),
            model=self.model,
            generation_id=self.generation_id,
            finish_reason=self.finish_reason,
            usage=self.usage,
            latency_ms=latency_ms,
        )


class OpenRouterClient:
    """Async client for OpenRouter's HTTP API; one instance is shared per event loop.

    Use get_openrouter_client() in the application; construct it directly in tests with
    transport=httpx.MockTransport(...). The constructor never raises for bad configuration:
    every call then fails with 503 upstream_not_configured, which a page can show.
    """

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        app_url: str = "",
        app_title: str = "aigateway",
        connect_timeout: float = 5.0,
        read_timeout: float = 120.0,
        stream_read_timeout: float = 300.0,
        pool_timeout: float = 30.0,
        max_retries: int = 2,
        retry_backoff: float = 0.5,
        max_retry_wait: float = 10.0,
        max_connections: int = 4096,
        max_response_bytes: int = 128 * MIB,
        max_video_bytes: int = 200 * MIB,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._api_key = api_key.strip()
        self._problem = _config_problem(self._api_key, base_url, app_url, app_title)
        self._base = ApiBase.parse(DEFAULT_BASE_URL if self._problem else base_url)
        self._max_retries = max(0, max_retries)
        self._retry_backoff = retry_backoff
        self._max_retry_wait = max_retry_wait
        self._max_response_bytes = max_response_bytes
        self._max_video_bytes = max_video_bytes
        self._timeout = httpx.Timeout(
            connect=connect_timeout, read=read_timeout, write=read_timeout, pool=pool_timeout
        )
        # Streams may be silent for minutes except ": OPENROUTER PROCESSING" comments.
        self._stream_timeout = httpx.Timeout(
            connect=connect_timeout,
            read=stream_read_timeout,
            write=read_timeout,
            pool=pool_timeout,
        )
        # httpx's own pool managed ~30 req/s with 500 two-second requests in flight, the
        # aiohttp transport ~205 req/s (of 250 possible). HttpxAiohttpClient keeps httpx's
        # API, and passes a given transport (MockTransport in tests) through unchanged.
        # Beyond max_connections requests wait up to pool_timeout for a free connection.
        self._http = HttpxAiohttpClient(
            transport=transport,
            timeout=self._timeout,
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
                keepalive_expiry=15.0,
            ),
            headers=None if self._problem else _attribution_headers(app_url, app_title),
            follow_redirects=False,  # a redirect must never carry the key elsewhere
        )
        # One client serves every user: a cookie set by the upstream (or a proxy in front of
        # it) must not travel from one user's request to the next. httpx's own way (a
        # CookieJar that keeps nothing, passed as cookies=) still runs its cookie code on
        # every response: 15 % more CPU per chat request at c=64 (decision 38), so no jar.
        self._http._cookies = _NoCookies()  # the public setter would copy it into a plain jar

    def __repr__(self) -> str:
        return f"<OpenRouterClient {self._base.root}>"

    @property
    def base_url(self) -> str:
        return self._base.root

    async def aclose(self) -> None:
        await self._http.aclose()

    async def list_models(self) -> list[ModelInfo]:
        """Reference §2 GET /models?output_modalities=all, merged with §5 GET /videos/models
        (whose entries carry the video models' per-second prices and durations).

        Only text, image, video and embedding models are returned (speech, rerank, … are
        left out). Retried: listing is idempotent.
        """
        answer = await self._request(
            "GET", "/models", params={"output_modalities": "all"}, retry=True
        )
        models = _parse_entries(answer, ModelInfo.from_model)
        # Video prices (per-second `pricing_skus`) and durations are only in /videos/models:
        # its entries replace /models' for the same ids (budgets need the prices).
        videos = {m.id: m for m in await self._list_video_models()}
        models = [videos.pop(m.id, m) if m.kind == "video" else m for m in models]
        return models + list(videos.values())

    async def _list_video_models(self) -> list[ModelInfo]:
        """Reference §5 GET /videos/models; absent on OpenAI-compatible servers (404)."""
        try:
            answer = await self._request("GET", "/videos/models", retry=True)
        except OpenRouterError as exc:
            if exc.code == "upstream_not_found":
                return []
            raise
        return _parse_entries(answer, ModelInfo.from_video_model)

    async def chat(self, payload: Mapping[str, Any], *, user: str) -> ChatResult:
        """Reference §3 POST /chat/completions, non-streaming. Never retried.

        `user` is the end user's pseudonym (reference §8), required on every generation.
        finish_reason "error" (a provider failing mid-generation) raises OpenRouterError.
        """
        body = {**payload, "stream": False, "user": user}
        answer = await self._request("POST", "/chat/completions", json_body=body)
        data = answer.json_object()
        with _stamping(answer.latency_ms):
            choice = first_choice(data)
            if choice.get("finish_reason") == "error" or data.get("error") is not None:
                raise for_inband_error(
                    choice.get("error") or data.get("error"), secret=self._api_key
                )
            return ChatResult.from_json(
                data, latency_ms=answer.latency_ms, generation_id=answer.generation_id
            )

    async def stream_chat(
        self, payload: Mapping[str, Any], *, user: str
    ) -> AsyncGenerator[StreamEvent, None]:
        """Reference §3 "Streaming": yields ContentDelta events, then one StreamEnd.

        The same reader as stream_chat_chunks (see there), keeping only text and images.
        """
        async with aclosing(self.stream_chat_chunks(payload, user=user)) as events:
            async for event in events:
                if isinstance(event, StreamChunk):
                    if event.delta is not None:
                        yield event.delta
                elif isinstance(event, StreamEnd):
                    yield event

    async def stream_chat_chunks(
        self, payload: Mapping[str, Any], *, user: str
    ) -> AsyncGenerator[ChunkEvent, None]:
        """Reference §3 "Streaming": every chunk as sent (StreamChunk) and every keep-alive
        comment (KeepAlive) as it arrives, then one StreamEnd with the usage chunk's counts.

        The request is sent on the first iteration step, so `await anext(stream)` tells a
        view whether OpenRouter accepted the request before it commits to a 200 response.
        Errors (before the first byte, mid-stream error events, a broken connection) are
        raised as OpenRouterError, never yielded. Closing the generator early (use
        contextlib.aclosing) closes the upstream connection, which stops billing.
        Usage is always asked for: OpenRouter sends it anyway, OpenAI-compatible servers
        only when `stream_options.include_usage` is set.
        """
        started = time.perf_counter()
        body = {
            **payload,
            "stream": True,
            "stream_options": {**(payload.get("stream_options") or {}), "include_usage": True},
            "user": user,
        }
        with _stamping_since(started):
            response = await self._send(
                "POST",
                self._endpoint("/chat/completions"),
                json_body=body,
                timeouts=self._stream_timeout,
            )
        try:
            with _stamping_since(started):
                stream = _ChatStream(self._api_key, response.headers.get("x-generation-id"))
                async with aclosing(_event_data(response)) as events:
                    async for data in events:
                        if isinstance(data, Comment):
                            yield KeepAlive(data.text)
                            continue
                        if data.strip() == "[DONE]":
                            break
                        yield stream.absorb(data)
                    else:
                        if stream.finish_reason is None and stream.usage is None:
                            raise stream_broken()  # ended cleanly but mid-answer
            yield stream.end(_elapsed_ms(started))
        finally:
            await _close_quietly(response)

    async def generate_image_via_chat(
        self,
        model: str,
        prompt: str,
        *,
        user: str,
        modalities: Sequence[str] = ("image", "text"),
        image_config: Mapping[str, Any] | None = None,
    ) -> ImageResult:
        """Reference §4 path 1: chat completions with `modalities`; decodes message.images.

        Use modalities ["image"] for image-only models (sending ["image", "text"] to them
        gives 404 "No endpoints found…", mapped to 400 upstream_rejected). Never retried.
        """
        payload: dict[str, Any] = {
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "modalities": list(modalities),
        }
        if image_config:
            payload["image_config"] = dict(image_config)
        result = await self.chat(payload, user=user)
        with _stamping(result.latency_ms):
            return ImageResult.from_chat(result)

    async def generate_images(self, payload: Mapping[str, Any], *, user: str) -> ImageResult:
        """Reference §4 path 2: POST /images (data[].b64_json + media_type). Never retried."""
        answer = await self._request("POST", "/images", json_body={**payload, "user": user})
        data = answer.json_object()
        with _stamping(answer.latency_ms):
            return ImageResult.from_images_api(
                data,
                model=str(payload.get("model", "")),
                latency_ms=answer.latency_ms,
                generation_id=answer.generation_id,
            )

    async def create_video(self, payload: Mapping[str, Any], *, user: str) -> VideoJob:
        """Reference §5 POST /videos → 202 job {id, polling_url, status}. Never retried."""
        answer = await self._request("POST", "/videos", json_body={**payload, "user": user})
        return self._video_job(answer)

    async def embeddings(self, payload: Mapping[str, Any], *, user: str) -> EmbeddingResult:
        """Reference §8 POST /embeddings → {object, data[{embedding, index}], model, usage}.
        Never retried (billed per call)."""
        answer = await self._request("POST", "/embeddings", json_body={**payload, "user": user})
        data = answer.json_object()
        with _stamping(answer.latency_ms):
            return EmbeddingResult.from_json(
                data,
                model=str(payload.get("model", "")),
                latency_ms=answer.latency_ms,
                generation_id=answer.generation_id,
            )

    async def get_video(self, polling_url_or_id: str) -> VideoJob:
        """Reference §5 GET /videos/{jobId}. Accepts a job id or a polling_url (relative or
        absolute); a URL outside the configured API is refused before any request. Retried.
        """
        target = polling_url_or_id.strip()
        url = self._resolve(target) if "/" in target else self._job_url(target)
        answer = await self._request("GET", url, retry=True)
        return self._video_job(answer)

    async def download_video(self, job_id: str, index: int = 0) -> VideoContent:
        """Reference §5 GET /videos/{jobId}/content?index=N (needs the bearer key). Retried;
        refused with upstream_too_large beyond max_video_bytes."""
        job_url = self._job_url(job_id)
        url = job_url.copy_with(path=job_url.path + "/content")
        answer = await self._request(
            "GET", url, params={"index": index}, retry=True, max_bytes=self._max_video_bytes
        )
        media_type = answer.headers.get("content-type", "video/mp4").split(";")[0].strip()
        return VideoContent(answer.content, media_type or "video/mp4", answer.latency_ms)

    def _video_job(self, answer: _Answer) -> VideoJob:
        data = answer.json_object()
        with _stamping(answer.latency_ms):
            job_id = data.get("id")
            if not isinstance(job_id, str) or not job_id:
                raise bad_answer("the video job has no id.")
            usage = data.get("usage")
            return VideoJob(
                id=job_id,
                status=video_status(data.get("status")),
                polling_url=str(self._polling_url(job_id, data.get("polling_url"))),
                error=video_error(data.get("error")),
                unsigned_urls=_strings(data.get("unsigned_urls")),
                cost=Usage.from_json(usage).cost,
                generation_id=_str_or_none(data.get("generation_id")),
                latency_ms=answer.latency_ms,
            )

    async def generation_stats(self, generation_id: str) -> Usage | None:
        """Reference §7 GET /generation?id=: what a generation cost, or None while OpenRouter
        does not know it yet (it answers 404 for a moment after a generation ends). Retried:
        a read. Used to cost a stream its client abandoned before the usage chunk."""
        try:
            answer = await self._request(
                "GET", "/generation", params={"id": generation_id}, retry=True
            )
        except OpenRouterError as exc:
            if exc.code == "upstream_not_found":
                return None
            raise
        data = answer.json_object().get("data")
        stats = data if isinstance(data, dict) else {}
        return Usage.from_json(
            {
                "prompt_tokens": stats.get("tokens_prompt"),
                "completion_tokens": stats.get("tokens_completion"),
                "cost": stats.get("total_cost"),
            }
        )

    def resolve_polling_url(self, polling_url: str) -> str:
        """The absolute form of a polling URL inside our API; raises if it is foreign."""
        return str(self._resolve(polling_url.strip()))

    def _polling_url(self, job_id: str, polling_url: object) -> httpx.URL:
        """OpenRouter's polling_url when it points into our API, else the canonical one.

        OpenRouter sends it relative; a proxy or stand-in may send an absolute URL of
        another host, which would be refused at poll time, so fall back to the job URL.
        """
        if isinstance(polling_url, str) and polling_url:
            try:
                return self._resolve(polling_url)
            except OpenRouterError:
                logger.warning("OpenRouter job %s has a polling_url outside the API", job_id)
        return self._job_url(job_id)

    def _job_url(self, job_id: str) -> httpx.URL:
        self._require_configured()
        return self._base.job_url(job_id)

    def _endpoint(self, path: str) -> httpx.URL:
        """Absolute URL of one of our own API paths, such as "/models"."""
        self._require_configured()
        return self._base.endpoint(path)

    def _resolve(self, url: str) -> httpx.URL:
        """Absolute URL for a URL OpenRouter gave us; refused (no request) if foreign."""
        self._require_configured()
        return self._base.resolve(url)

    def _require_configured(self) -> None:
        if self._problem:
            raise not_configured(self._problem)

    async def _request(
        self,
        method: str,
        target: str | httpx.URL,
        *,
        json_body: Mapping[str, Any] | None = None,
        params: Mapping[str, str | int] | None = None,
        retry: bool = False,
        max_bytes: int | None = None,
    ) -> _Answer:
        """Send, read the body (bounded) and, if retry is set, repeat retryable failures."""
        started = time.perf_counter()
        with _stamping_since(started):
            url = target if isinstance(target, httpx.URL) else self._endpoint(target)
        attempts = 1 + self._max_retries if retry else 1
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._send(method, url, json_body=json_body, params=params)
                try:
                    content = await _read_body(response, max_bytes or self._max_response_bytes)
                finally:
                    await _close_quietly(response)
            except OpenRouterError as exc:
                exc.latency_ms = _elapsed_ms(started)
                wait = self._retry_wait(exc, attempt, attempts)
                if wait is None:
                    raise
                logger.warning(
                    "OpenRouter %s %s failed (%s), retry %d/%d in %.2f s",
                    method, url.path, exc.code, attempt, attempts - 1, wait,
                )  # fmt: skip
                await asyncio.sleep(wait)
                continue
            latency_ms = _elapsed_ms(started)
            logger.debug(
                "OpenRouter %s %s %d in %d ms", method, url.path, response.status_code, latency_ms
            )
            return _Answer(response.status_code, response.headers, content, latency_ms)

    async def _send(
        self,
        method: str,
        url: httpx.URL,
        *,
        json_body: Mapping[str, Any] | None = None,
        params: Mapping[str, str | int] | None = None,
        timeouts: httpx.Timeout | None = None,
    ) -> httpx.Response:
        """One attempt. Returns an open 2xx response (the caller closes it) or raises."""
        if not self._base.allows(url):  # every request passes here: last line of defence
            raise url_refused()
        request = self._http.build_request(
            method,
            url,
            json=json_body,
            params=params,
            headers={"Authorization": f"Bearer {self._api_key}"},
            timeout=timeouts or self._timeout,
        )
        try:
            response = await self._http.send(request, stream=True)
        except TRANSPORT_ERRORS as exc:
            failure = for_transport_failure(exc)
            logger.warning(
                "OpenRouter %s %s: %s %s", method, url.path, type(exc).__name__, _safe_text(exc)
            )
        else:
            if response.is_success:
                return response
            body = await _read_error_body(response)
            failure = for_status(
                response.status_code,
                body,
                response.headers,
                method=method,
                secret=self._api_key,
            )
            # A refused request is the caller's business; anything else needs an operator.
            level = logging.INFO if failure.status in (400, 404, 413) else logging.WARNING
            logger.log(
                level,
                "OpenRouter %s %s answered %d: %s",
                method, url.path, response.status_code, failure.message,
            )  # fmt: skip
        # Raised outside the except block so no httpx exception (holding the request and its
        # Authorization header) is chained to what callers see and log.
        raise failure

    def _retry_wait(self, exc: OpenRouterError, attempt: int, attempts: int) -> float | None:
        """Seconds to wait before the next attempt, or None to give up now."""
        if not exc.retryable or attempt >= attempts:
            return None
        if exc.wait_hint is not None:
            # Waiting longer than max_retry_wait inside a request helps nobody: give up and
            # let the client see Retry-After instead.
            return exc.wait_hint if exc.wait_hint <= self._max_retry_wait else None
        backoff = self._retry_backoff * 2.0 ** (attempt - 1)
        jitter = 0.5 + random.random() / 2  # noqa: S311 - spreading retries, not a secret
        return min(self._max_retry_wait, backoff * jitter)


class _NoCookies(httpx.Cookies):
    """A cookie jar that never keeps anything."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set(self, name: str, value: str, domain: str = "", path: str = "/") -> None:
        return None


def _config_problem(api_key: str, base_url: str, app_url: str, app_title: str) -> str | None:
    """A sentence for an administrator, or None. Never quotes the key."""
    if not api_key:
        return "an administrator must set OPENROUTER_API_KEY."
    if not _KEY_SAFE.fullmatch(api_key):
        return "OPENROUTER_API_KEY contains characters that cannot be sent in a header."
    try:
        ApiBase.parse(base_url)
    except ValueError as exc:
        return f"OPENROUTER_BASE_URL {exc}."
    for name, value in (("OPENROUTER_APP_URL", app_url), ("OPENROUTER_APP_TITLE", app_title)):
        if not _HEADER_SAFE.fullmatch(value):
            return f"{name} must be printable ASCII."
    return None


def _attribution_headers(app_url: str, app_title: str) -> dict[str, str]:
    """Reference §1 optional attribution headers."""
    headers = {"X-OpenRouter-Title": app_title} if app_title else {}
    if app_url:
        headers["HTTP-Referer"] = app_url
    return headers


def _parse_entries(answer: _Answer, parse: Callable[[object], ModelInfo | None]) -> list[ModelInfo]:
    entries = answer.json_object().get("data")
    if not isinstance(entries, list):
        raise _stamped(bad_answer("the model list has no data array."), answer.latency_ms)
    parsed = (parse(entry) for entry in entries)
    return [model for model in parsed if model is not None]


async def _event_data(response: httpx.Response) -> AsyncGenerator[str | Comment, None]:
    """Data of each server-sent event, and each comment line; transport failures become
    OpenRouterError."""
    decoder = EventDataDecoder()
    failure: OpenRouterError | None = None
    try:
        async for line in response.aiter_lines():
            data = decoder.feed(line)
            if data is not None:
                yield data
    except TRANSPORT_ERRORS as exc:
        failure = for_transport_failure(exc, mid_stream=True)
    if failure is not None:
        raise failure
    tail = decoder.flush()
    if tail is not None:
        yield tail


async def _read_body(response: httpx.Response, limit: int) -> bytes:
    declared = ascii_whole_number(response.headers.get("content-length", ""))
    if declared is not None and declared > limit:
        raise too_large(limit)  # the size counted below holds an undeclared body to it too
    chunks: list[bytes] = []
    size = 0
    failure: OpenRouterError | None = None
    try:
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            chunks.append(chunk)
    except TRANSPORT_ERRORS as exc:
        failure = for_transport_failure(exc)
    if failure is not None:
        raise failure
    return b"".join(chunks)


async def _read_error_body(response: httpx.Response) -> bytes:
    try:
        return await _read_body(response, _ERROR_BODY_LIMIT)
    except OpenRouterError:
        return b""  # unreadable explanation: the status alone still maps the error
    finally:
        await _close_quietly(response)


async def _close_quietly(response: httpx.Response) -> None:
    try:
        await response.aclose()
    except TRANSPORT_ERRORS:
        logger.debug("closing an OpenRouter response failed", exc_info=False)
    # httpx's response and its stream point at each other. Closed, it needs the stream no
    # more: untied, it is freed with aiohttp's answer and all their headers as the call
    # ends, instead of by the garbage collector (decision 55).
    response.stream = _SPENT


_SPENT = httpx.ByteStream(b"")


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _strings(value: object) -> tuple[str, ...]:
    return tuple(item for item in value if isinstance(item, str)) if isinstance(value, list) else ()


def _safe_text(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _stamped(exc: OpenRouterError, latency_ms: int) -> OpenRouterError:
    if exc.latency_ms is None:
        exc.latency_ms = latency_ms
    return exc


@contextmanager
def _stamping(latency_ms: int) -> Iterator[None]:
    """Give errors raised while reading an answer the latency of the call."""
    try:
        yield
    except OpenRouterError as exc:
        _stamped(exc, latency_ms)
        raise


@contextmanager
def _stamping_since(started: float) -> Iterator[None]:
    try:
        yield
    except OpenRouterError as exc:
        _stamped(exc, _elapsed_ms(started))
        raise
