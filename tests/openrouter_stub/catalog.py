"""The stub's model catalogue: realistic entries shaped like OpenRouter's (reference §2, §4, §5,
§8), and the one place that turns their prices into the `usage.cost` the stub reports.

Ids, modalities, durations and price strings follow captured OpenRouter responses where the
reference has them; the remaining numbers are plausible, not authoritative.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

from .asgi import dumps

SUPPORTED_TEXT_PARAMETERS = [
    "frequency_penalty",
    "max_tokens",
    "presence_penalty",
    "response_format",
    "seed",
    "stop",
    "structured_outputs",
    "temperature",
    "tool_choice",
    "tools",
    "top_p",
]

IMAGE_ASPECT_RATIOS = ["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"]


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model: its public listing plus what the stub needs to answer for it."""

    id: str
    provider: str
    listing: dict[str, Any]
    prompt_price: Decimal
    completion_price: Decimal
    request_price: Decimal
    image_input_price: Decimal
    image_output_price: Decimal
    image_tokens: int
    video: dict[str, Any] | None = None
    image_api: dict[str, Any] | None = None
    embedding: dict[str, Any] | None = None  # {"dimensions": native size, "shortenable": bool}

    @property
    def output_modalities(self) -> list[str]:
        modalities: list[str] = self.listing["architecture"]["output_modalities"]
        return modalities

    @property
    def is_video(self) -> bool:
        return "video" in self.output_modalities

    @property
    def outputs_image(self) -> bool:
        return "image" in self.output_modalities

    def token_cost(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        *,
        image_tokens: int = 0,
        input_images: int = 0,
    ) -> tuple[Decimal, Decimal]:
        """(prompt cost, completion cost) in USD for one call, from the listed `pricing`.

        prompt = prompt_tokens x prompt + input_images x image + request;
        completion = (completion_tokens - image_tokens) x completion + image_tokens x
        image_output. `image_tokens` are the part of `completion_tokens` that are pictures.
        """
        prompt_cost = (
            prompt_tokens * self.prompt_price
            + input_images * self.image_input_price
            + self.request_price
        )
        completion_cost = (
            completion_tokens - image_tokens
        ) * self.completion_price + image_tokens * self.image_output_price
        return prompt_cost, completion_cost


def _model(
    model_id: str,
    *,
    name: str,
    provider: str,
    created: int,
    description: str,
    context_length: int | None,
    inputs: list[str],
    outputs: list[str],
    tokenizer: str,
    pricing: dict[str, str],
    max_completion_tokens: int | None,
    is_moderated: bool,
    supported_parameters: list[str],
    instruct_type: str | None = None,
    hugging_face_id: str = "",
    image_tokens: int = 0,
    video: dict[str, Any] | None = None,
    image_api: dict[str, Any] | None = None,
    embedding: dict[str, Any] | None = None,
) -> ModelSpec:
    """Build a reference §2 `Model` object and its stub-side spec."""
    modality = "+".join(inputs) + "->" + "+".join(outputs)
    listing: dict[str, Any] = {
        "id": model_id,
        "canonical_slug": f"{model_id}-{created}",
        "hugging_face_id": hugging_face_id,
        "name": name,
        "created": created,
        "description": description,
        "context_length": context_length,
        "architecture": {
            "modality": modality,
            "input_modalities": inputs,
            "output_modalities": outputs,
            "tokenizer": tokenizer,
            "instruct_type": instruct_type,
        },
        "pricing": pricing,
        "top_provider": {
            "context_length": context_length,
            "max_completion_tokens": max_completion_tokens,
            "is_moderated": is_moderated,
        },
        "per_request_limits": None,
        "supported_parameters": supported_parameters,
        "default_parameters": {"temperature": None, "top_p": None, "frequency_penalty": None}
        if "text" in outputs
        else None,
        "supported_voices": None,
        "expiration_date": None,
        "knowledge_cutoff": None,
        "links": {"details": f"/api/v1/models/{model_id}/endpoints"},
    }
    if image_api is not None:
        image_api = {
            "id": model_id,
            "name": name,
            "description": description,
            "created": created,
            "architecture": {"input_modalities": inputs, "output_modalities": outputs},
            **image_api,
            "endpoints": f"/api/v1/images/models/{model_id}/endpoints",
        }
    if video is not None:
        video = {
            "id": model_id,
            "canonical_slug": listing["canonical_slug"],
            "hugging_face_id": None,
            "name": name,
            "created": created,
            "description": description,
            **video,
        }
    return ModelSpec(
        id=model_id,
        provider=provider,
        listing=listing,
        prompt_price=Decimal(pricing.get("prompt", "0")),
        completion_price=Decimal(pricing.get("completion", "0")),
        request_price=Decimal(pricing.get("request", "0")),
        image_input_price=Decimal(pricing.get("image", "0")),
        image_output_price=Decimal(pricing.get("image_output", "0")),
        image_tokens=image_tokens,
        video=video,
        image_api=image_api,
        embedding=embedding,
    )


