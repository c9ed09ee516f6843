"""Pytest fixtures for the OIDC stand-in: one provider per test session, reset per test.

`tests/conftest.py` imports them, so any test can ask for `oidc`::

    def test_it_signs_in_with_sso(oidc: OidcServer) -> None:
        oidc.set_redirect_uris([gateway.base_url + "/login/oidc/callback"])
        oidc.configure(deny_consent=True)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .server import OidcServer


@pytest.fixture(scope="session")
def _oidc_server() -> Iterator[OidcServer]:
    with OidcServer() as server:
        yield server


@pytest.fixture
def oidc(_oidc_server: OidcServer) -> Iterator[OidcServer]:
    """The OpenID Connect provider stand-in, reset to its defaults for this test."""
    _oidc_server.reset()
    yield _oidc_server
    _oidc_server.reset()
