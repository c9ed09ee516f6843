"""Mutable stub state: settings, fault rules, the request log, generations and video jobs."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

REQUEST_LOG_SIZE = 1000
USER_LOG_SIZE = 1000
MAX_VIDEO_JOBS = 10_000
MAX_GENERATIONS = 10_000
VIDEO_OUTCOMES = frozenset({"completed", "failed", "cancelled", "expired"})
RULE_FIELDS = frozenset(
    {
        "path",
        "model",
        "status",
        "message",
        "metadata",
        "retry_after",
        "delay",
        "break_stream_after",
        "drop_connection",
        "times",
        "video_outcome",
        "error",
        "forget_video_after",
    }
)
# Global settings: seconds (non-negative numbers) and switches (booleans).
SECONDS_SETTINGS = frozenset(
    {"latency", "token_delay", "video_seconds", "keepalive_interval", "generation_stats_lag"}
)
SWITCH_SETTINGS = frozenset({"require_user"})
SETTING_FIELDS = SECONDS_SETTINGS | SWITCH_SETTINGS
MIN_KEEPALIVE_INTERVAL = 0.01


class RuleError(ValueError):
    """A control request described a fault rule the stub does not understand."""


@dataclass(slots=True)
class FaultRule:
    """One injected fault; matches requests by path prefix and, optionally, model."""

    path: str = "/api/v1/"
    model: str | None = None
    status: int | None = None
    message: str | None = None
    metadata: dict[str, Any] | None = None
    retry_after: float | None = None
    delay: float = 0.0
    break_stream_after: int | None = None
    drop_connection: bool = False
    times: int | None = None
    video_outcome: str | None = None
    error: str | None = None
    forget_video_after: int | None = None
    hits: int = 0

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> FaultRule:
        unknown = set(raw) - RULE_FIELDS
        if unknown:
            raise RuleError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        rule = cls(**raw)
        if rule.video_outcome is not None and rule.video_outcome not in VIDEO_OUTCOMES:
            raise RuleError(f"video_outcome must be one of {sorted(VIDEO_OUTCOMES)}")
        if rule.forget_video_after is not None and (
            not isinstance(rule.forget_video_after, int) or rule.forget_video_after < 0
        ):
            raise RuleError("forget_video_after must be a number of polls (>= 0)")
        if rule.is_video_rule and "path" not in raw:
            rule.path = "/api/v1/videos"
        if rule.status is not None and not 400 <= rule.status <= 599:
            raise RuleError("status must be an HTTP error status (400-599)")
        if rule.times is not None and rule.times < 1:
            raise RuleError("times must be a positive integer")
        if rule.break_stream_after is not None and rule.break_stream_after < 0:
            raise RuleError("break_stream_after must be >= 0")
        return rule

    @property
    def is_video_rule(self) -> bool:
        """Applies to the next video jobs when they are created, not to a request."""
        return self.video_outcome is not None or self.forget_video_after is not None

    def matches(self, path: str, model: str | None) -> bool:
        return path.startswith(self.path) and (self.model is None or self.model == model)

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass(slots=True)
class VideoJob:
    """A submitted video job; its status follows the clock (reference §5)."""

    id: str
    model: str
    generation_id: str
    created: float
    duration_total: float
    cost: float
    outcome: str = "completed"
    error: str | None = None
    user: str | None = None
    polls: int = 0  # GET /videos/{id}, answered or not
    downloads: int = 0  # GET /videos/{id}/content, answered or not
    forget_after_polls: int | None = None  # polls answered before the job "disappears"

    def status(self, now: float) -> str:
        elapsed = now - self.created
        if elapsed >= self.duration_total:
            return self.outcome
        if elapsed < self.duration_total / 3:
            return "pending"
        return "in_progress"

    @property
    def forgotten(self) -> bool:
        """True once the upstream answers 404 for this job (the forget fault)."""
        return self.forget_after_polls is not None and self.polls >= self.forget_after_polls

    def to_json(self, now: float) -> dict[str, Any]:
        """What a test reads through `/_stub/videos`: the job's state and its counters."""
        return {
            "id": self.id,
            "model": self.model,
            "generation_id": self.generation_id,
            "status": self.status(now),
            "outcome": self.outcome,
            "cost": self.cost,
            "user": self.user,
            "polls": self.polls,
            "downloads": self.downloads,
            "forgotten": self.forgotten,
        }