def _video_pricing() -> dict[str, str]:
    return {"prompt": "0", "completion": "0", "request": "0", "image": "0"}


MODELS: tuple[ModelSpec, ...] = (
    # -- text -------------------------------------------------------------------------------
    _model(
        "openai/gpt-4o-mini",
        name="OpenAI: GPT-4o-mini",
        provider="OpenAI",
        created=1721260800,
        description="Synthetic stub entry. GPT-4o mini is OpenAI's small, affordable model.",
        context_length=128000,
        inputs=["text", "image", "file"],
        outputs=["text"],
        tokenizer="GPT",
        pricing={
            "prompt": "0.00000015",
            "completion": "0.0000006",
            "request": "0",
            "image": "0.000217",
            "input_cache_read": "0.000000075",
        },
        max_completion_tokens=16384,
        is_moderated=True,
        supported_parameters=[*SUPPORTED_TEXT_PARAMETERS, "logprobs", "top_logprobs"],
    ),
    _model(
        "anthropic/claude-3.5-haiku",
        name="Anthropic: Claude 3.5 Haiku",
        provider="Anthropic",
        created=1730678400,
        description="Synthetic stub entry. Claude 3.5 Haiku is Anthropic's fastest model.",
        context_length=200000,
        inputs=["text", "image"],
        outputs=["text"],
        tokenizer="Claude",
        pricing={
            "prompt": "0.0000008",
            "completion": "0.000004",
            "request": "0",
            "image": "0",
            "input_cache_read": "0.00000008",
            "input_cache_write": "0.000001",
        },
        max_completion_tokens=8192,
        is_moderated=True,
        supported_parameters=["max_tokens", "stop", "temperature", "tool_choice", "tools", "top_k"],
    ),
    _model(
        "meta-llama/llama-3.1-8b-instruct",
        name="Meta: Llama 3.1 8B Instruct",
        provider="DeepInfra",
        created=1721692800,
        description="Synthetic stub entry. Meta's 8B instruction-tuned Llama 3.1.",
        context_length=131072,
        inputs=["text"],
        outputs=["text"],
        tokenizer="Llama3",
        instruct_type="llama3",
        hugging_face_id="meta-llama/Meta-Llama-3.1-8B-Instruct",
        pricing={"prompt": "0.00000002", "completion": "0.00000005", "request": "0", "image": "0"},
        max_completion_tokens=16384,
        is_moderated=False,
        supported_parameters=[*SUPPORTED_TEXT_PARAMETERS, "min_p", "repetition_penalty", "top_k"],
    ),
    # -- text + image output (chat with modalities ["image","text"]) --------------------------
    _model(
        "google/gemini-2.5-flash-image",
        name="Google: Gemini 2.5 Flash Image (Nano Banana)",
        provider="Google AI Studio",
        created=1759190400,
        description="Synthetic stub entry. Gemini 2.5 Flash Image generates and edits images.",
        context_length=32768,
        inputs=["image", "text"],
        outputs=["image", "text"],
        tokenizer="Gemini",
        pricing={
            "prompt": "0.0000003",
            "completion": "0.0000025",
            "request": "0",
            "image": "0.001238",
            "image_output": "0.00003",
        },
        max_completion_tokens=32768,
        is_moderated=False,
        supported_parameters=["max_tokens", "response_format", "seed", "temperature", "top_p"],
        image_tokens=1290,
        image_api={
            "supported_parameters": {
                "aspect_ratio": {"type": "enum", "values": IMAGE_ASPECT_RATIOS},
                "n": {"type": "range", "min": 1, "max": 1},
                "resolution": {"type": "enum", "values": ["1K"]},
            },
            "supports_streaming": False,
        },
    ),
    _model(
        "openai/gpt-5-image-mini",
        name="OpenAI: GPT-5 Image Mini",
        provider="OpenAI",
        created=1760400000,
        description="Synthetic stub entry. GPT-5 Mini with GPT Image 1 Mini image generation.",
        context_length=400000,
        inputs=["file", "image", "text"],
        outputs=["image", "text"],
        tokenizer="GPT",
        pricing={
            "prompt": "0.0000025",
            "completion": "0.000002",
            "request": "0",
            "image": "0.0000025",
            "image_output": "0.000008",
        },
        max_completion_tokens=128000,
        is_moderated=True,
        supported_parameters=["max_tokens", "response_format", "seed", "structured_outputs"],
        image_tokens=1056,
        image_api={
            "supported_parameters": {
                "aspect_ratio": {"type": "enum", "values": ["1:1", "3:2", "2:3", "auto"]},
                "n": {"type": "range", "min": 1, "max": 4},
                "quality": {"type": "enum", "values": ["auto", "low", "medium", "high"]},
            },
            "supports_streaming": False,
        },
    ),
    # -- image only (chat with modalities ["image"], or POST /images) -------------------------
    _model(
        "black-forest-labs/flux.2-klein-4b",
        name="Black Forest Labs: FLUX.2 [klein] 4B",
        provider="Black Forest Labs",
        created=1768435200,
        description="Synthetic stub entry. FLUX.2 klein 4B, a fast text-to-image model.",
        context_length=40960,
        inputs=["text", "image"],
        outputs=["image"],
        tokenizer="Other",
        pricing={
            "prompt": "0",
            "completion": "0",
            "request": "0",
            "image": "0",
            "image_output": "0.000003418",
        },
        max_completion_tokens=None,
        is_moderated=False,
        supported_parameters=["seed"],
        image_tokens=4096,
        image_api={
            "supported_parameters": {
                "aspect_ratio": {"type": "enum", "values": IMAGE_ASPECT_RATIOS},
                "n": {"type": "range", "min": 1, "max": 1},
                "output_format": {"type": "enum", "values": ["png", "jpeg"]},
                "seed": {"type": "boolean"},
            },
            "supports_streaming": False,
        },
    ),
    _model(
        "bytedance-seed/seedream-4.5",
        name="ByteDance Seed: Seedream 4.5",
        provider="Seed",
        created=1764892800,
        description="Synthetic stub entry. Seedream 4.5 is ByteDance's image generation model.",
        context_length=4096,
        inputs=["image", "text"],
        outputs=["image"],
        tokenizer="Other",
        pricing={
            "prompt": "0",
            "completion": "0",
            "request": "0",
            "image": "0",
            "image_output": "0.000009766",
        },
        max_completion_tokens=None,
        is_moderated=False,
        supported_parameters=["seed"],
        image_tokens=4096,
        image_api={
            "supported_parameters": {
                "aspect_ratio": {"type": "enum", "values": IMAGE_ASPECT_RATIOS},
                "n": {"type": "range", "min": 1, "max": 4},
                "resolution": {"type": "enum", "values": ["1K", "2K", "4K"]},
                "seed": {"type": "boolean"},
            },
            "supports_streaming": False,
        },
    ),
    # -- video (POST /videos) ------------------------------------------------------------------
    _model(
        "google/veo-3.1-fast",
        name="Google: Veo 3.1 Fast",
        provider="Google Vertex",
        created=1776994666,
        description="Synthetic stub entry. Veo 3.1 Fast generates video with native audio.",
        context_length=None,
        inputs=["text", "image"],
        outputs=["video"],
        tokenizer="Other",
        pricing=_video_pricing(),
        max_completion_tokens=None,
        is_moderated=False,
        supported_parameters=[],
        video={
            "supported_resolutions": ["720p", "1080p", "4K"],
            "supported_aspect_ratios": ["16:9", "9:16"],
            "supported_sizes": [
                "1280x720",
                "1080x1920",
                "1920x1080",
                "720x1280",
                "3840x2160",
                "2160x3840",
            ],
            "supported_durations": [4, 6, 8],
            "supported_frame_images": ["first_frame", "last_frame"],
            "generate_audio": True,
            "seed": True,
            "pricing_skus": {
                "duration_seconds_with_audio": "0.12",
                "duration_seconds_with_audio_4k": "0.30",
                "duration_seconds_without_audio": "0.10",
                "duration_seconds_with_audio_720p": "0.10",
                "duration_seconds_without_audio_4k": "0.25",
                "duration_seconds_without_audio_720p": "0.08",
            },
            "allowed_passthrough_parameters": [
                "personGeneration",
                "aspectRatio",
                "negativePrompt",
                "conditioningScale",
                "enhancePrompt",
            ],
        },
    ),
    _model(
        "openai/sora-2-pro",
        name="OpenAI: Sora 2 Pro",
        provider="OpenAI",
        created=1774277521,
        description="Synthetic stub entry. Sora 2 Pro; no first/last frame control.",
        context_length=None,
        inputs=["text", "image"],
        outputs=["video"],
        tokenizer="Other",
        pricing=_video_pricing(),
        max_completion_tokens=None,
        is_moderated=True,
        supported_parameters=[],
        video={
            "supported_resolutions": ["720p", "1080p"],
            "supported_aspect_ratios": ["16:9", "9:16"],
            "supported_sizes": ["1280x720", "1080x1920", "1920x1080", "720x1280"],
            "supported_durations": [4, 8, 12, 16, 20],
            "supported_frame_images": None,
            "generate_audio": True,
            "seed": False,
            "pricing_skus": {
                "duration_seconds_720p": "0.30",
                "duration_seconds_1024p": "0.50",
                "duration_seconds_1080p": "0.50",
            },
            "allowed_passthrough_parameters": ["quality", "style"],
        },
    ),
    _model(
        "kwaivgi/kling-v3.0-pro",
        name="Kling: Video v3.0 Pro",
        provider="Kling",
        created=1777496206,
        description="Synthetic stub entry. Kling v3.0 Pro with first/last frame control.",
        context_length=None,
        inputs=["text", "image"],
        outputs=["video"],
        tokenizer="Other",
        pricing=_video_pricing(),
        max_completion_tokens=None,
        is_moderated=False,
        supported_parameters=[],
        video={
            "supported_resolutions": ["720p"],
            "supported_aspect_ratios": ["16:9", "9:16", "1:1"],
            "supported_sizes": ["1280x720", "720x1280", "720x720"],
            "supported_durations": list(range(3, 16)),
            "supported_frame_images": ["first_frame", "last_frame"],
            "generate_audio": True,
            "seed": False,
            "pricing_skus": {
                "duration_seconds": "0.112",
                "duration_seconds_with_audio": "0.168",
            },
            "allowed_passthrough_parameters": ["negative_prompt", "cfg_scale"],
        },
    ),
    # -- embeddings (POST /embeddings; reference §8) ----------------------------------------
    _model(
        "openai/text-embedding-3-small",
        name="OpenAI: Text Embedding 3 Small",
        provider="OpenAI",
        created=1705953600,
        description="Synthetic stub entry. OpenAI's small third-generation embedding model.",
        context_length=8192,
        inputs=["text"],
        outputs=["embeddings"],
        tokenizer="GPT",
        pricing={"prompt": "0.00000002", "completion": "0", "request": "0", "image": "0"},
        max_completion_tokens=None,
        is_moderated=False,
        supported_parameters=["dimensions", "encoding_format"],
        embedding={"dimensions": 1536, "shortenable": True},
    ),
    _model(
        "mistralai/mistral-embed-2312",
        name="Mistral: Mistral Embed 2312",
        provider="Mistral",
        created=1702425600,
        description="Synthetic stub entry. Mistral's 1024-dimension text embedding model.",
        context_length=8192,
        inputs=["text"],
        outputs=["embeddings"],
        tokenizer="Mistral",
        pricing={"prompt": "0.0000001", "completion": "0", "request": "0", "image": "0"},
        max_completion_tokens=None,
        is_moderated=False,
        supported_parameters=["encoding_format"],
        embedding={"dimensions": 1024, "shortenable": False},
    ),
)

