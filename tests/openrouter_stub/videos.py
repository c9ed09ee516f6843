"""Async video generation: `/api/v1/videos`, its job polls and content (reference §5)."""

from __future__ import annotations

import re
import secrets
from typing import Any

from .accounting import end_user, new_generation_id, record_generation
from .asgi import ApiError, Request, Response, json_response
from .catalog import MODELS_BY_ID, ModelSpec, video_price_per_second, video_resolution
from .media import sample_video
from .state import FaultRule, StubState, VideoJob

# Request field -> the VideoModel list its value must come from.
ADVERTISED_SETS = {
    "duration": "supported_durations",
    "resolution": "supported_resolutions",
    "aspect_ratio": "supported_aspect_ratios",
    "size": "supported_sizes",
}
FRAME_TYPES = frozenset({"first_frame", "last_frame"})
DEFAULT_OUTCOME_ERRORS = {
    "failed": "Video generation failed",
    "cancelled": "Job was cancelled",
    "expired": "Job exceeded maximum time to live",
}
_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)$")


def _video_model(model_id: Any) -> tuple[ModelSpec, dict[str, Any]]:
    if not isinstance(model_id, str) or not model_id:
        raise ApiError(400, '"model" is required')
    model = MODELS_BY_ID.get(model_id)
    if model is None:
        raise ApiError(400, f"{model_id} is not a valid model ID")
    if model.video is None:
        raise ApiError(400, f"{model_id} is not a video generation model")
    return model, model.video


def _check_in_set(name: str, value: Any, allowed: list[Any] | None, model_id: str) -> None:
    """Reference §5 / [skill-video]: "An out-of-set value returns a 400"."""
    if value is None:
        return
    if allowed is None or value not in allowed or isinstance(value, bool):
        options = ", ".join(str(item) for item in allowed or []) or "none"
        message = f"{name} {value!r} is not supported by {model_id} (supported: {options})"
        raise ApiError(400, message)


def _is_image_url(part: Any) -> bool:
    if not isinstance(part, dict) or part.get("type") != "image_url":
        return False
    image_url = part.get("image_url")
    url = image_url.get("url") if isinstance(image_url, dict) else None
    return isinstance(url, str) and url.startswith(("https://", "http://", "data:image/"))


def _validate_frame_images(body: dict[str, Any], model: ModelSpec, spec: dict[str, Any]) -> bool:
    """`frame_images` (image-to-video); models advertising no frame support refuse them."""
    frames = body.get("frame_images")
    if frames is None:
        return False
    if not isinstance(frames, list) or not frames:
        raise ApiError(400, '"frame_images" must be a non-empty array')
    supported = spec["supported_frame_images"]
    if supported is None:
        raise ApiError(400, f"{model.id} does not support frame_images")
    for index, frame in enumerate(frames):
        if not _is_image_url(frame):
            raise ApiError(400, f"frame_images[{index}] must be an image_url part with a url")
        frame_type = frame.get("frame_type", "first_frame")
        if frame_type not in FRAME_TYPES or frame_type not in supported:
            raise ApiError(400, f"frame_images[{index}]: frame_type {frame_type!r} not supported")
    return True


def _validate_input_references(body: dict[str, Any]) -> bool:
    references = body.get("input_references")
    if references is None:
        return False
    if not isinstance(references, list) or not all(isinstance(ref, dict) for ref in references):
        raise ApiError(400, '"input_references" must be an array of content parts')
    return bool(references)


def _video_cost(spec: dict[str, Any], body: dict[str, Any], duration: int, audio: bool) -> float:
    """Reference §5 `pricing_skus`: the matching per-second price times the duration."""
    resolution = video_resolution(body.get("resolution"), body.get("size"))
    return float(video_price_per_second(spec, resolution, audio) * duration)


def _job_json(job: VideoJob, request: Request, state: StubState) -> dict[str, Any]:
    """Reference §5 job object; `polling_url` is relative, as in the spec."""
    status = job.status(state.now())
    payload: dict[str, Any] = {
        "id": job.id,
        "polling_url": f"/api/v1/videos/{job.id}",
        "status": status,
    }
    if status == "completed":
        payload["generation_id"] = job.generation_id
        payload["unsigned_urls"] = [f"{request.origin()}/api/v1/videos/{job.id}/content?index=0"]
        payload["usage"] = {"cost": job.cost, "is_byok": False}
    elif status in DEFAULT_OUTCOME_ERRORS:
        payload["error"] = job.error
    return payload


