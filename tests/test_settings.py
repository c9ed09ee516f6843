"""Settings come from the environment and fail at start-up with one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parents[1]


def load_settings(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SECRET_KEY", "DEBUG"))}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", "import aigateway.settings as s; print(s.DEBUG)"],
        cwd=REPO,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_missing_secret_key_stops_start_up_when_debug_is_off(tmp_path):
    result = load_settings(DEBUG="false", ENV_FILE=str(tmp_path / "no.env"))
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0
    assert "SECRET_KEY is required" in result.stderr


def test_debug_runs_without_a_secret_key(tmp_path):
    assert load_settings(DEBUG="true", ENV_FILE=str(tmp_path / "no.env")).returncode == 0


def test_bad_values_fail_with_a_clear_message():
    result = load_settings(SECRET_KEY="k" * 50, ACCESS_TOKEN_TTL_SECONDS="soon")
    assert result.returncode != 0
    assert "ACCESS_TOKEN_TTL_SECONDS must be a whole number" in result.stderr
    assert "Traceback" not in result.stderr


def test_sso_settings_that_cannot_work_stop_start_up(tmp_path):
    base = {"SECRET_KEY": "k" * 50, "ENV_FILE": str(tmp_path / "no.env")}
    sso = {"OIDC_ISSUER": "https://id.example.org/realms/acme", "OIDC_CLIENT_ID": "gw"}
    cases = {
        "OIDC_CLIENT_ID and OIDC_CLIENT_SECRET are needed": sso,
        "SITE_URL (this server's public URL": {**sso, "OIDC_CLIENT_SECRET": "s"},
        "OIDC_SCOPES must contain openid": {
            **sso, "OIDC_CLIENT_SECRET": "s", "SITE_URL": "https://ai.example.org",
            "OIDC_SCOPES": "email profile",
        },
        "OIDC_ISSUER must be the provider's https:// URL": {"OIDC_ISSUER": "id.example.org"},
    }  # fmt: skip
    for message, env in cases.items():
        result = load_settings(**base, **env)
        assert result.returncode != 0 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    ok = {**sso, "OIDC_CLIENT_SECRET": "s", "SITE_URL": "https://ai.example.org"}
    assert load_settings(**base, **ok).returncode == 0
