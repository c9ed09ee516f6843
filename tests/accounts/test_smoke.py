def test_register_login_me(anon, alice):
    response = alice.client.call("GET", "/api/users/me")
    assert response.status_code == 200, response.content
    assert response.json()["email"] == "alice@example.com"
