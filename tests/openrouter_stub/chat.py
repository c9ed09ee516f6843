"""`POST /api/v1/chat/completions` (reference §3), including image output (reference §4.1)."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .asgi import ApiError, DropConnection, Request, Response, StreamResponse, dumps, error_payload
from .catalog import DEFAULT_CHAT_MODEL, MODELS_BY_ID, ModelSpec
from .media import palette_index, png_data_url
from .state import FaultRule, StubState

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
CHAT_ASPECT_RATIOS = frozenset(
    {"1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"}
    | {"1:4", "4:1", "1:8", "8:1"}
)
CHAT_IMAGE_SIZES = frozenset({"0.5K", "1K", "2K", "4K"})
PROCESSING_COMMENT = b": OPENROUTER PROCESSING\n\n"
DONE_EVENT = b"data: [DONE]\n\n"
ECHO_PREFIX = "[stub] echo: "
MAX_ECHO_CHARS = 500
_TOKEN_RE = re.compile(r"\s*\S+")


def new_generation_id() -> str:
    return f"gen-{int(time.time())}-{secrets.token_urlsafe(15)}"


def cost_details(prompt_cost: Decimal, completion_cost: Decimal) -> dict[str, Any]:
    return {
        "upstream_inference_cost": None,
        "upstream_inference_prompt_cost": float(prompt_cost),
        "upstream_inference_completions_cost": float(completion_cost),
    }


@dataclass(slots=True)
class ChatPlan:
    """Everything about one answer, decided before the first byte is sent."""

    id: str
    created: int
    model: ModelSpec
    tokens: list[str]
    images: list[dict[str, Any]]
    finish_reason: str
    usage: dict[str, Any]

    # -- non-streaming (reference §3 "Non-streaming response") ------------------------------
    def result(self, fault: FaultRule | None = None) -> dict[str, Any]:
        tokens = self.tokens
        choice: dict[str, Any] = {
            "index": 0,
            "logprobs": None,
            "finish_reason": self.finish_reason,
            "native_finish_reason": self.finish_reason,
            "message": {"role": "assistant", "content": "", "refusal": None, "reasoning": None},
        }
        if fault is not None and fault.break_stream_after is not None:
            tokens = tokens[: fault.break_stream_after]
            choice["finish_reason"] = choice["native_finish_reason"] = "error"
            choice["error"] = _inband_error(fault)["error"]
        choice["message"]["content"] = "".join(tokens)
        if self.images:
            choice["message"]["images"] = self.images
        return {
            "id": self.id,
            "provider": self.model.provider,
            "model": self.model.id,
            "object": "chat.completion",
            "created": self.created,
            "system_fingerprint": None,
            "choices": [choice],
            "usage": self.usage,
        }

    # -- streaming (reference §3 "Streaming") -----------------------------------------------
    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        chunk = {
            "id": self.id,
            "provider": self.model.provider,
            "model": self.model.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "system_fingerprint": None,
            "choices": choices,
            **extra,
        }
        return b"data: " + dumps(chunk) + b"\n\n"

    def content_chunk_parts(self) -> tuple[bytes, bytes]:
        """Bytes around the JSON-encoded token of a content chunk (built once per request)."""
        marker = "\x00TOKEN\x00"
        delta = {"role": "assistant", "content": marker}
        choice = {"index": 0, "delta": delta, "finish_reason": None, "native_finish_reason": None}
        head, tail = self._chunk([choice]).split(dumps(marker))
        return head, tail

    def closing_events(self) -> bytes:
        """Images (if any), the finishing choice, the usage chunk with no choices, [DONE]."""
        events = []
        if self.images:
            delta = {"role": "assistant", "content": "", "images": self.images}
            choice = {"index": 0, "delta": delta, "finish_reason": None}
            events.append(self._chunk([{**choice, "native_finish_reason": None}]))
        finish = {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "finish_reason": self.finish_reason,
            "native_finish_reason": self.finish_reason,
        }
        events.append(self._chunk([finish]))
        events.append(self._chunk([], usage=self.usage))
        events.append(DONE_EVENT)
        return b"".join(events)

    def error_event(self, fault: FaultRule) -> bytes:
        """Reference §3 "Mid-stream errors": top-level `error` and a terminating choice."""
        choice = {
            "index": 0,
            "delta": {"content": ""},
            "finish_reason": "error",
            "native_finish_reason": "error",
        }
        return self._chunk([choice], **_inband_error(fault))


def _inband_error(fault: FaultRule) -> dict[str, Any]:
    status = fault.status or 502
    return error_payload(status, fault.message, fault.metadata)


# -- request validation ------------------------------------------------------------------------


def _resolve_model(body: dict[str, Any]) -> ModelSpec:
    """`model`, then the `models` fallback list, then the account default (reference §3)."""
    model_id = body.get("model")
    if model_id is not None and not isinstance(model_id, str):
        raise ApiError(400, '"model" must be a string')
    candidates = [model_id] if model_id else []
    fallbacks = body.get("models")
    if isinstance(fallbacks, list):
        candidates.extend(item for item in fallbacks if isinstance(item, str))
    if not candidates:
        candidates = [DEFAULT_CHAT_MODEL]
    for candidate in candidates:
        if candidate in MODELS_BY_ID:
            return MODELS_BY_ID[candidate]
    raise ApiError(400, f"{candidates[0]} is not a valid model ID")


def _validate_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, 'Input required: "messages" must be a non-empty array')
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise ApiError(400, f"messages[{index}]: role must be one of {sorted(ROLES)}")
    return messages


def _requested_modalities(body: dict[str, Any], model: ModelSpec) -> list[str]:
    """Reference §4.1: output modalities must all be offered by the model, else 404."""
    modalities = body.get("modalities")
    if modalities is None:
        modalities = ["text"]
    if not isinstance(modalities, list) or not all(isinstance(m, str) for m in modalities):
        raise ApiError(400, '"modalities" must be an array of strings')
    if not set(modalities) <= set(model.output_modalities):
        raise ApiError(
            404,
            "No endpoints found that support the requested output modalities: "
            + ", ".join(modalities),
            metadata={
                "routing_funnel": [
                    {"step": "Filter by Model", "remaining": 1},
                    {"step": "Filter by Model Output Modalities", "remaining": 0},
                ],
                "failed_routing_step": "Filter by Model Output Modalities",
            },
        )
    return modalities


def _validate_image_config(body: dict[str, Any]) -> None:
    """Reference §3 `image_config`: free-form, documented keys checked against their enums."""
    config = body.get("image_config")
    if config is None:
        return
    if not isinstance(config, dict):
        raise ApiError(400, '"image_config" must be an object')
    aspect_ratio = config.get("aspect_ratio")
    if aspect_ratio is not None and aspect_ratio not in CHAT_ASPECT_RATIOS:
        raise ApiError(400, f"image_config.aspect_ratio {aspect_ratio!r} is not supported")
    image_size = config.get("image_size")
    if image_size is not None and image_size not in CHAT_IMAGE_SIZES:
        raise ApiError(400, f"image_config.image_size {image_size!r} is not supported")


def _max_tokens(body: dict[str, Any]) -> int | None:
    value = body.get("max_completion_tokens", body.get("max_tokens"))
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ApiError(400, "max_tokens must be a positive integer")
    return value


def _validate_temperature(body: dict[str, Any]) -> None:
    value = body.get("temperature")
    if value is not None and (
        not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 2
    ):
        raise ApiError(400, "temperature must be a number between 0 and 2")


# -- synthetic answer --------------------------------------------------------------------------


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return " ".join(_text_of(message.get("content")).split())
    return ""


def _prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """A deterministic stand-in for tokenisation: ~4 characters per token plus framing."""
    return sum(4 + (len(_text_of(message.get("content"))) + 3) // 4 for message in messages)


def plan_chat(body: dict[str, Any]) -> ChatPlan:
    """Validate a ChatRequest and decide the whole synthetic answer (reference §3)."""
    messages = _validate_messages(body)
    model = _resolve_model(body)
    modalities = _requested_modalities(body, model)
    _validate_image_config(body)
    _validate_temperature(body)
    max_tokens = _max_tokens(body)

    user_text = _last_user_text(messages)
    tokens: list[str] = []
    if "text" in modalities:
        echo = ECHO_PREFIX + (user_text[:MAX_ECHO_CHARS] or "(no text)")
        tokens = _TOKEN_RE.findall(echo)
    finish_reason = "stop"
    if max_tokens is not None and len(tokens) > max_tokens:
        tokens = tokens[:max_tokens]
        finish_reason = "length"
    images = []
    if "image" in modalities:
        url = png_data_url(palette_index(user_text))
        images.append({"type": "image_url", "image_url": {"url": url}})

    prompt_tokens = _prompt_tokens(messages)
    image_tokens = model.image_tokens * len(images)
    completion_tokens = len(tokens) + image_tokens
    prompt_cost = prompt_tokens * model.prompt_price + model.request_price
    completion_cost = len(tokens) * model.completion_price + image_tokens * model.image_output_price
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "image_tokens": image_tokens},
        "cost": float(prompt_cost + completion_cost),
        "is_byok": False,
        "cost_details": cost_details(prompt_cost, completion_cost),
    }
    return ChatPlan(
        id=new_generation_id(),
        created=int(time.time()),
        model=model,
        tokens=tokens,
        images=images,
        finish_reason=finish_reason,
        usage=usage,
    )


async def _stream_events(
    plan: ChatPlan, state: StubState, fault: FaultRule | None
) -> AsyncIterator[bytes]:
    yield PROCESSING_COMMENT
    if state.latency:
        await asyncio.sleep(state.latency)
    tokens = plan.tokens
    breaking = fault is not None and fault.break_stream_after is not None
    if fault is not None and fault.break_stream_after is not None:
        tokens = tokens[: fault.break_stream_after]
    head, tail = plan.content_chunk_parts()
    delay = state.token_delay
    if delay:
        for index, token in enumerate(tokens):
            if index:
                await asyncio.sleep(delay)
            yield head + dumps(token) + tail
    elif tokens:
        yield b"".join(head + dumps(token) + tail for token in tokens)
    if fault is not None and breaking:
        if fault.drop_connection:
            raise DropConnection
        yield plan.error_event(fault)
        return
    yield plan.closing_events()


async def chat_completions(
    request: Request, state: StubState, fault: FaultRule | None
) -> Response | StreamResponse:
    """Reference §3: ChatResult, or an SSE stream of ChatStreamChunks when `stream` is true."""
    body = request.json_object()
    plan = plan_chat(body)
    headers = [(b"x-generation-id", plan.id.encode())]
    if body.get("stream") is True:
        return StreamResponse(_stream_events(plan, state, fault), headers=headers)
    if fault is not None and fault.break_stream_after is not None and fault.drop_connection:
        raise DropConnection
    if state.latency:
        await asyncio.sleep(state.latency)
    return Response(200, dumps(plan.result(fault)), headers=headers)