async def create_video(request: Request, state: StubState, fault: FaultRule | None) -> Response:
    """Reference §5 `POST /videos`: validate against the model's sets, answer 202 with a job."""
    body = request.json_object()
    user = end_user(body, state)
    model, spec = _video_model(body.get("model"))
    has_frames = _validate_frame_images(body, model, spec)
    has_references = _validate_input_references(body)
    prompt = body.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise ApiError(400, '"prompt" must be a string')
    if not (prompt or "").strip() and not (has_frames or has_references):
        raise ApiError(400, '"prompt" is required unless image input is given')
    for name, advertised in ADVERTISED_SETS.items():
        _check_in_set(name, body.get(name), spec[advertised], model.id)

    duration = body.get("duration") or spec["supported_durations"][0]
    audio = body.get("generate_audio", True) is not False
    rule = state.take_video_rule(model.id)
    outcome = rule.video_outcome if rule and rule.video_outcome else "completed"
    cost = _video_cost(spec, body, duration, audio)
    job = VideoJob(
        id=f"job-{secrets.token_urlsafe(12)}",
        model=model.id,
        generation_id=new_generation_id(),
        created=state.now(),
        duration_total=state.video_seconds,
        cost=cost,
        outcome=outcome,
        error=(rule.error if rule else None) or DEFAULT_OUTCOME_ERRORS.get(outcome),
        user=user,
        forget_after_polls=rule.forget_video_after if rule else None,
    )
    state.add_job(job)
    billed = cost if outcome == "completed" else 0.0
    record_generation(
        request,
        state,
        generation_id=job.generation_id,
        api_type="video",
        model=model,
        usage={"cost": billed, "prompt_tokens": 0, "completion_tokens": 0},
        user=user,
        finish_reason="stop" if outcome == "completed" else "error",
        num_media_completion=1 if outcome == "completed" else None,
        ready_in=state.video_seconds,
    )
    return json_response(
        {"id": job.id, "polling_url": f"/api/v1/videos/{job.id}", "status": "pending"},
        status=202,
    )


def _find_job(request: Request, state: StubState) -> VideoJob:
    job = state.jobs.get(request.path_params["job_id"])
    if job is None:
        raise ApiError(404, "Video generation job not found")
    return job


def _still_known(job: VideoJob, *, count_poll: bool = False) -> VideoJob:
    """The forget fault: the upstream lost the job and answers as for an unknown id."""
    forgotten = job.forgotten
    if count_poll:
        job.polls += 1
    if forgotten:
        raise ApiError(404, "Video generation job not found")
    return job


async def get_video(request: Request, state: StubState, fault: FaultRule | None) -> Response:
    """Reference §5 `GET /videos/{jobId}`: pending -> in_progress -> terminal, by the clock."""
    job = _still_known(_find_job(request, state), count_poll=True)
    return json_response(_job_json(job, request, state))


def _byte_range(header: bytes | None, size: int) -> tuple[int, int] | None:
    """A single `Range: bytes=a-b` request, so browsers can seek; None = whole file."""
    if header is None:
        return None
    match = _RANGE_RE.match(header.decode("latin-1").strip())
    if match is None:
        return None
    first, last = match.groups()
    if first == "":
        if not last:
            return None
        start, end = max(size - int(last), 0), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise ApiError(416, "Requested range not satisfiable")
    return start, end


async def get_video_content(
    request: Request, state: StubState, fault: FaultRule | None
) -> Response:
    """Reference §5 `GET /videos/{jobId}/content?index=N`: the video bytes, `video/mp4`."""
    job = _find_job(request, state)
    job.downloads += 1
    _still_known(job)
    status = job.status(state.now())
    if status != "completed":
        raise ApiError(404, f"Video content is not available (job status: {status})")
    if request.query.get("index", "0") != "0":
        raise ApiError(404, "No video output at that index")
    video = sample_video()
    headers = [(b"accept-ranges", b"bytes")]
    byte_range = _byte_range(request.header(b"range"), len(video))
    if byte_range is None:
        return Response(200, video, content_type=b"video/mp4", headers=headers)
    start, end = byte_range
    headers.append((b"content-range", f"bytes {start}-{end}/{len(video)}".encode()))
    return Response(206, video[start : end + 1], content_type=b"video/mp4", headers=headers)
