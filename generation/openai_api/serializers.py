"""The shapes of the OpenAI-compatible API (`/v1/`), one serializer each: requests are
validated by them (an explicit allow-list: unknown fields are refused, never forwarded),
responses the gateway builds are rendered by them, and the OpenAPI schema reads both.

Chat completions are OpenRouter's answer passed through (decision 33): their serializers
declare the fields every answer has; the extra fields OpenRouter adds (`provider`,
`reasoning`, `annotations`, `images`, …) pass through (response objects allow more
properties than they list).
"""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty

from core.serializers import (
    StrictBooleanField,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
    StrictSerializer,
)
from generation.serializers import ModelField

MAX_MESSAGES = 1000
MAX_TEXT = 1_000_000  # the body limit (MAX_JSON_BODY_BYTES) is the real bound
MAX_TOOLS = 128
MAX_FALLBACKS = 5
MAX_EMBEDDING_INPUTS = 2048
ROLES = ("system", "developer", "user", "assistant", "tool")
REASONING_EFFORTS = ("minimal", "low", "medium", "high")
_SIZE = re.compile(r"(\d{3,4})x(\d{3,4})")

_TEXT_PART = {
    "type": "object",
    "properties": {"type": {"enum": ["text"]}, "text": {"type": "string"}},
    "required": ["type", "text"],
    "additionalProperties": False,
}
_IMAGE_PART = {
    "type": "object",
    "properties": {
        "type": {"enum": ["image_url"]},
        "image_url": {
            "type": "object",
            "properties": {
                "url": {"type": "string", "description": "https://… or a data: URL."},
                "detail": {"enum": ["auto", "low", "high", "original"]},
            },
            "required": ["url"],
            "additionalProperties": False,
        },
    },
    "required": ["type", "image_url"],
    "additionalProperties": False,
}


class LeanSerializer(StrictSerializer):
    """A StrictSerializer that visits only the fields a body has (plus required ones and
    those with defaults). DRF visits every declared field and raises and catches SkipField
    for each absent optional one: 27 of them for a plain chat request, which was most of
    its validation time. The result is the same, errors included.

    Safe on a shared instance: validation is synchronous, on the one event-loop thread."""

    _present: Any = None

    def to_internal_value(self, data: Any) -> Any:
        outer, self._present = self._present, data.keys() if isinstance(data, dict) else None
        try:
            return super().to_internal_value(data)
        finally:
            self._present = outer

    @property
    def _writable_fields(self) -> Any:
        present = self._present
        for field in self.fields.values():
            if field.read_only:
                continue
            absent = present is not None and field.field_name not in present
            if not absent or field.required or field.default is not empty:
                yield field


def _strict_list(
    child: serializers.Field[Any, Any, Any, Any], **kwargs: Any
) -> serializers.ListField:
    return serializers.ListField(child=child, **kwargs)


# -- requests: messages ---------------------------------------------------------------------


class ImageUrlSerializer(LeanSerializer):
    url = StrictCharField(max_length=20_000_000, help_text="https://… or a data: URL.")
    detail = serializers.ChoiceField(choices=("auto", "low", "high", "original"), required=False)


