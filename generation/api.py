"""JSON API for models, text, chat, images, videos and history (SPEC §2 "AI")."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from uuid import UUID

from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.authentication import request_user
from core.api import ApiView, page_params, paginated, validate
from core.errors import ApiError, ValidationFailed
from core.openapi import PAGE_PARAMETERS, UPSTREAM_ERRORS, errors, optional_choice
from core.params import ascii_whole_number
from core.parsers import JsonBodyParser, MultipartBodyParser
from generation import services
from generation.openapi import (
    ChatAnswerSerializer,
    GenerationPageSerializer,
    GenerationSerializer,
    ImageResultSerializer,
    ModelListSerializer,
    TextAnswerSerializer,
    VideoFromImageUploadSerializer,
    VideoFromImageUrlSerializer,
    VideoJobSerializer,
)
from generation.serializers import (
    ChatSerializer,
    ImageSerializer,
    TextSerializer,
    VideoFromImageSerializer,
    VideoSerializer,
    fast_chat,
    fast_text,
    generation_json,
    model_json,
    video_job_json,
)

KINDS = ("text", "image", "video")
STREAM_CHUNK = 256 * 1024


def _options(data: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: data[name] for name in names if data.get(name) is not None}


class ModelListView(ApiView):
    @extend_schema(
        tags=["ai"],
        summary="OpenRouter's models (cached), optionally of one kind",
        parameters=[optional_choice("kind", KINDS)],
        responses={200: ModelListSerializer, **errors(*UPSTREAM_ERRORS)},
    )
    async def get(self, request: Request) -> Response:
        kind = request.query_params.get("kind") or None
        if kind not in (None, *KINDS):
            raise ValidationFailed(fields={"kind": "Must be text, image or video."})
        models = await services.models_of_kind(kind, request_user(request))
        return Response({"items": [model_json(m) for m in models]})


class TextView(ApiView):
    @extend_schema(
        tags=["ai"],
        summary="Generate text from a prompt",
        request=TextSerializer,
        responses={200: TextAnswerSerializer, **errors(*UPSTREAM_ERRORS)},
    )
    async def post(self, request: Request) -> Response:
        data = fast_text(request.data) or validate(TextSerializer, request.data)
        answer = await services.generate_text(
            request_user(request), data["model"], data["prompt"], data.get("system_prompt"),
            **_options(data, "temperature", "max_tokens"),
        )  # fmt: skip
        return Response(
            {"id": str(answer.generation_id), "text": answer.text, "model": answer.model,
             "usage": answer.usage_json()}
        )  # fmt: skip


class ChatView(ApiView):
    streams_events = True  # `Accept: text/event-stream` suits it (core.negotiation)

    @extend_schema(
        tags=["ai"],
        summary="Multi-turn chat; with stream: true, Server-Sent Events",
        description=(
            "With `stream: true` the answer is `text/event-stream`: `delta` events "
            "`{content}`, then `done` `{id, model, usage}`, or `error` with the error shape."
        ),
        request=ChatSerializer,
        responses={
            (200, "application/json"): ChatAnswerSerializer,
            (200, "text/event-stream"): OpenApiTypes.STR,
            **errors(*UPSTREAM_ERRORS),
        },
    )
    async def post(self, request: Request) -> Response | StreamingHttpResponse:
        data = fast_chat(request.data) or validate(ChatSerializer, request.data)
        user = request_user(request)
        options = _options(data, "temperature", "max_tokens")
        if not data["stream"]:
            answer = await services.complete_chat(
                user, data["model"], data["messages"], options=options
            )
            return Response(
                {"id": str(answer.generation_id), "model": answer.model,
                 "message": {"role": "assistant", "content": answer.text},
                 "usage": answer.usage_json()}
            )  # fmt: skip
        events = services.stream_chat(user, data["model"], data["messages"], options=options)
        return await sse_response(events)


def sse_event(name: str, payload: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


async def sse_response(events: AsyncIterator[Any]) -> StreamingHttpResponse:
    """Server-Sent Events: `delta` {content}, then `done` {id, model, usage} or `error`.

    The first piece is awaited before answering, so a failure before any token is an
    ordinary JSON error with its HTTP status; later failures arrive as an `error` event.
    """
    first = await anext(events, None)

    async def stream() -> AsyncIterator[bytes]:
        try:
            item = first
            while item is not None:
                if isinstance(item, services.StreamDone):
                    yield sse_event("done", {
                        "id": str(item.generation_id), "model": item.answer.model,
                        "usage": item.answer.usage_json(),
                    })  # fmt: skip
                else:
                    yield sse_event("delta", {"content": item})
                item = await anext(events, None)
        except ApiError as exc:
            yield sse_event("error", exc.as_dict())
        finally:
            await events.aclose()  # type: ignore[attr-defined]

    response = StreamingHttpResponse(stream(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


class ImageView(ApiView):
    @extend_schema(
        tags=["ai"],
        summary="Generate images (stored by the server)",
        request=ImageSerializer,
        responses={201: ImageResultSerializer, **errors(*UPSTREAM_ERRORS)},
    )
    async def post(self, request: Request) -> Response:
        data = validate(ImageSerializer, request.data)
        generation = await services.generate_image(
            request_user(request), data["model"], data["prompt"],
            options=_options(data, "aspect_ratio", "image_size", "size", "n"),
        )  # fmt: skip
        body = generation_json(generation)
        return Response({**body, "images": body["media"]}, status=201)


VIDEO_OPTIONS = ("duration", "resolution", "aspect_ratio", "generate_audio", "seed")


class VideoView(ApiView):
    @extend_schema(
        tags=["ai"],
        summary="Start a video job",
        request=VideoSerializer,
        responses={202: VideoJobSerializer, **errors(*UPSTREAM_ERRORS)},
    )
    async def post(self, request: Request) -> Response:
        data = validate(VideoSerializer, request.data)
        job = await services.submit_video(
            request_user(request), data["model"], data["prompt"],
            options=_options(data, *VIDEO_OPTIONS),
        )  # fmt: skip
        return Response(video_job_json(job), status=202)


class VideoFromImageView(ApiView):
    parser_classes = [JsonBodyParser, MultipartBodyParser]

    @extend_schema(
        tags=["ai"],
        summary="Start a video job from a first-frame image (URL or upload)",
        request={
            "application/json": VideoFromImageUrlSerializer,
            "multipart/form-data": VideoFromImageUploadSerializer,
        },
        responses={202: VideoJobSerializer, **errors(*UPSTREAM_ERRORS)},
    )
    async def post(self, request: Request) -> Response:
        upload = request.FILES.get("image") if hasattr(request, "FILES") else None
        fields = request.data
        if isinstance(fields, Mapping):  # anything else is refused by validate() below
            fields = {k: v for k, v in fields.items() if k != "image"}
        if upload is not None:
            fields = _coerce_form(fields)
        data = validate(VideoFromImageSerializer, fields)
        frame = await _first_frame(upload, data.get("image_url"))
        job = await services.submit_video(
            request_user(request), data["model"], data["prompt"],
            options=_options(data, *VIDEO_OPTIONS), first_frame=frame,
        )  # fmt: skip
        return Response(video_job_json(job), status=202)


def _coerce_form(fields: dict[str, Any]) -> dict[str, Any]:
    """Multipart fields are strings: turn the numeric and boolean ones into JSON types."""
    coerced: dict[str, Any] = {}
    for name, value in fields.items():
        number = ascii_whole_number(value) if isinstance(value, str) else None
        if name in ("duration", "seed") and number is not None:
            coerced[name] = number
        elif name == "generate_audio" and value in ("true", "false"):
            coerced[name] = value == "true"
        elif isinstance(value, str) and value == "" and name not in ("model", "prompt"):
            continue
        else:
            coerced[name] = value
    return coerced


async def _first_frame(upload: Any, image_url: str | None) -> str:
    limit = int(settings.MAX_FRAME_IMAGE_BYTES)
    if upload is not None and image_url:
        raise ValidationFailed(fields={"image": "Send an upload or an image_url, not both."})
    if upload is not None:
        if upload.size > limit:
            raise ValidationFailed(fields={"image": f"The image is over {limit // 1_000_000} MB."})
        data = await asyncio.to_thread(upload.read)
        return services.frame_image_from_upload(data)
    if image_url:
        return services.check_frame_image_url(image_url, limit)
    raise ValidationFailed(fields={"image": "Upload an image or give an image_url."})


class VideoJobView(ApiView):
    @extend_schema(
        tags=["ai"],
        summary="A video job's status (polls OpenRouter at most every 5 s)",
        responses={200: VideoJobSerializer},
    )
    async def get(self, request: Request, job_id: UUID) -> Response:
        job = await services.video_job(request_user(request), job_id)
        return Response(video_job_json(job))


class VideoStatusView(ApiView):
    """Compatibility with the original API: answers only for the caller's own jobs."""

    @extend_schema(
        tags=["ai"],
        summary="A job's status by its polling URL (own jobs only; kept for compatibility)",
        parameters=[OpenApiParameter("polling_url", str, required=True)],
        responses={200: VideoJobSerializer, **errors(404)},
    )
    async def get(self, request: Request) -> Response:
        polling_url = request.query_params.get("polling_url", "")
        if not polling_url or len(polling_url) > 2000:
            raise ValidationFailed(
                fields={"polling_url": "Give the polling_url of one of your jobs."}
            )
        job = await services.video_job_by_polling_url(request_user(request), polling_url)
        return Response(video_job_json(job))


