"""Mutable stub state: settings, fault rules, the request log and video jobs."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass, field
from typing import Any

REQUEST_LOG_SIZE = 1000
MAX_VIDEO_JOBS = 10_000
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
    }
)
SETTING_FIELDS = frozenset({"latency", "token_delay", "video_seconds"})


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
    hits: int = 0

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> FaultRule:
        unknown = set(raw) - RULE_FIELDS
        if unknown:
            raise RuleError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        rule = cls(**raw)
        if rule.video_outcome is not None:
            if rule.video_outcome not in VIDEO_OUTCOMES:
                raise RuleError(f"video_outcome must be one of {sorted(VIDEO_OUTCOMES)}")
            if "path" not in raw:
                rule.path = "/api/v1/videos"
        if rule.status is not None and not 400 <= rule.status <= 599:
            raise RuleError("status must be an HTTP error status (400-599)")
        if rule.times is not None and rule.times < 1:
            raise RuleError("times must be a positive integer")
        if rule.break_stream_after is not None and rule.break_stream_after < 0:
            raise RuleError("break_stream_after must be >= 0")
        return rule

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

    def status(self, now: float) -> str:
        elapsed = now - self.created
        if elapsed >= self.duration_total:
            return self.outcome
        if elapsed < self.duration_total / 3:
            return "pending"
        return "in_progress"


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
    faults: list[FaultRule] = field(default_factory=list)
    requests: deque[LoggedRequest] = field(default_factory=lambda: deque(maxlen=REQUEST_LOG_SIZE))
    jobs: OrderedDict[str, VideoJob] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _initial: dict[str, float] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._initial = self.settings()

    def settings(self) -> dict[str, float]:
        return {
            "latency": self.latency,
            "token_delay": self.token_delay,
            "video_seconds": self.video_seconds,
        }

    def update_settings(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if key not in SETTING_FIELDS:
                raise RuleError(f"unknown setting: {key}")
            if not isinstance(value, int | float) or value < 0:
                raise RuleError(f"{key} must be a non-negative number of seconds")
            setattr(self, key, float(value))

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

    def take_video_outcome(self, model: str) -> FaultRule | None:
        if not self.faults:
            return None
        return self._take("/api/v1/videos", model, video=True)

    def _take(self, path: str, model: str | None, *, video: bool) -> FaultRule | None:
        with self._lock:
            for rule in self.faults:
                if (rule.video_outcome is not None) == video and rule.matches(path, model):
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

    def log_json(self) -> list[dict[str, Any]]:
        return [entry.to_json() for entry in list(self.requests)]

    def reset(self) -> None:
        """Forget faults, logged requests and jobs; restore the start-up settings."""
        self.clear_faults()
        self.requests.clear()
        self.jobs.clear()
        for key, value in self._initial.items():
            setattr(self, key, value)

    @staticmethod
    def now() -> float:
        return time.monotonic()
