"""Generation actions shared by the API and the pages: text, chat, images, videos, history."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from accounts.repository import User
from core.clock import aware, utcnow
from core.db import Tx, get_database
from core.errors import ApiError, NotFound, UpstreamError, ValidationFailed
from generation import ledger, limits, pricing, spend
from generation import repository as repo
from generation.catalog import list_models
from generation.ledger import Admission
from generation.media import media_path, save_media
from generation.openrouter import (
    ContentDelta,
    ImageResult,
    ModelInfo,
    StreamEnd,
    get_openrouter_client,
)
from generation.openrouter import VideoJob as UpstreamJob
from generation.openrouter.results import sniff_image_type
from generation.presets import DEFAULT_LENGTH, PRESETS
from generation.repository import Generation, MediaFile, UsageRecord, VideoJob
from generation.usage import measured_call

log = logging.getLogger(__name__)

POLL_INTERVAL = timedelta(seconds=5)
# How long a worker may hold a job it polls or downloads before another may take it over
# (its process died): longer than a poll or a download can take (the client's timeouts).
VIDEO_JOB_LEASE = timedelta(minutes=5)
MAX_MISSED_POLLS = 3
JOB_LOST = "The provider no longer knows this job; it may have expired before it was saved."
ALLOWED_FRAME_TYPES = ("image/png", "image/jpeg", "image/webp")


# -- models -----------------------------------------------------------------------------


NATIVE_KINDS = ("text", "image", "video")  # embeddings are served by /v1/embeddings only


async def models_of_kind(kind: str | None, user: User) -> list[ModelInfo]:
    """The catalogue's models of a kind (every native kind for None) the user may call."""
    models = await list_models(user.id)
    allowed = await limits.limits_for(user)
    return [
        m for m in models
        if (m.kind == kind or (kind is None and m.kind in NATIVE_KINDS)) and allowed.allows(m.id)
    ]  # fmt: skip


# -- text and chat ----------------------------------------------------------------------


@dataclass(frozen=True)
class TextAnswer:
    generation_id: UUID
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost: float | None

    @classmethod
    def of(cls, row: Generation) -> TextAnswer:
        """The answer a settled text or chat row holds."""
        return cls(
            row.id, row.output_text or "", row.model, row.tokens_in or 0, row.tokens_out or 0,
            row.cost,
        )  # fmt: skip


def chat_payload(
    model: str, messages: Sequence[Mapping[str, str]], options: Mapping[str, Any]
) -> dict[str, Any]:
    payload: dict[str, Any] = {"model": model, "messages": [dict(m) for m in messages]}
    for name in ("temperature", "max_tokens"):
        if options.get(name) is not None:
            payload[name] = options[name]
    return payload


def _last_user_message(messages: Sequence[Mapping[str, str]]) -> str:
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")


async def complete_chat(
    user: User,
    model: str,
    messages: Sequence[Mapping[str, str]],
    *,
    options: Mapping[str, Any] | None = None,
) -> TextAnswer:
    """One non-streaming chat completion (admitted, run and settled)."""
    admission = await ledger.admit(user, "chat", model, _chat_demand(messages, options))
    return await answer_chat(admission, messages, options=options)


def _chat_demand(
    messages: Sequence[Mapping[str, str]], options: Mapping[str, Any] | None
) -> pricing.Demand:
    return pricing.chat_demand(messages, max_tokens=(options or {}).get("max_tokens"))


async def answer_chat(
    admission: Admission,
    messages: Sequence[Mapping[str, str]],
    *,
    options: Mapping[str, Any] | None = None,
    conversation_id: UUID | None = None,
) -> TextAnswer:
    """One non-streaming completion of an admitted call, settled in history and usage
    before it is returned."""
    options = dict(options or {})
    model = admission.model.id
    prompt = _last_user_message(messages)
    async with ledger.run(admission, prompt, options, conversation_id=conversation_id) as call:
        result = await get_openrouter_client().chat(
            admission.cap(chat_payload(model, messages, options)), user=call.upstream_user
        )
        call.answered(
            model=result.model, latency_ms=result.latency_ms, usage=result.usage,
            output_text=result.text,
        )  # fmt: skip
    return TextAnswer.of(call.row)


async def generate_text(
    user: User, model: str, prompt: str, system_prompt: str | None = None, **options: Any
) -> TextAnswer:
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": prompt})
    admission = await ledger.admit(user, "text", model, _chat_demand(messages, options))
    return await answer_chat(admission, messages, options=options)


