"""`POST /api/v1/chat/completions` (reference §3), including image output (reference §4.1)
and what the official `openai` SDK exercises (openai-compat reference): tool calls, JSON
output, `n` choices, `stop`, `seed` and truncation by `max_tokens`."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from .accounting import end_user, new_generation_id, record_generation, usage_json
from .asgi import ApiError, DropConnection, Request, Response, StreamResponse, dumps, error_payload
from .catalog import DEFAULT_CHAT_MODEL, MODELS_BY_ID, ModelSpec
from .json_samples import sample_for_schema
from .media import palette_index, png_data_url
from .state import FaultRule, Generation, StubState

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
CHAT_ASPECT_RATIOS = frozenset(
    {"1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"}
    | {"1:4", "4:1", "1:8", "8:1"}
)
CHAT_IMAGE_SIZES = frozenset({"0.5K", "1K", "2K", "4K"})
RESPONSE_FORMATS = frozenset({"text", "json_object", "json_schema"})
TOOL_CHOICES = frozenset({"auto", "none", "required"})
PROCESSING_COMMENT = b": OPENROUTER PROCESSING\n\n"
DONE_EVENT = b"data: [DONE]\n\n"
ECHO_PREFIX = "[stub] echo: "
TOOL_RESULT_PREFIX = "[stub] tool result: "
MAX_ECHO_CHARS = 500
MAX_CHOICES = 128
MAX_STOP_SEQUENCES = 4
ARGUMENT_FRAGMENT_CHARS = 8  # streamed tool-call arguments arrive in pieces this long
_TOKEN_RE = re.compile(r"\s*\S+")
_TOOL_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Live message for tools sent to a model without tool support (404, no metadata).
NO_TOOL_ENDPOINTS = (
    "No endpoints found that support tool use. To learn more about provider routing, "
    "visit: https://openrouter.ai/docs/guides/routing/provider-selection"
)


@dataclass(slots=True)
class ToolCallPlan:
    """One function call the synthetic model makes; arguments split as they are streamed."""

    id: str
    name: str
    fragments: list[str]

    def message_json(self) -> dict[str, Any]:
        function = {"name": self.name, "arguments": "".join(self.fragments)}
        return {"id": self.id, "type": "function", "function": function}


@dataclass(slots=True)
class ChoicePlan:
    """One of the `n` answers: text tokens or a tool call, maybe images."""

    index: int
    tokens: list[str]
    tool_call: ToolCallPlan | None
    images: list[dict[str, Any]]
    finish_reason: str

    @property
    def text_tokens(self) -> int:
        """Completion tokens billed at the completion price: one per streamed delta."""
        call = self.tool_call
        return len(self.tokens) + (1 + len(call.fragments) if call is not None else 0)


@dataclass(slots=True)
class ChatPlan:
    """Everything about one answer, decided before the first byte is sent."""

    id: str
    created: int
    model: ModelSpec
    choices: list[ChoicePlan]
    usage: dict[str, Any]
    input_images: int

    @property
    def finish_reason(self) -> str:
        return self.choices[0].finish_reason

    # -- non-streaming (reference §3 "Non-streaming response") ------------------------------
    def result(self, fault: FaultRule | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "provider": self.model.provider,
            "model": self.model.id,
            "object": "chat.completion",
            "created": self.created,
            "system_fingerprint": None,
            "choices": [self._choice_result(choice, fault) for choice in self.choices],
            "usage": self.usage,
        }

    @staticmethod
    def _choice_result(choice: ChoicePlan, fault: FaultRule | None) -> dict[str, Any]:
        tokens = choice.tokens
        result: dict[str, Any] = {
            "index": choice.index,
            "logprobs": None,
            "finish_reason": choice.finish_reason,
            "native_finish_reason": choice.finish_reason,
        }
        if fault is not None and fault.break_stream_after is not None:
            tokens = tokens[: fault.break_stream_after]
            result["finish_reason"] = result["native_finish_reason"] = "error"
            result["error"] = _inband_error(fault)["error"]
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(tokens),
            "refusal": None,
            "reasoning": None,
        }
        if choice.tool_call is not None:
            message["tool_calls"] = [choice.tool_call.message_json()]
        if choice.images:
            message["images"] = choice.images
        result["message"] = message
        return result

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

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        choice = {"index": index, "delta": delta, "finish_reason": None}
        return self._chunk([{**choice, "native_finish_reason": None}])

    def content_chunk_parts(self, index: int = 0) -> tuple[bytes, bytes]:
        """Bytes around the JSON-encoded token of a content chunk (built once per choice)."""
        marker = "\x00TOKEN\x00"
        head, tail = self._delta(index, {"role": "assistant", "content": marker}).split(
            dumps(marker)
        )
        return head, tail

    def _choice_events(self, choice: ChoicePlan) -> list[bytes]:
        """One event per completion token: content deltas, or a tool call's name then its
        arguments in pieces (the OpenAI tool-call delta shape, `index` on every call)."""
        head, tail = self.content_chunk_parts(choice.index)
        events = [head + dumps(token) + tail for token in choice.tokens]
        call = choice.tool_call
        if call is not None:
            opening = {"index": 0, "id": call.id, "type": "function"}
            opening["function"] = {"name": call.name, "arguments": ""}
            events.append(
                self._delta(
                    choice.index, {"role": "assistant", "content": "", "tool_calls": [opening]}
                )
            )
            for fragment in call.fragments:
                piece = {"index": 0, "function": {"arguments": fragment}}
                events.append(
                    self._delta(choice.index, {"role": "assistant", "tool_calls": [piece]})
                )
        return events

    def stream_steps(self) -> list[bytes]:
        """Step k carries the k-th event of every choice that still has one."""
        per_choice = [self._choice_events(choice) for choice in self.choices]
        length = max((len(events) for events in per_choice), default=0)
        return [
            b"".join(events[step] for events in per_choice if step < len(events))
            for step in range(length)
        ]

    def closing_events(self) -> bytes:
        """Images (if any), the finishing choices, the usage chunk with no choices, [DONE]."""
        events = []
        for choice in self.choices:
            if choice.images:
                delta = {"role": "assistant", "content": "", "images": choice.images}
                events.append(self._delta(choice.index, delta))
        for choice in self.choices:
            finish = {
                "index": choice.index,
                "delta": {"role": "assistant", "content": ""},
                "finish_reason": choice.finish_reason,
                "native_finish_reason": choice.finish_reason,
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


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _max_tokens(body: dict[str, Any]) -> int | None:
    value = body.get("max_completion_tokens", body.get("max_tokens"))
    if value is None:
        return None
    if not _positive_int(value):
        raise ApiError(400, "max_tokens must be a positive integer")
    return int(value)


def _choice_count(body: dict[str, Any]) -> int:
    value = body.get("n", 1)
    if not _positive_int(value) or value > MAX_CHOICES:
        raise ApiError(400, f"n must be an integer between 1 and {MAX_CHOICES}")
    return int(value)


def _stop_sequences(body: dict[str, Any]) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    sequences = [stop] if isinstance(stop, str) else stop
    if (
        not isinstance(sequences, list)
        or len(sequences) > MAX_STOP_SEQUENCES
        or not all(isinstance(item, str) and item for item in sequences)
    ):
        raise ApiError(400, f"stop must be a string or up to {MAX_STOP_SEQUENCES} strings")
    return sequences


def _validate_scalars(body: dict[str, Any]) -> None:
    temperature = body.get("temperature")
    if temperature is not None and (
        not isinstance(temperature, int | float)
        or isinstance(temperature, bool)
        or not 0 <= temperature <= 2
    ):
        raise ApiError(400, "temperature must be a number between 0 and 2")
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise ApiError(400, "seed must be an integer")
    # Reference §3: deprecated upstream, usage is always sent; only its shape is checked.
    stream_options = body.get("stream_options")
    if stream_options is not None and not isinstance(stream_options, dict):
        raise ApiError(400, '"stream_options" must be an object')


def _validate_tools(body: dict[str, Any], model: ModelSpec) -> list[dict[str, Any]]:
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise ApiError(400, '"tools" must be an array')
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if (
            not isinstance(function, dict)
            or tool.get("type") != "function"
            or not isinstance(function.get("name"), str)
            or not _TOOL_NAME_RE.match(function["name"])
        ):
            raise ApiError(400, f"tools[{index}] must be a function tool with a valid name")
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise ApiError(400, f"tools[{index}].function.parameters must be a JSON Schema")
    if tools and "tools" not in model.listing["supported_parameters"]:
        raise ApiError(404, payload={"error": {"message": NO_TOOL_ENDPOINTS, "code": 404}})
    return tools


def _tool_choice(body: dict[str, Any], tools: list[dict[str, Any]]) -> str | dict[str, Any]:
    """ "auto" (default), "none", "required", or the named tool's definition."""
    choice = body.get("tool_choice", "auto")
    if isinstance(choice, str) and choice in TOOL_CHOICES:
        return choice
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(choice, dict) or choice.get("type") != "function" or name is None:
        raise ApiError(400, 'tool_choice must be "auto", "none", "required" or a function')
    for tool in tools:
        if tool["function"]["name"] == name:
            return dict(tool)
    raise ApiError(400, f"tool_choice names {name!r}, which is not among the tools")