@dataclass(slots=True)
class Generation:
    """One generation the stub produced: what `GET /generation` reports (reference §7, §8).

    Recorded when the answer is decided, so a stream the client abandons still has its full
    would-be cost; `abandoned` says the client hung up before the stream finished.
    """

    id: str
    api_type: str  # completions | embeddings | image | video
    model: str
    provider: str
    cost: float
    tokens_prompt: int
    tokens_completion: int
    ready_at: float  # monotonic time from which `GET /generation` finds it
    created_at: float = field(default_factory=time.time)
    streamed: bool = False
    finish_reason: str | None = "stop"
    image_tokens: int = 0
    num_media_prompt: int | None = None
    num_media_completion: int | None = None
    user: str | None = None
    http_referer: str | None = None
    user_agent: str | None = None
    stream_finished: bool = False  # the closing events were produced
    abandoned: bool = False  # the client disconnected mid-stream
    events_sent: int = 0  # body chunks written before the client hung up

    def stats_json(self) -> dict[str, Any]:
        """`GET /generation?id=` `data` (field set of OpenRouter's GenerationResponse)."""
        latency_ms = 10
        return {
            "id": self.id,
            "upstream_id": f"stub-{self.id}",
            "request_id": f"req-{self.id.removeprefix('gen-')}",
            "total_cost": self.cost,
            "usage": self.cost,
            "cache_discount": None,
            "upstream_inference_cost": None,
            "is_byok": False,
            "created_at": datetime.fromtimestamp(self.created_at, UTC).isoformat(),
            "model": self.model,
            "app_id": None,
            "provider_name": self.provider,
            "provider_responses": None,
            "streamed": self.streamed,
            "cancelled": self.abandoned,
            "latency": latency_ms,
            "moderation_latency": None,
            "generation_time": latency_ms,
            "finish_reason": self.finish_reason,
            "native_finish_reason": self.finish_reason,
            "tokens_prompt": self.tokens_prompt,
            "tokens_completion": self.tokens_completion,
            "native_tokens_prompt": self.tokens_prompt,
            "native_tokens_completion": self.tokens_completion,
            "native_tokens_completion_images": self.image_tokens or None,
            "native_tokens_reasoning": 0,
            "native_tokens_cached": 0,
            "num_media_prompt": self.num_media_prompt,
            "num_media_completion": self.num_media_completion,
            "num_input_audio_prompt": None,
            "num_search_results": None,
            "num_fetches": None,
            "origin": self.http_referer or "",
            "http_referer": self.http_referer,
            "user_agent": self.user_agent,
            "external_user": self.user,
            "api_type": self.api_type,
            "router": None,
            "preset_id": None,
            "service_tier": None,
            "web_search_engine": None,
            "workspace_id": None,
        }

    def to_json(self) -> dict[str, Any]:
        """What a test reads through `/_stub/generations`: the stats plus the stream's fate."""
        return {
            **self.stats_json(),
            "abandoned": self.abandoned,
            "stream_finished": self.stream_finished,
            "events_sent": self.events_sent,
        }


@dataclass(frozen=True, slots=True)
class UserSeen:
    """The `user` field of one generation request (None when the request had none)."""

    at: float
    path: str
    model: str | None
    user: Any

    def to_json(self) -> dict[str, Any]:
        return {"time": self.at, "path": self.path, "model": self.model, "user": self.user}


@dataclass(slots=True)
class LoggedRequest:
    """Raw facts about one request; turned into JSON only when the log is read."""

    at: float
    method: str
    path: str
    query: dict[str, str]
    headers: list[tuple[bytes, bytes]]
    auth_present: bool
    auth_valid: bool
    body: Any

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.at,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": {
                key.decode("latin-1"): value.decode("latin-1")
                for key, value in self.headers
                if key != b"authorization"
            },
            "auth": {"present": self.auth_present, "valid": self.auth_valid},
            "json": self.body,
        }


