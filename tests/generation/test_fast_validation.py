"""The hot-path validators never accept what the DRF serializers refuse."""

from __future__ import annotations

import itertools

import pytest

from core.api import validate
from core.errors import ValidationFailed
from generation.serializers import ChatSerializer, TextSerializer, fast_chat, fast_text

MODELS = ["openai/gpt-4o-mini", " openai/gpt-4o-mini", "bad model", "x" * 201, 5, None, ""]
TEXTS = ["hello", "   ", "", "é ✓ 漢字", "a\x00b", "\ud800", 7, None, "x" * 100_001]
TEMPERATURES = [None, 0, 1.5, 2, 2.01, -0.1, True, "1", float("nan")]
MAX_TOKENS = [None, 1, 200_000, 200_001, 0, 1.0, True, "5"]


def serializer_result(serializer, body):
    try:
        return validate(serializer, body)
    except ValidationFailed:
        return None


def drop_none(body):
    return {key: value for key, value in body.items() if value is not None}


@pytest.mark.parametrize("model", MODELS)
def test_fast_text_agrees_with_the_serializer(model):
    for prompt, system, temperature, max_tokens in itertools.product(
        TEXTS, [None, "be brief", "\x00"], TEMPERATURES, MAX_TOKENS
    ):
        body = drop_none(
            {"model": model, "prompt": prompt, "system_prompt": system,
             "temperature": temperature, "max_tokens": max_tokens}
        )  # fmt: skip
        fast = fast_text(body)
        if fast is not None:
            slow = serializer_result(TextSerializer, body)
            assert slow is not None, body
            assert fast == slow, body


def message_sets():
    yield [{"role": "user", "content": "hi"}]
    yield [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    yield [{"role": "system", "content": "only system"}]
    yield [{"role": "tool", "content": "x"}]
    yield [{"role": "user", "content": ""}]
    yield [{"role": "user", "content": "x", "name": "extra"}]
    yield [{"role": "user"}]
    yield [{"role": "user", "content": "\ud800"}]
    yield [{"role": {}, "content": "0"}]  # found by schemathesis: an unhashable role
    yield [{"role": ["user"], "content": "0"}]
    yield [{"role": "user", "content": {"text": "hi"}}]
    yield ["user: hi"]
    yield []
    yield [{"role": "user", "content": "x"}] * 201
    yield "not a list"


@pytest.mark.parametrize("messages", list(message_sets()))
def test_fast_chat_agrees_with_the_serializer(messages):
    for model, stream, temperature, extra in itertools.product(
        MODELS, [None, True, False, "yes"], TEMPERATURES[:6], [{}, {"foo": 1}]
    ):
        body = drop_none(
            {
                "model": model,
                "messages": messages,
                "stream": stream,
                "temperature": temperature,
                **extra,
            }
        )
        fast = fast_chat(body)
        if fast is not None:
            slow = serializer_result(ChatSerializer, body)
            assert slow is not None, body
            assert fast["messages"] == [dict(m) for m in slow["messages"]], body
            assert {k: v for k, v in fast.items() if k != "messages"} == {
                k: v for k, v in slow.items() if k != "messages"
            }, body


def test_plain_bodies_take_the_fast_path():
    assert fast_text({"model": "openai/gpt-4o-mini", "prompt": "hi"}) is not None
    assert fast_chat({"model": "a/b", "messages": [{"role": "user", "content": "hi"}]}) is not None