def _response_format(body: dict[str, Any]) -> tuple[str, Any]:
    """("text" | "json_object" | "json_schema", the schema for json_schema)."""
    value = body.get("response_format")
    if value is None:
        return "text", None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind not in RESPONSE_FORMATS:
        raise ApiError(400, f"response_format.type must be one of {sorted(RESPONSE_FORMATS)}")
    if kind != "json_schema":
        return kind, None
    spec = value.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ApiError(400, "response_format.json_schema must be an object with a name")
    schema = spec.get("schema", {})
    if not isinstance(schema, dict):
        raise ApiError(400, "response_format.json_schema.schema must be a JSON Schema")
    return kind, schema


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


def _images_in(messages: list[dict[str, Any]]) -> int:
    """Input pictures, billed per image at `pricing.image`."""
    return sum(
        1
        for message in messages
        if isinstance(message.get("content"), list)
        for part in message["content"]
        if isinstance(part, dict) and part.get("type") == "image_url"
    )


def _last_text(messages: list[dict[str, Any]], role: str) -> str:
    for message in reversed(messages):
        if message.get("role") == role:
            return " ".join(_text_of(message.get("content")).split())
    return ""


def _prompt_tokens(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> int:
    """A deterministic stand-in for tokenisation: ~4 characters per token plus framing."""
    tokens = sum(4 + (len(_text_of(message.get("content"))) + 3) // 4 for message in messages)
    return tokens + ((len(dumps(tools)) + 3) // 4 if tools else 0)


def _tool_to_call(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]], choice: str | dict[str, Any]
) -> dict[str, Any] | None:
    """The named tool; else, unless "none" or a tool's answer is already the last message
    ("auto"), the first tool whose name the user mentions, or the first tool."""
    if isinstance(choice, dict):
        return choice
    if not tools or choice == "none":
        return None
    if choice == "auto" and messages[-1].get("role") == "tool":
        return None
    user_text = _last_text(messages, "user").lower()
    mentioned = [tool for tool in tools if tool["function"]["name"].lower() in user_text]
    return (mentioned or tools)[0]


def _plan_tool_call(
    tool: dict[str, Any], index: int, seed: Any, max_tokens: int | None
) -> tuple[ToolCallPlan, str]:
    name = tool["function"]["name"]
    parameters = tool["function"].get("parameters") or {"type": "object", "properties": {}}
    arguments = json.dumps(sample_for_schema(parameters), separators=(",", ":"))
    step = ARGUMENT_FRAGMENT_CHARS
    fragments = [arguments[start : start + step] for start in range(0, len(arguments), step)]
    finish_reason = "tool_calls"
    if max_tokens is not None and 1 + len(fragments) > max_tokens:
        fragments = fragments[: max_tokens - 1]
        finish_reason = "length"
    digest = hashlib.sha256(f"{name}|{arguments}|{seed}|{index}".encode()).hexdigest()
    return ToolCallPlan(id=f"call_{digest[:24]}", name=name, fragments=fragments), finish_reason


def _answer_text(messages: list[dict[str, Any]], response_format: tuple[str, Any]) -> str:
    kind, schema = response_format
    user_text = _last_text(messages, "user")[:MAX_ECHO_CHARS]
    if kind == "json_object":
        return json.dumps({"stub": True, "echo": user_text}, ensure_ascii=False)
    if kind == "json_schema":
        return json.dumps(sample_for_schema(schema), ensure_ascii=False)
    if messages[-1].get("role") == "tool":
        return TOOL_RESULT_PREFIX + (_last_text(messages, "tool")[:MAX_ECHO_CHARS] or "(empty)")
    return ECHO_PREFIX + (user_text or "(no text)")


def _cut_at_stop(text: str, stops: list[str]) -> str:
    cut = min((text.find(stop) for stop in stops if stop in text), default=-1)
    return text if cut < 0 else text[:cut]


def plan_chat(body: dict[str, Any]) -> ChatPlan:
    """Validate a ChatRequest and decide the whole synthetic answer (reference §3)."""
    messages = _validate_messages(body)
    model = _resolve_model(body)
    modalities = _requested_modalities(body, model)
    _validate_image_config(body)
    _validate_scalars(body)
    max_tokens = _max_tokens(body)
    count = _choice_count(body)
    stops = _stop_sequences(body)
    tools = _validate_tools(body, model)
    tool = _tool_to_call(messages, tools, _tool_choice(body, tools))
    response_format = _response_format(body)

    text = _cut_at_stop(_answer_text(messages, response_format), stops)
    image_url = png_data_url(palette_index(_last_text(messages, "user")))
    choices = []
    for index in range(count):
        tokens: list[str] = []
        call = None
        finish_reason = "stop"
        if tool is not None and "text" in modalities:
            call, finish_reason = _plan_tool_call(tool, index, body.get("seed"), max_tokens)
        elif "text" in modalities:
            tokens = _TOKEN_RE.findall(text)
            if max_tokens is not None and len(tokens) > max_tokens:
                tokens = tokens[:max_tokens]
                finish_reason = "length"
        images = []
        if "image" in modalities:
            images.append({"type": "image_url", "image_url": {"url": image_url}})
        choices.append(ChoicePlan(index, tokens, call, images, finish_reason))

    input_images = _images_in(messages)
    prompt_tokens = _prompt_tokens(messages, tools)
    image_tokens = model.image_tokens * sum(len(choice.images) for choice in choices)
    completion_tokens = sum(choice.text_tokens for choice in choices) + image_tokens
    prompt_cost, completion_cost = model.token_cost(
        prompt_tokens, completion_tokens, image_tokens=image_tokens, input_images=input_images
    )
    usage = usage_json(
        prompt_tokens, completion_tokens, prompt_cost, completion_cost, image_tokens=image_tokens
    )
    return ChatPlan(
        id=new_generation_id(),
        created=int(time.time()),
        model=model,
        choices=choices,
        usage=usage,
        input_images=input_images,
    )


async def _keep_alive(seconds: float, interval: float) -> AsyncIterator[bytes]:
    """Wait `seconds`, sending `: OPENROUTER PROCESSING` every `interval` meanwhile."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (remaining := deadline - loop.time()) > 0:
        await asyncio.sleep(min(interval, remaining))
        if deadline - loop.time() > 0:
            yield PROCESSING_COMMENT


async def _stream_events(
    plan: ChatPlan, generation: Generation, state: StubState, fault: FaultRule | None
) -> AsyncIterator[bytes]:
    yield PROCESSING_COMMENT
    if state.latency:
        async for comment in _keep_alive(state.latency, state.keepalive_interval):
            yield comment
    steps = plan.stream_steps()
    breaking = fault is not None and fault.break_stream_after is not None
    if fault is not None and fault.break_stream_after is not None:
        steps = steps[: fault.break_stream_after]
    delay = state.token_delay
    if delay:
        for index, step in enumerate(steps):
            if index:
                await asyncio.sleep(delay)
            yield step
    elif steps:
        yield b"".join(steps)
    if fault is not None and breaking:
        generation.stream_finished = True
        if fault.drop_connection:
            raise DropConnection
        yield plan.error_event(fault)
        return
    generation.stream_finished = True
    yield plan.closing_events()


def _mark_abandoned(generation: Generation, events_sent: int) -> None:
    """The client hung up before the end: the stats say `cancelled`, the cost stays whole."""
    if not generation.stream_finished:
        generation.abandoned = True
        generation.events_sent = events_sent


async def chat_completions(
    request: Request, state: StubState, fault: FaultRule | None
) -> Response | StreamResponse:
    """Reference §3: ChatResult, or an SSE stream of ChatStreamChunks when `stream` is true."""
    body = request.json_object()
    user = end_user(body, state)
    plan = plan_chat(body)
    streamed = body.get("stream") is True
    breaking = fault is not None and fault.break_stream_after is not None
    generation = record_generation(
        request,
        state,
        generation_id=plan.id,
        api_type="completions",
        model=plan.model,
        usage=plan.usage,
        user=user,
        streamed=streamed,
        finish_reason="error" if breaking else plan.finish_reason,
        num_media_prompt=plan.input_images or None,
        num_media_completion=sum(len(choice.images) for choice in plan.choices) or None,
    )
    headers = [(b"x-generation-id", plan.id.encode())]
    if streamed:
        return StreamResponse(
            _stream_events(plan, generation, state, fault),
            headers=headers,
            on_disconnect=partial(_mark_abandoned, generation),
        )
    if fault is not None and fault.break_stream_after is not None and fault.drop_connection:
        raise DropConnection
    if state.latency:
        await asyncio.sleep(state.latency)
    return Response(200, dumps(plan.result(fault)), headers=headers)
