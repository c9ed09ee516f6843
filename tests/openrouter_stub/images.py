"""`POST /api/v1/images`: the dedicated Image API (reference §4.2)."""

from __future__ import annotations

import time
from typing import Any

from .accounting import end_user, new_generation_id, record_generation, usage_json
from .asgi import ApiError, Request, Response, json_response
from .catalog import MODELS_BY_ID, ModelSpec
from .media import palette_index, png_base64
from .state import FaultRule, StubState

MAX_IMAGES = 10
# Output megapixels per `resolution`, to scale image tokens and cost.
RESOLUTION_MEGAPIXELS = {"512": 0.25, "1K": 1.0, "2K": 4.0, "4K": 16.0}
ENUM_PARAMETERS = ("aspect_ratio", "resolution", "quality", "output_format", "background")


def _image_model(model_id: Any) -> tuple[ModelSpec, dict[str, Any]]:
    if not isinstance(model_id, str) or not model_id:
        raise ApiError(400, '"model" is required')
    model = MODELS_BY_ID.get(model_id)
    if model is None:
        raise ApiError(400, f"{model_id} is not a valid model ID")
    if model.image_api is None:
        raise ApiError(400, f"{model_id} does not support image generation")
    return model, model.image_api


def _image_count(body: dict[str, Any], parameters: dict[str, Any]) -> int:
    """`n` is an upper bound (reference §4.2): the model may return fewer."""
    n = body.get("n", 1)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_IMAGES:
        raise ApiError(400, f"n must be an integer between 1 and {MAX_IMAGES}")
    limit: int = parameters.get("n", {}).get("max", MAX_IMAGES)
    return min(n, limit)


def _validate_enums(body: dict[str, Any], model: ModelSpec, parameters: dict[str, Any]) -> None:
    """Values for parameters the model declares must come from its advertised sets."""
    for name in ENUM_PARAMETERS:
        value = body.get(name)
        declared = parameters.get(name)
        if value is None or declared is None or declared.get("type") != "enum":
            continue
        if value not in declared["values"]:
            allowed = ", ".join(declared["values"])
            raise ApiError(400, f"{name} {value!r} is not supported by {model.id}: {allowed}")


def _megapixels(body: dict[str, Any]) -> float:
    size = body.get("size")
    if isinstance(size, str) and "x" in size:
        width, _, height = size.partition("x")
        if width.isdigit() and height.isdigit():
            return int(width) * int(height) / 1_000_000
    key = body.get("resolution") or (size if isinstance(size, str) else None) or "1K"
    return RESOLUTION_MEGAPIXELS.get(str(key), 1.0)


async def create_images(request: Request, state: StubState, fault: FaultRule | None) -> Response:
    """Reference §4.2: `{"created", "data": [{"b64_json", "media_type"}], "usage"}`.

    The generation id travels in the `X-Generation-Id` header only (the reference shows no
    `id` in the body), so `GET /generation` can cost it.
    """
    body = request.json_object()
    user = end_user(body, state)
    model, image_api = _image_model(body.get("model"))
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ApiError(400, '"prompt" is required')
    parameters: dict[str, Any] = image_api["supported_parameters"]
    if body.get("stream") is True and not image_api["supports_streaming"]:
        raise ApiError(400, f"{model.id} does not support streaming image generation")
    _validate_enums(body, model, parameters)
    count = _image_count(body, parameters)

    first = palette_index(prompt)
    data = [
        {"b64_json": png_base64(first + offset), "media_type": "image/png"}
        for offset in range(count)
    ]
    image_tokens = round(model.image_tokens * _megapixels(body)) * count
    prompt_tokens = (len(prompt) + 3) // 4
    prompt_cost, completion_cost = model.token_cost(
        prompt_tokens, image_tokens, image_tokens=image_tokens
    )
    usage = usage_json(
        prompt_tokens, image_tokens, prompt_cost, completion_cost, image_tokens=image_tokens
    )
    generation = record_generation(
        request,
        state,
        generation_id=new_generation_id(),
        api_type="image",
        model=model,
        usage=usage,
        user=user,
        num_media_completion=count,
    )
    return json_response(
        {"created": int(time.time()), "data": data, "usage": usage},
        headers=[(b"x-generation-id", generation.id.encode())],
    )
