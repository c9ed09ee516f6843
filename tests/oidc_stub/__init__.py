"""A local OpenID Connect provider stand-in for tests of the gateway's single sign-on.

Test and development tool only: no production code path imports it. It implements the
authorization code flow with PKCE (S256) strictly enough to catch a careless client:
discovery, `/authorize`, `/token` (client_secret_basic and client_secret_post), `/jwks`
(RS256, signed with joserfc) and `/userinfo`, with switches that make one thing wrong at a
time. Run it standalone::

    python -m tests.oidc_stub --port 8098 --redirect-uri http://127.0.0.1:8000/login/oidc/callback

or inside a test::

    with OidcServer(redirect_uris=[callback]) as idp:
        idp.issuer, idp.client.client_id, idp.client.client_secret
"""

from .app import OidcApp, create_app
from .server import OidcServer
from .state import FAULT_SWITCHES, OidcClient, OidcState, OidcUser

__all__ = [
    "FAULT_SWITCHES",
    "OidcApp",
    "OidcClient",
    "OidcServer",
    "OidcState",
    "OidcUser",
    "create_app",
]