async def run_preset(
    user: User, kind: str, model: str, text: str, length: str = DEFAULT_LENGTH
) -> TextAnswer:
    """Summarize or shorten a text: a text generation with the preset's system prompt,
    through the same call ledger as /api/generate/text, recorded with the preset's kind."""
    preset = PRESETS[kind]
    messages = [
        {"role": "system", "content": preset.system_prompt(length)},
        {"role": "user", "content": text},
    ]
    admission = await ledger.admit(user, preset.kind, model, _chat_demand(messages, None))
    # `length` is kept in the history row's params; chat_payload sends only sampling options.
    return await answer_chat(admission, messages, options={"length": length})


@dataclass(frozen=True)
class StreamDone:
    generation_id: UUID
    answer: TextAnswer


async def stream_chat(
    user: User,
    model: str,
    messages: Sequence[Mapping[str, str]],
    *,
    options: Mapping[str, Any] | None = None,
) -> AsyncGenerator[str | StreamDone, None]:
    """A streamed chat completion: admitted when the first piece is asked for."""
    admission = await ledger.admit(user, "chat", model, _chat_demand(messages, options))
    async with aclosing(stream_answer(admission, messages, options=options)) as pieces:
        async for piece in pieces:
            yield piece


async def stream_answer(
    admission: Admission,
    messages: Sequence[Mapping[str, str]],
    *,
    options: Mapping[str, Any] | None = None,
    conversation_id: UUID | None = None,
) -> AsyncGenerator[str | StreamDone, None]:
    """Yield the answer's text pieces as they arrive, then a StreamDone once the call is
    settled. However the stream ends (finished, failed or abandoned), its history and usage
    rows are committed."""
    options = dict(options or {})
    model = admission.model.id
    payload = admission.cap({**chat_payload(model, messages, options), "stream": True})
    prompt = _last_user_message(messages)
    end: StreamEnd | None = None
    async with (
        ledger.run(admission, prompt, options, conversation_id=conversation_id) as call,
        aclosing(get_openrouter_client().stream_chat(payload, user=call.upstream_user)) as events,
    ):
        async for event in events:
            if isinstance(event, ContentDelta):
                call.upstream_id = call.upstream_id or event.generation_id
                if event.text:
                    call.pieces.append(event.text)
                    yield event.text
            elif isinstance(event, StreamEnd):
                end = event
        if end is None:  # the client raises before this; kept so a bad stream is never silent
            raise UpstreamError("The answer stream ended early.", code="upstream_stream_broken")
        call.answered(
            model=end.model, latency_ms=end.latency_ms, usage=end.usage, output_text=end.text
        )
    yield StreamDone(call.id, TextAnswer.of(call.row))


# -- images -----------------------------------------------------------------------------


async def generate_image(
    user: User, model: str, prompt: str, *, options: Mapping[str, Any]
) -> Generation:
    """Pick the upstream path from the catalogue: models that also write text use chat
    completions with modalities ["image", "text"]; image-only models the Image API."""
    admission = await ledger.admit(user, "image", model, pricing.image_demand(prompt, options))
    client = get_openrouter_client()
    image_config = {k: options[k] for k in ("aspect_ratio", "image_size") if options.get(k)}
    async with ledger.run(admission, prompt, options) as call:
        result: ImageResult
        if "text" in admission.model.output_modalities:
            result = await client.generate_image_via_chat(
                model, prompt, user=call.upstream_user, modalities=("image", "text"),
                image_config=image_config or None,
            )  # fmt: skip
        else:
            payload: dict[str, Any] = {"model": model, "prompt": prompt}
            if options.get("aspect_ratio"):
                payload["aspect_ratio"] = options["aspect_ratio"]
            if options.get("image_size"):
                payload["resolution"] = options["image_size"]
            for name in ("size", "n"):
                if options.get(name):
                    payload[name] = options[name]
            result = await client.generate_images(payload, user=call.upstream_user)
        call.answered(
            model=result.model, latency_ms=result.latency_ms, usage=result.usage,
            output_text=result.text or None,
        )  # fmt: skip
        media = await asyncio.to_thread(_store_images, user.id, call.id, result)
        call.update(media=media)
    return call.row


def _store_images(user_id: UUID, generation_id: UUID, result: ImageResult) -> tuple[MediaFile, ...]:
    stored = []
    for index, image in enumerate(result.images):
        if image.media_type not in ("image/png", "image/jpeg", "image/webp", "image/gif"):
            # e.g. SVG: served from our origin it could run script, so it is not kept.
            log.warning("dropped a generated image of type %s", image.media_type)
            continue
        stored.append(save_media(user_id, generation_id, index, image.data, image.media_type))
    if not stored:
        raise UpstreamError("The provider returned no usable image.", code="upstream_no_output")
    return tuple(stored)


