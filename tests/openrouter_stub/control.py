"""`/_stub/*`: the test-side control API (faults, settings, request log, recorded `user`s,
generations, video jobs, reset). No auth."""

from __future__ import annotations

from typing import Any

from .asgi import ApiError, Request, Response, json_response
from .state import FaultRule, RuleError, StubState, VideoJob


def _snapshot(state: StubState) -> dict[str, Any]:
    return {
        "faults": [rule.to_json() for rule in list(state.faults)],
        "settings": state.settings(),
    }


async def get_faults(request: Request, state: StubState, fault: FaultRule | None) -> Response:
    """Live fault rules (with remaining `times` and `hits`) and the global settings."""
    return json_response(_snapshot(state))


async def add_faults(request: Request, state: StubState, fault: FaultRule | None) -> Response:
    """Body: one rule object or a list of them; `{"latency": s}` etc. set global settings."""
    body = request.json()
    if not isinstance(body, dict | list):
        raise ApiError(400, "Body must be a fault object or a list of fault objects")
    try:
        state.add_faults(body)
    except (RuleError, TypeError) as exc:
        raise ApiError(400, str(exc)) from None
    return json_response(_snapshot(state))


async def clear_faults(request: Request, state: StubState, fault: FaultRule | None) -> Response:
    """Drop every fault rule; settings and the log stay."""
    state.clear_faults()
    return json_response(_snapshot(state))


async def update_config(request: Request, state: StubState, fault: FaultRule | None) -> Response:
    """Body: seconds (`latency`, `token_delay`, `video_seconds`, `keepalive_interval`,
    `generation_stats_lag`) and switches (`require_user`)."""
    body = request.json()
    if not isinstance(body, dict):
        raise ApiError(400, "Body must be an object of settings")
    try:
        state.update_settings(body)
    except RuleError as exc:
        raise ApiError(400, str(exc)) from None
    return json_response(_snapshot(state))


async def get_requests(request: Request, state: StubState, fault: FaultRule | None) -> Response:
    """The request log, oldest first; `?path=` keeps entries whose path starts with it."""
    prefix = request.query.get("path", "")
    entries = [entry for entry in state.log_json() if entry["path"].startswith(prefix)]
    return json_response({"requests": entries})


async def get_users(request: Request, state: StubState, fault: FaultRule | None) -> Response:
    """The `user` field of every generation request, oldest first; `?path=` filters."""
    return json_response({"users": state.users_json(request.query.get("path", ""))})


async def get_generations(request: Request, state: StubState, fault: FaultRule | None) -> Response:
    """Every generation's stats plus `abandoned`, `stream_finished`, `events_sent`."""
    generations = list(state.generations.values())
    return json_response({"generations": [generation.to_json() for generation in generations]})


async def get_generation(request: Request, state: StubState, fault: FaultRule | None) -> Response:
    """One generation, at once (no `generation_stats_lag`)."""
    generation = state.generations.get(request.path_params["generation_id"])
    if generation is None:
        raise ApiError(404, "No such generation")
    return json_response(generation.to_json())


async def get_video_jobs(request: Request, state: StubState, fault: FaultRule | None) -> Response:
    """Every video job with its `polls` and `downloads` counters."""
    now = state.now()
    return json_response({"jobs": [job.to_json(now) for job in list(state.jobs.values())]})


def _job(request: Request, state: StubState) -> VideoJob:
    job = state.jobs.get(request.path_params["job_id"])
    if job is None:
        raise ApiError(404, "No such video job")
    return job


async def get_video_job(request: Request, state: StubState, fault: FaultRule | None) -> Response:
    return json_response(_job(request, state).to_json(state.now()))


async def forget_video_job(request: Request, state: StubState, fault: FaultRule | None) -> Response:
    """From now on the job's polls and content answer 404, as if the upstream lost it."""
    job = _job(request, state)
    job.forget_after_polls = job.polls
    return json_response(job.to_json(state.now()))


async def reset(request: Request, state: StubState, fault: FaultRule | None) -> Response:
    """Forget faults, the logs, generations and video jobs; restore the start-up settings."""
    state.reset()
    return json_response({"ok": True})


async def health(request: Request, state: StubState, fault: FaultRule | None) -> Response:
    """Readiness probe for a stub started as a separate process."""
    return json_response({"ok": True})
