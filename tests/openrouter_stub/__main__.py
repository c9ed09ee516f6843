"""`python -m tests.openrouter_stub --port 8099 --api-key KEY`: serve the stub with uvicorn."""

from __future__ import annotations

import argparse
import os

import uvicorn

from .app import create_app
from .server import uvicorn_config


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.openrouter_stub",
        description="Synthetic local stand-in for OpenRouter (tests and development only).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument(
        "--api-key",
        default=os.environ.get("OPENROUTER_STUB_API_KEY", "stub-key"),
        help="bearer key the stub accepts (default: $OPENROUTER_STUB_API_KEY or 'stub-key')",
    )
    parser.add_argument(
        "--video-seconds", type=float, default=3.0, help="time for a video job to complete"
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds before chat completions answer"
    )
    parser.add_argument(
        "--token-delay", type=float, default=0.0, help="seconds between streamed tokens"
    )
    parser.add_argument(
        "--require-user",
        action="store_true",
        help="refuse generation requests that carry no `user` field",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    app = create_app(
        args.api_key,
        video_seconds=args.video_seconds,
        latency=args.latency,
        token_delay=args.token_delay,
        require_user=args.require_user,
    )
    print(f"OpenRouter stub on http://{args.host}:{args.port}/api/v1", flush=True)
    uvicorn.Server(uvicorn_config(app, args.host, args.port)).run()


if __name__ == "__main__":
    main()
