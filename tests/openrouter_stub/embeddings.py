"""`POST /api/v1/embeddings` (reference §8; openai-compat reference "Embeddings").

Vectors are deterministic: unit vectors drawn from a generator seeded by the model and the
input, so equal inputs embed equally. `dimensions` keeps the first N components of the
native vector and renormalises them, the way shortened OpenAI embeddings behave. Values
are float32-exact, so `encoding_format: "base64"` (little-endian float32) decodes to the
very numbers `"float"` would have listed.
"""

from __future__ import annotations

import base64
import math
import random
import struct
from typing import Any

from .accounting import end_user, new_generation_id, record_generation, usage_json
from .asgi import ApiError, Request, Response, json_response
from .catalog import MODELS_BY_ID, ModelSpec
from .state import FaultRule, StubState

ENCODING_FORMATS = frozenset({"float", "base64"})
MAX_INPUTS = 2048


def _embedding_model(model_id: Any) -> ModelSpec:
    if not isinstance(model_id, str) or not model_id:
        raise ApiError(400, '"model" is required')
    model = MODELS_BY_ID.get(model_id)
    if model is None:
        raise ApiError(400, f"{model_id} is not a valid model ID")
    if model.embedding is None:
        raise ApiError(400, f"{model_id} is not an embedding model")
    return model


def _is_tokens(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in value)
    )


def _inputs(raw: Any) -> list[str | list[int]]:
    """`input`: a string, strings, a token array, or token arrays; nothing empty."""
    if isinstance(raw, str) or _is_tokens(raw):
        items: list[Any] = [raw]
    elif isinstance(raw, list) and raw:
        items = raw
    else:
        raise ApiError(400, 'Input required: "input" must be a string or a non-empty array')
    if len(items) > MAX_INPUTS:
        raise ApiError(400, f"input may hold at most {MAX_INPUTS} items")
    for index, item in enumerate(items):
        if not (isinstance(item, str) and item) and not _is_tokens(item):
            raise ApiError(400, f"input[{index}] must be a non-empty string or token array")
    return items


def _dimensions(body: dict[str, Any], model: ModelSpec) -> int:
    native: int = model.embedding["dimensions"] if model.embedding else 0
    value = body.get("dimensions")
    if value is None:
        return native
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= native:
        raise ApiError(400, f"dimensions must be an integer between 1 and {native}")
    if model.embedding and not model.embedding["shortenable"] and value != native:
        raise ApiError(400, f"{model.id} does not support the dimensions parameter")
    return value


def token_count(item: str | list[int]) -> int:
    """Token arrays count as they are; text at ~4 characters per token."""
    return len(item) if isinstance(item, list) else max(1, (len(item) + 3) // 4)


def embedding_vector(model_id: str, item: str | list[int], native: int, size: int) -> list[float]:
    """The stub's embedding of one input: a float32-exact unit vector of `size` components."""
    seed_text = item if isinstance(item, str) else "tokens:" + ",".join(map(str, item))
    generator = random.Random(f"{model_id}\x00{seed_text}")
    values = [generator.gauss(0.0, 1.0) for _ in range(native)][:size]
    norm = math.sqrt(sum(value * value for value in values)) or 1.0
    packed = struct.pack(f"<{size}f", *(value / norm for value in values))
    return list(struct.unpack(f"<{size}f", packed))


def _encode(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


async def create_embeddings(
    request: Request, state: StubState, fault: FaultRule | None
) -> Response:
    """`{object: "list", data: [{object: "embedding", embedding, index}], model, id, usage}`."""
    body = request.json_object()
    user = end_user(body, state)
    model = _embedding_model(body.get("model"))
    items = _inputs(body.get("input"))
    encoding = body.get("encoding_format", "float")
    if encoding not in ENCODING_FORMATS:
        raise ApiError(400, 'encoding_format must be "float" or "base64"')
    size = _dimensions(body, model)
    native = model.embedding["dimensions"] if model.embedding else size

    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": _encode(embedding_vector(model.id, item, native, size), encoding),
        }
        for index, item in enumerate(items)
    ]
    prompt_tokens = sum(token_count(item) for item in items)
    prompt_cost, completion_cost = model.token_cost(prompt_tokens, 0)
    usage = usage_json(prompt_tokens, 0, prompt_cost, completion_cost)
    generation = record_generation(
        request,
        state,
        generation_id=new_generation_id(),
        api_type="embeddings",
        model=model,
        usage=usage,
        user=user,
        finish_reason=None,
    )
    payload = {
        "id": generation.id,
        "object": "list",
        "data": data,
        "model": model.id,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "total_tokens": prompt_tokens,
            "cost": usage["cost"],
            "is_byok": False,
        },
    }
    return json_response(payload, headers=[(b"x-generation-id", generation.id.encode())])
