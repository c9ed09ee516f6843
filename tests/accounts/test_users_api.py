"""SPEC §2 Users: profile, admin listing, deletion, roles; state changes apply at once."""

from __future__ import annotations

import uuid

import pytest

from tests.accounts.test_auth_api import error_code, login, refresh
from tests.conftest import PASSWORD, ApiClient, make_persona

NEW_PASSWORD = "an entirely new passphrase"


# -- me ---------------------------------------------------------------------------


def test_me_shows_the_own_profile(alice):
    body = alice.client.call("GET", "/api/users/me").json()
    assert body["id"] == alice.id
    assert body["email"] == alice.email
    assert body["role"] == "user"
    assert set(body) >= {"id", "email", "role", "created_at", "last_login_at"}


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "not_authenticated"),
        ("Bearer", "invalid_authorization_header"),
        ("Basic abc", "invalid_authorization_header"),
        ("Bearer not.a.jwt", "invalid_token"),
        ("Bearer agw_deadbeef_nope", "invalid_api_key"),
    ],
)
def test_me_refuses_missing_or_bad_credentials(header, code):
    headers = {"Authorization": header} if header else {}
    response = ApiClient().call("GET", "/api/users/me", headers=headers)
    assert response.status_code == 401
    assert error_code(response) == code
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_me_refuses_an_expired_access_token(alice, settings):
    import time

    import jwt

    claims = jwt.decode(alice.access, options={"verify_signature": False})
    claims["exp"] = int(time.time()) - 1
    expired = jwt.encode(claims, settings.SIMPLE_JWT["SIGNING_KEY"], algorithm="HS256")
    assert ApiClient(expired).call("GET", "/api/users/me").status_code == 401


def test_me_refuses_a_refresh_token_used_as_access_token(alice):
    assert ApiClient(alice.refresh).call("GET", "/api/users/me").status_code == 401


def test_changing_email_needs_the_current_password(alice):
    response = alice.client.call(
        "PUT", "/api/users/me", {"email": "alice2@example.com", "current_password": "wrong"}
    )
    assert response.status_code == 400
    assert "current_password" in response.json()["error"]["fields"]
    ok = alice.client.call(
        "PUT", "/api/users/me", {"email": "Alice2@Example.com", "current_password": PASSWORD}
    )
    assert ok.status_code == 200
    assert ok.json()["email"] == "Alice2@example.com"
    assert login(ApiClient(), "alice2@example.com").status_code == 200


def test_changing_email_to_a_taken_one_is_a_conflict(alice, mallory):
    response = alice.client.call(
        "PUT", "/api/users/me", {"email": "MALLORY@example.com", "current_password": PASSWORD}
    )
    assert response.status_code == 409
    assert error_code(response) == "email_taken"


def test_changing_email_case_only_is_allowed(alice):
    response = alice.client.call(
        "PUT", "/api/users/me", {"email": "ALICE@example.com", "current_password": PASSWORD}
    )
    assert response.status_code == 200
    assert response.json()["email"] == "ALICE@example.com"


def test_changing_password_revokes_every_session(alice):
    other_login = login(ApiClient(), alice.email).json()
    response = alice.client.call(
        "PUT", "/api/users/me", {"password": NEW_PASSWORD, "current_password": PASSWORD}
    )
    assert response.status_code == 200
    assert refresh(ApiClient(), alice.refresh).status_code == 401
    assert refresh(ApiClient(), other_login["refresh_token"]).status_code == 401
    assert ApiClient(other_login["access_token"]).call("GET", "/api/users/me").status_code == 401
    assert login(ApiClient(), alice.email, PASSWORD).status_code == 401
    assert login(ApiClient(), alice.email, NEW_PASSWORD).status_code == 200


def new_key(persona) -> str:
    return persona.client.call("POST", "/api/auth/keys", {"name": "script"}).json()["key"]


def test_changing_password_revokes_api_keys_by_default(alice, database):
    key = new_key(alice)
    response = alice.client.call(
        "PUT", "/api/users/me", {"password": NEW_PASSWORD, "current_password": PASSWORD}
    )
    assert response.status_code == 200
    assert ApiClient(key).call("GET", "/api/users/me").status_code == 401
    actions = database.read(
        lambda con: con.execute(
            "SELECT action, detail FROM audit_log WHERE action = 'api_key.revoked'"
        ).fetchall()
    )
    assert len(actions) == 1 and '"reason": "password_changed"' in actions[0][1]


def test_changing_password_may_keep_api_keys_when_asked(alice):
    key = new_key(alice)
    response = alice.client.call(
        "PUT", "/api/users/me",
        {"password": NEW_PASSWORD, "current_password": PASSWORD, "revoke_api_keys": False},
    )  # fmt: skip
    assert response.status_code == 200
    assert ApiClient(key).call("GET", "/api/users/me").status_code == 200


def test_changing_only_the_email_keeps_api_keys(alice):
    key = new_key(alice)
    response = alice.client.call(
        "PUT", "/api/users/me", {"email": "alice2@example.com", "current_password": PASSWORD}
    )
    assert response.status_code == 200
    assert ApiClient(key).call("GET", "/api/users/me").status_code == 200


