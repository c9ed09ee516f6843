"""The generation API's shapes: each serializer validates or renders its shape and is what
the OpenAPI schema shows for it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.validators import RegexValidator
from rest_framework import serializers

from core.serializers import (
    ConstantField,
    PageQuerySerializer,
    StrictBooleanField,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
    StrictSerializer,
    filter_choice,
)
from generation.openrouter import ModelInfo
from generation.presets import DEFAULT_LENGTH, LENGTHS
from generation.repository import Generation, VideoJob
from generation.services import StreamDone, TextAnswer

ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9", "9:21")
IMAGE_SIZES = ("0.5K", "1K", "2K", "4K")
VIDEO_RESOLUTIONS = ("480p", "720p", "768p", "1080p", "1K", "2K", "4K")
MODEL_ID = r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$"
MODEL_KINDS = ("text", "image", "video")
GENERATION_KINDS = ("text", "chat", "image", "video", "summarize", "shorten")
VIDEO_STATES = ("pending", "in_progress", "completed", "failed", "cancelled", "expired")

# -- requests ------------------------------------------------------------------------------


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


class PresetSerializer(StrictSerializer):
    """POST /api/generate/summarize and /api/generate/shorten."""

    model = ModelField()
    text = StrictCharField(max_length=100_000, trim_whitespace=False)
    length = serializers.ChoiceField(choices=LENGTHS, required=False, default=DEFAULT_LENGTH)


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


class VideoFromImageUrlSerializer(VideoSerializer):
    """As JSON: the first frame by URL (https or a data: URL)."""

    image_url = StrictCharField(max_length=15_000_000)

    class Meta:
        ref_name = "VideoFromImageUrl"


class VideoFromImageUploadSerializer(VideoSerializer):
    """As multipart/form-data: the first frame as an uploaded file."""

    image = serializers.FileField(help_text="The first frame (PNG, JPEG, WebP).")

    class Meta:
        ref_name = "VideoFromImageUpload"


class ModelQuerySerializer(serializers.Serializer[Any]):
    kind = filter_choice(MODEL_KINDS)


class HistoryQuerySerializer(PageQuerySerializer):
    kind = filter_choice(GENERATION_KINDS)


class PollingUrlQuerySerializer(serializers.Serializer[Any]):
    polling_url = serializers.CharField(
        max_length=2000, help_text="The polling_url of one of your own video jobs."
    )


# -- responses -----------------------------------------------------------------------------


class ModelSerializer(serializers.Serializer[ModelInfo]):
    id = serializers.CharField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=MODEL_KINDS)
    context_length = serializers.IntegerField(allow_null=True)
    pricing = serializers.DictField(
        child=serializers.CharField(), help_text="USD per unit, as OpenRouter lists it."
    )
    input_modalities = serializers.ListField(child=serializers.CharField())
    output_modalities = serializers.ListField(child=serializers.CharField())

    class Meta:
        ref_name = "Model"


class ModelListSerializer(serializers.Serializer[Mapping[str, Any]]):
    items = ModelSerializer(many=True)


class AnswerUsageSerializer(serializers.Serializer[TextAnswer]):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.SerializerMethodField()
    cost = serializers.FloatField(allow_null=True, help_text="USD, as OpenRouter reported it.")

    def get_total_tokens(self, answer: Any) -> int:
        return int(answer.prompt_tokens + answer.completion_tokens)


class TextAnswerSerializer(serializers.Serializer[TextAnswer]):
    id = serializers.UUIDField(
        source="generation_id", help_text="The generation's id in the history."
    )
    text = serializers.CharField(allow_blank=True)
    model = serializers.CharField()
    usage = AnswerUsageSerializer(source="*")


class AssistantMessageSerializer(serializers.Serializer[TextAnswer]):
    role = ConstantField("assistant")
    content = serializers.CharField(source="text", allow_blank=True)


class ChatAnswerSerializer(serializers.Serializer[TextAnswer]):
    id = serializers.UUIDField(source="generation_id")
    model = serializers.CharField()
    message = AssistantMessageSerializer(source="*")
    usage = AnswerUsageSerializer(source="*")


class ChatDoneSerializer(serializers.Serializer[StreamDone]):
    """The `done` event of a chat stream: renders a generation.services.StreamDone."""

    id = serializers.UUIDField(source="generation_id")
    model = serializers.CharField(source="answer.model")
    usage = AnswerUsageSerializer(source="answer")


@dataclass(frozen=True, slots=True)
class MediaLink:
    url: str
    type: str


class MediaSerializer(serializers.Serializer[MediaLink]):
    url = serializers.CharField(help_text="Our authenticated URL of the stored file.")
    type = serializers.CharField(help_text="MIME type.")


def media_url(generation_id: object, index: int) -> str:
    return f"/api/generations/{generation_id}/media/{index}"


class StoredMediaField(serializers.ListField):
    """A generation's stored files, as links to our own authenticated URLs."""

    child = MediaSerializer()

    def get_attribute(self, generation: Generation) -> list[MediaLink]:
        return [
            MediaLink(media_url(generation.id, index), media.type)
            for index, media in enumerate(generation.media)
        ]


class GenerationErrorSerializer(serializers.Serializer[Generation]):
    """A failed generation's error; null when it did not fail."""

    code = serializers.CharField(source="error_code")
    message = serializers.CharField(source="error_message", allow_null=True)

    def get_attribute(self, generation: Generation) -> Generation | None:
        return generation if generation.error_code else None


class GenerationUsageSerializer(serializers.Serializer[Generation]):
    prompt_tokens = serializers.IntegerField(source="tokens_in", allow_null=True)
    completion_tokens = serializers.IntegerField(source="tokens_out", allow_null=True)
    cost = serializers.FloatField(allow_null=True)


class GenerationSerializer(serializers.Serializer[Generation]):
    id = serializers.UUIDField()
    kind = serializers.ChoiceField(choices=GENERATION_KINDS)
    model = serializers.CharField()
    prompt = serializers.CharField(allow_blank=True)
    params = serializers.DictField()
    status = serializers.CharField()
    text = serializers.CharField(source="output_text", allow_null=True, allow_blank=True)
    media = StoredMediaField()
    error = GenerationErrorSerializer(source="*", allow_null=True)
    usage = GenerationUsageSerializer(source="*")
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "Generation"


class ImageResultSerializer(GenerationSerializer):
    images = StoredMediaField(help_text="The same as media.")

    class Meta:
        ref_name = "ImageResult"


class VideoJobSerializer(serializers.Serializer[VideoJob]):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=VIDEO_STATES)
    model = serializers.CharField()
    polling_url = serializers.CharField()
    error = serializers.CharField(allow_null=True)
    cost = serializers.FloatField(allow_null=True)
    video_url = serializers.SerializerMethodField(
        help_text="Our URL of the stored video, once it is downloaded."
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "VideoJob"

    def get_video_url(self, job: VideoJob) -> str | None:
        return f"/api/generate/video/{job.id}/content" if job.video_file else None
