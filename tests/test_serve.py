"""`python -m aigateway.serve`: uvicorn's options follow from the settings (BEHIND_PROXY is
the one switch for proxy headers), and the app reads the client address in one place."""

from __future__ import annotations

import pickle

import pytest
from django.test import RequestFactory

from aigateway.serve import allowed_connections, uvicorn_options
from core.api import client_ip
from core.server import GuardedHttpProtocol
from tests.test_settings import load_settings


def test_without_a_proxy_uvicorn_ignores_forwarded_headers(settings):
    settings.BEHIND_PROXY = False
    assert uvicorn_options(settings)["proxy_headers"] is False


def test_behind_a_proxy_uvicorn_believes_only_the_listed_addresses(settings):
    settings.BEHIND_PROXY = True
    settings.FORWARDED_ALLOW_IPS = ["10.0.0.0/8"]
    options = uvicorn_options(settings)
    assert options["proxy_headers"] is True
    assert options["forwarded_allow_ips"] == ["10.0.0.0/8"]


def test_connection_limits_come_from_settings(settings):
    settings.SERVER_LIMIT_CONCURRENCY = 300
    settings.SERVER_KEEP_ALIVE_TIMEOUT = 7
    settings.SERVER_HEADER_TIMEOUT = 4
    options = uvicorn_options(settings)
    assert options["limit_concurrency"] == 300
    assert options["timeout_keep_alive"] == 7
    assert options["http"] is GuardedHttpProtocol
    # uvicorn's worker processes get the config pickled: the class must travel by name.
    assert pickle.loads(pickle.dumps(options["http"])) is GuardedHttpProtocol  # noqa: S301 - our own bytes
    assert options["access_log"] is False


def test_the_connection_limit_shrinks_to_fit_the_open_files_allowed(monkeypatch):
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda kind: (1024, 1024))
    monkeypatch.setattr(resource, "setrlimit", lambda kind, limits: None)
    assert allowed_connections(100) == 100
    assert allowed_connections(5000) == 1024 - 256


@pytest.mark.parametrize("behind_proxy", [False, True])
def test_the_app_never_reads_x_forwarded_for_itself(settings, behind_proxy):
    settings.BEHIND_PROXY = behind_proxy
    request = RequestFactory().get(
        "/", REMOTE_ADDR="192.0.2.10", HTTP_X_FORWARDED_FOR="6.6.6.6", HTTP_X_REAL_IP="6.6.6.7"
    )
    assert client_ip(request) == "192.0.2.10"


def test_django_itself_believes_no_forwarded_proto(settings):
    assert settings.SECURE_PROXY_SSL_HEADER is None


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("FORWARDED_ALLOW_IPS", "proxy.internal", "FORWARDED_ALLOW_IPS must list IP addresses"),
        ("SERVER_LIMIT_CONCURRENCY", "many", "SERVER_LIMIT_CONCURRENCY must be a whole number"),
        ("SERVER_HEADER_TIMEOUT", "0", "SERVER_HEADER_TIMEOUT must be at least 1"),
        ("SERVER_KEEP_ALIVE_TIMEOUT", "-5", "SERVER_KEEP_ALIVE_TIMEOUT must be at least 1"),
    ],
)
def test_bad_server_settings_stop_start_up_with_one_line(name, value, says):
    result = load_settings(SECRET_KEY="k" * 50, **{name: value})
    assert result.returncode != 0
    assert says in result.stderr
    assert "Traceback" not in result.stderr