@pytest.mark.parametrize("value", ["false", 0, None, []])
def test_revoke_api_keys_must_be_a_json_boolean(alice, value):
    key = new_key(alice)
    response = alice.client.call(
        "PUT", "/api/users/me",
        {"password": NEW_PASSWORD, "current_password": PASSWORD, "revoke_api_keys": value},
    )  # fmt: skip
    assert response.status_code == 400
    assert "revoke_api_keys" in response.json()["error"]["fields"]
    assert ApiClient(key).call("GET", "/api/users/me").status_code == 200
    assert login(ApiClient(), alice.email, PASSWORD).status_code == 200


def test_a_weak_new_password_is_refused_and_nothing_changes(alice):
    response = alice.client.call(
        "PUT", "/api/users/me", {"password": "123", "current_password": PASSWORD}
    )
    assert response.status_code == 400
    assert "password" in response.json()["error"]["fields"]
    assert login(ApiClient(), alice.email).status_code == 200


def test_profile_update_needs_something_to_change(alice):
    response = alice.client.call("PUT", "/api/users/me", {"current_password": PASSWORD})
    assert response.status_code == 400


def test_profile_update_refuses_a_role_field(alice):
    response = alice.client.call(
        "PUT", "/api/users/me", {"role": "admin", "current_password": PASSWORD}
    )
    assert response.status_code == 400
    assert alice.client.call("GET", "/api/users/me").json()["role"] == "user"


# -- admin: list --------------------------------------------------------------------


def test_admin_lists_users_paginated(admin, alice, mallory):
    body = admin.client.call("GET", "/api/users?page=1&page_size=2").json()
    assert body["total"] == 3
    assert body["page"] == 1 and body["page_size"] == 2
    assert len(body["items"]) == 2
    page2 = admin.client.call("GET", "/api/users?page=2&page_size=2").json()
    emails = {u["email"] for u in body["items"] + page2["items"]}
    assert emails == {admin.email, alice.email, mallory.email}


def test_admin_filters_by_role_and_searches_by_email(admin, alice, mallory):
    admins = admin.client.call("GET", "/api/users?role=admin").json()
    assert [u["email"] for u in admins["items"]] == [admin.email]
    found = admin.client.call("GET", "/api/users?q=MALL").json()
    assert [u["email"] for u in found["items"]] == [mallory.email]


def test_search_treats_like_wildcards_literally(admin, alice):
    assert admin.client.call("GET", "/api/users?q=%25").json()["total"] == 0
    assert admin.client.call("GET", "/api/users?q=_").json()["total"] == 0


@pytest.mark.parametrize("query", ["page=0", "page=abc", "page_size=101", "role=root"])
def test_listing_refuses_bad_query_parameters(admin, query):
    assert admin.client.call("GET", f"/api/users?{query}").status_code == 400


def test_users_listing_is_for_admins_only(alice, anon):
    assert alice.client.call("GET", "/api/users").status_code == 403
    assert error_code(alice.client.call("GET", "/api/users")) == "forbidden"
    assert anon.call("GET", "/api/users").status_code == 401


# -- admin: delete ------------------------------------------------------------------


def test_admin_deletes_a_user_with_tokens_and_keys_in_one_go(admin, alice, database):
    key = alice.client.call("POST", "/api/auth/keys", {"name": "script"}).json()["key"]
    response = admin.client.call("DELETE", f"/api/users/{alice.id}")
    assert response.status_code == 204
    assert alice.client.call("GET", "/api/users/me").status_code == 401
    assert ApiClient(key).call("GET", "/api/users/me").status_code == 401
    assert refresh(ApiClient(), alice.refresh).status_code == 401
    leftovers = database.read(
        lambda con, uid: con.execute(
            "SELECT (SELECT count(*) FROM refresh_tokens WHERE user_id = ?)"
            " + (SELECT count(*) FROM api_keys WHERE user_id = ?)",
            [uid, uid],
        ).fetchone()[0],
        uuid.UUID(alice.id),
    )
    assert leftovers == 0


def test_admin_cannot_delete_themself(admin):
    response = admin.client.call("DELETE", f"/api/users/{admin.id}")
    assert response.status_code == 400
    assert error_code(response) == "cannot_delete_self"


def test_deleting_an_unknown_user_is_404(admin):
    assert admin.client.call("DELETE", f"/api/users/{uuid.uuid4()}").status_code == 404
    assert admin.client.call("DELETE", "/api/users/not-a-uuid").status_code == 404


def test_users_cannot_delete_anyone(alice, mallory):
    assert mallory.client.call("DELETE", f"/api/users/{alice.id}").status_code == 403
    assert alice.client.call("GET", "/api/users/me").status_code == 200


# -- admin: roles -------------------------------------------------------------------


