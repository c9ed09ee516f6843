"""Actions of the OpenAI-compatible API: each call is admitted, run and settled by the call
ledger (decision 20) exactly like the native API's, so usage, history, limits and the
upstream pseudonym hold on /v1/ too. Chat answers are OpenRouter's, passed through with
the gateway's generation id (decision 33)."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import struct
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import aclosing
from fractions import Fraction
from pathlib import Path
from typing import Any
from uuid import UUID

from accounts.repository import User
from core.errors import ApiError, NotFound, UpstreamError, ValidationFailed
from generation import ledger, services
from generation.catalog import find_model, list_models
from generation.ledger import Admission, Call
from generation.media import media_path
from generation.openai_api.errors import openai_error
from generation.openrouter import (
    KeepAlive,
    ModelInfo,
    StreamChunk,
    StreamEnd,
    get_openrouter_client,
)
from generation.serializers import ASPECT_RATIOS

# Kinds a /v1/ route can use; video models have no /v1/ route, so they are not listed.
V1_KINDS = ("text", "image", "embedding")
# Request fields that are the gateway's business, not OpenRouter's.
_NOT_FORWARDED = frozenset({"user", "stream", "stream_options", "reasoning_effort"})
DONE = b"data: [DONE]\n\n"


# -- models -------------------------------------------------------------------------------


async def usable_models(user: User) -> list[ModelInfo]:
    """The catalogue models this user may call through /v1/ (all of them, until per-user
    model limits exist: they belong here)."""
    return [m for m in await list_models(user.id) if m.kind in V1_KINDS]


async def usable_model(user: User, model_id: str) -> ModelInfo:
    model = next((m for m in await usable_models(user) if m.id == model_id), None)
    if model is None:
        raise NotFound(f"The model '{model_id}' does not exist.", code="model_not_found")
    return model


# -- chat -----------------------------------------------------------------------------------


async def admit_chat(user: User, data: Mapping[str, Any]) -> Admission:
    """Admit the model and check every fallback model against the catalogue too."""
    admission = await ledger.admit(user, "chat", data["model"])
    for fallback in data.get("models") or ():
        model = await find_model(fallback)
        if model is None or model.kind != "text":
            raise ValidationFailed(
                f"'{fallback}' is not a text model of this gateway's catalogue.",
                code="unknown_model",
                fields={"models": "Use text models from /v1/models."},
            )
    return admission


def upstream_chat_payload(data: Mapping[str, Any]) -> dict[str, Any]:
    """The request as OpenRouter gets it: the validated allow-listed fields, without nulls;
    OpenAI's reasoning_effort becomes OpenRouter's reasoning.effort."""
    payload = {k: v for k, v in data.items() if v is not None and k not in _NOT_FORWARDED}
    if data.get("reasoning_effort"):
        payload["reasoning"] = {"effort": data["reasoning_effort"]}
    return payload


def _prompt(messages: Sequence[Mapping[str, Any]]) -> str:
    """The last user turn's text, as the history shows it."""
    for message in reversed(messages):
        if message["role"] == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return "\n".join(p["text"] for p in content or () if p["type"] == "text")
    return ""