MODELS_BY_ID: dict[str, ModelSpec] = {model.id: model for model in MODELS}
DEFAULT_CHAT_MODEL = "openai/gpt-4o-mini"
KNOWN_OUTPUT_MODALITIES = frozenset(
    {"text", "image", "audio", "embeddings", "video", "rerank", "speech", "transcription"}
)


# `size` (WxH) -> the resolution name its shorter side stands for, for SKU lookup.
RESOLUTION_BY_SHORT_SIDE = {
    480: "480p",
    720: "720p",
    768: "768p",
    1024: "1024p",
    1080: "1080p",
    2160: "4k",
}


def video_resolution(resolution: Any, size: Any) -> str | None:
    """The resolution a video request asked for, from `resolution` or from `size`."""
    if isinstance(resolution, str) and resolution:
        return resolution.lower()
    if isinstance(size, str) and "x" in size:
        width, _, height = size.partition("x")
        if width.isdigit() and height.isdigit():
            return RESOLUTION_BY_SHORT_SIDE.get(min(int(width), int(height)))
    return None


def video_price_per_second(video: dict[str, Any], resolution: str | None, audio: bool) -> Decimal:
    """The most specific `pricing_skus` entry for a job (reference §5; USD per second).

    Tried in order: `duration_seconds_{with|without}_audio_{res}`, `duration_seconds_{res}`,
    `duration_seconds_{with|without}_audio`, `duration_seconds`; a job that names no
    resolution and matches none of those is priced at the model's first resolution.
    """
    skus: dict[str, str] = video["pricing_skus"]
    audio_key = "with_audio" if audio else "without_audio"

    def keys(res: str | None) -> list[str]:
        specific = [f"duration_seconds_{audio_key}_{res}", f"duration_seconds_{res}"] if res else []
        return [*specific, f"duration_seconds_{audio_key}", "duration_seconds"]

    candidates = keys(resolution)
    if resolution is None:
        default = video["supported_resolutions"][0].lower()
        candidates += [f"duration_seconds_{audio_key}_{default}", f"duration_seconds_{default}"]
    for key in candidates:
        if key in skus:
            return Decimal(skus[key])
    raise LookupError(f"{video['id']} has no price for {resolution or 'default'} resolution")


