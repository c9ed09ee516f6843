"""Response shapes of the generation API for the OpenAPI schema (the views render them with
model_json, generation_json and video_job_json; a schemathesis run checks they agree)."""

from __future__ import annotations

from rest_framework import serializers

from core.api import StrictCharField
from generation.serializers import VideoFromImageSerializer, VideoSerializer

KINDS = ("text", "image", "video")
GENERATION_KINDS = ("text", "chat", "image", "video")


class ModelSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=KINDS)
    context_length = serializers.IntegerField(allow_null=True)
    pricing = serializers.DictField(
        child=serializers.CharField(), help_text="USD per unit, as OpenRouter lists it."
    )
    input_modalities = serializers.ListField(child=serializers.CharField())
    output_modalities = serializers.ListField(child=serializers.CharField())

    class Meta:
        ref_name = "Model"


class ModelListSerializer(serializers.Serializer):
    items = ModelSerializer(many=True)


class AnswerUsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    cost = serializers.FloatField(allow_null=True, help_text="USD, as OpenRouter reported it.")


class TextAnswerSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="The generation's id in the history.")
    text = serializers.CharField(allow_blank=True)
    model = serializers.CharField()
    usage = AnswerUsageSerializer()


class AssistantMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=("assistant",))
    content = serializers.CharField(allow_blank=True)


class ChatAnswerSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    model = serializers.CharField()
    message = AssistantMessageSerializer()
    usage = AnswerUsageSerializer()


class MediaSerializer(serializers.Serializer):
    url = serializers.CharField(help_text="Our authenticated URL of the stored file.")
    type = serializers.CharField(help_text="MIME type.")


class GenerationErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField(allow_null=True)


class GenerationUsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField(allow_null=True)
    completion_tokens = serializers.IntegerField(allow_null=True)
    cost = serializers.FloatField(allow_null=True)


class GenerationSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    kind = serializers.ChoiceField(choices=GENERATION_KINDS)
    model = serializers.CharField()
    prompt = serializers.CharField(allow_blank=True)
    params = serializers.DictField()
    status = serializers.CharField()
    text = serializers.CharField(allow_null=True, allow_blank=True)
    media = MediaSerializer(many=True)
    error = GenerationErrorSerializer(allow_null=True)
    usage = GenerationUsageSerializer()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "Generation"


class ImageResultSerializer(GenerationSerializer):
    images = MediaSerializer(many=True, help_text="The same as media.")

    class Meta:
        ref_name = "ImageResult"


class GenerationPageSerializer(serializers.Serializer):
    items = GenerationSerializer(many=True)
    total = serializers.IntegerField()
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()


class VideoJobSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(
        choices=("pending", "in_progress", "completed", "failed", "cancelled", "expired")
    )
    model = serializers.CharField()
    polling_url = serializers.CharField()
    error = serializers.CharField(allow_null=True)
    cost = serializers.FloatField(allow_null=True)
    video_url = serializers.CharField(
        allow_null=True, help_text="Our URL of the stored video, once it is downloaded."
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "VideoJob"


class VideoFromImageUrlSerializer(VideoFromImageSerializer):
    """As JSON: the first frame by URL (https or a data: URL)."""

    image_url = StrictCharField(max_length=15_000_000)

    class Meta:
        ref_name = "VideoFromImageUrl"


class VideoFromImageUploadSerializer(VideoSerializer):
    """As multipart/form-data: the first frame as an uploaded file."""

    image = serializers.FileField(help_text="The first frame (PNG, JPEG, WebP).")

    class Meta:
        ref_name = "VideoFromImageUpload"
