from __future__ import annotations

import re
from typing import Any

from django.core.validators import RegexValidator
from rest_framework import serializers

from core.api import StrictCharField, StrictSerializer
from core.clock import iso
from generation.openrouter import ModelInfo
from generation.repository import Generation, VideoJob

ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9", "9:21")
IMAGE_SIZES = ("0.5K", "1K", "2K", "4K")
VIDEO_RESOLUTIONS = ("480p", "720p", "768p", "1080p", "1K", "2K", "4K")
MODEL_ID = r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$"


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return int(super().to_internal_value(data))


class StrictFloatField(serializers.FloatField):
    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return float(super().to_internal_value(data))


class ModelField(StrictCharField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=200, **kwargs)
        self.validators.append(
            RegexValidator(MODEL_ID, "Use a model id such as 'openai/gpt-4o-mini'.")
        )


class SamplingFields(StrictSerializer):
    temperature = StrictFloatField(required=False, min_value=0, max_value=2)
    max_tokens = StrictIntegerField(required=False, min_value=1, max_value=200_000)


class TextSerializer(SamplingFields):
    model = ModelField()
    prompt = StrictCharField(max_length=100_000, trim_whitespace=False)
    system_prompt = StrictCharField(max_length=20_000, required=False, trim_whitespace=False)


class MessageSerializer(StrictSerializer):
    role = serializers.ChoiceField(choices=("system", "user", "assistant"))
    content = StrictCharField(max_length=100_000, trim_whitespace=False)


class ChatSerializer(SamplingFields):
    model = ModelField()
    messages = MessageSerializer(many=True, allow_empty=False, max_length=200)  # type: ignore[call-arg]
    stream = StrictBooleanField(required=False, default=False)

    def validate_messages(self, messages: list[dict[str, str]]) -> list[dict[str, str]]:
        if not any(m["role"] == "user" for m in messages):
            raise serializers.ValidationError("Include at least one user message.")
        return messages


class ImageSerializer(StrictSerializer):
    model = ModelField()
    prompt = StrictCharField(max_length=10_000)
    aspect_ratio = serializers.ChoiceField(choices=ASPECT_RATIOS, required=False)
    image_size = serializers.ChoiceField(choices=IMAGE_SIZES, required=False)
    size = StrictCharField(max_length=12, required=False)
    n = StrictIntegerField(required=False, min_value=1, max_value=4)

    def validate_size(self, size: str) -> str:
        if not re.fullmatch(r"\d{3,4}x\d{3,4}|[124]K", size):
            raise serializers.ValidationError("Use WIDTHxHEIGHT (e.g. 1024x1024) or 1K/2K/4K.")
        return size


class VideoSerializer(StrictSerializer):
    model = ModelField()
    prompt = StrictCharField(max_length=10_000)
    duration = StrictIntegerField(required=False, min_value=1, max_value=120)
    resolution = serializers.ChoiceField(choices=VIDEO_RESOLUTIONS, required=False)
    aspect_ratio = serializers.ChoiceField(choices=ASPECT_RATIOS, required=False)
    generate_audio = StrictBooleanField(required=False)
    seed = StrictIntegerField(required=False, min_value=0, max_value=2**31 - 1)


class VideoFromImageSerializer(VideoSerializer):
    image_url = StrictCharField(max_length=15_000_000, required=False)


def model_json(model: ModelInfo) -> dict[str, Any]:
    return {
        "id": model.id,
        "name": model.name,
        "kind": model.kind,
        "context_length": model.context_length,
        "pricing": model.pricing,
        "input_modalities": list(model.input_modalities),
        "output_modalities": list(model.output_modalities),
    }


def media_url(generation_id: object, index: int) -> str:
    return f"/api/generations/{generation_id}/media/{index}"


def generation_json(generation: Generation) -> dict[str, Any]:
    return {
        "id": str(generation.id),
        "kind": generation.kind,
        "model": generation.model,
        "prompt": generation.prompt,
        "params": generation.params,
        "status": generation.status,
        "text": generation.output_text,
        "media": [
            {"url": media_url(generation.id, index), "type": media.type}
            for index, media in enumerate(generation.media)
        ],
        "error": (
            {"code": generation.error_code, "message": generation.error_message}
            if generation.error_code
            else None
        ),
        "usage": {
            "prompt_tokens": generation.tokens_in,
            "completion_tokens": generation.tokens_out,
            "cost": generation.cost,
        },
        "created_at": iso(generation.created_at),
        "finished_at": iso(generation.finished_at),
    }


def video_job_json(job: VideoJob) -> dict[str, Any]:
    return {
        "id": str(job.id),
        "status": job.status,
        "model": job.model,
        "polling_url": job.polling_url,
        "error": job.error,
        "cost": job.cost,
        "video_url": f"/api/generate/video/{job.id}/content" if job.video_file else None,
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
        "completed_at": iso(job.completed_at),
    }


# -- fast path --------------------------------------------------------------------------
# DRF builds and deep-copies every field of a serializer per request (~0.3 ms for the chat
# body). Text and chat are the hot paths, so a plainly valid body is accepted by these
# checks, which are never looser than the serializers above; anything unusual returns
# None and the serializer validates it and words the errors.

_MODEL_ID = re.compile(MODEL_ID)
_TEXT_KEYS = frozenset({"model", "prompt", "system_prompt", "temperature", "max_tokens"})
_CHAT_KEYS = frozenset({"model", "messages", "temperature", "max_tokens", "stream"})
_ROLES = frozenset({"system", "user", "assistant"})


def _plain_text(value: Any, max_length: int) -> bool:
    """A non-empty str within max_length without NUL or lone surrogates (DRF refuses both)."""
    if not isinstance(value, str) or not value or len(value) > max_length or "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _sampling_ok(data: dict[str, Any]) -> bool:
    temperature = data.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not 0 <= temperature <= 2
    ):
        return False
    max_tokens = data.get("max_tokens")
    return max_tokens is None or (type(max_tokens) is int and 1 <= max_tokens <= 200_000)


def _model_ok(model: Any) -> bool:
    return isinstance(model, str) and model == model.strip() and bool(_MODEL_ID.fullmatch(model))


def fast_text(data: Any) -> dict[str, Any] | None:
    """A TextSerializer-valid body as validated data, or None to let the serializer decide."""
    if not isinstance(data, dict) or not data.keys() <= _TEXT_KEYS or None in data.values():
        return None
    system_prompt = data.get("system_prompt")
    if not (
        _model_ok(data.get("model"))
        and _plain_text(data.get("prompt"), 100_000)
        and (system_prompt is None or _plain_text(system_prompt, 20_000))
        and _sampling_ok(data)
    ):
        return None
    return dict(data)


def fast_chat(data: Any) -> dict[str, Any] | None:
    """A ChatSerializer-valid body as validated data, or None to let the serializer decide."""
    if not isinstance(data, dict) or not data.keys() <= _CHAT_KEYS or None in data.values():
        return None
    messages = data.get("messages")
    if not isinstance(messages, list) or not 1 <= len(messages) <= 200:
        return None
    has_user = False
    for message in messages:
        if not (
            isinstance(message, dict)
            and message.keys() == {"role", "content"}
            and isinstance(message["role"], str)
            and message["role"] in _ROLES
            and _plain_text(message["content"], 100_000)
        ):
            return None
        has_user = has_user or message["role"] == "user"
    stream = data.get("stream", False)
    if not has_user or not isinstance(stream, bool):
        return None
    if not (_model_ok(data.get("model")) and _sampling_ok(data)):
        return None
    return {**data, "messages": [dict(m) for m in messages], "stream": stream}
