"""SPEC §4 rate limits: per user, per IP, stricter on register/login/refresh; 429 + Retry-After."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.cache import cache

from tests.accounts.test_auth_api import error_code, login, refresh
from tests.conftest import PASSWORD, ApiClient
from tests.test_settings import REPO, load_settings

LIMIT = 3


@pytest.fixture
def limits(settings):
    """Small limits, fresh counters; the personas are made before this fixture runs."""

    def set_limits(user=None, anon=None, auth=None, auth_failures=None):
        settings.RATE_LIMITS = {
            "user": user, "anon": anon, "auth": auth, "auth_failures": auth_failures
        }  # fmt: skip
        cache.clear()

    yield set_limits
    cache.clear()


def assert_rate_limited(response):
    assert response.status_code == 429
    assert error_code(response) == "rate_limited"
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 60
    return retry_after


def test_the_login_attempt_past_the_limit_gets_429_with_retry_after(alice, limits):
    limits(auth=f"{LIMIT}/min")
    for _ in range(LIMIT):
        assert login(ApiClient(), alice.email, "wrong password").status_code == 401
    assert_rate_limited(login(ApiClient(), alice.email, PASSWORD))


def test_the_auth_limit_is_per_client_ip(alice, limits):
    limits(auth=f"{LIMIT}/min")
    for _ in range(LIMIT):
        login(ApiClient(), alice.email, "wrong password")
    assert login(ApiClient(), alice.email, PASSWORD).status_code == 429
    elsewhere = ApiClient(REMOTE_ADDR="10.1.2.3")
    assert login(elsewhere, alice.email, PASSWORD).status_code == 200


def test_register_login_and_refresh_share_the_auth_limit(alice, limits):
    limits(auth=f"{LIMIT}/min")
    anon = ApiClient()
    anon.call("POST", "/api/auth/register", {"email": "new@example.com", "password": PASSWORD})
    login(anon, alice.email)
    assert refresh(anon, alice.refresh).status_code == 200
    assert_rate_limited(refresh(anon, "whatever"))
    blocked = anon.call("POST", "/api/auth/register", {"email": "n2@example.com", "password": "x"})
    assert_rate_limited(blocked)


def test_the_auth_limit_ignores_credentials_sent_along(alice, limits):
    limits(auth=f"{LIMIT}/min")
    signed_in = ApiClient(alice.access)
    for _ in range(LIMIT):
        login(signed_in, alice.email, "wrong password")
    assert_rate_limited(login(signed_in, alice.email, PASSWORD))


def test_logout_is_not_held_back_by_the_auth_limit(alice, limits):
    limits(auth=f"{LIMIT}/min")
    for _ in range(LIMIT):
        login(ApiClient(), alice.email, "wrong password")
    response = ApiClient().call("POST", "/api/auth/logout", {"refresh_token": alice.refresh})
    assert response.status_code == 204


def test_signed_in_users_are_limited_each_on_their_own(alice, mallory, limits):
    limits(user=f"{LIMIT}/min")
    for _ in range(LIMIT):
        assert alice.client.call("GET", "/api/users/me").status_code == 200
    assert_rate_limited(alice.client.call("GET", "/api/auth/keys"))
    assert mallory.client.call("GET", "/api/users/me").status_code == 200


def test_the_user_limit_follows_the_user_across_addresses_and_api_keys(alice, limits):
    key = alice.client.call("POST", "/api/auth/keys", {"name": "k"}).json()["key"]
    limits(user=f"{LIMIT}/min")
    ApiClient(alice.access).call("GET", "/api/users/me")
    ApiClient(alice.access, REMOTE_ADDR="10.9.9.9").call("GET", "/api/users/me")
    ApiClient(key).call("GET", "/api/users/me")
    assert_rate_limited(ApiClient(key, REMOTE_ADDR="10.8.8.8").call("GET", "/api/users/me"))


def test_requests_without_credentials_are_limited_per_ip(limits):
    limits(anon=f"{LIMIT}/min")
    for _ in range(LIMIT):
        assert ApiClient().call("GET", "/api/users/me").status_code == 401
    # Unauthenticated requests to a signed-in-only view are refused before they are counted,
    # so the public views are where the per-IP limit bites.
    for _ in range(LIMIT):
        ApiClient().call("POST", "/api/auth/logout", {"refresh_token": "x"})
    assert_rate_limited(ApiClient().call("POST", "/api/auth/logout", {"refresh_token": "x"}))
    assert (
        ApiClient(REMOTE_ADDR="10.4.4.4")
        .call("POST", "/api/auth/logout", {"refresh_token": "x"})
        .status_code
        == 204
    )


def test_a_limit_set_to_off_never_limits(alice, limits):
    limits(user=None, anon=None, auth=None)
    for _ in range(30):
        assert login(ApiClient(), alice.email, "wrong password").status_code == 401


def test_retry_after_is_when_a_request_is_allowed_again(alice, limits, monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    now = [1_000_000.0]
    monkeypatch.setattr(SimpleRateThrottle, "timer", lambda self: now[0])
    limits(auth="2/min")
    login(ApiClient(), alice.email)
    now[0] += 20
    login(ApiClient(), alice.email)
    retry_after = assert_rate_limited(login(ApiClient(), alice.email))
    assert retry_after == 40  # the first attempt leaves the one-minute window then
    now[0] += retry_after - 1
    assert_rate_limited(login(ApiClient(), alice.email))
    now[0] += 1
    assert login(ApiClient(), alice.email).status_code == 200


def test_pages_share_the_auth_limit_through_page_retry_after(alice, limits):
    from django.test import RequestFactory

    from core.throttling import page_retry_after

    limits(auth="2/min")
    login(ApiClient(), alice.email, "wrong password")
    form_post = RequestFactory().post("/login", REMOTE_ADDR="127.0.0.1")
    assert page_retry_after(form_post) is None
    wait = page_retry_after(form_post)
    assert wait is not None and 1 <= wait <= 60
    assert_rate_limited(login(ApiClient(), alice.email))
    assert page_retry_after(RequestFactory().post("/login", REMOTE_ADDR="10.0.0.9")) is None


# -- failed authentication ----------------------------------------------------------------


@pytest.mark.parametrize("bogus", ["not-a-jwt", "agw_deadbeef_" + "x" * 43, "eyJhbGciOi.x.y"])
def test_failed_authentications_are_counted_per_ip_and_end_in_429(limits, bogus):
    limits(auth_failures=f"{LIMIT}/min")
    for _ in range(LIMIT):
        assert ApiClient(bogus).call("GET", "/api/users/me").status_code == 401
    assert_rate_limited(ApiClient(bogus).call("GET", "/api/users/me"))
    assert_rate_limited(ApiClient("another-guess").call("GET", "/api/auth/keys"))
    elsewhere = ApiClient(bogus, REMOTE_ADDR="10.7.7.7")
    assert elsewhere.call("GET", "/api/users/me").status_code == 401


def test_a_malformed_authorization_header_counts_as_a_failure(limits):
    limits(auth_failures=f"{LIMIT}/min")
    for _ in range(LIMIT):
        response = ApiClient().call("GET", "/api/users/me", headers={"Authorization": "Basic x"})
        assert response.status_code == 401
    assert_rate_limited(
        ApiClient().call("GET", "/api/users/me", headers={"Authorization": "Basic x"})
    )


def test_while_an_ip_is_blocked_no_credential_from_it_is_checked(alice, limits):
    limits(auth_failures=f"{LIMIT}/min")
    for _ in range(LIMIT):
        ApiClient("guess").call("GET", "/api/users/me")
    # Otherwise a guess that happened to be right would still get through.
    assert_rate_limited(alice.client.call("GET", "/api/users/me"))
    assert (
        ApiClient(alice.access, REMOTE_ADDR="10.7.7.8").call("GET", "/api/users/me").status_code
        == 200
    )


def test_successful_authentications_are_not_failures(alice, limits):
    limits(auth_failures=f"{LIMIT}/min")
    for _ in range(LIMIT * 3):
        assert alice.client.call("GET", "/api/users/me").status_code == 200


def test_a_revoked_token_is_a_failure_too(alice, limits):
    limits(auth_failures=f"{LIMIT}/min")
    ApiClient().call("POST", "/api/auth/logout", {"refresh_token": alice.refresh})
    for _ in range(LIMIT):
        assert alice.client.call("GET", "/api/users/me").status_code == 401
    assert_rate_limited(alice.client.call("GET", "/api/users/me"))


def test_public_views_ignore_stray_credentials_and_do_not_count_them(alice, limits):
    limits(auth_failures=f"{LIMIT}/min")
    for _ in range(LIMIT * 2):
        response = ApiClient("bogus").call("POST", "/api/auth/logout", {"refresh_token": "x"})
        assert response.status_code == 204


# -- configuration ------------------------------------------------------------------------


def test_rate_limits_come_from_the_environment():
    env = {
        **os.environ, "SECRET_KEY": "k" * 50, "RATE_LIMIT_USER": "50/hour",
        "RATE_LIMIT_ANON": "off", "RATE_LIMIT_AUTH": "5 / Min",
        "RATE_LIMIT_AUTH_FAILURES": "7/hour",
    }  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", "import aigateway.settings as s; print(s.RATE_LIMITS)"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "{'user': '50/hour', 'anon': None, 'auth': '5/min', 'auth_failures': '7/hour'}"
    )


@pytest.mark.parametrize("value", ["10", "ten/min", "10/fortnight", "-1/min"])
def test_a_bad_rate_limit_stops_start_up_with_one_line(value):
    result = load_settings(SECRET_KEY="k" * 50, RATE_LIMIT_AUTH=value)
    assert result.returncode != 0
    assert "RATE_LIMIT_AUTH must look like 600/min" in result.stderr
    assert "Traceback" not in result.stderr


# -- shared by every worker (REDIS_URL) --------------------------------------------------


def test_simultaneous_requests_on_many_workers_share_one_exact_counter(redis_cache):
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from types import SimpleNamespace

    from core.throttling import UserRateThrottle

    redis_cache.RATE_LIMITS = {**redis_cache.RATE_LIMITS, "user": "30/min"}
    request = SimpleNamespace(user=SimpleNamespace(is_authenticated=True, id="one-user"))
    start = threading.Barrier(20)

    def worker(_: int) -> list[bool]:
        start.wait()  # all at the same instant, as requests reaching several workers
        return [UserRateThrottle().allow_request(request, None) for _ in range(5)]  # type: ignore[arg-type]

    with ThreadPoolExecutor(20) as pool:
        allowed = [ok for outcome in pool.map(worker, range(20)) for ok in outcome]
    assert allowed.count(True) == 30  # DRF's read-then-write lets more through
    refused = UserRateThrottle()
    assert refused.allow_request(request, None) is False  # type: ignore[arg-type]
    assert 0 < refused.wait() <= 60
