"""`/_stub/*`: the test-side control API (faults, settings, request log, reset). No auth."""

from __future__ import annotations

from typing import Any

from .asgi import ApiError, Request, Response, json_response
from .state import FaultRule, RuleError, StubState


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
    """Body: `{"latency"?, "token_delay"?, "video_seconds"?}` in seconds."""
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


async def reset(request: Request, state: StubState, fault: FaultRule | None) -> Response:
    """Forget faults, the log and video jobs; restore the start-up settings."""
    state.reset()
    return json_response({"ok": True})


async def health(request: Request, state: StubState, fault: FaultRule | None) -> Response:
    """Readiness probe for a stub started as a separate process."""
    return json_response({"ok": True})