class ContentPartSerializer(LeanSerializer):
    """One part of a message's content: text, or an image by URL."""

    type = serializers.ChoiceField(choices=("text", "image_url"))
    text = StrictCharField(
        max_length=MAX_TEXT, required=False, allow_blank=True, trim_whitespace=False
    )
    image_url = ImageUrlSerializer(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        wanted = "text" if attrs["type"] == "text" else "image_url"
        if wanted not in attrs or set(attrs) != {"type", wanted}:
            raise serializers.ValidationError(f"A {attrs['type']} part has `{wanted}` only.")
        return attrs


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string"},
            {"type": "array", "minItems": 1, "items": {"oneOf": [_TEXT_PART, _IMAGE_PART]}},
        ],
        "description": "Text, or a list of text and image_url parts.",
    }
)
class MessageContentField(serializers.Field[Any, Any, Any, Any]):
    """A string, a list of content parts, or null (an assistant turn that called tools)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_null=True, required=False, **kwargs)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str):
            if len(data) > MAX_TEXT:
                raise serializers.ValidationError("The text is too long.")
            return data
        if isinstance(data, list) and data:
            return _PARTS.run_validation(data)
        raise serializers.ValidationError("Use a string or a non-empty list of content parts.")

    def to_representation(self, value: Any) -> Any:
        return value


_PARTS = ContentPartSerializer(many=True)


class FunctionCallSerializer(LeanSerializer):
    name = StrictCharField(max_length=256)
    arguments = StrictCharField(max_length=MAX_TEXT, allow_blank=True, trim_whitespace=False)


class ToolCallSerializer(LeanSerializer):
    id = StrictCharField(max_length=256)
    type = serializers.ChoiceField(choices=("function",))
    function = FunctionCallSerializer()


class MessageSerializer(LeanSerializer):
    role = serializers.ChoiceField(choices=ROLES)
    content = MessageContentField()
    name = StrictCharField(max_length=256, required=False)
    tool_calls = ToolCallSerializer(many=True, required=False, max_length=MAX_TOOLS)  # type: ignore[call-arg]
    tool_call_id = StrictCharField(max_length=256, required=False)

    class Meta:
        ref_name = "OpenAIMessage"

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        role = attrs["role"]
        if attrs.get("content") is None and not (role == "assistant" and attrs.get("tool_calls")):
            raise serializers.ValidationError({"content": "This message needs content."})
        if role == "tool" and not attrs.get("tool_call_id"):
            raise serializers.ValidationError({"tool_call_id": "A tool message answers a call."})
        if "tool_calls" in attrs and role != "assistant":
            raise serializers.ValidationError({"tool_calls": "Only assistant messages call tools."})
        return attrs


# -- requests: tools, formats, routing -------------------------------------------------------


class FunctionSerializer(LeanSerializer):
    name = StrictCharField(max_length=64)
    description = StrictCharField(max_length=MAX_TEXT, required=False, allow_blank=True)
    parameters = serializers.DictField(required=False, help_text="A JSON Schema object.")
    strict = StrictBooleanField(required=False, allow_null=True)


class ToolSerializer(LeanSerializer):
    type = serializers.ChoiceField(choices=("function",))
    function = FunctionSerializer()


class NamedFunctionSerializer(LeanSerializer):
    name = StrictCharField(max_length=64)


class NamedToolChoiceSerializer(LeanSerializer):
    type = serializers.ChoiceField(choices=("function",))
    function = NamedFunctionSerializer()


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "enum": ["none", "auto", "required"]},
            {
                "type": "object",
                "properties": {
                    "type": {"enum": ["function"]},
                    "function": {
                        "type": "object",
                        "properties": {"name": {"type": "string", "maxLength": 64}},
                        "required": ["name"],
                        "additionalProperties": False,
                    },
                },
                "required": ["type", "function"],
                "additionalProperties": False,
            },
        ]
    }
)
class ToolChoiceField(serializers.Field[Any, Any, Any, Any]):
    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str):
            if data not in ("none", "auto", "required"):
                raise serializers.ValidationError("Use none, auto, required or a named tool.")
            return data
        return _NAMED_TOOL.run_validation(data)

    def to_representation(self, value: Any) -> Any:
        return value


_NAMED_TOOL = NamedToolChoiceSerializer()


class JsonSchemaFormatSerializer(LeanSerializer):
    name = StrictCharField(max_length=64)
    description = StrictCharField(max_length=MAX_TEXT, required=False, allow_blank=True)
    schema = serializers.DictField(required=False)
    strict = StrictBooleanField(required=False, allow_null=True)


class ResponseFormatSerializer(LeanSerializer):
    type = serializers.ChoiceField(choices=("text", "json_object", "json_schema"))
    json_schema = JsonSchemaFormatSerializer(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if (attrs["type"] == "json_schema") != ("json_schema" in attrs):
            raise serializers.ValidationError("`json_schema` goes with type json_schema only.")
        return attrs


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string"},
            {"type": "array", "items": {"type": "string"}, "maxItems": 4},
        ]
    }
)
class StopField(serializers.Field[Any, Any, Any, Any]):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_null=True, required=False, **kwargs)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str) and 0 < len(data) <= 1000:
            return data
        if (
            isinstance(data, list)
            and len(data) <= 4
            and all(isinstance(s, str) and 0 < len(s) <= 1000 for s in data)
        ):
            return data
        raise serializers.ValidationError("Use a string or up to 4 strings.")

    def to_representation(self, value: Any) -> Any:
        return value


class StreamOptionsSerializer(LeanSerializer):
    include_usage = StrictBooleanField(required=False)


class ReasoningSerializer(LeanSerializer):
    """OpenRouter's reasoning settings."""

    effort = serializers.ChoiceField(choices=REASONING_EFFORTS, required=False)
    max_tokens = StrictIntegerField(required=False, min_value=1, max_value=1_000_000)
    exclude = StrictBooleanField(required=False)
    enabled = StrictBooleanField(required=False)


