"""SPEC §2 Auth: register, login, refresh (rotation + reuse detection), logout."""

from __future__ import annotations

import time

import pytest

from tests.conftest import PASSWORD, ApiClient, Persona


def error_code(response) -> str:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    return body["error"]["code"]


def login(client: ApiClient, email: str, password: str = PASSWORD):
    return client.call("POST", "/api/auth/login", {"email": email, "password": password})


# -- register ---------------------------------------------------------------------


def test_register_creates_a_user_with_a_uuid_and_normalised_email(anon):
    response = anon.call(
        "POST", "/api/auth/register", {"email": "  Bob.Smith@Example.COM ", "password": PASSWORD}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "Bob.Smith@example.com"
    assert body["role"] == "user"
    assert len(body["id"]) == 36 and body["id"].count("-") == 4
    assert body["last_login_at"] is None
    assert "password" not in response.content.decode()


def test_register_refuses_an_email_taken_in_another_case(anon, alice):
    response = anon.call(
        "POST", "/api/auth/register", {"email": "ALICE@example.com", "password": PASSWORD}
    )
    assert response.status_code == 409
    assert error_code(response) == "email_taken"


@pytest.mark.parametrize(
    ("password", "field_text"),
    [("short", "too short"), ("password123", "too common"), ("1234567890123", "entirely numeric")],
)
def test_register_applies_djangos_password_validators(anon, password, field_text):
    response = anon.call(
        "POST", "/api/auth/register", {"email": "x@example.com", "password": password}
    )
    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    assert field_text in response.json()["error"]["fields"]["password"]


def test_register_refuses_a_password_too_similar_to_the_email(anon):
    response = anon.call(
        "POST", "/api/auth/register", {"email": "zebrafish@example.com", "password": "zebrafish"}
    )
    assert response.status_code == 400
    assert "similar" in response.json()["error"]["fields"]["password"]


@pytest.mark.parametrize("email", ["not-an-email", "a@", "@example.com", "", "a b@example.com"])
def test_register_refuses_invalid_emails(anon, email):
    response = anon.call("POST", "/api/auth/register", {"email": email, "password": PASSWORD})
    assert response.status_code == 400
    assert "email" in response.json()["error"]["fields"]


@pytest.mark.parametrize(
    "body",
    [
        {"email": "a@example.com"},
        {"email": 5, "password": PASSWORD},
        {"email": "a@example.com", "password": True},
        {"email": "a@example.com", "password": PASSWORD, "role": "admin"},
        ["a@example.com", PASSWORD],
        '"just a string"',
    ],
)
def test_register_refuses_wrong_shapes_and_unknown_fields(anon, body):
    response = anon.call("POST", "/api/auth/register", body)
    assert response.status_code == 400
    assert error_code(response) == "validation_error"


def test_register_cannot_smuggle_an_admin_role(anon):
    body = {"email": "sneaky@example.com", "password": PASSWORD, "role": "admin"}
    assert anon.call("POST", "/api/auth/register", body).status_code == 400
    assert login(anon, "sneaky@example.com").status_code == 401


def test_registration_can_be_switched_off(anon, settings):
    settings.REGISTRATION_OPEN = False
    response = anon.call(
        "POST", "/api/auth/register", {"email": "b@example.com", "password": PASSWORD}
    )
    assert response.status_code == 403
    assert error_code(response) == "registration_closed"


# -- login ------------------------------------------------------------------------


def test_login_returns_an_oauth2_style_token_pair(anon, alice):
    response = login(anon, "alice@example.com")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900


def test_login_matches_email_case_insensitively(anon, alice):
    assert login(anon, "ALICE@EXAMPLE.COM").status_code == 200


def test_login_gives_the_same_answer_for_unknown_email_and_wrong_password(anon, alice):
    unknown = login(anon, "nobody@example.com")
    wrong = login(anon, "alice@example.com", "not the password at all")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()
    assert error_code(unknown) == "invalid_credentials"


def test_login_verifies_a_hash_even_for_an_unknown_email(anon, monkeypatch):
    from accounts import services

    calls = []
    real = services.check_password
    monkeypatch.setattr(
        services, "check_password", lambda pw, enc: calls.append(enc) or real(pw, enc)
    )
    assert login(anon, "nobody@example.com").status_code == 401
    assert len(calls) == 1 and calls[0]  # a real hash was checked, not skipped


def test_login_records_last_login(anon, alice):
    me = alice.client.call("GET", "/api/users/me").json()
    assert me["last_login_at"] is not None


def test_login_of_a_disabled_account_is_refused(anon, admin, alice):
    admin.client.call("PUT", f"/api/users/{alice.id}/active", {"is_active": False})
    response = login(anon, alice.email)
    assert response.status_code == 401
    assert error_code(response) == "account_disabled"


# -- refresh ----------------------------------------------------------------------


def refresh(client: ApiClient, token: str):
    return client.call("POST", "/api/auth/refresh", {"refresh_token": token})


def test_refresh_rotates_the_pair(anon, alice):
    response = refresh(anon, alice.refresh)
    assert response.status_code == 200
    body = response.json()
    assert body["refresh_token"] != alice.refresh
    assert ApiClient(body["access_token"]).call("GET", "/api/users/me").status_code == 200
    assert refresh(anon, body["refresh_token"]).status_code == 200


def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(anon, alice, database):
    second = refresh(anon, alice.refresh).json()
    reused = refresh(anon, alice.refresh)
    assert reused.status_code == 401
    assert error_code(reused) == "token_reused"
    # The thief's and the owner's newer tokens are dead too, access tokens included.
    assert refresh(anon, second["refresh_token"]).status_code == 401
    assert ApiClient(second["access_token"]).call("GET", "/api/users/me").status_code == 401
    revoked = database.read(
        lambda con: con.execute(
            "SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL"
        ).fetchone()[0]
    )
    assert revoked == 0


def test_rotation_leaves_other_logins_alone(anon, alice):
    other = login(anon, alice.email).json()
    refresh(anon, alice.refresh)
    refresh(anon, alice.refresh)  # theft detected in the first family only
    assert refresh(anon, other["refresh_token"]).status_code == 200


def test_refresh_refuses_an_access_token(anon, alice):
    response = refresh(anon, alice.access)
    assert response.status_code == 401
    assert error_code(response) == "invalid_token"


@pytest.mark.parametrize("token", ["garbage", "a.b.c", ""])
def test_refresh_refuses_forged_tokens(anon, token):
    response = refresh(anon, token)
    assert response.status_code in (400, 401)


def test_refresh_refuses_a_token_signed_with_another_key(anon, alice, settings):
    import jwt

    claims = jwt.decode(alice.refresh, options={"verify_signature": False})
    forged = jwt.encode(claims, "some-other-key-that-is-long-enough-for-hs256!!", algorithm="HS256")
    assert refresh(anon, forged).status_code == 401


def test_refresh_refuses_an_expired_token(anon, alice, settings):
    import jwt

    claims = jwt.decode(alice.refresh, options={"verify_signature": False})
    claims["exp"] = int(time.time()) - 10
    expired = jwt.encode(claims, settings.SIMPLE_JWT["SIGNING_KEY"], algorithm="HS256")
    response = refresh(anon, expired)
    assert response.status_code == 401
    assert error_code(response) == "invalid_token"


def test_a_well_signed_token_whose_row_is_gone_counts_as_a_replay(anon, alice, settings):
    """Only this server can sign tokens, so a signed jti with no row was purged after
    rotation: presenting it is a replay and ends the login, like any reuse."""
    import jwt

    claims = jwt.decode(alice.refresh, options={"verify_signature": False})
    claims["jti"] = "0" * 32
    purged = jwt.encode(claims, settings.SIMPLE_JWT["SIGNING_KEY"], algorithm="HS256")
    response = refresh(anon, purged)
    assert response.status_code == 401
    assert error_code(response) == "token_reused"
    assert refresh(anon, alice.refresh).status_code == 401


# -- logout -----------------------------------------------------------------------


def test_logout_revokes_the_refresh_and_access_tokens(anon, alice: Persona):
    response = anon.call("POST", "/api/auth/logout", {"refresh_token": alice.refresh})
    assert response.status_code == 204
    assert refresh(anon, alice.refresh).status_code == 401
    assert alice.client.call("GET", "/api/users/me").status_code == 401


def test_logout_is_idempotent(anon, alice):
    for _ in range(2):
        assert (
            anon.call("POST", "/api/auth/logout", {"refresh_token": alice.refresh}).status_code
            == 204
        )
    assert anon.call("POST", "/api/auth/logout", {"refresh_token": "junk"}).status_code == 204


def test_logout_needs_a_refresh_token_field(anon):
    assert anon.call("POST", "/api/auth/logout", {}).status_code == 400
