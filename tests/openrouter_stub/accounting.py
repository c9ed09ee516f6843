"""Who asked and what it cost: the `user` field (reference §8), usage objects (reference §3)
and the generation records behind `GET /generation` (reference §7, §8)."""

from __future__ import annotations

import secrets
import time
from decimal import Decimal
from typing import Any

from .asgi import ApiError, Request, Response, json_response
from .catalog import ModelSpec
from .state import FaultRule, Generation, StubState

USER_REQUIRED_MESSAGE = (
    'Input required: "user" must be a non-empty string identifying the end user '
    "(this stand-in's require_user switch is on)"
)


def new_generation_id() -> str:
    return f"gen-{int(time.time())}-{secrets.token_urlsafe(15)}"


def cost_details(prompt_cost: Decimal, completion_cost: Decimal) -> dict[str, Any]:
    return {
        "upstream_inference_cost": None,
        "upstream_inference_prompt_cost": float(prompt_cost),
        "upstream_inference_completions_cost": float(completion_cost),
    }


def usage_json(
    prompt_tokens: int,
    completion_tokens: int,
    prompt_cost: Decimal,
    completion_cost: Decimal,
    *,
    image_tokens: int = 0,
) -> dict[str, Any]:
    """Reference §3 `usage`, with `cost` = prompt cost + completion cost."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "image_tokens": image_tokens},
        "cost": float(prompt_cost + completion_cost),
        "is_byok": False,
        "cost_details": cost_details(prompt_cost, completion_cost),
    }


def end_user(body: dict[str, Any], state: StubState) -> str | None:
    """Reference §8 `user` (the app notes it for every generation request): refused when
    it is not a string, or when the `require_user` switch is on and it names nobody."""
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise ApiError(400, '"user" must be a string')
    if state.require_user and not (user or "").strip():
        raise ApiError(400, USER_REQUIRED_MESSAGE)
    return user


def record_generation(
    request: Request,
    state: StubState,
    *,
    generation_id: str,
    api_type: str,
    model: ModelSpec,
    usage: dict[str, Any],
    user: str | None,
    streamed: bool = False,
    finish_reason: str | None = "stop",
    num_media_prompt: int | None = None,
    num_media_completion: int | None = None,
    ready_in: float = 0.0,
) -> Generation:
    """Remember a generation for `GET /generation`; it is found `ready_in` seconds (plus the
    `generation_stats_lag` setting) from now."""
    details = usage.get("completion_tokens_details") or {}
    referer = request.header(b"http-referer")
    agent = request.header(b"user-agent")
    generation = Generation(
        id=generation_id,
        api_type=api_type,
        model=model.id,
        provider=model.provider,
        cost=usage["cost"],
        tokens_prompt=usage.get("prompt_tokens", 0),
        tokens_completion=usage.get("completion_tokens", 0),
        image_tokens=details.get("image_tokens", 0),
        ready_at=state.now() + ready_in + state.generation_stats_lag,
        streamed=streamed,
        finish_reason=finish_reason,
        num_media_prompt=num_media_prompt,
        num_media_completion=num_media_completion,
        user=user,
        http_referer=referer.decode("latin-1") if referer else None,
        user_agent=agent.decode("latin-1") if agent else None,
    )
    state.add_generation(generation)
    return generation


async def get_generation(request: Request, state: StubState, fault: FaultRule | None) -> Response:
    """Reference §7 `GET /generation?id=`: `{"data": {...}}`, or 404 until it is known."""
    generation_id = request.query.get("id", "")
    if not generation_id:
        raise ApiError(400, 'Query parameter "id" is required')
    generation = state.generations.get(generation_id)
    if generation is None or state.now() < generation.ready_at:
        raise ApiError(404, f"Generation {generation_id} not found")
    return json_response({"data": generation.stats_json()})
