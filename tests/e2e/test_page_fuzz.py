"""A fuzz pass over the pages, as schemathesis is over the API: every page URL, read with
hostile query strings (and hostile path numbers) by a signed-in user and by an admin,
against the live server. No answer may be a 5xx, and the session must survive.

Reproduce a failure with the seed Hypothesis prints, or widen the run:

    PAGE_FUZZ_EXAMPLES=2000 .venv/bin/python -m pytest tests/e2e/test_page_fuzz.py -q
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, bearer, log_in, unique_email
from tests.openrouter_stub import StubServer
from tests.servers import GatewayServer

STUB_KEY = "sk-or-v1-page-fuzz-stub-key-0123456789abcdef0123456789abcdef"
EXAMPLES = int(os.environ.get("PAGE_FUZZ_EXAMPLES", "300"))
SEED = int(os.environ.get("PAGE_FUZZ_SEED", "20260102"))

# The query parameters some page reads, and a few that none does.
PARAMETERS = [
    "page", "page_size", "days", "kind", "q", "role", "actor", "action", "target", "tab",
    "next", "format", "polling_url", "id", "mode", "state", "code", "error", "",
]  # fmt: skip
HOSTILE_VALUES = [
    "²", "٣", "\uff11", "-1", "0", "+5", " 5", "1e3", "0x10", "99999999999999999999",
    "9" * 4301, "", "%", "%ZZ", "%ff%fe", "\x00", "\r\nX-Injected: 1", "../../etc/passwd",
    "<script>alert(1)</script>", "' OR 1=1 --", "%_\\", "https://evil.example/", "//evil.example",
    "javascript:alert(1)", "a" * 10_000, "image", "text", "admin", "user", "null", "[]", "{}",
    "\ud7ff\ue000\U0010ffff", "\u202e", "NaN", "true",
]  # fmt: skip
HOSTILE_NUMBERS = ["0", "1", "7", "99999999999999999999", "9" * 5000]


def page_routes() -> list[str]:
    """Every page route (not /api/), with Django's converters left in: `media/<uuid:…>/<int:…>`."""
    routes: list[str] = []

    def walk(patterns: list[URLPattern | URLResolver], prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif not route.startswith(("api/", "^")):
                routes.append("/" + route)

    walk(get_resolver().url_patterns, "")
    return sorted(set(routes))


ROUTES = page_routes()


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with StubServer(api_key=STUB_KEY, video_seconds=0.3) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, stub: StubServer) -> Iterator[GatewayServer]:
    server = GatewayServer(
        tmp_path_factory.mktemp("page-fuzz"),
        env={"OPENROUTER_BASE_URL": stub.base_url, "OPENROUTER_API_KEY": STUB_KEY},
    )
    server.create_admin(ADMIN_EMAIL, ADMIN_PASSWORD)
    try:
        yield server.start()
    finally:
        server.stop()


def page_session(server: GatewayServer, email: str, password: str) -> httpx.Client:
    """A browser-like client signed in through the login form."""
    client = server.client(follow_redirects=False)
    form = client.get("/login").text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
    assert token is not None
    signed_in = client.post(
        "/login",
        data={"email": email, "password": password, "csrfmiddlewaretoken": token.group(1)},
    )
    assert signed_in.status_code == 302, signed_in.text[:500]
    return client


@pytest.fixture(scope="module")
def known_ids(gateway: GatewayServer) -> dict[str, list[str]]:
    """Real ids of a user's things, so detail pages are fuzzed past their 404s too."""
    with gateway.client() as http:
        email = unique_email("fuzz")
        http.post("/api/auth/register", json={"email": email, "password": PASSWORD})
        token = log_in(http, email, PASSWORD)["access_token"]
        text = http.post(
            "/api/generate/text",
            json={"model": "openai/gpt-4o-mini", "prompt": "hello"},
            headers=bearer(token),
        ).json()
        job = http.post(
            "/api/generate/video",
            json={"model": "google/veo-3.1-fast", "prompt": "waves"},
            headers=bearer(token),
        ).json()
    return {"email": [email], "uuid": [text["id"], job["id"]]}


