"""The stub's ASGI application: routing table, auth, request log and fault injection."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from . import accounting, chat, control, embeddings, images, listings, videos
from .asgi import (
    ApiError,
    DropConnection,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    StreamResponse,
    drop_connection,
    error_response,
    read_body,
    send_response,
    send_stream,
)
from .state import FaultRule, LoggedRequest, StubState

Handler = Callable[[Request, StubState, FaultRule | None], Awaitable[Response | StreamResponse]]

API_PREFIX = "/api/v1"
CONTROL_PREFIX = "/_stub/"


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str  # `{name}` segments become path parameters
    handler: Handler
    public: bool = False  # reachable without a bearer key (reference §1: model listings)
    control: bool = False  # /_stub/: no auth, not logged, never faulted
    generation: bool = False  # its `user` field is noted (reference §8), faulted or not


ROUTES: tuple[Route, ...] = (
    Route("GET", "/api/v1/models", listings.list_models, public=True),
    Route("GET", "/api/v1/model/{model_id:path}", listings.get_model, public=True),
    Route("GET", "/api/v1/videos/models", listings.list_video_models, public=True),
    Route("GET", "/api/v1/images/models", listings.list_image_models, public=True),
    Route("GET", "/api/v1/embeddings/models", listings.list_embedding_models, public=True),
    Route("GET", "/api/v1/key", listings.get_key),
    Route("GET", "/api/v1/credits", listings.get_credits),
    Route("GET", "/api/v1/generation", accounting.get_generation),
    Route("POST", "/api/v1/chat/completions", chat.chat_completions, generation=True),
    Route("POST", "/api/v1/embeddings", embeddings.create_embeddings, generation=True),
    Route("POST", "/api/v1/images", images.create_images, generation=True),
    Route("POST", "/api/v1/videos", videos.create_video, generation=True),
    Route("GET", "/api/v1/videos/{job_id}", videos.get_video),
    Route("GET", "/api/v1/videos/{job_id}/content", videos.get_video_content),
    Route("GET", "/_stub/health", control.health, control=True),
    Route("GET", "/_stub/faults", control.get_faults, control=True),
    Route("POST", "/_stub/faults", control.add_faults, control=True),
    Route("DELETE", "/_stub/faults", control.clear_faults, control=True),
    Route("POST", "/_stub/config", control.update_config, control=True),
    Route("GET", "/_stub/requests", control.get_requests, control=True),
    Route("GET", "/_stub/users", control.get_users, control=True),
    Route("GET", "/_stub/generations", control.get_generations, control=True),
    Route("GET", "/_stub/generations/{generation_id}", control.get_generation, control=True),
    Route("GET", "/_stub/videos", control.get_video_jobs, control=True),
    Route("GET", "/_stub/videos/{job_id}", control.get_video_job, control=True),
    Route("POST", "/_stub/videos/{job_id}/forget", control.forget_video_job, control=True),
    Route("POST", "/_stub/reset", control.reset, control=True),
)

_PARAM_RE = re.compile(r"\{(\w+)(:path)?\}")


def _compile(path: str) -> re.Pattern[str]:
    def replace(match: re.Match[str]) -> str:
        return f"(?P<{match[1]}>.+)" if match[2] else f"(?P<{match[1]}>[^/]+)"

    return re.compile(_PARAM_RE.sub(replace, path) + "$")


class Router:
    """Exact paths by dictionary lookup; parameterised ones by regex, in table order."""

    def __init__(self, routes: tuple[Route, ...]) -> None:
        self.static: dict[tuple[str, str], Route] = {}
        self.static_paths: set[str] = set()
        self.dynamic: list[tuple[re.Pattern[str], Route]] = []
        for route in routes:
            if "{" in route.path:
                self.dynamic.append((_compile(route.path), route))
            else:
                self.static[(route.method, route.path)] = route
                self.static_paths.add(route.path)

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """(route, path params, whether the path exists for another method)."""
        route = self.static.get((method, path))
        if route is not None:
            return route, {}, True
        path_known = path in self.static_paths
        if not path_known:
            for pattern, candidate in self.dynamic:
                found = pattern.match(path)
                if found is None:
                    continue
                if candidate.method == method:
                    return candidate, found.groupdict(), True
                path_known = True
        return None, {}, path_known


ROUTER = Router(ROUTES)


def _auth_state(request: Request, api_key: bytes) -> tuple[bool, bool]:
    """(bearer header present, key correct), reference §1."""
    header = request.header(b"authorization")
    if header is None or header[:7].lower() != b"bearer ":
        return False, False
    return True, header[7:].strip() == api_key


def _unauthorized(present: bool) -> ApiError:
    # Live messages (reference §1): no key at all vs. a key OpenRouter does not know.
    message = "User not found." if present else "No auth credentials found"
    return ApiError(401, payload={"error": {"message": message, "code": 401}})


class StubApp:
    """Raw ASGI callable speaking OpenRouter's wire format under `/api/v1`."""

    def __init__(self, state: StubState) -> None:
        self.state = state
        self._api_key = state.api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request(
            method=scope["method"],
            path=scope["path"].rstrip("/") or "/",
            query_string=scope.get("query_string", b"").decode("latin-1"),
            headers=scope["headers"],
            body=await read_body(receive),
        )
        try:
            response = await self.dispatch(request)
        except ApiError as error:
            response = error_response(error)
        except DropConnection:
            await drop_connection(receive)
            return
        if isinstance(response, StreamResponse):
            await send_stream(send, receive, response)
        else:
            await send_response(send, response)

    async def dispatch(self, request: Request) -> Response | StreamResponse:
        route, params, path_known = ROUTER.match(request.method, request.path)
        if route is not None and route.control:
            request.path_params = params
            return await route.handler(request, self.state, None)
        present, valid = _auth_state(request, self._api_key)
        self._log(request, present, valid)
        if route is None:
            raise ApiError(405 if path_known else 404, None if path_known else "Not Found")
        if not route.public and not valid:
            raise _unauthorized(present)
        if route.generation:
            body = request.json_or_none()
            if isinstance(body, dict):
                self.state.note_user(request.path, body.get("model"), body.get("user"))
        request.path_params = params
        fault = await self._apply_fault(request)
        return await route.handler(request, self.state, fault)

    def _log(self, request: Request, present: bool, valid: bool) -> None:
        body = request.json_or_none() if request.body else None
        self.state.requests.append(
            LoggedRequest(
                at=time.time(),
                method=request.method,
                path=request.path,
                query=request.query,
                headers=request.headers,
                auth_present=present,
                auth_valid=valid,
                body=body,
            )
        )

    async def _apply_fault(self, request: Request) -> FaultRule | None:
        """Delay / drop / error now; stream-breaking rules are handed to the handler."""
        if not self.state.faults:
            return None
        body = request.json_or_none()
        model = body.get("model") if isinstance(body, dict) else None
        fault = self.state.take_fault(request.path, model if isinstance(model, str) else None)
        if fault is None:
            return None
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.break_stream_after is not None:
            return fault
        if fault.drop_connection:
            raise DropConnection
        if fault.status is not None:
            raise ApiError(
                fault.status, fault.message, metadata=fault.metadata, retry_after=fault.retry_after
            )
        return None


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_app(
    api_key: str = "stub-key",
    *,
    video_seconds: float = 3.0,
    latency: float = 0.0,
    token_delay: float = 0.0,
    require_user: bool = False,
) -> StubApp:
    """A fresh stub with its own state."""
    state = StubState(
        api_key=api_key,
        video_seconds=video_seconds,
        latency=latency,
        token_delay=token_delay,
        require_user=require_user,
    )
    return StubApp(state)
