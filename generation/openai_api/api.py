"""The OpenAI-compatible API under /v1/ (SPEC §2 "OpenAI-compatible API"): the official SDKs
and the tools built on them work against the gateway with `base_url=<site>/v1` and a
personal API key. Authentication, rate limits and revocation are the native API's (the
same DRF classes); only the error shape is OpenAI's (generation.openai_api.errors)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any
from uuid import UUID

from django.http import StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.authentication import request_user
from core.api import ApiView, validate
from core.serializers import render
from generation.openai_api import services
from generation.openai_api.errors import openai_exception_handler
from generation.openai_api.serializers import (
    ChatCompletionRequestSerializer,
    ChatCompletionSerializer,
    EmbeddingListSerializer,
    EmbeddingRequestSerializer,
    ImageGenerationRequestSerializer,
    ImagesResponseSerializer,
    ModelListObjectSerializer,
    ModelObjectSerializer,
    OpenAIErrorSerializer,
)
from generation.openrouter import ModelInfo

TAG = "openai"
ERROR_DESCRIPTIONS = {
    400: "Invalid request (`invalid_request_error`): unknown or malformed fields; `param` "
    "names the field.",
    401: "No, invalid, expired or revoked key (`authentication_error`).",
    403: "Not allowed (`permission_error`): `model_not_allowed` when the key owner's limits "
    "exclude the model (nothing is sent upstream).",
    404: "No such model (`model_not_found`) or path.",
    413: "The body is too large.",
    415: "Send the body as JSON.",
    429: "Rate limited (`rate_limit_error`): wait `Retry-After` seconds; or `budget_exceeded`: "
    "the call's worst-case cost does not fit the owner's remaining budget (`x-should-retry: "
    "false`, `Retry-After` until the period resets).",
    500: "The gateway failed (`api_error`); never retry a generation blindly.",
    502: "OpenRouter failed (`api_error`); `x-should-retry: false` on generations.",
    503: "Not configured or busy (`api_error`), or `limits_unavailable`.",
    504: "OpenRouter timed out (`api_error`).",
}


def openai_errors(*statuses: int) -> dict[int, OpenApiResponse]:
    return {
        status: OpenApiResponse(OpenAIErrorSerializer, description=ERROR_DESCRIPTIONS[status])
        for status in statuses
    }


UPSTREAM = (403, 429, 502, 503, 504)


class OpenAIView(ApiView):
    """A /v1/ view: the native authentication, permissions and throttles, OpenAI's errors."""

    error_serializer = OpenAIErrorSerializer  # read by core.openapi.GatewaySchema
    error_descriptions = ERROR_DESCRIPTIONS

    def get_exception_handler(self) -> Callable[..., Any]:
        return openai_exception_handler


def model_object(model: ModelInfo) -> dict[str, Any]:
    return render(
        ModelObjectSerializer,
        {
            "id": model.id,
            "created": model.created or 0,
            "owned_by": model.id.partition("/")[0] if "/" in model.id else "openrouter",
            "name": model.name,
            "context_length": model.context_length,
            "input_modalities": list(model.input_modalities),
            "output_modalities": list(model.output_modalities),
        },
    )


class ModelListView(OpenAIView):
    @extend_schema(
        tags=[TAG],
        operation_id="v1_models_list",
        summary="The models you may use through /v1/ (text, image and embedding models)",
        responses={200: ModelListObjectSerializer, **openai_errors(*UPSTREAM)},
    )
    async def get(self, request: Request) -> Response:
        models = await services.usable_models(request_user(request))
        return Response({"object": "list", "data": [model_object(m) for m in models]})


class ModelDetailView(OpenAIView):
    @extend_schema(
        tags=[TAG],
        operation_id="v1_models_retrieve",
        summary="One model; its id contains a slash (`/v1/models/openai/gpt-4o-mini`)",
        parameters=[OpenApiParameter("model_id", str, OpenApiParameter.PATH)],
        responses={200: ModelObjectSerializer, **openai_errors(404, *UPSTREAM)},
    )
    async def get(self, request: Request, model_id: str) -> Response:
        model = await services.usable_model(request_user(request), model_id)
        return Response(model_object(model))


class ChatCompletionsView(OpenAIView):
    streams_events = True  # `Accept: text/event-stream` suits it (core.negotiation)

    @extend_schema(
        tags=[TAG],
        operation_id="v1_chat_completions_create",
        summary="Chat completion in OpenAI's format; with stream: true, chunks as SSE",
        description=(
            "Only the fields below are accepted (anything else is a 400). With `stream: "
            "true` the answer is `text/event-stream`: `data: {chat.completion.chunk}` "
            "events as they arrive, OpenRouter's `: keep-alive` comments, the usage chunk "
            "only with `stream_options.include_usage`, then `data: [DONE]`; a failure "
            "mid-stream is a last chunk with an `error` object and no [DONE]."
        ),
        request=ChatCompletionRequestSerializer,
        responses={
            (200, "application/json"): ChatCompletionSerializer,
            (200, "text/event-stream"): OpenApiTypes.STR,
            **openai_errors(404, *UPSTREAM),
        },
    )
    async def post(self, request: Request) -> Response | StreamingHttpResponse:
        data = validate(ChatCompletionRequestSerializer, request.data)
        user = request_user(request)
        if not data.get("stream"):
            return Response(await services.chat_completion(user, data))
        return await event_stream(services.chat_completion_chunks(user, data))


async def event_stream(chunks: AsyncGenerator[bytes, None]) -> StreamingHttpResponse:
    """Server-sent events from `chunks`, whose first item is awaited before answering: a
    failure before it is an ordinary error answer with its HTTP status."""
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        first = services.DONE

    async def stream() -> AsyncGenerator[bytes, None]:
        try:
            yield first
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()

    response = StreamingHttpResponse(stream(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


class EmbeddingsView(OpenAIView):
    @extend_schema(
        tags=[TAG],
        operation_id="v1_embeddings_create",
        summary="Embeddings (encoding_format float or base64)",
        request=EmbeddingRequestSerializer,
        responses={200: EmbeddingListSerializer, **openai_errors(404, *UPSTREAM)},
    )
    async def post(self, request: Request) -> Response:
        data = validate(EmbeddingRequestSerializer, request.data)
        answer = await services.create_embeddings(request_user(request), data)
        return Response(render(EmbeddingListSerializer, answer))


class ImageGenerationsView(OpenAIView):
    @extend_schema(
        tags=[TAG],
        operation_id="v1_images_generations_create",
        summary="Generate images (also stored in your history)",
        request=ImageGenerationRequestSerializer,
        responses={200: ImagesResponseSerializer, **openai_errors(404, *UPSTREAM)},
    )
    async def post(self, request: Request) -> Response:
        data = validate(ImageGenerationRequestSerializer, request.data)

        def media_url(generation_id: UUID, index: int) -> str:
            path = reverse("api-media", args=[generation_id, index])
            return request.build_absolute_uri(path)

        answer = await services.generate_images(request_user(request), data, media_url=media_url)
        return Response(render(ImagesResponseSerializer, answer))