# -- videos -----------------------------------------------------------------------------


def frame_image_from_upload(data: bytes) -> str:
    """A data URL for an uploaded first frame, after checking it really is an image."""
    media_type = sniff_image_type(data)
    if media_type not in ALLOWED_FRAME_TYPES:
        raise ValidationFailed(fields={"image": "Upload a PNG, JPEG or WebP image."})
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def check_frame_image_url(url: str, max_bytes: int) -> str:
    """Accept an http(s) URL (OpenRouter fetches it, never this server) or an image data URL."""
    if url.startswith("data:"):
        header, _, payload = url[5:].partition(",")
        if ";base64" not in header or len(payload) * 3 // 4 > max_bytes:
            raise ValidationFailed(
                fields={"image_url": "Use a base64 image data URL within the size limit."}
            )
        try:
            data = base64.b64decode(payload, validate=True)
        except ValueError:
            raise ValidationFailed(
                fields={"image_url": "The data URL is not valid base64."}
            ) from None
        return frame_image_from_upload(data)
    if not url.startswith(("https://", "http://")):
        raise ValidationFailed(fields={"image_url": "Use an http(s) URL or an image data URL."})
    return url


async def submit_video(
    user: User,
    model: str,
    prompt: str,
    *,
    options: Mapping[str, Any],
    first_frame: str | None = None,
) -> VideoJob:
    """Start an upstream video job; its row and the job are committed before answering."""
    admission = await ledger.admit(user, "video", model, pricing.video_demand(prompt, options))
    payload: dict[str, Any] = {"model": model, "prompt": prompt}
    for name in ("duration", "resolution", "aspect_ratio", "generate_audio", "seed"):
        if options.get(name) is not None:
            payload[name] = options[name]
    if first_frame:
        payload["frame_images"] = [
            {"type": "image_url", "image_url": {"url": first_frame}, "frame_type": "first_frame"}
        ]
    params = {**options, "from_image": bool(first_frame)}
    async with ledger.run(admission, prompt, params) as call:
        upstream = await get_openrouter_client().create_video(payload, user=call.upstream_user)
        now = utcnow()
        terminal = upstream.status in repo.TERMINAL_VIDEO_STATES
        job = VideoJob(
            id=call.id, user_id=user.id, model=model, upstream_id=upstream.id,
            polling_url=upstream.polling_url, status=upstream.status, error=upstream.error,
            cost=upstream.cost, upstream_generation_id=upstream.generation_id, video_file=None,
            created_at=now, updated_at=now, last_polled_at=now,
            completed_at=now if terminal else None, reserved_cost=admission.held or None,
        )  # fmt: skip
        call.holds_reservation = not terminal  # released when the job ends
        call.answered(
            model=None, latency_ms=upstream.latency_ms, status=upstream.status,
            error_message=upstream.error, finished_at=now if terminal else None,
        )  # fmt: skip
        call.also_commit(lambda tx: repo.insert_video_job(tx, job))
    return job


async def video_job(user: User, job_id: UUID) -> VideoJob:
    """The job, refreshed from upstream if it is running and was not polled in 5 s."""
    job = await get_database().aread(repo.get_video_job, job_id, user.id)
    if job is None:
        raise NotFound("No such video job.", code="video_job_not_found")
    return await refresh_video_job(job)


async def video_job_by_polling_url(user: User, polling_url: str) -> VideoJob:
    """Only a polling URL of one of the caller's own jobs is answered, and nothing is
    fetched from it: the stored job is refreshed through its stored URL."""
    client = get_openrouter_client()
    candidates = {polling_url}
    with contextlib.suppress(ApiError):  # a foreign URL simply matches nothing
        candidates.add(client.resolve_polling_url(polling_url))
    job = await get_database().aread(
        repo.find_video_job_by_polling_url, user.id, sorted(candidates)
    )
    if job is None:
        raise NotFound("No video job of yours has this polling URL.", code="video_job_not_found")
    return await refresh_video_job(job)


_refreshing: dict[tuple[asyncio.AbstractEventLoop, UUID], asyncio.Task[VideoJob]] = {}


async def refresh_video_job(job: VideoJob) -> VideoJob:
    """Single-flight per job: any number of callers share one upstream poll."""
    if _settled(job) or not _due(job):
        return job
    key = (asyncio.get_running_loop(), job.id)
    task = _refreshing.get(key)
    if task is None:
        task = asyncio.get_running_loop().create_task(_refresh(job.id))
        _refreshing[key] = task
        task.add_done_callback(lambda _: _refreshing.pop(key, None))
    return await asyncio.shield(task)