def test_role_change_takes_effect_on_the_next_request_with_the_same_token(admin, alice):
    assert alice.client.call("GET", "/api/users").status_code == 403
    response = admin.client.call("PUT", f"/api/users/{alice.id}/role", {"role": "admin"})
    assert response.status_code == 200
    assert response.json()["role"] == "admin"
    assert alice.client.call("GET", "/api/users").status_code == 200
    admin.client.call("PUT", f"/api/users/{alice.id}/role", {"role": "user"})
    assert alice.client.call("GET", "/api/users").status_code == 403
    assert alice.client.call("GET", "/api/users/me").json()["role"] == "user"


def test_the_last_admin_cannot_be_demoted(admin):
    response = admin.client.call("PUT", f"/api/users/{admin.id}/role", {"role": "user"})
    assert response.status_code == 409
    assert error_code(response) == "last_admin"


def test_an_admin_may_step_down_when_another_admin_exists(admin, alice):
    admin.client.call("PUT", f"/api/users/{alice.id}/role", {"role": "admin"})
    response = admin.client.call("PUT", f"/api/users/{admin.id}/role", {"role": "user"})
    assert response.status_code == 200
    assert admin.client.call("GET", "/api/users").status_code == 403


@pytest.mark.parametrize("body", [{"role": "root"}, {"role": 1}, {}, {"role": "user", "x": 1}])
def test_role_change_validates_its_body(admin, alice, body):
    assert admin.client.call("PUT", f"/api/users/{alice.id}/role", body).status_code == 400


def test_users_cannot_change_roles(alice, mallory):
    response = mallory.client.call("PUT", f"/api/users/{mallory.id}/role", {"role": "admin"})
    assert response.status_code == 403


# -- admin: disable -----------------------------------------------------------------


def test_disabling_a_user_locks_them_out_at_once(admin, alice):
    key = alice.client.call("POST", "/api/auth/keys", {"name": "k"}).json()["key"]
    response = admin.client.call("PUT", f"/api/users/{alice.id}/active", {"is_active": False})
    assert response.status_code == 200
    assert alice.client.call("GET", "/api/users/me").status_code == 401
    assert ApiClient(key).call("GET", "/api/users/me").status_code == 401
    assert refresh(ApiClient(), alice.refresh).status_code == 401
    admin.client.call("PUT", f"/api/users/{alice.id}/active", {"is_active": True})
    assert login(ApiClient(), alice.email).status_code == 200


def test_enabling_a_user_again_does_not_bring_back_their_api_keys(admin, alice, database):
    key = new_key(alice)
    admin.client.call("PUT", f"/api/users/{alice.id}/active", {"is_active": False})
    admin.client.call("PUT", f"/api/users/{alice.id}/active", {"is_active": True})
    assert ApiClient(key).call("GET", "/api/users/me").status_code == 401
    fresh = login(ApiClient(), alice.email).json()["access_token"]
    assert ApiClient(fresh).call("GET", "/api/auth/keys").json()["items"] == []
    revoked = database.read(
        lambda con: con.execute(
            "SELECT actor_email, detail FROM audit_log WHERE action = 'api_key.revoked'"
        ).fetchall()
    )
    assert len(revoked) == 1 and revoked[0][0] == admin.email
    assert '"reason": "account_disabled"' in revoked[0][1]


def test_active_flag_must_be_a_json_boolean(admin, alice):
    response = admin.client.call("PUT", f"/api/users/{alice.id}/active", {"is_active": "false"})
    assert response.status_code == 400
    assert alice.client.call("GET", "/api/users/me").status_code == 200


def test_admin_cannot_disable_themself(admin):
    response = admin.client.call("PUT", f"/api/users/{admin.id}/active", {"is_active": False})
    assert response.status_code == 400


# -- audit --------------------------------------------------------------------------


def test_admin_actions_are_audited(admin, alice, mallory, database):
    admin.client.call("PUT", f"/api/users/{alice.id}/role", {"role": "admin"})
    admin.client.call("DELETE", f"/api/users/{mallory.id}")
    rows = database.read(
        lambda con: con.execute(
            "SELECT action, actor_email, target_label, detail FROM audit_log ORDER BY id"
        ).fetchall()
    )
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("user.role_changed", admin.email, alice.email),
        ("user.deleted", admin.email, mallory.email),
    ]
    assert '"to": "admin"' in rows[0][3]


def test_personas_are_independent(admin):
    other = make_persona("other-admin@example.com", admin=True)
    assert other.client.call("GET", "/api/users").status_code == 200


def test_a_cached_access_token_still_expires(alice, monkeypatch):
    import time

    from accounts import tokens

    assert alice.client.call("GET", "/api/users/me").status_code == 200  # now cached
    real_time = time.time
    monkeypatch.setattr(tokens.time, "time", lambda: real_time() + 3600)
    monkeypatch.setattr("rest_framework_simplejwt.tokens.aware_utcnow", _an_hour_later())
    assert alice.client.call("GET", "/api/users/me").status_code == 401


def _an_hour_later():
    from datetime import UTC, datetime, timedelta

    return lambda: datetime.now(UTC) + timedelta(hours=1)