class ProviderSerializer(LeanSerializer):
    """OpenRouter's provider routing preferences, passed on as given."""

    order = _strict_list(StrictCharField(max_length=100), required=False, max_length=50)
    only = _strict_list(StrictCharField(max_length=100), required=False, max_length=50)
    ignore = _strict_list(StrictCharField(max_length=100), required=False, max_length=50)
    quantizations = _strict_list(StrictCharField(max_length=20), required=False, max_length=20)
    allow_fallbacks = StrictBooleanField(required=False)
    require_parameters = StrictBooleanField(required=False)
    zdr = StrictBooleanField(required=False)
    data_collection = serializers.ChoiceField(choices=("allow", "deny"), required=False)
    sort = serializers.ChoiceField(choices=("price", "throughput", "latency"), required=False)
    max_price = serializers.DictField(child=StrictFloatField(min_value=0), required=False)
    preferred_max_latency = StrictFloatField(required=False, min_value=0)
    preferred_min_throughput = StrictFloatField(required=False, min_value=0)

    class Meta:
        ref_name = "ProviderPreferences"


class ChatCompletionRequestSerializer(LeanSerializer):
    """POST /v1/chat/completions: OpenAI's request, these fields only."""

    model = ModelField()
    messages = MessageSerializer(many=True, allow_empty=False, max_length=MAX_MESSAGES)  # type: ignore[call-arg]
    temperature = StrictFloatField(required=False, allow_null=True, min_value=0, max_value=2)
    top_p = StrictFloatField(required=False, allow_null=True, min_value=0, max_value=1)
    max_tokens = StrictIntegerField(required=False, allow_null=True, min_value=1)
    max_completion_tokens = StrictIntegerField(required=False, allow_null=True, min_value=1)
    stop = StopField()
    seed = StrictIntegerField(required=False, allow_null=True)
    n = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=16)
    tools = ToolSerializer(many=True, required=False, max_length=MAX_TOOLS)  # type: ignore[call-arg]
    tool_choice = ToolChoiceField(required=False)
    parallel_tool_calls = StrictBooleanField(required=False)
    response_format = ResponseFormatSerializer(required=False)
    reasoning = ReasoningSerializer(required=False)
    reasoning_effort = serializers.ChoiceField(choices=REASONING_EFFORTS, required=False)
    stream = StrictBooleanField(required=False, allow_null=True)
    stream_options = StreamOptionsSerializer(required=False, allow_null=True)
    models = _strict_list(
        ModelField(), required=False, max_length=MAX_FALLBACKS,
        help_text="OpenRouter's fallback models, tried in order if `model` fails.",
    )  # fmt: skip
    provider = ProviderSerializer(required=False)
    user = StrictCharField(
        max_length=256, required=False,
        help_text="Accepted and ignored: the gateway sends its own pseudonym of you.",
    )  # fmt: skip

    class Meta:
        ref_name = "ChatCompletionRequest"

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("stream_options") and not attrs.get("stream"):
            raise serializers.ValidationError({"stream_options": "Only with stream: true."})
        if "reasoning" in attrs and "reasoning_effort" in attrs:
            raise serializers.ValidationError({"reasoning_effort": "Use reasoning or this."})
        return attrs


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string"},
            {"type": "array", "items": {"type": "string"}},
            {"type": "array", "items": {"type": "integer"}},
            {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
        ],
        "description": "Text, texts, tokens or token lists (at most 2,048 inputs).",
    }
)
class EmbeddingInputField(serializers.Field[Any, Any, Any, Any]):
    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str) and data:
            return data
        if isinstance(data, list) and 0 < len(data) <= MAX_EMBEDDING_INPUTS:
            if all(isinstance(item, str) and item for item in data):
                return data
            if all(_token(item) for item in data):
                return data
            if all(isinstance(item, list) and item and all(map(_token, item)) for item in data):
                return data
        raise serializers.ValidationError(
            "Use a non-empty string, list of strings, list of tokens or list of token lists."
        )

    def to_representation(self, value: Any) -> Any:
        return value