def _history_params(data: Mapping[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {"api": "openai"}
    for name, value in data.items():
        if value is None or name in ("model", "messages", "user"):
            continue
        if name == "tools":
            params[name] = [tool["function"]["name"] for tool in value]
        elif name == "response_format":
            params[name] = value["type"]
        else:
            params[name] = value
    return params


async def chat_completion(user: User, data: Mapping[str, Any]) -> dict[str, Any]:
    """A non-streaming completion: OpenRouter's `chat.completion`, settled before it is
    returned, with the generation's id as `id`."""
    admission = await admit_chat(user, data)
    messages = data["messages"]
    async with ledger.run(admission, _prompt(messages), _history_params(data)) as call:
        result = await get_openrouter_client().chat(
            upstream_chat_payload(data), user=call.upstream_user
        )
        call.answered(
            model=result.model, latency_ms=result.latency_ms, usage=result.usage,
            output_text=result.text,
        )  # fmt: skip
    body = dict(result.body)
    body["id"] = str(call.id)
    body.setdefault("object", "chat.completion")
    if not isinstance(body.get("created"), int):
        body["created"] = int(call.row.created_at.timestamp())
    return body


async def chat_completion_chunks(
    user: User, data: Mapping[str, Any]
) -> AsyncGenerator[bytes, None]:
    """A streamed completion as server-sent events: OpenRouter's chunks as they arrive
    (with the generation's id), its keep-alive comments, the usage chunk only when
    `stream_options.include_usage` asked for it, then `data: [DONE]` once the call is
    settled. A failure before anything was sent is raised (the view answers with an HTTP
    error); after that it becomes a last chunk carrying an `error` object, without [DONE].
    The ledger settles the call however it ends, a client hanging up included."""
    admission = await admit_chat(user, data)
    include_usage = bool((data.get("stream_options") or {}).get("include_usage"))
    held: list[bytes] = []
    sent = durable = False
    call: Call | None = None
    try:
        async with (
            ledger.run(admission, _prompt(data["messages"]), _history_params(data)) as call,
            aclosing(
                get_openrouter_client().stream_chat_chunks(
                    upstream_chat_payload(data), user=call.upstream_user
                )
            ) as events,
        ):
            end: StreamEnd | None = None
            generation_id = str(call.id)
            async for event in events:
                if isinstance(event, StreamChunk):
                    if not durable:
                        await call.durable()
                        durable = True
                    if event.delta is not None:
                        call.pieces.append(event.delta.text)
                    chunk = event.data
                    if call.upstream_id is None and isinstance(chunk.get("id"), str):
                        call.upstream_id = chunk["id"]  # to cost the call if it is abandoned
                    chunk["id"] = generation_id
                    if not chunk.get("choices"):  # the usage chunk: after the settle, if asked
                        if include_usage and "usage" in chunk:
                            held.append(_event(chunk))
                        continue
                    if not include_usage:
                        chunk.pop("usage", None)
                    sent = True
                    yield _event(chunk)
                elif isinstance(event, KeepAlive):
                    sent = True
                    yield f": {event.comment}\n\n".encode()
                elif isinstance(event, StreamEnd):
                    end = event
            if end is None:  # the client raises before this; kept so a bad stream is never silent
                raise UpstreamError("The answer stream ended early.", code="upstream_stream_broken")
            call.answered(
                model=end.model, latency_ms=end.latency_ms, usage=end.usage, output_text=end.text
            )
    except ApiError as exc:
        if not sent or call is None:
            raise
        yield _event(_error_chunk(call, data["model"], exc))
        return
    for item in held:
        yield item
    yield DONE


def _event(chunk: Mapping[str, Any]) -> bytes:
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


def _error_chunk(call: Call, model: str, error: ApiError) -> dict[str, Any]:
    body, _, _ = openai_error(error)
    return {
        "id": str(call.id),
        "object": "chat.completion.chunk",
        "created": int(call.row.created_at.timestamp()),
        "model": model,
        "choices": [{"index": 0, "delta": {}, "finish_reason": "error"}],
        "error": body["error"],
    }


# -- embeddings -----------------------------------------------------------------------------


async def create_embeddings(user: User, data: Mapping[str, Any]) -> dict[str, Any]:
    """POST /embeddings upstream; vectors in the encoding the client asked for (float when
    it named none), whatever the upstream sent."""
    admission = await ledger.admit(user, "embedding", data["model"])
    encoding = data.get("encoding_format") or "float"
    payload = {k: v for k, v in data.items() if k != "user"}
    payload["encoding_format"] = encoding
    inputs = data["input"]
    params = {"api": "openai", "inputs": 1 if isinstance(inputs, str) else len(inputs)}
    params.update({k: payload[k] for k in ("encoding_format", "dimensions") if k in payload})
    async with ledger.run(admission, _embedding_prompt(inputs), params) as call:
        result = await get_openrouter_client().embeddings(payload, user=call.upstream_user)
        items = [_embedding_item(i, item, encoding) for i, item in enumerate(result.body["data"])]
        call.answered(
            model=result.model, latency_ms=result.latency_ms, usage=result.usage,
            output_text=f"{len(items)} embedding(s)",
        )  # fmt: skip
    usage = result.usage
    return {
        "object": "list",
        "data": items,
        "model": result.model,
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens,
            "cost": usage.cost,
        },
    }


def _embedding_prompt(inputs: Any) -> str:
    if isinstance(inputs, str):
        return inputs[:10_000]
    if all(isinstance(item, str) for item in inputs):
        return "\n".join(inputs)[:10_000]
    return f"[{len(inputs)} token input(s)]"


def _embedding_item(index: int, item: Mapping[str, Any], encoding: str) -> dict[str, Any]:
    vector = item["embedding"]
    if encoding == "base64" and isinstance(vector, list):
        vector = _to_base64(vector)
    elif encoding == "float" and isinstance(vector, str):
        vector = _from_base64(vector)
    elif not isinstance(vector, (list, str)):
        raise UpstreamError("OpenRouter sent an embedding that is not a vector.")
    position = item.get("index")
    return {
        "object": "embedding",
        "index": position if isinstance(position, int) else index,
        "embedding": vector,
    }


def _to_base64(vector: Sequence[Any]) -> str:
    if not all(isinstance(x, (int, float)) and math.isfinite(x) for x in vector):
        raise UpstreamError("OpenRouter sent an embedding that is not a list of numbers.")
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def _from_base64(text: str) -> list[float]:
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise UpstreamError("OpenRouter sent an embedding that is not base64.") from None
    if len(raw) % 4:
        raise UpstreamError("OpenRouter sent a base64 embedding of a broken length.")
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


# -- images ---------------------------------------------------------------------------------


async def generate_images(
    user: User, data: Mapping[str, Any], *, media_url: Callable[[UUID, int], str]
) -> dict[str, Any]:
    """The native image generation (the catalogue picks the upstream path; the images are
    stored in the history), answered as OpenAI's ImagesResponse. `media_url(generation,
    index)` makes the absolute URL of a stored image for response_format url."""
    size = data.get("size")
    options: dict[str, Any] = {}
    if data.get("n"):
        options["n"] = data["n"]
    if size and size != "auto":
        options["size"] = size
        ratio = _aspect_ratio(size)
        if ratio:
            options["aspect_ratio"] = ratio
    generation = await services.generate_image(user, data["model"], data["prompt"], options=options)
    created = int(generation.created_at.timestamp())
    if (data.get("response_format") or "b64_json") == "url":
        links = [{"url": media_url(generation.id, i)} for i in range(len(generation.media))]
        return {"created": created, "data": links}
    images = await asyncio.to_thread(_read_images, generation.media)
    return {"created": created, "data": [{"b64_json": image} for image in images]}


def _aspect_ratio(size: str) -> str | None:
    width, _, height = size.partition("x")
    if not (width.isdigit() and height.isdigit()):
        return None
    ratio = Fraction(int(width), int(height))
    name = f"{ratio.numerator}:{ratio.denominator}"
    return name if name in ASPECT_RATIOS else None


def _read_images(media: Sequence[Any]) -> list[str]:
    encoded = []
    for item in media:
        path = media_path(item)
        if path is None:
            raise ApiError("A stored image is missing.", code="media_missing", status=500)
        encoded.append(base64.b64encode(Path(path).read_bytes()).decode())
    return encoded
