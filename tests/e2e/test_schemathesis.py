"""Schemathesis against the live server's own OpenAPI schema: every operation, as an admin
and as a user, with the project's OpenRouter stand-in upstream.

The run must find no 5xx, and every response must match the schema (status code, content
type, headers, body); invalid input must be refused. Examples are bounded so both runs take
a couple of minutes. Reproduce a failure with the printed `st replay` / curl line, or rerun
with the same seed:

    SCHEMATHESIS_SEED=1 .venv/bin/python -m pytest tests/e2e/test_schemathesis.py -q
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, log_in, unique_email
from tests.openrouter_stub import StubServer
from tests.servers import GatewayServer

STUB_KEY = "sk-or-v1-schemathesis-stub-key-0123456789abcdef0123456789abcdef"
MAX_EXAMPLES = os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "10")
SEED = os.environ.get("SCHEMATHESIS_SEED", "20260101")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "schemathesis"
CONFIG = Path(__file__).with_name("schemathesis.toml")

# Everything but positive_data_acceptance: schema-valid input may still be refused for
# reasons a schema cannot express (an unknown model id, a weak password, the last admin).
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "ignored_auth",
    "use_after_free",
    "ensure_resource_availability",
]


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with StubServer(api_key=STUB_KEY, video_seconds=0.3) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, stub: StubServer) -> Iterator[GatewayServer]:
    data = tmp_path_factory.mktemp("schemathesis")
    server = GatewayServer(
        data,
        env={
            "OPENROUTER_BASE_URL": stub.base_url,
            "OPENROUTER_API_KEY": STUB_KEY,
            "BACKUP_DIR": str(data / "backups"),
        },
    )
    server.create_admin(ADMIN_EMAIL, ADMIN_PASSWORD)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def credentials(gateway: GatewayServer) -> dict[str, str]:
    """An admin's access token, and a user's API key (so both ways in are exercised)."""
    with gateway.client() as http:
        admin = log_in(http, ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
        email = unique_email("fuzz")
        registered = http.post("/api/auth/register", json={"email": email, "password": PASSWORD})
        assert registered.status_code == 201, registered.text
        token = log_in(http, email, PASSWORD)["access_token"]
        key = http.post(
            "/api/auth/keys", json={"name": "schemathesis"}, headers=_bearer(token)
        ).json()["key"]
    return {"admin": admin, "user": key}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("role", ["admin", "user"])
def test_the_live_api_keeps_to_its_own_schema(
    gateway: GatewayServer, credentials: dict[str, str], role: str
) -> None:
    report = ARTIFACTS / role
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(CONFIG),
        "run",
        f"{gateway.base_url}/api/schema/?format=json",
        "--header",
        f"Authorization: Bearer {credentials[role]}",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        MAX_EXAMPLES,
        "--seed",
        SEED,
        "--no-shrink",
        # One worker: on CPython 3.11 two threads in ast.parse (which Hypothesis calls to
        # describe strategies) can fail with "AST constructor recursion depth mismatch".
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--suppress-health-check",
        "all",
        "--report",
        "junit",
        "--report-dir",
        str(report),
    ]
    report.mkdir(parents=True, exist_ok=True)  # also its working folder: its cache goes there
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=_st_env(),
        cwd=report,
    )
    assert result.returncode == 0, (
        f"schemathesis found failures as {role} (junit report in {report}):\n"
        f"{_failures(result.stdout)}\n{result.stderr[-3000:]}\n"
        f"server log tail:\n{gateway.log_tail(40)}"
    )
    assert "Tested: " in result.stdout
    with httpx.Client(base_url=gateway.base_url, timeout=10) as http:
        assert http.get("/healthz").status_code == 200  # and the server is still up


def _failures(output: str) -> str:
    """The failures section and the summary, with huge generated bodies cut short."""
    start = output.find("FAILURES")
    lines = output[start if start >= 0 else 0 :].splitlines()
    return "\n".join(line if len(line) < 400 else line[:400] + " ..." for line in lines)[-20000:]


def _st_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HTTP_PROXY", "HTTPS_PROXY"))}
    env["NO_PROXY"] = "127.0.0.1,localhost"
    return env
