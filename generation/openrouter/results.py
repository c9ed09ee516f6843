"""Typed results of OpenRouter calls, each parsed from OpenRouter's JSON by a from_* method.

Parsing is lenient about optional fields (OpenAI-compatible servers send fewer of them) and
strict about what the gateway needs: a missing choice, image or job id is a bad answer.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import bad_answer, no_output

ModelKind = Literal["text", "image", "video", "embedding"]
VideoStatus = Literal["pending", "in_progress", "completed", "failed", "cancelled", "expired"]

VIDEO_STATUSES: frozenset[str] = frozenset(
    {"pending", "in_progress", "completed", "failed", "cancelled", "expired"}
)
# Spellings other video APIs use; OpenRouter itself has no "queued" (reference §5).
_VIDEO_STATUS_ALIASES = {"queued": "pending", "processing": "in_progress", "running": "in_progress"}

_IMAGE_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


@dataclass(frozen=True)
class Usage:
    """Token counts and the cost OpenRouter charged, in USD (None when not reported)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None

    @classmethod
    def from_json(cls, usage: object) -> Usage:
        fields = usage if isinstance(usage, dict) else {}
        return cls(
            prompt_tokens=_int(fields.get("prompt_tokens")),
            completion_tokens=_int(fields.get("completion_tokens")),
            cost=_float_or_none(fields.get("cost")),
        )


@dataclass(frozen=True)
class ModelInfo:
    """One catalogue entry (reference §2 Model, or §5 VideoModel for video models)."""

    id: str
    name: str
    context_length: int | None
    pricing: dict[str, str] = field(hash=False)
    input_modalities: tuple[str, ...]
    output_modalities: tuple[str, ...]
    kind: ModelKind
    supported_parameters: tuple[str, ...] = ()
    created: int | None = None  # Unix seconds, as OpenRouter lists it
    durations: tuple[int, ...] = ()  # a video model's supported_durations (seconds)

    @classmethod
    def from_model(cls, model: object) -> ModelInfo | None:
        """Parse a /models entry; None for entries the gateway cannot use (e.g. speech)."""
        if not isinstance(model, dict) or not _str(model.get("id")):
            return None
        architecture = _dict(model.get("architecture"))
        # OpenAI-compatible servers (e.g. Ollama) send no architecture: plain text models.
        inputs = _strings(architecture.get("input_modalities")) or ("text",)
        outputs = _strings(architecture.get("output_modalities")) or ("text",)
        kind = model_kind(outputs)
        if kind is None:
            return None
        return cls(
            id=model["id"],
            name=_str(model.get("name")) or model["id"],
            context_length=_int_or_none(model.get("context_length")),
            pricing=_pricing(model.get("pricing")),
            input_modalities=inputs,
            output_modalities=outputs,
            kind=kind,
            supported_parameters=_strings(model.get("supported_parameters")),
            created=_int_or_none(model.get("created")),
        )

    @classmethod
    def from_video_model(cls, model: object) -> ModelInfo | None:
        """Parse a GET /videos/models entry (reference §5 VideoModel)."""
        if not isinstance(model, dict) or not _str(model.get("id")):
            return None
        frame_images = model.get("supported_frame_images")
        inputs = ("text", "image") if isinstance(frame_images, list) and frame_images else ("text",)
        return cls(
            id=model["id"],
            name=_str(model.get("name")) or model["id"],
            context_length=None,
            pricing=_pricing(model.get("pricing_skus")),
            input_modalities=inputs,
            output_modalities=("video",),
            kind="video",
            created=_int_or_none(model.get("created")),
            durations=tuple(
                d for d in _list(model.get("supported_durations")) if type(d) is int and d > 0
            ),
        )


def model_kind(output_modalities: tuple[str, ...]) -> ModelKind | None:
    """Video beats image beats text; embeddings are their own kind (used only by
    /v1/embeddings); other outputs (speech, rerank, …) are not offered."""
    if "embeddings" in output_modalities:
        return "embedding"
    if "video" in output_modalities:
        return "video"
    if "image" in output_modalities:
        return "image"
    if "text" in output_modalities:
        return "text"
    return None


