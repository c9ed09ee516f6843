"""Pages: dashboard, generate text/image/video, video jobs, chat, history (SPEC §3)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.http import (
    HttpResponse,
    HttpResponseBase,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.decorators import login_required
from accounts.repository import User
from accounts.sessions import PageRequest, current_user
from core.api import json_error
from core.db import get_database
from core.errors import ApiError, ValidationFailed
from core.forms import apply_api_error
from core.params import page_number
from generation import conversations, services
from generation import repository as repo
from generation.api import file_response, sse_event
from generation.forms import (
    ChatForm,
    ImageForm,
    NewChatForm,
    PresetForm,
    TextForm,
    VideoForm,
    VideoFromImageForm,
)
from generation.markdown import render_markdown
from generation.openrouter import ModelInfo
from generation.presets import PRESETS
from generation.recorder import get_recorder
from generation.repository import Generation
from generation.serializers import GENERATION_KINDS

HISTORY_PAGE_SIZE = 12
RENDER_INTERVAL = 0.05  # seconds between re-renders of a growing chat answer


async def _catalogue(request: PageRequest, kind: str) -> tuple[list[ModelInfo], str | None]:
    """The models the user may pick, or an explanation of why there are none."""
    try:
        models = await services.models_of_kind(kind, current_user(request))
    except ApiError as exc:
        return [], exc.message
    if models:
        return models, None
    return (
        [],
        f"No {kind} model is available to you: the provider lists none, or your limits allow none.",
    )


def _options(data: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: data[name] for name in names if data.get(name) not in (None, "")}


# -- start ------------------------------------------------------------------------------


@require_GET
async def home(request: PageRequest) -> HttpResponse:
    user = request.gateway_user
    if user is None:
        return render(request, "generation/landing.html")
    await get_recorder().flush()
    month_start = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    usage = await get_database().aread(repo.usage_since, user.id, month_start.replace(tzinfo=None))
    recent, _ = await services.list_history(user, kind=None, page=1, page_size=6)
    return render(
        request,
        "generation/dashboard.html",
        {
            "usage": usage,
            "entries": await _history_entries(user, recent),
            "month": month_start,
            "spend": await services.spend_summary(user),
        },
    )


@require_GET
async def generate_index(request: PageRequest) -> HttpResponse:
    return redirect("generate-text")


# -- text and image ---------------------------------------------------------------------


TEXT_MODES = {"write": "Write", **{kind: p.label for kind, p in PRESETS.items()}}


@login_required
@require_http_methods(["GET", "POST"])
async def generate_text(request: PageRequest) -> HttpResponse:
    """The text page in one of its modes: write from a prompt, or a preset (summarize,
    shorten) applied to a text."""
    mode = request.POST.get("mode") or request.GET.get("mode") or "write"
    if mode not in TEXT_MODES:
        mode = "write"
    models, problem = await _catalogue(request, "text")
    form_class = TextForm if mode == "write" else PresetForm
    form = form_class(request.POST or None, models=models)
    answer = None
    if request.method == "POST" and form.is_valid():
        try:
            answer = await _answer_text(current_user(request), mode, form.cleaned_data)
        except ApiError as exc:
            apply_api_error(form, exc)
    context: dict[str, Any] = {
        "form": form,
        "answer": answer,
        "problem": problem,
        "mode": mode,
        "mode_label": TEXT_MODES[mode],
        "modes": TEXT_MODES,
    }
    context["spend"] = await services.spend_summary(current_user(request))
    if request.htmx:  # the panel, and the spend bar out of band: the answer may have cost
        return render(request, "generation/_text_panel.html", {**context, "refresh": True})
    return render(request, "generation/text.html", context)


async def _answer_text(user: User, mode: str, data: dict[str, Any]) -> services.TextAnswer:
    if mode != "write":
        return await services.run_preset(user, mode, data["model"], data["text"], data["length"])
    return await services.generate_text(
        user, data["model"], data["prompt"], data["system_prompt"] or None,
        **_options(data, "temperature", "max_tokens"),
    )  # fmt: skip


@login_required
@require_http_methods(["GET", "POST"])
async def generate_image(request: PageRequest) -> HttpResponse:
    models, problem = await _catalogue(request, "image")
    form = ImageForm(request.POST or None, models=models)
    generation = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            generation = await services.generate_image(
                current_user(request), data["model"], data["prompt"],
                options=_options(data, "aspect_ratio", "image_size"),
            )  # fmt: skip
        except ApiError as exc:
            apply_api_error(form, exc)
    images = (
        [reverse("media", args=[generation.id, i]) for i in range(len(generation.media))]
        if generation
        else []
    )
    context: dict[str, Any] = {
        "form": form, "generation": generation, "images": images, "problem": problem
    }  # fmt: skip
    context["spend"] = await services.spend_summary(current_user(request))
    if request.htmx:  # the panel, and the spend bar out of band: the answer may have cost
        return render(request, "generation/_image_panel.html", {**context, "refresh": True})
    return render(request, "generation/image.html", context)


# -- video ------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
async def generate_video(request: PageRequest) -> HttpResponse:
    tab = "image" if (request.POST or request.GET).get("tab") == "image" else "text"
    models, problem = await _catalogue(request, "video")
    form_class = VideoFromImageForm if tab == "image" else VideoForm
    form = form_class(request.POST or None, request.FILES or None, models=models)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            first_frame = await _first_frame(data) if tab == "image" else None
            job = await services.submit_video(
                current_user(request), data["model"], data["prompt"],
                options=_options(data, "duration", "resolution", "aspect_ratio"),
                first_frame=first_frame,
            )  # fmt: skip
        except ApiError as exc:
            apply_api_error(form, exc)
        else:
            return redirect("video-job", job.id)
    spend = await services.spend_summary(current_user(request))
    context = {"form": form, "tab": tab, "problem": problem, "spend": spend}
    return render(request, "generation/video.html", context)


async def _first_frame(data: dict[str, Any]) -> str:
    from django.conf import settings

    limit = int(settings.MAX_FRAME_IMAGE_BYTES)
    upload = data.get("image")
    if upload is not None:
        if upload.size > limit:
            raise ValidationFailed(fields={"image": f"The image is over {limit // 1_000_000} MB."})
        return services.frame_image_from_upload(upload.read())
    return services.check_frame_image_url(data["image_url"], limit)


@login_required
@require_GET
async def video_job_page(request: PageRequest, job_id: UUID) -> HttpResponse:
    job = await services.video_job(current_user(request), job_id)
    generation = await services.get_history_item(current_user(request), job_id)
    return render(request, "generation/video_job.html", {"job": job, "generation": generation})


@login_required
@require_GET
async def video_job_status(request: PageRequest, job_id: UUID) -> HttpResponse:
    job = await services.video_job(current_user(request), job_id)
    return render(request, "generation/_video_status.html", {"job": job})


@login_required
@require_GET
async def video_file_page(request: PageRequest, job_id: UUID) -> StreamingHttpResponse:
    path, media_type = await services.video_file(current_user(request), job_id)
    return file_response(path, media_type)


@login_required
@require_GET
async def media(request: PageRequest, generation_id: UUID, index: int) -> StreamingHttpResponse:
    path, media_type = await services.media_file(current_user(request), generation_id, index)
    return file_response(path, media_type)


# -- history ----------------------------------------------------------------------------


@login_required
@require_GET
async def history(request: PageRequest) -> HttpResponse:
    kind = request.GET.get("kind") or None
    if kind not in (None, *GENERATION_KINDS):
        kind = None
    page = page_number(request.GET)
    user = current_user(request)
    items, total = await services.list_history(
        user, kind=kind, page=page, page_size=HISTORY_PAGE_SIZE
    )
    pages = max(1, -(-total // HISTORY_PAGE_SIZE))
    return render(
        request, "generation/history.html",
        {"entries": await _history_entries(user, items), "kind": kind, "page": page,
         "pages": pages, "total": total},
    )  # fmt: skip


@dataclass(frozen=True)
class HistoryEntry:
    """One line of history: a generation, or consecutive turns of one conversation."""

    item: Generation
    turns: int = 1
    conversation_id: UUID | None = None
    conversation_title: str | None = None


async def _history_entries(user: Any, items: list[Generation]) -> list[HistoryEntry]:
    """Chat turns are shown with (and linked to) their conversation, not each alone."""
    ids = [item.conversation_id for item in items if item.conversation_id]
    titles = await conversations.conversation_titles(user, ids) if ids else {}
    entries: list[HistoryEntry] = []
    for item in items:
        cid = item.conversation_id
        if cid is None or cid not in titles:  # not a turn, or the conversation was deleted
            entries.append(HistoryEntry(item))
        elif entries and entries[-1].conversation_id == cid:
            entries[-1] = HistoryEntry(entries[-1].item, entries[-1].turns + 1, cid, titles[cid])
        else:
            entries.append(HistoryEntry(item, 1, cid, titles[cid]))
    return entries


# -- chat -------------------------------------------------------------------------------


@login_required
@require_GET
async def chat_page(request: PageRequest, conversation_id: UUID | None = None) -> HttpResponse:
    user = current_user(request)
    conversation = (
        await conversations.get_conversation(user, conversation_id) if conversation_id else None
    )
    context = {
        "conversation": conversation,
        "conversations": await conversations.list_conversations(user),
        "spend": await services.spend_summary(user),
    }
    if request.htmx:
        # After an answer: the sidebar, the conversation's heading and the spend bar,
        # without a reload.
        return render(request, "generation/_chat_sidebar.html", {**context, "refresh": True})
    models, problem = ([], None) if conversation else await _catalogue(request, "text")
    form = ChatForm() if conversation else NewChatForm(models=models)
    page = {**context, "form": form, "problem": problem}
    return render(request, "generation/chat.html", page)


async def _chat_turn(request: PageRequest, conversation_id: UUID | None) -> conversations.Turn:
    """The admitted turn of a chat POST (a new conversation starts only once admitted)."""
    user = current_user(request)
    conversation = None
    if conversation_id:
        conversation = await conversations.get_conversation(user, conversation_id)
        form: ChatForm = ChatForm(request.POST)
    else:
        models, _ = await _catalogue(request, "text")
        form = NewChatForm(request.POST, models=models)
    if not form.is_valid():
        raise ValidationFailed(
            fields={name: " ".join(map(str, errors)) for name, errors in form.errors.items()}
        )
    data = form.cleaned_data
    return await conversations.open_turn(user, conversation, data.get("model", ""), data["content"])


@login_required
@require_POST
async def chat_stream(
    request: PageRequest, conversation_id: UUID | None = None
) -> HttpResponseBase:
    """The chat page's answer as Server-Sent Events of sanitised HTML (see _answer_stream).
    Whenever a conversation exists, X-Conversation-Id and -Url name it, failures included."""
    turn = None
    try:
        turn = await _chat_turn(request, conversation_id)
        response: HttpResponseBase = await _answer_stream(conversations.stream_turn(turn))
    except ApiError as exc:
        response = json_error(exc)
    if turn is not None:
        conversation_id = turn.conversation.id
        response["X-Conversation-Id"] = str(conversation_id)
        response["X-Conversation-Url"] = reverse("chat-conversation", args=[conversation_id])
        response["X-Conversation-Stream-Url"] = reverse("chat-stream", args=[conversation_id])
    return response


async def _answer_stream(turn: AsyncIterator[Any]) -> StreamingHttpResponse:
    """`answer` {html} while the answer grows, then `done` {html} or `error` {error, html}.

    The growing answer is re-rendered as sanitised Markdown on the server (at most every
    RENDER_INTERVAL), so the page never inserts model text as HTML. As in the API's
    stream, a failure before the first piece is an ordinary JSON error.
    """
    first = await anext(turn, None)

    async def stream() -> AsyncIterator[bytes]:
        pieces: list[str] = []
        rendered_at = 0.0
        try:
            item = first
            while item is not None:
                if isinstance(item, services.StreamDone):
                    yield sse_event("done", {"html": render_markdown("".join(pieces))})
                else:
                    pieces.append(item)
                    if time.monotonic() - rendered_at >= RENDER_INTERVAL:
                        rendered_at = time.monotonic()
                        yield sse_event("answer", {"html": render_markdown("".join(pieces))})
                item = await anext(turn, None)
        except ApiError as exc:
            yield sse_event("error", {**exc.as_dict(), "html": render_markdown("".join(pieces))})
        finally:
            await turn.aclose()  # type: ignore[attr-defined]

    response = StreamingHttpResponse(stream(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


@login_required
@require_POST
async def chat_send(request: PageRequest, conversation_id: UUID | None = None) -> HttpResponse:
    """Without JavaScript: answer in one piece, then show the conversation again."""
    turn = None
    try:
        turn = await _chat_turn(request, conversation_id)
        await conversations.send_turn(turn)
    except ApiError as exc:
        messages.error(request, exc.message)
    target = turn.conversation.id if turn else conversation_id
    return redirect("chat-conversation", target) if target else redirect("chat")


@login_required
@require_POST
async def chat_delete(request: PageRequest, conversation_id: UUID) -> HttpResponse:
    await conversations.delete_conversation(current_user(request), conversation_id)
    messages.success(request, "The conversation was deleted.")
    return redirect("chat")