def parse_output_modalities(raw: str | None) -> frozenset[str] | None:
    """Reference §2: `output_modalities` comma list, default `text`; None means `all`."""
    if raw is None or raw.strip() == "":
        return frozenset({"text"})
    requested = {part.strip().lower() for part in raw.split(",") if part.strip()}
    if "all" in requested:
        return None
    return frozenset(requested)


def filter_models(
    modalities: frozenset[str] | None, supported_parameters: frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    """Models whose output modalities intersect the requested ones (None = all)."""
    return [
        model.listing
        for model in MODELS
        if (modalities is None or modalities.intersection(model.output_modalities))
        and supported_parameters.issubset(model.listing["supported_parameters"])
    ]


@cache
def models_list_body(modalities: frozenset[str] | None) -> bytes:
    """Precomputed `GET /models` body for one modality filter (reference §2)."""
    data = filter_models(modalities)
    return dumps({"data": data, "total_count": len(data), "links": {"next": None}})


@cache
def video_models_body() -> bytes:
    """Precomputed `GET /videos/models` body (reference §5)."""
    return dumps({"data": [model.video for model in MODELS if model.video is not None]})


@cache
def embedding_models_body() -> bytes:
    """Precomputed `GET /embeddings/models` body (reference §8): `Model` objects."""
    return dumps({"data": filter_models(frozenset({"embeddings"}))})


@cache
def image_models_body() -> bytes:
    """Precomputed `GET /images/models` body (reference §2, related discovery endpoints)."""
    return dumps({"data": [model.image_api for model in MODELS if model.image_api is not None]})