@dataclass
class StubState:
    """Everything the stub remembers; shared by the ASGI app and the controlling test."""

    api_key: str
    video_seconds: float = 3.0
    latency: float = 0.0
    token_delay: float = 0.0
    keepalive_interval: float = 1.0  # `: OPENROUTER PROCESSING` while a stream waits
    generation_stats_lag: float = 0.0  # `GET /generation` answers 404 this long at first
    require_user: bool = False  # refuse generation requests without a non-empty `user`
    faults: list[FaultRule] = field(default_factory=list)
    requests: deque[LoggedRequest] = field(default_factory=lambda: deque(maxlen=REQUEST_LOG_SIZE))
    users: deque[UserSeen] = field(default_factory=lambda: deque(maxlen=USER_LOG_SIZE))
    jobs: OrderedDict[str, VideoJob] = field(default_factory=OrderedDict)
    generations: OrderedDict[str, Generation] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _initial: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._initial = self.settings()

    def settings(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in sorted(SETTING_FIELDS)}

    def update_settings(self, values: dict[str, Any]) -> None:
        """Validate every value first, so a bad request changes nothing."""
        for key, value in values.items():
            if key not in SETTING_FIELDS:
                raise RuleError(f"unknown setting: {key}")
            if key in SWITCH_SETTINGS:
                if not isinstance(value, bool):
                    raise RuleError(f"{key} must be true or false")
            elif not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise RuleError(f"{key} must be a non-negative number of seconds")
            elif key == "keepalive_interval" and value < MIN_KEEPALIVE_INTERVAL:
                raise RuleError(f"keepalive_interval must be at least {MIN_KEEPALIVE_INTERVAL}")
        for key, value in values.items():
            setattr(self, key, value if key in SWITCH_SETTINGS else float(value))

    def add_faults(self, raw: dict[str, Any] | list[dict[str, Any]]) -> list[FaultRule]:
        """Accept rules and/or global settings (`{"latency": 2}`), as POST /_stub/faults does."""
        items = raw if isinstance(raw, list) else [raw]
        rules: list[FaultRule] = []
        settings: dict[str, Any] = {}
        for item in items:
            if not isinstance(item, dict):
                raise RuleError("each fault must be a JSON object")
            if set(item) <= SETTING_FIELDS:
                settings.update(item)
            else:
                rules.append(FaultRule.from_json(item))
        self.update_settings(settings)
        with self._lock:
            self.faults.extend(rules)
        return rules

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def take_fault(self, path: str, model: str | None) -> FaultRule | None:
        """The first live request fault matching, with one use consumed."""
        if not self.faults:
            return None
        return self._take(path, model, video=False)

    def take_video_rule(self, model: str) -> FaultRule | None:
        """The first live rule about how the next video job of `model` ends or disappears."""
        if not self.faults:
            return None
        return self._take("/api/v1/videos", model, video=True)

    def _take(self, path: str, model: str | None, *, video: bool) -> FaultRule | None:
        with self._lock:
            for rule in self.faults:
                if rule.is_video_rule == video and rule.matches(path, model):
                    rule.hits += 1
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times == 0:
                            self.faults.remove(rule)
                    return rule
        return None

    def add_job(self, job: VideoJob) -> None:
        self.jobs[job.id] = job
        while len(self.jobs) > MAX_VIDEO_JOBS:
            self.jobs.popitem(last=False)

    def add_generation(self, generation: Generation) -> None:
        self.generations[generation.id] = generation
        while len(self.generations) > MAX_GENERATIONS:
            self.generations.popitem(last=False)

    def note_user(self, path: str, model: Any, user: Any) -> None:
        """Remember the `user` field of a generation request (reference §8)."""
        self.users.append(
            UserSeen(time.time(), path, model if isinstance(model, str) else None, user)
        )

    def log_json(self) -> list[dict[str, Any]]:
        return [entry.to_json() for entry in list(self.requests)]

    def users_json(self, path: str = "") -> list[dict[str, Any]]:
        return [seen.to_json() for seen in list(self.users) if seen.path.startswith(path)]

    def reset(self) -> None:
        """Forget faults, logged requests, users, generations and jobs; restore settings."""
        self.clear_faults()
        self.requests.clear()
        self.users.clear()
        self.jobs.clear()
        self.generations.clear()
        for key, value in self._initial.items():
            setattr(self, key, value)

    @staticmethod
    def now() -> float:
        return time.monotonic()