def _settled(job: VideoJob) -> bool:
    return job.is_terminal and (job.status != "completed" or job.video_file is not None)


def _due(job: VideoJob) -> bool:
    return (
        job.last_polled_at is None
        or utcnow() - job.last_polled_at.replace(tzinfo=None) >= POLL_INTERVAL
    )


async def _refresh(job_id: UUID) -> VideoJob:
    db = get_database()
    job = await _current_job(job_id)
    if _settled(job) or not _due(job):
        return job
    # Every worker may want to poll the job (its watcher, its requests): the one holding
    # the lease does; the others answer with the job as last saved (decision 46).
    now = utcnow()
    if not await db.awrite(repo.lease_video_job, job_id, now, now + VIDEO_JOB_LEASE):
        return job
    try:
        job = await _current_job(job_id)  # the previous holder may have just polled it
        if _settled(job) or not _due(job):
            return job
        if job.status != "completed":
            job = await _poll(job)
        if job.status == "completed" and job.video_file is None:
            job = await _download(job)
        return job
    finally:
        await db.awrite(repo.release_video_job, job_id)


async def _current_job(job_id: UUID) -> VideoJob:
    job = await get_database().aread(repo.get_video_job, job_id)
    if job is None:  # deleted with its owner meanwhile
        raise NotFound("No such video job.", code="video_job_not_found")
    return job


async def _poll(job: VideoJob) -> VideoJob:
    now = utcnow()
    try:
        async with measured_call(job.user_id, "video_poll", job.model, job.id) as call:
            upstream: UpstreamJob = await get_openrouter_client().get_video(job.polling_url)
            call.latency_ms = upstream.latency_ms
            if upstream.status == "completed":
                call.kind, call.cost = "video", upstream.cost  # the job's price, once
    except UpstreamError as exc:
        log.warning("polling video job %s failed: %s", job.id, exc.code)
        return await _save_job(job, _missed_poll(job, exc, now), usage=call.record()) or job
    changes: dict[str, Any] = {
        "status": upstream.status, "error": upstream.error, "last_polled_at": now,
        "updated_at": now, "missed_polls": 0,
    }  # fmt: skip
    if upstream.cost is not None:
        changes["cost"] = upstream.cost
    if upstream.generation_id:
        changes["upstream_generation_id"] = upstream.generation_id
    if upstream.status in repo.TERMINAL_VIDEO_STATES:
        changes["completed_at"] = now
    return await _save_job(job, changes, usage=call.record()) or job


def _missed_poll(job: VideoJob, error: UpstreamError, now: datetime) -> dict[str, Any]:
    """A failed poll is tried again later, except that a job the provider answers 404 for
    MAX_MISSED_POLLS times in a row is gone (expired or purged upstream): it fails."""
    if error.upstream_status != 404:
        return {"last_polled_at": now}
    missed = job.missed_polls + 1
    if missed < MAX_MISSED_POLLS:
        return {"last_polled_at": now, "missed_polls": missed}
    return {
        "last_polled_at": now, "missed_polls": missed, "status": "failed", "updated_at": now,
        "completed_at": now, "error": JOB_LOST,
    }  # fmt: skip


async def _download(job: VideoJob) -> VideoJob:
    now = utcnow()
    try:
        async with measured_call(job.user_id, "video_download", job.model, job.id) as call:
            content = await get_openrouter_client().download_video(job.upstream_id)
            call.latency_ms = content.latency_ms
    except UpstreamError as exc:
        log.warning("downloading video job %s failed: %s", job.id, exc.code)
        return await _save_job(job, {"last_polled_at": now}, usage=call.record()) or job
    media_type = content.media_type if content.media_type.startswith("video/") else "video/mp4"
    stored = await asyncio.to_thread(save_media, job.user_id, job.id, 0, content.data, media_type)
    changes = {"video_file": stored.file, "updated_at": now}
    return await _save_job(job, changes, media=stored, usage=call.record()) or job


async def _save_job(
    job: VideoJob,
    changes: dict[str, Any],
    *,
    media: MediaFile | None = None,
    usage: UsageRecord | None = None,
) -> VideoJob | None:
    """Apply what a poll or download learnt, with its usage row, in one commit."""

    def save(tx: Tx) -> VideoJob | None:
        updated = repo.update_video_job(tx, job.id, **changes)
        if updated is not None and (updated.status != job.status or media is not None):
            repo.finish_generation(
                tx, job.id, status=updated.status, media=[media] if media else None,
                error_code="upstream_video_failed" if updated.error else None,
                error_message=updated.error, cost=updated.cost,
                finished_at=updated.completed_at,
            )  # fmt: skip
        if usage is not None:
            repo.insert_usage(tx, [usage])
        ended = updated is not None and updated.is_terminal and not job.is_terminal
        spend.note_booked(
            tx, job.user_id, released=(updated.reserved_cost or 0.0) if ended and updated else 0.0,
            cost=usage.cost if usage else None, at=usage.occurred_at if usage else None,
        )  # fmt: skip
        return updated

    return await get_database().awrite(save)