@dataclass(frozen=True)
class ChatResult:
    """A non-streaming chat completion (reference §3 "Non-streaming response")."""

    text: str
    images: tuple[str, ...]  # data URLs from message.images
    model: str
    generation_id: str | None
    finish_reason: str | None
    usage: Usage
    latency_ms: int
    body: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)  # as sent

    @classmethod
    def from_json(
        cls, body: dict[str, Any], *, latency_ms: int, generation_id: str | None
    ) -> ChatResult:
        """Parse the answer; finish_reason "error" must be checked by the caller first."""
        choice = first_choice(body)
        message = _dict(choice.get("message"))
        return cls(
            text=content_text(message.get("content")),
            images=image_urls(message.get("images")),
            model=_str(body.get("model")),
            generation_id=generation_id or _str(body.get("id")) or None,
            finish_reason=_str(choice.get("finish_reason")) or None,
            usage=Usage.from_json(body.get("usage")),
            latency_ms=latency_ms,
            body=body,
        )


@dataclass(frozen=True)
class ContentDelta:
    """A piece of the streamed answer (reference §3 "Streaming": choices[0].delta)."""

    text: str
    images: tuple[str, ...] = ()
    # OpenRouter's id of the generation (X-Generation-Id or the chunk's id), to cost it later
    # through GET /generation if the stream is abandoned.
    generation_id: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class StreamEnd:
    """Last event of a stream: what was used and charged, with the full text for history."""

    text: str
    model: str
    generation_id: str | None
    finish_reason: str | None
    usage: Usage | None  # None if the stream ended without its usage chunk
    latency_ms: int


StreamEvent = ContentDelta | StreamEnd


@dataclass(frozen=True)
class StreamChunk:
    """One `chat.completion.chunk` event as OpenRouter sent it (parsed), with the text or
    images it carries (None for role, tool-call, finish and usage chunks)."""

    data: dict[str, Any]
    delta: ContentDelta | None


@dataclass(frozen=True)
class KeepAlive:
    """A comment line of the stream (`: OPENROUTER PROCESSING`), sent while nothing else is."""

    comment: str


ChunkEvent = StreamChunk | KeepAlive | StreamEnd


@dataclass(frozen=True)
class EmbeddingResult:
    """POST /embeddings (reference §8): the answer as sent, plus what the ledger needs."""

    body: dict[str, Any]
    model: str
    usage: Usage
    generation_id: str | None
    latency_ms: int

    @classmethod
    def from_json(
        cls, body: dict[str, Any], *, model: str, latency_ms: int, generation_id: str | None
    ) -> EmbeddingResult:
        data = body.get("data")
        if not isinstance(data, list) or not data:
            raise no_output("embedding")
        if not all(isinstance(item, dict) and "embedding" in item for item in data):
            raise bad_answer("an embedding entry has no vector.")
        return cls(
            body=body,
            model=_str(body.get("model")) or model,
            usage=Usage.from_json(body.get("usage")),
            generation_id=generation_id or _str(body.get("id")) or None,
            latency_ms=latency_ms,
        )


@dataclass(frozen=True)
class GeneratedImage:
    data: bytes
    media_type: str


@dataclass(frozen=True)
class ImageResult:
    """Images from either image path (reference §4): chat completions or POST /images."""

    images: tuple[GeneratedImage, ...]
    model: str
    generation_id: str | None
    usage: Usage
    latency_ms: int
    text: str = ""  # whatever the model wrote alongside (chat path only)

    @classmethod
    def from_chat(cls, chat: ChatResult) -> ImageResult:
        images = tuple(decode_data_url(url) for url in chat.images)
        if not images:
            raise no_output("image", chat.text)
        return cls(images, chat.model, chat.generation_id, chat.usage, chat.latency_ms, chat.text)

    @classmethod
    def from_images_api(
        cls, body: dict[str, Any], *, model: str, latency_ms: int, generation_id: str | None
    ) -> ImageResult:
        """Parse POST /images: data[] items carry raw base64 plus media_type."""
        images = tuple(_decode_image_item(item) for item in _list(body.get("data")))
        if not images:
            raise no_output("image")
        usage = Usage.from_json(body.get("usage"))
        return cls(images, _str(body.get("model")) or model, generation_id, usage, latency_ms)


