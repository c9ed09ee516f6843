"""OpenRouter access for the whole project: one async client, typed results, one error type.

Section numbers in docstrings refer to shared/reference/openrouter-api.md.
"""

from .client import DEFAULT_BASE_URL, OpenRouterClient
from .errors import OpenRouterError
from .factory import (
    OpenRouterSettings,
    close_openrouter_client,
    get_openrouter_client,
    reset_openrouter_client,
)
from .results import (
    ChatResult,
    ChunkEvent,
    ContentDelta,
    EmbeddingResult,
    GeneratedImage,
    ImageResult,
    KeepAlive,
    ModelInfo,
    ModelKind,
    StreamChunk,
    StreamEnd,
    StreamEvent,
    Usage,
    VideoContent,
    VideoJob,
    VideoStatus,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "ChatResult",
    "ChunkEvent",
    "ContentDelta",
    "EmbeddingResult",
    "GeneratedImage",
    "ImageResult",
    "KeepAlive",
    "ModelInfo",
    "ModelKind",
    "OpenRouterClient",
    "OpenRouterError",
    "OpenRouterSettings",
    "StreamChunk",
    "StreamEnd",
    "StreamEvent",
    "Usage",
    "VideoContent",
    "VideoJob",
    "VideoStatus",
    "close_openrouter_client",
    "get_openrouter_client",
    "reset_openrouter_client",
]
