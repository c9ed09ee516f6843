"""Auth against the real server: uvicorn, Argon2, a DuckDB file, HTTP over loopback."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import PASSWORD, Account, bearer, log_in, unique_email
from tests.servers import GatewayServer

TWO_MEGABYTES = 2 * 1024 * 1024


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is `status` with the API's one error shape (and `code`, if given)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "fields"}, error
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["fields"], dict)
    if code is not None:
        assert error["code"] == code, error
    return dict(error)


def refresh(http: httpx.Client, token: str) -> httpx.Response:
    return http.post("/api/auth/refresh", json={"refresh_token": token})


def users_matching(http: httpx.Client, admin: Account, query: str) -> int:
    response = http.get("/api/users", params={"q": query}, headers=admin.auth)
    assert response.status_code == 200, response.text
    return int(response.json()["total"])


# -- sessions ---------------------------------------------------------------------------


def test_a_session_rotates_until_a_reused_refresh_token_ends_its_family(
    http: httpx.Client,
) -> None:
    email = unique_email("flow")
    registered = http.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    assert registered.status_code == 201, registered.text
    user = registered.json()
    assert user["email"] == email and user["role"] == "user"
    assert not {"password", "password_hash"} & set(user)

    first = log_in(http, email, PASSWORD)
    assert first["token_type"] == "bearer" and int(first["expires_in"]) > 0
    me = http.get("/api/users/me", headers=bearer(first["access_token"]))
    assert me.status_code == 200 and me.json()["id"] == user["id"]

    rotated = refresh(http, first["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert http.get("/api/users/me", headers=bearer(second["access_token"])).status_code == 200

    # The first token again: someone holds a copy, so the whole family is revoked.
    assert_error(refresh(http, first["refresh_token"]), 401, "token_reused")
    assert_error(refresh(http, second["refresh_token"]), 401)
    assert_error(http.get("/api/users/me", headers=bearer(second["access_token"])), 401)

    third = log_in(http, email, PASSWORD)
    assert http.get("/api/users/me", headers=bearer(third["access_token"])).status_code == 200
    signed_out = http.post("/api/auth/logout", json={"refresh_token": third["refresh_token"]})
    assert signed_out.status_code == 204
    again = http.post("/api/auth/logout", json={"refresh_token": third["refresh_token"]})
    assert again.status_code == 204
    assert_error(refresh(http, third["refresh_token"]), 401)
    assert_error(http.get("/api/users/me", headers=bearer(third["access_token"])), 401)


def test_an_api_key_authenticates_until_revoked_and_not_a_request_longer(
    http: httpx.Client, make_account: Callable[..., Account]
) -> None:
    user = make_account("keys")
    created = http.post("/api/auth/keys", json={"name": "script"}, headers=user.auth)
    assert created.status_code == 201, created.text
    key = created.json()["key"]

    me = http.get("/api/users/me", headers=bearer(key))
    assert me.status_code == 200 and me.json()["email"] == user.email
    listed = http.get("/api/auth/keys", headers=user.auth).json()["items"]
    assert [item["id"] for item in listed] == [created.json()["id"]]
    assert "key" not in listed[0] and key.startswith(listed[0]["prefix"])

    revoked = http.delete(f"/api/auth/keys/{created.json()['id']}", headers=user.auth)
    assert revoked.status_code == 204
    assert_error(http.get("/api/users/me", headers=bearer(key)), 401)


# -- administration takes effect on the next request --------------------------------------


def test_a_demoted_admin_is_refused_admin_endpoints_on_the_next_request(
    http: httpx.Client, admin: Account, make_account: Callable[..., Account]
) -> None:
    user = make_account("demoted")
    assert_error(http.get("/api/users", headers=user.auth), 403, "forbidden")
    promoted = http.put(f"/api/users/{user.id}/role", json={"role": "admin"}, headers=admin.auth)
    assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
    # The same access token (its role claim still says "user") now passes: roles are live.
    assert http.get("/api/users", headers=user.auth).status_code == 200

    demoted = http.put(f"/api/users/{user.id}/role", json={"role": "user"}, headers=admin.auth)
    assert demoted.status_code == 200, demoted.text
    assert_error(http.get("/api/users", headers=user.auth), 403, "forbidden")


def test_a_deleted_user_is_locked_out_on_the_next_request(
    http: httpx.Client, admin: Account, make_account: Callable[..., Account]
) -> None:
    user = make_account("deleted")
    assert http.get("/api/users/me", headers=user.auth).status_code == 200

    assert http.delete(f"/api/users/{user.id}", headers=admin.auth).status_code == 204
    assert_error(http.get("/api/users/me", headers=user.auth), 401)
    assert_error(refresh(http, user.refresh), 401)
    login = http.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
    assert_error(login, 401, "invalid_credentials")
    assert users_matching(http, admin, user.email) == 0


def test_a_disabled_user_is_locked_out_on_the_next_request_until_enabled(
    http: httpx.Client, admin: Account, make_account: Callable[..., Account]
) -> None:
    user = make_account("disabled")
    assert http.get("/api/users/me", headers=user.auth).status_code == 200

    disabled = http.put(
        f"/api/users/{user.id}/active", json={"is_active": False}, headers=admin.auth
    )
    assert disabled.status_code == 200 and disabled.json()["is_active"] is False
    assert_error(http.get("/api/users/me", headers=user.auth), 401)
    assert_error(refresh(http, user.refresh), 401)
    login = http.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
    assert_error(login, 401, "account_disabled")

    enabled = http.put(f"/api/users/{user.id}/active", json={"is_active": True}, headers=admin.auth)
    assert enabled.status_code == 200
    tokens = log_in(http, user.email, PASSWORD)
    assert http.get("/api/users/me", headers=bearer(tokens["access_token"])).status_code == 200


# -- concurrency ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_twenty_simultaneous_refreshes_of_one_token_let_exactly_one_through(
    gateway: GatewayServer,
) -> None:
    email = unique_email("race")
    async with gateway.async_client() as http:
        registered = await http.post(
            "/api/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert registered.status_code == 201
        login = await http.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        token = login.json()["refresh_token"]

        responses = await asyncio.gather(
            *(http.post("/api/auth/refresh", json={"refresh_token": token}) for _ in range(20))
        )

    statuses = Counter(response.status_code for response in responses)
    assert statuses == {200: 1, 401: 19}, statuses
    for response in responses:
        if response.status_code == 401:
            assert_error(response, 401)


@pytest.mark.anyio
async def test_sixty_simultaneous_registrations_all_succeed_and_all_persist(
    gateway: GatewayServer, admin: Account
) -> None:
    batch = unique_email("batch").split("@")[0]
    emails = [f"{batch}-{n}@example.com" for n in range(60)]
    async with gateway.async_client() as http:
        responses = await asyncio.gather(
            *(
                http.post("/api/auth/register", json={"email": email, "password": PASSWORD})
                for email in emails
            )
        )
        assert Counter(r.status_code for r in responses) == {201: 60}
        assert len({r.json()["id"] for r in responses}) == 60
        listed = await http.get(
            "/api/users", params={"q": batch, "page_size": 100}, headers=admin.auth
        )
    assert listed.status_code == 200, listed.text
    assert listed.json()["total"] == 60
    assert sorted(item["email"] for item in listed.json()["items"]) == sorted(emails)


@pytest.mark.anyio
async def test_two_simultaneous_registrations_of_one_email_make_one_account(
    gateway: GatewayServer, admin: Account
) -> None:
    email = unique_email("twin")
    async with gateway.async_client() as http:
        responses = await asyncio.gather(
            http.post("/api/auth/register", json={"email": email, "password": PASSWORD}),
            # Same address, other case in the domain: unique case-insensitively.
            http.post("/api/auth/register", json={"email": email.upper(), "password": PASSWORD}),
        )
        listed = await http.get("/api/users", params={"q": email}, headers=admin.auth)
    assert sorted(r.status_code for r in responses) == [201, 409]
    assert_error(next(r for r in responses if r.status_code == 409), 409, "email_taken")
    assert listed.json()["total"] == 1


# -- durability and the database lock --------------------------------------------------


def test_committed_writes_survive_the_server_being_killed(tmp_path: Path) -> None:
    with GatewayServer(tmp_path / "durable") as server:
        email = unique_email("durable")
        with server.client() as http:
            created = http.post("/api/auth/register", json={"email": email, "password": PASSWORD})
            assert created.status_code == 201
            first = log_in(http, email, PASSWORD)
            second = refresh(http, first["refresh_token"]).json()
        server.kill()

        server.start()
        with server.client() as http:
            assert log_in(http, email, PASSWORD)["token_type"] == "bearer"
            me = http.get("/api/users/me", headers=bearer(second["access_token"]))
            assert me.status_code == 200 and me.json()["id"] == created.json()["id"]
            # The rotation before the kill stuck: the old token is spent, the new one live.
            assert refresh(http, second["refresh_token"]).status_code == 200
            assert_error(refresh(http, first["refresh_token"]), 401, "token_reused")


@pytest.mark.duckdb_only
def test_createadmin_refuses_in_one_sentence_while_the_server_holds_the_database(
    gateway: GatewayServer, http: httpx.Client
) -> None:
    result = gateway.manage("createadmin", "--email", unique_email("late"), "--password", PASSWORD)
    assert result.returncode != 0
    message = result.stderr.strip()
    assert "Traceback" not in result.stderr + result.stdout
    assert len(message.splitlines()) == 1, message
    assert "in use" in message and "server" in message, message
    assert http.get("/readyz").status_code == 200


# -- secrets stay out of the log --------------------------------------------------------


def test_the_server_log_never_contains_passwords_tokens_or_api_keys(
    gateway: GatewayServer, http: httpx.Client
) -> None:
    email = unique_email("secretive")
    password = "log-canary-Pa55word-7f3e9b"
    wrong_password = "log-canary-Wrong-2c81d0"
    secrets: list[str] = [password, wrong_password]

    assert http.post("/api/auth/register", json={"email": email, "password": password}).is_success
    login = http.post("/api/auth/login", json={"email": email, "password": wrong_password})
    assert_error(login, 401, "invalid_credentials")
    first = log_in(http, email, password)
    second = refresh(http, first["refresh_token"]).json()
    assert_error(refresh(http, first["refresh_token"]), 401, "token_reused")
    third = log_in(http, email, password)
    key = http.post("/api/auth/keys", json={"name": "ci"}, headers=bearer(third["access_token"]))
    api_key = key.json()["key"]
    assert http.get("/api/users/me", headers=bearer(api_key)).status_code == 200
    forged = third["access_token"][:-4] + "AAAA"
    assert_error(http.get("/api/users/me", headers=bearer(forged)), 401)
    logout = http.post("/api/auth/logout", json={"refresh_token": third["refresh_token"]})
    assert logout.status_code == 204
    secrets += [api_key, api_key.split("_", 2)[2], forged]
    for tokens in (first, second, third):
        secrets += [tokens["access_token"], tokens["refresh_token"]]
        secrets += [part for part in tokens["refresh_token"].split(".")[1:]]

    log = gateway.log_text()
    assert "path=/api/auth/refresh" in log  # the log is there, so its silence means something
    leaked = [secret[:12] + "…" for secret in secrets if secret in log]
    assert not leaked, f"secrets in the server log: {leaked}"


# -- bad input at the real server -------------------------------------------------------


def test_malformed_json_is_a_400_in_the_error_shape(http: httpx.Client) -> None:
    response = http.post(
        "/api/auth/login", content=b'{"email": "a@example.com",', headers=_json_type()
    )
    assert_error(response, 400, "malformed_json")


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_two_megabyte_body_is_a_413_and_creates_nothing(
    http: httpx.Client, admin: Account, framing: str
) -> None:
    email = unique_email("huge")
    body = f'{{"email": "{email}", "password": "'.encode() + b"x" * TWO_MEGABYTES + b'"}'
    content: bytes | Iterator[bytes] = body
    if framing == "chunked":
        content = (body[i : i + 65536] for i in range(0, len(body), 65536))
    response = http.post("/api/auth/register", content=content, headers=_json_type())
    assert_error(response, 413)
    assert users_matching(http, admin, email) == 0


def test_a_body_that_is_not_json_is_a_415(http: httpx.Client) -> None:
    response = http.post(
        "/api/auth/login",
        content=b"email=a@example.com&password=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_error(response, 415, "unsupported_media_type")


def test_an_unknown_api_path_is_a_404_in_the_error_shape(http: httpx.Client) -> None:
    assert_error(http.get("/api/no/such/thing"), 404, "not_found")


def test_a_wrong_method_is_a_405_in_the_error_shape(http: httpx.Client) -> None:
    assert_error(http.delete("/api/auth/login"), 405, "method_not_allowed")


def _json_type() -> dict[str, str]:
    return {"Content-Type": "application/json"}