class VideoContentView(ApiView):
    @extend_schema(
        tags=["ai"],
        summary="The finished video, stored by the server",
        responses={(200, "video/*"): OpenApiTypes.BINARY},
    )
    async def get(self, request: Request, job_id: UUID) -> StreamingHttpResponse:
        path, media_type = await services.video_file(request_user(request), job_id)
        return file_response(path, media_type)


class GenerationListView(ApiView):
    @extend_schema(
        tags=["history"],
        summary="Own generation history, newest first",
        parameters=[
            optional_choice("kind", ("text", "chat", "image", "video")),
            *PAGE_PARAMETERS,
        ],
        responses={200: GenerationPageSerializer},
    )
    async def get(self, request: Request) -> Response:
        page, page_size = page_params(request)
        kind = request.query_params.get("kind") or None
        if kind not in (None, "text", "chat", "image", "video"):
            raise ValidationFailed(fields={"kind": "Must be text, chat, image or video."})
        items, total = await services.list_history(
            request_user(request), kind=kind, page=page, page_size=page_size
        )
        return Response(
            paginated(
                [generation_json(g) for g in items], total=total, page=page, page_size=page_size
            )
        )


class GenerationDetailView(ApiView):
    @extend_schema(
        tags=["history"],
        summary="One own generation",
        operation_id="generation_retrieve",
        responses={200: GenerationSerializer},
    )
    async def get(self, request: Request, generation_id: UUID) -> Response:
        generation = await services.get_history_item(request_user(request), generation_id)
        return Response(generation_json(generation))


class MediaView(ApiView):
    @extend_schema(
        tags=["history"],
        summary="A stored image or video of an own generation",
        responses={(200, "image/*"): OpenApiTypes.BINARY, (200, "video/*"): OpenApiTypes.BINARY},
    )
    async def get(self, request: Request, generation_id: UUID, index: int) -> StreamingHttpResponse:
        path, media_type = await services.media_file(request_user(request), generation_id, index)
        return file_response(path, media_type)


def file_response(path: str, media_type: str) -> StreamingHttpResponse:
    """Stream a stored file without holding a thread or the whole file in memory."""

    async def chunks() -> AsyncIterator[bytes]:
        handle = await asyncio.to_thread(open, path, "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, STREAM_CHUNK):
                yield chunk
        finally:
            handle.close()

    response = StreamingHttpResponse(chunks(), content_type=media_type)
    response["Content-Length"] = str(Path(path).stat().st_size)
    response["Cache-Control"] = "private, max-age=3600"
    response["Content-Disposition"] = "inline"
    return response
