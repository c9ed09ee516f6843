"""Personal API keys: shown once, stored hashed, usable as a bearer credential."""

from __future__ import annotations

import uuid

from tests.accounts.test_auth_api import error_code
from tests.conftest import ApiClient


def create_key(persona, name="my script"):
    response = persona.client.call("POST", "/api/auth/keys", {"name": name})
    assert response.status_code == 201, response.content
    return response.json()


def test_a_new_key_is_shown_once_with_a_visible_prefix(alice, database):
    body = create_key(alice)
    assert body["key"].startswith(body["prefix"] + "_")
    assert body["prefix"].startswith("agw_")
    listed = alice.client.call("GET", "/api/auth/keys").json()["items"]
    assert [k["id"] for k in listed] == [body["id"]]
    assert "key" not in listed[0]
    stored = database.read(lambda con: con.execute("SELECT * FROM api_keys").fetchall())
    assert body["key"] not in repr(stored)


def test_a_key_authenticates_like_an_access_token_and_records_its_use(alice):
    body = create_key(alice)
    me = ApiClient(body["key"]).call("GET", "/api/users/me")
    assert me.status_code == 200
    assert me.json()["id"] == alice.id
    listed = alice.client.call("GET", "/api/auth/keys").json()["items"]
    assert listed[0]["last_used_at"] is not None


def test_the_last_use_reaches_the_table(alice, database):
    body = create_key(alice)
    ApiClient(body["key"]).call("GET", "/api/users/me")
    database.flush_writes()  # the stamp was queued before this; wait for the writer
    stamped = database.read(
        lambda con: con.execute("SELECT last_used_at FROM api_keys").fetchone()[0]
    )
    assert stamped is not None


def test_revoking_a_key_locks_it_out_at_once(alice):
    body = create_key(alice)
    assert alice.client.call("DELETE", f"/api/auth/keys/{body['id']}").status_code == 204
    response = ApiClient(body["key"]).call("GET", "/api/users/me")
    assert response.status_code == 401
    assert error_code(response) == "invalid_api_key"
    assert alice.client.call("GET", "/api/auth/keys").json()["items"] == []


def test_nobody_else_can_see_or_revoke_my_keys(alice, mallory):
    body = create_key(alice)
    assert mallory.client.call("GET", "/api/auth/keys").json()["items"] == []
    response = mallory.client.call("DELETE", f"/api/auth/keys/{body['id']}")
    assert response.status_code == 404
    assert ApiClient(body["key"]).call("GET", "/api/users/me").status_code == 200


def test_revoking_an_unknown_key_is_404(alice):
    assert alice.client.call("DELETE", f"/api/auth/keys/{uuid.uuid4()}").status_code == 404


def test_a_key_cannot_be_used_to_refresh_or_as_a_tampered_copy(alice):
    body = create_key(alice)
    tampered = body["key"][:-2] + ("AA" if not body["key"].endswith("AA") else "BB")
    assert ApiClient(tampered).call("GET", "/api/users/me").status_code == 401
    response = ApiClient().call("POST", "/api/auth/refresh", {"refresh_token": body["key"]})
    assert response.status_code == 401


def test_key_names_are_validated(alice):
    assert alice.client.call("POST", "/api/auth/keys", {"name": ""}).status_code == 400
    assert alice.client.call("POST", "/api/auth/keys", {"name": "x" * 101}).status_code == 400
    assert alice.client.call("POST", "/api/auth/keys", {}).status_code == 400


def test_the_number_of_keys_is_capped(alice):
    from accounts.services import MAX_API_KEYS_PER_USER

    for index in range(MAX_API_KEYS_PER_USER):
        create_key(alice, f"k{index}")
    response = alice.client.call("POST", "/api/auth/keys", {"name": "one too many"})
    assert response.status_code == 409
    assert error_code(response) == "too_many_api_keys"


def test_keys_need_a_signed_in_user(anon):
    assert anon.call("GET", "/api/auth/keys").status_code == 401
    assert anon.call("POST", "/api/auth/keys", {"name": "x"}).status_code == 401


def test_key_creation_and_revocation_are_audited(alice, database):
    body = create_key(alice)
    alice.client.call("DELETE", f"/api/auth/keys/{body['id']}")
    actions = database.read(
        lambda con: [
            r[0] for r in con.execute("SELECT action FROM audit_log ORDER BY id").fetchall()
        ]
    )
    assert actions == ["api_key.created", "api_key.revoked"]
