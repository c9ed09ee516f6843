"""The most a call can cost, from the catalogue's prices, before it is made (decision 41).

A budget is only safe if the gateway reserves an upper bound of each call's cost, so every
estimate here errs high:
- prompt tokens: the request's text in UTF-8 bytes (a byte-level tokenizer never makes
  more tokens than bytes) plus 8 per message, and IMAGE_INPUT_TOKENS per attached image;
- completion tokens: `max_tokens` (or `max_completion_tokens`), else the configurable
  cap `BUDGET_DEFAULT_MAX_TOKENS`, which is then sent upstream as `max_tokens`, times `n`;
  priced at the higher of the completion and reasoning prices;
- images: IMAGE_TOKENS_PER_MEGAPIXEL x the requested size's megapixels x the count, at
  `image_output`, plus the model's per-request and per-input-image prices;
- videos: the seconds asked for (else the model's longest) x the dearest per-second
  `pricing_skus` entry that fits the requested resolution and audio.
OpenRouter's prices are USD strings per token, image, request or second (reference §2, §5);
a negative price (the auto router's "-1") means the price is unknown: such a model cannot
be bounded, so it cannot be used under a budget.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from generation.openrouter import ModelInfo

TOKENS_PER_MESSAGE = 8
IMAGE_INPUT_TOKENS = 2_000
IMAGE_TOKENS_PER_MEGAPIXEL = 4_096  # the most seen for a 1-megapixel picture
IMAGE_SIZE_MEGAPIXELS = {"0.5k": 0.25, "512": 0.25, "1k": 1.0, "2k": 4.0, "4k": 16.0}
DEFAULT_VIDEO_SECONDS = 20  # for a video model that lists no durations
_RESOLUTION = re.compile(r"^(\d+p|\d+k)$")


class Unpriceable(Exception):
    """The catalogue gives no usable price for this model."""


@dataclass(frozen=True)
class Demand:
    """What a call asks of a model: enough to bound its price."""

    prompt_tokens: int = 0
    input_images: int = 0
    max_tokens: int | None = None  # the completion cap the client set, if any
    choices: int = 1
    images: int = 0  # pictures asked for
    megapixels: float = 1.0  # per picture
    video_seconds: int | None = None
    resolution: str | None = None
    audio: bool | None = None


def _text(value: Any) -> tuple[int, int]:
    """(UTF-8 bytes of the text, attached images) anywhere in a message's JSON."""
    if isinstance(value, str):
        return len(value.encode()), 0
    if isinstance(value, Mapping):
        size = images = 0
        for key, item in value.items():
            if key in ("image_url", "input_audio", "file") and not isinstance(item, str):
                images += 1
                continue
            text, inner = _text(item)
            size, images = size + text, images + inner
        return size, images
    if isinstance(value, (list, tuple)):
        size = images = 0
        for item in value:
            text, inner = _text(item)
            size, images = size + text, images + inner
        return size, images
    return len(json.dumps(value)) if value is not None else 0, 0


def chat_demand(
    messages: Iterable[Mapping[str, Any]],
    *,
    max_tokens: int | None = None,
    choices: int = 1,
    tools: Any = None,
) -> Demand:
    size = count = images = 0
    for message in messages:
        text, inner = _text(message)
        size, images, count = size + text, images + inner, count + 1
    size += _text(tools)[0]
    return Demand(
        prompt_tokens=size + TOKENS_PER_MESSAGE * count, input_images=images,
        max_tokens=max_tokens, choices=max(1, choices),
    )  # fmt: skip


def embedding_demand(inputs: Any) -> Demand:
    """Strings by their bytes, token arrays by their length."""
    items = [inputs] if isinstance(inputs, str) else list(inputs)
    tokens = 0
    for item in items:
        if isinstance(item, str):
            tokens += len(item.encode())
        elif isinstance(item, int):
            tokens += 1
        else:
            tokens += len(item)
    return Demand(prompt_tokens=tokens, max_tokens=0)