@pytest.fixture(scope="module")
def sessions(gateway: GatewayServer, known_ids: dict[str, list[str]]) -> dict[str, httpx.Client]:
    return {
        "user": page_session(gateway, known_ids["email"][0], PASSWORD),
        "admin": page_session(gateway, ADMIN_EMAIL, ADMIN_PASSWORD),
    }


NUMERIC = ["²", "٣", "\uff11", "-1", "0", " 5", "99999999999999999999", "9" * 4301, ""]


def encode(pairs: list[tuple[str, str]]) -> str:
    return "&".join(
        f"{quote(k.encode('utf-8', 'surrogatepass'), safe='')}="
        f"{quote(v.encode('utf-8', 'surrogatepass'), safe='')}"
        for k, v in pairs
    )


def query_strings() -> st.SearchStrategy[str]:
    """Every known parameter at once, each with its own hostile value, plus stray ones."""
    value = st.one_of(
        st.sampled_from(NUMERIC),
        st.sampled_from(HOSTILE_VALUES),
        st.text(max_size=40),
        st.integers(min_value=-(10**30), max_value=10**30).map(str),
    )
    known = st.fixed_dictionaries({name: value for name in PARAMETERS if name}).map(
        lambda chosen: list(chosen.items())
    )
    stray = st.lists(st.tuples(st.text(max_size=10), value), max_size=2)
    encoded = st.builds(lambda a, b: encode(a + b), known, stray)
    raw = st.sampled_from(
        ["page=%ZZ", "page=%", "q=%ff%fe%fd", "page=1&page=2&page=x", "page[]=1", "&&&=&=",
         "kind=%00", "next=%0d%0aSet-Cookie:%20x=1", "page=" + "9" * 4301, "q=" + "%25" * 2000]
    )  # fmt: skip
    return st.one_of(encoded, raw)


def urls(ids: list[str]) -> st.SearchStrategy[str]:
    uuids = st.sampled_from([*ids, str(uuid.UUID(int=0)), str(uuid.uuid4())])
    path = st.builds(fill, st.sampled_from(ROUTES), uuids, st.sampled_from(HOSTILE_NUMBERS))
    return st.builds(lambda p, q: f"{p}?{q}" if q else p, path, query_strings())


def fill(route: str, uuid_value: str, number: str) -> str:
    route = re.sub(r"<uuid:\w+>", uuid_value, route)
    return re.sub(r"<int:\w+>", number, route)


def sweep(client: httpx.Client, ids: list[str]) -> None:
    """Deterministic first: every route with every hostile number in every numeric parameter."""
    for route in ROUTES:
        for number in NUMERIC:
            url = (
                fill(route, ids[0], number)
                + "?"
                + encode([("page", number), ("page_size", number), ("days", number)])
            )
            response = client.get(url)
            assert response.status_code < 500, f"GET {url[:300]} -> {response.status_code}"


def fuzz(client: httpx.Client, ids: list[str]) -> None:
    @seed(SEED)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(url=urls(ids))
    def read(url: str) -> None:
        response = client.get(url)
        assert response.status_code < 500, f"GET {url[:300]} -> {response.status_code}"

    read()


@pytest.mark.parametrize("role", ["user", "admin"])
def test_no_page_answers_5xx_to_hostile_query_strings(gateway, sessions, known_ids, role):
    assert len(ROUTES) > 20
    client = sessions[role]
    sweep(client, known_ids["uuid"])
    fuzz(client, known_ids["uuid"])
    # Still signed in, and the server still up.
    assert client.get("/profile").status_code == 200
    assert "Traceback" not in gateway.log_text()
    assert " status=5" not in gateway.log_text()
