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


# -- hostile JSON -------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [101, 1_000, 100_000])
@pytest.mark.parametrize("path", ["/api/auth/login", "/api/auth/register"])
def test_deeply_nested_json_is_a_400_at_any_depth(anon, caplog, path, depth):
    body = "[" * depth + "]" * depth
    response = anon.post(path, data=body, content_type="application/json")
    assert response.status_code == 400
    assert error_code(response) == "malformed_json"
    assert "Traceback" not in caplog.text


def test_deeply_nested_json_inside_an_object_is_a_400(admin, alice):
    role = "[" * 900 + "]" * 900
    response = admin.client.put(
        f"/api/users/{alice.id}/role",
        data='{"role": ' + role + "}",
        content_type="application/json",
        headers={"Authorization": f"Bearer {admin.access}"},
    )
    assert response.status_code == 400
    assert error_code(response) == "malformed_json"


def test_deeply_nested_json_reaches_neither_the_fast_path_nor_the_serializer(alice):
    chat = '{"model": "a/b", "stream": ' + "[" * 5000 + "]" * 5000 + ', "messages": []}'
    response = alice.client.post(
        "/api/ai/chat", data=chat, content_type="application/json",
        headers={"Authorization": f"Bearer {alice.access}"},
    )  # fmt: skip
    assert response.status_code == 400
    assert error_code(response) == "malformed_json"


def test_json_nested_as_deep_as_a_client_could_need_is_still_json(anon):
    email = "[" * 99 + '"a@example.com"' + "]" * 99
    response = anon.post(
        "/api/auth/login", data='{"email": ' + email + ', "password": "x"}',
        content_type="application/json",
    )  # fmt: skip
    assert response.status_code == 400
    assert error_code(response) == "validation_error"


def test_nan_and_infinity_are_not_json(anon):
    response = anon.post(
        "/api/auth/login", data='{"email": NaN, "password": Infinity}',
        content_type="application/json",
    )  # fmt: skip
    assert error_code(response) == "malformed_json"


def test_load_json_refuses_depth_without_recursion():
    from core.parsers import MAX_JSON_DEPTH, load_json

    assert load_json("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is not None
    for depth in (MAX_JSON_DEPTH + 1, 10_000):
        with pytest.raises(ValueError):
            load_json("[" * depth + "]" * depth)
    with pytest.raises(ValueError):
        load_json('{"a": ' * 200 + "1" + "}" * 200)
    with pytest.raises(ValueError):
        load_json(("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)).encode())
    # Many brackets side by side are not depth: bytes or text, it parses.
    wide = "[" + ",".join(["[{}]"] * (2 * MAX_JSON_DEPTH)) + "]"
    assert len(load_json(wide)) == len(load_json(wide.encode())) == 2 * MAX_JSON_DEPTH


# -- hostile multipart --------------------------------------------------------------------

LONG_FILENAME = (
    b'--XX\r\nContent-Disposition: form-data; name="image"; filename="'
    + b"a" * 5000
    + b'.png"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n--XX--\r\n'
)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"--XX\r\n\r\n--XX--\r\n"),  # no boundary
        ("multipart/form-data; boundary=", b"--\r\n"),  # an empty one
        ("multipart/form-data; boundary=XX", LONG_FILENAME),
    ],
)
def test_a_broken_multipart_body_says_so_in_its_own_code(alice, content_type, body):
    response = alice.client.post(
        "/api/generate/video/from-image", data=body, content_type=content_type,
        headers={"Authorization": f"Bearer {alice.access}"},
    )  # fmt: skip
    assert response.status_code == 400
    assert error_code(response) == "malformed_multipart"
    assert "JSON" not in response.json()["error"]["message"]
    assert "multipart" in response.json()["error"]["message"]


@pytest.mark.anyio
@pytest.mark.parametrize("declared", ["²", "9" * 5000, "-1", "1e3"])
async def test_a_nonsense_content_length_is_a_413_before_django(database, declared):
    from tests.test_hosts import asgi_request

    status, _, body = await asgi_request(
        "/api/auth/login", method="POST", headers={"content-length": declared}, body=b"{}"
    )
    assert status == 413
    assert b"payload_too_large" in body