def _token(value: Any) -> bool:
    return type(value) is int and 0 <= value < 2**31


class EmbeddingRequestSerializer(LeanSerializer):
    """POST /v1/embeddings."""

    model = ModelField()
    input = EmbeddingInputField()
    encoding_format = serializers.ChoiceField(choices=("float", "base64"), required=False)
    dimensions = StrictIntegerField(required=False, min_value=1, max_value=100_000)
    user = StrictCharField(
        max_length=256, required=False, help_text="Accepted and ignored, as for chat."
    )

    class Meta:
        ref_name = "EmbeddingRequest"


class ImageGenerationRequestSerializer(LeanSerializer):
    """POST /v1/images/generations."""

    model = ModelField()
    prompt = StrictCharField(max_length=10_000)
    n = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=4)
    size = StrictCharField(
        required=False, allow_null=True, max_length=12,
        help_text="`auto`, `WIDTHxHEIGHT` (e.g. 1024x1024) or 1K/2K/4K.",
    )  # fmt: skip
    response_format = serializers.ChoiceField(
        choices=("b64_json", "url"), required=False, allow_null=True,
        help_text="Default b64_json. A url is the gateway's own, fetched with the same key.",
    )  # fmt: skip
    user = StrictCharField(
        max_length=256, required=False, help_text="Accepted and ignored, as for chat."
    )

    class Meta:
        ref_name = "ImageGenerationRequest"

    def validate_size(self, size: str | None) -> str | None:
        if size in (None, "auto") or re.fullmatch(r"[124]K", size or ""):
            return size
        if not _SIZE.fullmatch(size or ""):
            raise serializers.ValidationError("Use auto, WIDTHxHEIGHT (e.g. 1024x1024) or 1K.")
        return size


# -- responses ---------------------------------------------------------------------------------


class ModelObjectSerializer(serializers.Serializer[Any]):
    # Renders a generation.openrouter.ModelInfo (plus `created` and `owned_by`).
    id = serializers.CharField()
    object = serializers.SerializerMethodField()
    created = serializers.IntegerField(help_text="Unix seconds; 0 when OpenRouter gave none.")
    owned_by = serializers.CharField(help_text="The author part of the id, e.g. `openai`.")
    name = serializers.CharField()
    context_length = serializers.IntegerField(allow_null=True)
    input_modalities = serializers.ListField(child=serializers.CharField())
    output_modalities = serializers.ListField(child=serializers.CharField())

    class Meta:
        ref_name = "OpenAIModel"

    def get_object(self, model: Any) -> str:
        return "model"