async def video_file(user: User, job_id: UUID) -> tuple[str, str]:
    """(absolute path, MIME type) of a finished video the user owns."""
    job = await get_database().aread(repo.get_video_job, job_id, user.id)
    if job is None or job.video_file is None:
        raise NotFound("No finished video here.", code="video_not_ready")
    path = media_path(MediaFile(job.video_file, "video/mp4"))
    if path is None:
        raise NotFound("The video file is missing.", code="video_missing")
    return str(path), "video/webm" if job.video_file.endswith(".webm") else "video/mp4"


async def watch_unfinished_jobs(interval: float = 15.0) -> None:
    """Background loop: keep polling running jobs and fetch finished videos while nobody
    watches, because upstream copies expire. Survives restarts since jobs are rows."""
    while True:
        try:
            for job in await get_database().aread(repo.unfinished_video_jobs):
                await refresh_video_job(job)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("video job watcher round failed")
        await asyncio.sleep(interval)


# -- history ----------------------------------------------------------------------------


async def list_history(
    user: User, *, kind: str | None, page: int, page_size: int
) -> tuple[list[Generation], int]:
    return await get_database().aread(
        repo.list_generations, user.id, kind=kind, limit=page_size, offset=(page - 1) * page_size
    )


async def get_history_item(user: User, generation_id: UUID) -> Generation:
    generation = await get_database().aread(repo.get_generation, generation_id, user.id)
    if generation is None:
        raise NotFound("No such generation.", code="generation_not_found")
    return generation


async def media_file(user: User, generation_id: UUID, index: int) -> tuple[str, str]:
    generation = await get_history_item(user, generation_id)
    if not 0 <= index < len(generation.media):
        raise NotFound("No such file.", code="media_not_found")
    media = generation.media[index]
    path = media_path(media)
    if path is None:
        raise NotFound("The file is missing.", code="media_missing")
    return str(path), media.type


# -- limits and spend -------------------------------------------------------------------


async def limits_report(user: User) -> dict[str, Any]:
    """The limits that apply to a user, their own override and their spend this period."""
    rules = await limits.limit_rules()
    effective = rules.effective(user)
    state = await spend.status(user.id, effective)
    own = rules.override(user.id)
    override = None
    if own is not None:
        override = {
            "allowed_models": own.allowed_models, "budget_usd": own.budget_usd,
            "budget_period": own.budget_period,
        }  # fmt: skip
    return {
        **effective.as_dict(), "user_id": user.id, "role": user.role, "override": override,
        "spent_usd": state.spent_usd, "reserved_usd": state.reserved_usd,
        "remaining_usd": state.remaining_usd,
        "resets_at": aware(state.resets_at),
    }  # fmt: skip


async def spend_summary(user: User) -> spend.SpendStatus | None:
    """The signed-in user's spend for the pages; None if the limits cannot be read now."""
    try:
        return await spend.status(user.id, await limits.limits_for(user))
    except ApiError:
        return None


@dataclass(frozen=True)
class UserSpend:
    """One user's limits and spend this period, for the staff pages."""

    user: User
    limits: limits.Limits
    overridden: bool
    spent_usd: float

    @property
    def percent(self) -> int:
        budget = self.limits.budget_usd
        if budget is None:
            return 0
        return 100 if budget <= 0 else max(0, min(100, round(100 * self.spent_usd / float(budget))))


async def spend_overview(users: Sequence[User]) -> list[UserSpend]:
    """Each user's effective limits and what they spent in their current period (one
    aggregate per period in use)."""
    rules = await limits.limit_rules()
    effective = {user.id: rules.effective(user) for user in users}
    now = utcnow()
    spent: dict[str, dict[UUID, float]] = {}
    for period in sorted({lim.budget_period for lim in effective.values()}):
        start, end = limits.period_bounds(period, now)
        spent[period] = await get_database().aread(repo.spent_by_user, start, end)
    return [
        UserSpend(
            user,
            effective[user.id],
            rules.override(user.id) is not None,
            spent[effective[user.id].budget_period].get(user.id, 0.0),
        )
        for user in users
    ]
