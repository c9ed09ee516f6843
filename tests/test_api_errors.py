"""Every API error has one shape, and bad input never gets a 500."""

from __future__ import annotations

import pytest

from tests.accounts.test_auth_api import error_code
from tests.conftest import ApiClient


def test_malformed_json_is_a_400(anon):
    response = anon.post("/api/auth/login", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert error_code(response) == "malformed_json"


def test_wrong_content_type_is_a_415(anon):
    response = anon.post("/api/auth/login", data="email=a&password=b", content_type="text/plain")
    assert response.status_code == 415
    assert error_code(response) == "unsupported_media_type"


def test_unknown_api_path_is_a_json_404(anon):
    response = anon.get("/api/nope")
    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_wrong_method_is_a_405_in_the_error_shape(anon):
    response = anon.get("/api/auth/login")
    assert response.status_code == 405
    assert error_code(response) == "method_not_allowed"


def test_an_oversized_body_is_a_413(anon, settings):
    body = '{"email": "' + "a" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10) + '", "password": "x"}'
    response = anon.post("/api/auth/login", data=body, content_type="application/json")
    assert response.status_code == 413
    assert error_code(response) == "payload_too_large"


def test_errors_carry_a_request_id(anon):
    response = anon.get("/api/nope")
    assert len(response["X-Request-ID"]) >= 8


@pytest.mark.parametrize("value", [None, 1.5, [], {"a": 1}, "x" * 2000])
def test_wrong_types_never_crash_login(value):
    response = ApiClient().call("POST", "/api/auth/login", {"email": value, "password": value})
    assert response.status_code in (400, 401)
    assert error_code(response)


def test_an_unexpected_bug_is_a_500_in_the_error_shape_without_details(alice, monkeypatch):
    from accounts import api

    def boom(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(api, "request_user", boom)
    response = alice.client.call("GET", "/api/users/me")
    assert response.status_code == 500
    assert error_code(response) == "internal_error"
    assert "secret internals" not in response.content.decode()


def test_healthz_and_readyz_answer_without_auth(anon):
    assert anon.get("/healthz").json() == {"status": "ok"}
    ready = anon.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["schema_version"] >= 1
