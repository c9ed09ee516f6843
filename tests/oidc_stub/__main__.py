"""`python -m tests.oidc_stub --port 8098`: serve the OIDC provider stand-in with uvicorn."""

from __future__ import annotations

import argparse
import os

import uvicorn

from tests.openrouter_stub.server import uvicorn_config

from .app import create_app
from .state import DEFAULT_CLIENT_ID, DEFAULT_REDIRECT_URI


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.oidc_stub",
        description="Local OpenID Connect provider stand-in (tests and development only).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8098)
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument(
        "--client-secret",
        default=os.environ.get("OIDC_STUB_CLIENT_SECRET"),
        help="the client's secret (default: $OIDC_STUB_CLIENT_SECRET or the built-in test one)",
    )
    parser.add_argument(
        "--redirect-uri",
        action="append",
        help=f"a registered redirect URI; repeatable (default: {DEFAULT_REDIRECT_URI})",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    issuer = f"http://{args.host}:{args.port}"
    app = create_app(
        issuer,
        client_id=args.client_id,
        client_secret=args.client_secret,
        redirect_uris=args.redirect_uri,
    )
    print(f"OIDC stub: issuer {issuer}, client_id {args.client_id}", flush=True)
    uvicorn.Server(uvicorn_config(app, args.host, args.port)).run()


if __name__ == "__main__":
    main()
