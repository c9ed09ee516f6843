"""Scenarios for the official `openai` SDK against a running gateway's /v1/.

Run by tests/e2e/test_openai_sdk_e2e.py in a subprocess per SDK version (3.x from the venv,
2.x with .sdk/openai-2 first on PYTHONPATH), because two versions of one package cannot
share an interpreter. Input comes from the environment (GATEWAY_URL, API_KEY, REVOKED_KEY);
the argument names the scenarios to run (default: all). It prints one JSON object:
{"version": "...", "results": {"sync:chat_plain": {"ok": true, ...}, ...}}.

Only this file imports `openai`; it must stay importable by every SDK version tested.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

import openai

CHAT_MODEL = "openai/gpt-4o-mini"
EMBEDDING_MODEL = "openai/text-embedding-3-small"
IMAGE_MODEL = "black-forest-labs/flux.2-klein-4b"
LONG_PROMPT = " ".join(f"word{n}" for n in range(40))
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
PERSON_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "person",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
            "additionalProperties": False,
        },
    },
}

BASE_URL = os.environ["GATEWAY_URL"].rstrip("/") + "/v1"
API_KEY = os.environ["API_KEY"]


def messages(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


class Failed(AssertionError):
    pass


def check(condition: object, what: str) -> None:
    if not condition:
        raise Failed(what)


# -- sync ---------------------------------------------------------------------------------


def sync_client(**kwargs: Any) -> openai.OpenAI:
    kwargs.setdefault("api_key", API_KEY)
    return openai.OpenAI(base_url=BASE_URL, **kwargs)


def models_list(client: openai.OpenAI) -> dict[str, Any]:
    models = list(client.models.list())
    ids = {m.id for m in models}
    check(CHAT_MODEL in ids and EMBEDDING_MODEL in ids, f"models listed: {sorted(ids)}")
    check(all(isinstance(m.created, int) and m.owned_by for m in models), "created/owned_by")
    check(all(m.object == "model" for m in models), "object: model")
    return {"count": len(models)}


def models_retrieve(client: openai.OpenAI) -> dict[str, Any]:
    model = client.models.retrieve(CHAT_MODEL)
    check(model.id == CHAT_MODEL and model.owned_by == "openai", f"retrieved {model}")
    return {}


def chat_plain(client: openai.OpenAI) -> dict[str, Any]:
    completion = client.chat.completions.create(model=CHAT_MODEL, messages=messages("hi there"))
    text = completion.choices[0].message.content
    check(text == "[stub] echo: hi there", f"content {text!r}")
    check(completion.usage and completion.usage.total_tokens > 0, "usage")
    uuid.UUID(completion.id)  # the gateway's generation id
    return {"id": completion.id}


def chat_stream(client: openai.OpenAI) -> dict[str, Any]:
    stream = client.chat.completions.create(
        model=CHAT_MODEL, messages=messages("stream me please"), stream=True
    )
    pieces, ids = [], set()
    for chunk in stream:
        check(chunk.choices, "a chunk without choices reached a client that did not ask")
        ids.add(chunk.id)
        pieces.append(chunk.choices[0].delta.content or "")
    text = "".join(pieces)
    check(text == "[stub] echo: stream me please", f"assembled {text!r}")
    check(len(ids) == 1, f"chunk ids {ids}")
    return {"id": ids.pop()}


def chat_stream_usage(client: openai.OpenAI) -> dict[str, Any]:
    stream = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=messages("count me"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    last = chunks[-1]
    check(not last.choices and last.usage and last.usage.total_tokens > 0, f"last {last}")
    check(all(c.choices for c in chunks[:-1]), "usage before the end")
    return {"total_tokens": last.usage.total_tokens if last.usage else None}


def chat_tools(client: openai.OpenAI) -> dict[str, Any]:
    completion = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=messages("What is the weather in Paris? Use get_weather."),
        tools=[WEATHER_TOOL],
        tool_choice="auto",
    )
    choice = completion.choices[0]
    check(choice.finish_reason == "tool_calls", f"finish {choice.finish_reason}")
    call = choice.message.tool_calls[0]
    check(call.function.name == "get_weather", f"tool {call.function.name}")
    check("city" in json.loads(call.function.arguments), "arguments")
    # The answer goes back as a tool message.
    follow = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=[
            *messages("What is the weather in Paris?"),
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
        tools=[WEATHER_TOOL],
    )
    check("sunny" in (follow.choices[0].message.content or ""), "tool result answered")
    return {}


def chat_tools_stream(client: openai.OpenAI) -> dict[str, Any]:
    stream = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=messages("get_weather for Oslo"),
        tools=[WEATHER_TOOL],
        stream=True,
    )
    name, arguments = "", ""
    for chunk in stream:
        for call in chunk.choices[0].delta.tool_calls or ():
            name += call.function.name or "" if call.function else ""
            arguments += call.function.arguments or "" if call.function else ""
    check(name == "get_weather" and "city" in json.loads(arguments), f"{name} {arguments}")
    return {}


def chat_response_format(client: openai.OpenAI) -> dict[str, Any]:
    completion = client.chat.completions.create(
        model=CHAT_MODEL, messages=messages("a person please"), response_format=PERSON_SCHEMA
    )
    person = json.loads(completion.choices[0].message.content or "")
    check(isinstance(person["name"], str) and isinstance(person["age"], int), f"{person}")
    plain = client.chat.completions.create(
        model=CHAT_MODEL, messages=messages("json"), response_format={"type": "json_object"}
    )
    check(isinstance(json.loads(plain.choices[0].message.content or ""), dict), "json_object")
    return {}


def embeddings(client: openai.OpenAI) -> dict[str, Any]:
    default = client.embeddings.create(model=EMBEDDING_MODEL, input="hello world")  # base64
    floats = client.embeddings.create(
        model=EMBEDDING_MODEL, input=["hello world", "bye"], encoding_format="float"
    )
    a, b = default.data[0].embedding, floats.data[0].embedding
    check(len(a) == 1536 and len(floats.data) == 2, f"sizes {len(a)} {len(floats.data)}")
    check(all(abs(x - y) < 1e-6 for x, y in zip(a, b, strict=True)), "base64 == float")
    check(default.usage.prompt_tokens > 0, "usage")
    return {}


def images(client: openai.OpenAI) -> dict[str, Any]:
    result = client.images.generate(model=IMAGE_MODEL, prompt="a striped cat")
    data = base64.b64decode(result.data[0].b64_json or "")
    check(data.startswith(b"\x89PNG\r\n\x1a\n"), "a PNG")
    check(isinstance(result.created, int), "created")
    return {}


def revoked_key(client: openai.OpenAI) -> dict[str, Any]:
    revoked = sync_client(api_key=os.environ["REVOKED_KEY"])
    try:
        revoked.models.list()
    except openai.AuthenticationError as exc:
        check(exc.status_code == 401 and exc.request_id, f"401 with a request id: {exc}")
        return {"code": exc.code}
    raise Failed("a revoked key was accepted")


def not_found(client: openai.OpenAI) -> dict[str, Any]:
    codes = []
    for attempt in (
        lambda: client.models.retrieve("nobody/no-such-model"),
        lambda: client.chat.completions.create(model="nobody/no-model", messages=messages("x")),
        lambda: client.embeddings.create(model=CHAT_MODEL, input="a chat model cannot embed"),
    ):
        try:
            attempt()
        except openai.NotFoundError as exc:
            codes.append(exc.code)
        else:
            raise Failed("an unknown model was accepted")
    check(codes == ["model_not_found"] * 3, f"codes {codes}")
    return {}


def bad_request(client: openai.OpenAI) -> dict[str, Any]:
    try:
        client.chat.completions.create(
            model=CHAT_MODEL, messages=messages("x"), extra_body={"frobnicate": True}
        )
    except openai.BadRequestError as exc:
        check(exc.param == "frobnicate", f"param {exc.param}")
    else:
        raise Failed("an unknown field was accepted")
    try:
        client.chat.completions.create(model=CHAT_MODEL, messages=[], temperature=7)
    except openai.BadRequestError as exc:
        check(exc.type == "invalid_request_error", f"type {exc.type}")
        return {}
    raise Failed("an invalid request was accepted")


def permission_denied(client: openai.OpenAI) -> dict[str, Any]:
    model = os.environ.get("FORBIDDEN_MODEL")
    if not model:
        return {"skipped": "no model is forbidden in this gateway"}
    try:
        client.chat.completions.create(model=model, messages=messages("x"))
    except openai.PermissionDeniedError as exc:
        return {"code": exc.code}
    raise Failed("a forbidden model was allowed")


def stream_abandoned(client: openai.OpenAI) -> dict[str, Any]:
    stream = client.chat.completions.create(
        model=CHAT_MODEL, messages=messages(LONG_PROMPT), stream=True
    )
    first = next(iter(stream))
    stream.close()  # hang up after the first chunk
    return {"id": first.id}


def rate_limited(client: openai.OpenAI) -> dict[str, Any]:
    """Runs against a gateway with RATE_LIMIT_USER set low: the SDK must give up at once."""
    started = time.monotonic()
    for number in range(20):
        try:
            client.models.list()
        except openai.RateLimitError as exc:
            retry_after = exc.response.headers.get("retry-after")
            should_retry = exc.response.headers.get("x-should-retry")
            return {
                "after": number,
                "seconds": time.monotonic() - started,
                "retry_after": retry_after,
                "x_should_retry": should_retry,
            }
    raise Failed("never rate limited")


SYNC: dict[str, Callable[[openai.OpenAI], dict[str, Any]]] = {
    f.__name__: f
    for f in (
        models_list,
        models_retrieve,
        chat_plain,
        chat_stream,
        chat_stream_usage,
        chat_tools,
        chat_tools_stream,
        chat_response_format,
        embeddings,
        images,
        revoked_key,
        not_found,
        bad_request,
        permission_denied,
        stream_abandoned,
        rate_limited,
    )
}


# -- async --------------------------------------------------------------------------------


async def async_models(client: openai.AsyncOpenAI) -> dict[str, Any]:
    page = await client.models.list()
    check(any(m.id == CHAT_MODEL for m in page.data), "listed")
    model = await client.models.retrieve(CHAT_MODEL)
    check(model.id == CHAT_MODEL, "retrieved")
    return {}


async def async_chat_plain(client: openai.AsyncOpenAI) -> dict[str, Any]:
    completion = await client.chat.completions.create(model=CHAT_MODEL, messages=messages("hey"))
    check(completion.choices[0].message.content == "[stub] echo: hey", "content")
    return {"id": completion.id}


async def async_chat_stream(client: openai.AsyncOpenAI) -> dict[str, Any]:
    stream = await client.chat.completions.create(
        model=CHAT_MODEL,
        messages=messages("async stream"),
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, usage = [], None
    async for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
        usage = chunk.usage or usage
    check("".join(pieces) == "[stub] echo: async stream", "assembled")
    check(usage is not None and usage.completion_tokens > 0, "usage chunk")
    return {}


async def async_embeddings(client: openai.AsyncOpenAI) -> dict[str, Any]:
    result = await client.embeddings.create(model=EMBEDDING_MODEL, input="async")
    check(len(result.data[0].embedding) == 1536, "decoded base64")
    return {}


async def async_images(client: openai.AsyncOpenAI) -> dict[str, Any]:
    result = await client.images.generate(model=IMAGE_MODEL, prompt="an async cat", n=1)
    check(base64.b64decode(result.data[0].b64_json or "").startswith(b"\x89PNG"), "a PNG")
    return {}


async def async_errors(client: openai.AsyncOpenAI) -> dict[str, Any]:
    revoked = openai.AsyncOpenAI(base_url=BASE_URL, api_key=os.environ["REVOKED_KEY"])
    try:
        await revoked.models.list()
    except openai.AuthenticationError:
        pass
    else:
        raise Failed("a revoked key was accepted")
    try:
        await client.chat.completions.create(model="nobody/none", messages=messages("x"))
    except openai.NotFoundError:
        return {}
    raise Failed("an unknown model was accepted")


async def async_stream_abandoned(client: openai.AsyncOpenAI) -> dict[str, Any]:
    stream = await client.chat.completions.create(
        model=CHAT_MODEL, messages=messages(LONG_PROMPT), stream=True
    )
    first = await anext(aiter(stream))
    await stream.close()
    return {"id": first.id}


ASYNC = {
    f.__name__: f
    for f in (
        async_models,
        async_chat_plain,
        async_chat_stream,
        async_embeddings,
        async_images,
        async_errors,
        async_stream_abandoned,
    )
}


def outcome(run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return {"ok": True, **run()}
    except Exception as exc:
        return {
            "ok": False,
            "error": f"{type(exc).__name__}: {exc}",
            "trace": traceback.format_exc(),
        }


def main(names: list[str]) -> None:
    results: dict[str, Any] = {}
    client = sync_client()
    for name, scenario in SYNC.items():
        if (not names and name != "rate_limited") or name in names:
            results[name] = outcome(lambda s=scenario: s(client))

    async def run_async() -> None:
        aclient = openai.AsyncOpenAI(base_url=BASE_URL, api_key=API_KEY)
        for name, scenario in ASYNC.items():
            if not names or name in names:
                try:
                    results[name] = {"ok": True, **await scenario(aclient)}
                except Exception as exc:
                    results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                                     "trace": traceback.format_exc()}  # fmt: skip
        await aclient.close()

    asyncio.run(run_async())
    print(json.dumps({"version": openai.__version__, "results": results}))


if __name__ == "__main__":
    main(sys.argv[1:])