class ModelListObjectSerializer(serializers.Serializer[Any]):
    object = serializers.SerializerMethodField()
    # A declared field named like Serializer.data: DRF's metaclass takes it out of the class.
    data = ModelObjectSerializer(many=True)  # type: ignore[assignment]

    class Meta:
        ref_name = "OpenAIModelList"

    def get_object(self, listing: Any) -> str:
        return "list"


class AssistantMessageSerializer(serializers.Serializer[Any]):
    role = serializers.CharField()
    content = serializers.CharField(allow_null=True, allow_blank=True)
    tool_calls = ToolCallSerializer(many=True, required=False)
    refusal = serializers.CharField(allow_null=True, required=False)

    class Meta:
        ref_name = "OpenAIAssistantMessage"


class ChoiceSerializer(serializers.Serializer[Any]):
    index = serializers.IntegerField()
    message = AssistantMessageSerializer()
    finish_reason = serializers.CharField(allow_null=True)

    class Meta:
        ref_name = "ChatCompletionChoice"


class CompletionUsageSerializer(serializers.Serializer[Any]):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    cost = serializers.FloatField(required=False, help_text="USD, as OpenRouter charged it.")

    class Meta:
        ref_name = "CompletionUsage"


class ChatCompletionSerializer(serializers.Serializer[Any]):
    """`chat.completion`: OpenRouter's answer with the gateway's generation id as `id`."""

    id = serializers.CharField(help_text="The generation's id in the gateway's history.")
    object = serializers.ChoiceField(choices=("chat.completion",))
    created = serializers.IntegerField()
    model = serializers.CharField()
    choices = ChoiceSerializer(many=True)
    usage = CompletionUsageSerializer(required=False)

    class Meta:
        ref_name = "ChatCompletion"


class EmbeddingObjectSerializer(serializers.Serializer[Any]):
    object = serializers.ChoiceField(choices=("embedding",))
    index = serializers.IntegerField()
    embedding = serializers.JSONField(
        help_text="Floats, or little-endian float32 in base64 with encoding_format base64."
    )

    class Meta:
        ref_name = "Embedding"


class EmbeddingUsageSerializer(serializers.Serializer[Any]):
    prompt_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    cost = serializers.FloatField(allow_null=True, help_text="USD, as OpenRouter charged it.")


class EmbeddingListSerializer(serializers.Serializer[Any]):
    object = serializers.ChoiceField(choices=("list",))
    data = EmbeddingObjectSerializer(many=True)  # type: ignore[assignment]
    model = serializers.CharField()
    usage = EmbeddingUsageSerializer()

    class Meta:
        ref_name = "EmbeddingList"


class ImageDataSerializer(serializers.Serializer[Any]):
    b64_json = serializers.CharField(required=False, help_text="With response_format b64_json.")
    url = serializers.CharField(
        required=False, help_text="With response_format url: the gateway's, same key."
    )

    class Meta:
        ref_name = "OpenAIImage"


class ImagesResponseSerializer(serializers.Serializer[Any]):
    created = serializers.IntegerField()
    data = ImageDataSerializer(many=True)  # type: ignore[assignment]

    class Meta:
        ref_name = "ImagesResponse"


class OpenAIErrorDetailSerializer(serializers.Serializer[Any]):
    message = serializers.CharField()
    type = serializers.CharField(help_text="invalid_request_error, authentication_error, …")
    param = serializers.CharField(allow_null=True, help_text="The field at fault, if one is.")
    code = serializers.CharField(allow_null=True, help_text="The gateway's stable code.")


class OpenAIErrorSerializer(serializers.Serializer[Any]):
    """Every error of /v1/, in OpenAI's shape."""

    error = OpenAIErrorDetailSerializer()

    class Meta:
        ref_name = "OpenAIError"
