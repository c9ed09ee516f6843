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
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.authentication import request_user
from core.api import ApiView, validate
from core.errors import ApiError, ValidationFailed
from core.openapi import UPSTREAM_ERRORS, errors
from core.params import ascii_whole_number
from core.parsers import JsonBodyParser, MultipartBodyParser
from core.serializers import Page, page_of, render
from generation import services
from generation.serializers import (
    ChatAnswerSerializer,
    ChatDoneSerializer,
    ChatSerializer,
    GenerationSerializer,
    HistoryQuerySerializer,
    ImageResultSerializer,
    ImageSerializer,
    ModelListSerializer,
    ModelQuerySerializer,
    PollingUrlQuerySerializer,
    PresetSerializer,
    TextAnswerSerializer,
    TextSerializer,
    VideoFromImageUploadSerializer,
    VideoFromImageUrlSerializer,
    VideoJobSerializer,
    VideoSerializer,
)

STREAM_CHUNK = 256 * 1024


def _options(data: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: data[name] for name in names if data.get(name) is not None}


class ModelListView(ApiView):
    @extend_schema(
        tags=["ai"],
        summary="OpenRouter's models (cached), optionally of one kind",
        parameters=[ModelQuerySerializer],
        responses={200: ModelListSerializer, **errors(*UPSTREAM_ERRORS)},
    )
    async def get(self, request: Request) -> Response:
        kind = validate(ModelQuerySerializer, request.query_params).get("kind") or None
        models = await services.models_of_kind(kind, request_user(request))
        return Response(render(ModelListSerializer, {"items": models}))


class TextView(ApiView):
    @extend_schema(
        tags=["ai"],
        summary="Generate text from a prompt",
        request=TextSerializer,
        responses={200: TextAnswerSerializer, **errors(*UPSTREAM_ERRORS)},
    )
    async def post(self, request: Request) -> Response:
        data = validate(TextSerializer, request.data)
        answer = await services.generate_text(
            request_user(request), data["model"], data["prompt"], data.get("system_prompt"),
            **_options(data, "temperature", "max_tokens"),
        )  # fmt: skip
        return Response(render(TextAnswerSerializer, answer))


class PresetView(ApiView):
    """A one-click text operation (generation/presets.py); `kind` names the preset."""

    kind = ""

    async def answer(self, request: Request) -> Response:
        data = validate(PresetSerializer, request.data)
        answer = await services.run_preset(
            request_user(request), self.kind, data["model"], data["text"], data["length"]
        )
        return Response(render(TextAnswerSerializer, answer))


PRESET_DESCRIPTION = (
    'A text generation with a fixed system prompt (README "Presets"); `length` is '
    "`short`, `medium` (default) or `long`. Recorded in the history with this kind."
)


class SummarizeView(PresetView):
    kind = "summarize"

    @extend_schema(
        tags=["ai"], summary="Summarize a text", description=PRESET_DESCRIPTION,
        request=PresetSerializer, responses={200: TextAnswerSerializer, **errors(*UPSTREAM_ERRORS)},
    )  # fmt: skip
    async def post(self, request: Request) -> Response:
        return await self.answer(request)


class ShortenView(PresetView):
    kind = "shorten"

    @extend_schema(
        tags=["ai"], summary="Shorten a text, keeping its meaning and tone",
        description=PRESET_DESCRIPTION, request=PresetSerializer,
        responses={200: TextAnswerSerializer, **errors(*UPSTREAM_ERRORS)},
    )  # fmt: skip
    async def post(self, request: Request) -> Response:
        return await self.answer(request)


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
        data = validate(ChatSerializer, request.data)
        user = request_user(request)
        options = _options(data, "temperature", "max_tokens")
        if not data["stream"]:
            answer = await services.complete_chat(
                user, data["model"], data["messages"], options=options
            )
            return Response(render(ChatAnswerSerializer, answer))
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
                    yield sse_event("done", render(ChatDoneSerializer, item))
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
        return Response(render(ImageResultSerializer, generation), status=201)


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
        return Response(render(VideoJobSerializer, job), status=202)


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
        if request.content_type.startswith("multipart/form-data"):
            data = validate(VideoFromImageUploadSerializer, _form_values(request.data))
            frame = await _uploaded_frame(data["image"])
        else:
            data = validate(VideoFromImageUrlSerializer, request.data)
            frame = services.check_frame_image_url(
                data["image_url"], int(settings.MAX_FRAME_IMAGE_BYTES)
            )
        job = await services.submit_video(
            request_user(request), data["model"], data["prompt"],
            options=_options(data, *VIDEO_OPTIONS), first_frame=frame,
        )  # fmt: skip
        return Response(render(VideoJobSerializer, job), status=202)


def _form_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Form fields are strings: the numeric and boolean ones as their JSON types, and an
    empty optional field as no field."""
    values: dict[str, Any] = {}
    for name, value in fields.items():
        number = ascii_whole_number(value) if isinstance(value, str) else None
        if name in ("duration", "seed") and number is not None:
            values[name] = number
        elif name == "generate_audio" and value in ("true", "false"):
            values[name] = value == "true"
        elif isinstance(value, str) and value == "" and name not in ("model", "prompt"):
            continue
        else:
            values[name] = value
    return values


async def _uploaded_frame(upload: Any) -> str:
    limit = int(settings.MAX_FRAME_IMAGE_BYTES)
    if upload.size > limit:
        raise ValidationFailed(fields={"image": f"The image is over {limit // 1_000_000} MB."})
    data = await asyncio.to_thread(upload.read)
    return services.frame_image_from_upload(data)


class VideoJobView(ApiView):
    @extend_schema(
        tags=["ai"],
        summary="A video job's status (polls OpenRouter at most every 5 s)",
        responses={200: VideoJobSerializer},
    )
    async def get(self, request: Request, job_id: UUID) -> Response:
        job = await services.video_job(request_user(request), job_id)
        return Response(render(VideoJobSerializer, job))


class VideoStatusView(ApiView):
    """Compatibility with the original API: answers only for the caller's own jobs."""

    @extend_schema(
        tags=["ai"],
        summary="A job's status by its polling URL (own jobs only; kept for compatibility)",
        parameters=[PollingUrlQuerySerializer],
        responses={200: VideoJobSerializer, **errors(404)},
    )
    async def get(self, request: Request) -> Response:
        polling_url = validate(PollingUrlQuerySerializer, request.query_params)["polling_url"]
        job = await services.video_job_by_polling_url(request_user(request), polling_url)
        return Response(render(VideoJobSerializer, job))


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
        parameters=[HistoryQuerySerializer],
        responses={200: page_of(GenerationSerializer)},
    )
    async def get(self, request: Request) -> Response:
        query = validate(HistoryQuerySerializer, request.query_params)
        page, page_size = query["page"], query["page_size"]
        items, total = await services.list_history(
            request_user(request), kind=query.get("kind") or None, page=page, page_size=page_size
        )
        return Response(render(page_of(GenerationSerializer), Page(items, total, page, page_size)))


class GenerationDetailView(ApiView):
    @extend_schema(
        tags=["history"],
        summary="One own generation",
        operation_id="generation_retrieve",
        responses={200: GenerationSerializer},
    )
    async def get(self, request: Request, generation_id: UUID) -> Response:
        generation = await services.get_history_item(request_user(request), generation_id)
        return Response(render(GenerationSerializer, generation))


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