@dataclass(frozen=True)
class VideoJob:
    """A video job (reference §5 job object); polling_url is absolute and safe to poll."""

    id: str
    status: VideoStatus
    polling_url: str
    error: str | None
    unsigned_urls: tuple[str, ...]
    cost: float | None
    generation_id: str | None
    latency_ms: int


@dataclass(frozen=True)
class VideoContent:
    """A finished video's bytes from GET /videos/{id}/content (reference §5)."""

    data: bytes
    media_type: str
    latency_ms: int


def first_choice(body: dict[str, Any]) -> dict[str, Any]:
    choices = _list(body.get("choices"))
    if not choices or not isinstance(choices[0], dict):
        raise bad_answer("the completion has no choices.")
    return choices[0]


def content_text(content: object) -> str:
    """message.content is a string, null, or (some providers) a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_str(_dict(part).get("text")) for part in content)
    return ""


def image_urls(images: object) -> tuple[str, ...]:
    """URLs from [{"type": "image_url", "image_url": {"url": ...}}] (reference §3)."""
    urls = (_str(_dict(_dict(item).get("image_url")).get("url")) for item in _list(images))
    return tuple(url for url in urls if url)


def video_status(value: object) -> VideoStatus:
    status = _str(value).lower()
    status = _VIDEO_STATUS_ALIASES.get(status, status)
    if status not in VIDEO_STATUSES:
        raise bad_answer(f"unknown video job status {_str(value)[:40]!r}.")
    return status  # type: ignore[return-value]  # narrowed by the membership test


def video_error(value: object) -> str | None:
    """error is a string in the spec; accept {"message": ...} from other servers too."""
    if isinstance(value, dict):
        value = value.get("message")
    return _str(value) or None


def decode_data_url(url: str) -> GeneratedImage:
    """Decode "data:image/png;base64,..." (reference §3 image output). Never fetches URLs."""
    if not url.startswith("data:"):
        raise bad_answer("an image came as a link instead of inline data.")
    header, comma, payload = url[len("data:") :].partition(",")
    parts = header.split(";")
    if not comma or "base64" not in parts[1:]:
        raise bad_answer("an image data URL is not base64.")
    return _image(decode_base64(payload), parts[0])


def decode_base64(text: str) -> bytes:
    compact = "".join(text.split())
    compact += "=" * (-len(compact) % 4)  # some providers drop the padding
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise bad_answer("an image is not valid base64.") from None
    if not data:
        raise bad_answer("an image is empty.")
    return data


def sniff_image_type(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for magic, kind in _IMAGE_SIGNATURES if data.startswith(magic)), None)


def _decode_image_item(item: object) -> GeneratedImage:
    fields = _dict(item)
    payload = _str(fields.get("b64_json"))
    if not payload:
        raise bad_answer("an image entry has no b64_json.")
    return _image(decode_base64(payload), _str(fields.get("media_type")))


def _image(data: bytes, declared_type: str) -> GeneratedImage:
    # The bytes decide where they can: a declared type is only a hint from the provider.
    declared = declared_type.strip().lower()
    fallback = declared if declared.startswith("image/") else "application/octet-stream"
    return GeneratedImage(data, sniff_image_type(data) or fallback)


def _pricing(value: object) -> dict[str, str]:
    # Prices are strings in USD; nested entries (overrides[]) are not prices.
    pricing = _dict(value)
    return {
        key: str(price)
        for key, price in pricing.items()
        if isinstance(price, str | int | float) and not isinstance(price, bool)
    }


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _strings(value: object) -> tuple[str, ...]:
    return tuple(item for item in _list(value) if isinstance(item, str))


def _int(value: object) -> int:
    return _int_or_none(value) or 0


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _float_or_none(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None
