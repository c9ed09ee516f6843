"""Discovery endpoints: model listings (reference §2, §5) and key/credit info (reference §7)."""

from __future__ import annotations

from .asgi import ApiError, Request, Response, dumps, json_response
from .catalog import (
    KNOWN_OUTPUT_MODALITIES,
    MODELS_BY_ID,
    embedding_models_body,
    filter_models,
    image_models_body,
    models_list_body,
    parse_output_modalities,
    video_models_body,
)
from .state import FaultRule, StubState

MAX_PAGE = 1000


def _page_bound(request: Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise ApiError(400, f"{name} must be a non-negative integer")
    return int(raw)


async def list_models(request: Request, state: StubState, fault: FaultRule | None) -> Response:
    """Reference §2 `GET /models`: `output_modalities` (default text), optional paging."""
    modalities = parse_output_modalities(request.query.get("output_modalities"))
    if modalities is not None and not modalities <= KNOWN_OUTPUT_MODALITIES:
        unknown = ", ".join(sorted(modalities - KNOWN_OUTPUT_MODALITIES))
        raise ApiError(400, f"Invalid output_modalities: {unknown}")
    parameters = request.query.get("supported_parameters")
    paged = "offset" in request.query or "limit" in request.query
    if not parameters and not paged:
        return Response(200, models_list_body(modalities))

    required = frozenset(p.strip() for p in (parameters or "").split(",") if p.strip())
    models = filter_models(modalities, required)
    offset = _page_bound(request, "offset", 0)
    limit = min(_page_bound(request, "limit", 500), MAX_PAGE)
    page = models[offset : offset + limit]
    next_link = None
    if offset + limit < len(models):
        next_link = f"/api/v1/models?offset={offset + limit}&limit={limit}"
    return json_response({"data": page, "total_count": len(models), "links": {"next": next_link}})


async def get_model(request: Request, state: StubState, fault: FaultRule | None) -> Response:
    """Reference §2 `GET /model/{author}/{slug}`: `{"data": Model}` or 404."""
    model = MODELS_BY_ID.get(request.path_params["model_id"])
    if model is None:
        raise ApiError(404, "Model not found")
    return Response(200, dumps({"data": model.listing}))


async def list_video_models(
    request: Request, state: StubState, fault: FaultRule | None
) -> Response:
    """Reference §5 `GET /videos/models`: `{"data": [VideoModel...]}`."""
    return Response(200, video_models_body())


async def list_image_models(
    request: Request, state: StubState, fault: FaultRule | None
) -> Response:
    """Reference §2 "Related discovery endpoints" `GET /images/models`."""
    return Response(200, image_models_body())


async def list_embedding_models(
    request: Request, state: StubState, fault: FaultRule | None
) -> Response:
    """Reference §8 `GET /embeddings/models`: `{"data": [Model...]}` of embedding models."""
    return Response(200, embedding_models_body())


async def get_key(request: Request, state: StubState, fault: FaultRule | None) -> Response:
    """Reference §7 `GET /key`: the calling key's limits and usage."""
    return json_response(
        {
            "data": {
                "label": "stub-key",
                "limit": None,
                "limit_remaining": None,
                "limit_reset": None,
                "usage": 0,
                "usage_daily": 0,
                "usage_weekly": 0,
                "usage_monthly": 0,
                "is_free_tier": False,
            }
        }
    )


async def get_credits(request: Request, state: StubState, fault: FaultRule | None) -> Response:
    """Reference §7 `GET /credits`."""
    return json_response({"data": {"total_credits": 100.0, "total_usage": 0.0}})