def image_demand(prompt: str, options: Mapping[str, Any]) -> Demand:
    return Demand(
        prompt_tokens=len(prompt.encode()) + TOKENS_PER_MESSAGE,
        images=int(options.get("n") or 1),
        megapixels=_megapixels(options.get("image_size"), options.get("size")),
    )


def _megapixels(image_size: Any, size: Any) -> float:
    if isinstance(size, str) and "x" in size:
        width, _, height = size.partition("x")
        if width.isdigit() and height.isdigit():
            return max(1.0, int(width) * int(height) / 1_000_000)
    if isinstance(image_size, str):
        return IMAGE_SIZE_MEGAPIXELS.get(image_size.lower(), 16.0)
    return 1.0


def video_demand(prompt: str, options: Mapping[str, Any]) -> Demand:
    audio = options.get("generate_audio")
    resolution = options.get("resolution")
    return Demand(
        prompt_tokens=len(prompt.encode()),
        video_seconds=options.get("duration"),
        resolution=resolution.lower() if isinstance(resolution, str) else None,
        audio=audio if isinstance(audio, bool) else None,
    )


def _price(pricing: Mapping[str, str], key: str) -> float:
    try:
        value = float(pricing.get(key) or 0)
    except ValueError:
        raise Unpriceable(key) from None
    if value < 0 or not math.isfinite(value):
        raise Unpriceable(key)
    return value


def completion_cap(demand: Demand, default_cap: int) -> int:
    return demand.max_tokens if demand.max_tokens is not None else default_cap


def upper_bound(model: ModelInfo, demand: Demand, *, default_cap: int) -> float:
    """The most this call can cost in USD; Unpriceable if the catalogue cannot say."""
    if model.kind == "video":
        return _video_bound(model, demand)
    pricing = model.pricing
    cost = (
        demand.prompt_tokens * _price(pricing, "prompt")
        + demand.input_images * (_price(pricing, "image") + IMAGE_INPUT_TOKENS * _price(pricing, "prompt"))
        + _price(pricing, "request")
    )  # fmt: skip
    completion = max(_price(pricing, "completion"), _price(pricing, "internal_reasoning"))
    if model.kind == "image":
        pictures = demand.images * math.ceil(IMAGE_TOKENS_PER_MEGAPIXEL * demand.megapixels)
        cost += pictures * max(_price(pricing, "image_output"), completion)
        if "text" in model.output_modalities:
            cost += completion_cap(demand, default_cap) * completion
        return cost
    if model.kind == "embedding":
        return cost
    return cost + demand.choices * completion_cap(demand, default_cap) * completion


def _video_bound(model: ModelInfo, demand: Demand) -> float:
    seconds = demand.video_seconds or max(model.durations, default=DEFAULT_VIDEO_SECONDS)
    skus = [_sku(key) for key in model.pricing if key.startswith("duration_seconds")]
    fitting = [sku for sku in skus if _fits(sku, demand)] or skus
    # The most specific price applies: one naming the requested resolution (or audio)
    # beats one that names none.
    if demand.resolution and any(res == demand.resolution for _, res, _ in fitting):
        fitting = [sku for sku in fitting if sku[1] == demand.resolution]
    if demand.audio is not None and any(audio is not None for _, _, audio in fitting):
        fitting = [sku for sku in fitting if sku[2] is not None]
    if not fitting:
        raise Unpriceable("duration_seconds")
    return seconds * max(_price(model.pricing, key) for key, _, _ in fitting)


def _sku(key: str) -> tuple[str, str | None, bool | None]:
    """`duration_seconds[_with_audio|_without_audio][_<resolution>]` as (key, resolution,
    audio)."""
    rest = key.removeprefix("duration_seconds").strip("_")
    parts = rest.split("_") if rest else []
    resolution = parts[-1] if parts and _RESOLUTION.match(parts[-1]) else None
    audio = False if "without" in parts else True if "with" in parts else None
    return key, resolution, audio


def _fits(sku: tuple[str, str | None, bool | None], demand: Demand) -> bool:
    """A part the request leaves open fits any value (the dearest one is then taken)."""
    _, resolution, audio = sku
    if demand.resolution and resolution and resolution != demand.resolution:
        return False
    return demand.audio is None or audio is None or audio == demand.audio
