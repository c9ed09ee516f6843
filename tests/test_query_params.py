"""Numeric query parameters: ASCII digits within a sane range; 400 in the API, clamped in pages."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.accounts.test_auth_api import error_code

HOSTILE = [
    "²",  # a digit to str.isdigit(), which int() refuses
    "٣",  # an Arabic-Indic three, which int() quietly accepts
    "\uff11",  # a fullwidth one
    "99999999999999999999",  # past INT64, which DuckDB refuses
    "9" * 4301,  # past Python's int-from-string limit
    "-1",
    "0",
    "+5",
    " 5",
    "5 ",
    "1e3",
    "0x10",
    "",
]


def api_paths() -> list[tuple[str, str]]:
    return [
        ("/api/generations", "page"),
        ("/api/generations", "page_size"),
        ("/api/users", "page"),
        ("/api/users", "page_size"),
        ("/api/admin/audit", "page"),
        ("/api/admin/audit", "page_size"),
        ("/api/admin/stats", "days"),
    ]


@pytest.mark.parametrize("value", HOSTILE)
def test_the_api_refuses_anything_but_ascii_digits_in_range_with_a_400(admin, value):
    for path, name in api_paths():
        response = admin.client.get(
            path, {name: value}, headers={"Authorization": f"Bearer {admin.access}"}
        )
        assert response.status_code == 400, (path, name, value, response.content[:200])
        assert error_code(response) == "validation_error"
        assert name in response.json()["error"]["fields"]


def test_the_api_still_takes_ordinary_numbers(admin):
    page = admin.client.call("GET", "/api/users?page=1&page_size=007").json()
    assert (page["page"], page["page_size"]) == (1, 7)
    far = admin.client.call("GET", "/api/users?page=1000000&page_size=100").json()
    assert far["items"] == [] and far["page"] == 1_000_000
    assert admin.client.call("GET", "/api/admin/stats?days=7").json()["window"]["days"] == 7


def signed_in(persona) -> Client:
    client = Client()
    response = client.post("/login", {"email": persona.email, "password": persona.password})
    assert response.status_code == 302
    return client


@pytest.mark.parametrize("value", HOSTILE)
def test_pages_clamp_hostile_page_numbers_instead_of_failing(admin, value):
    client = signed_in(admin)
    for path in ("/history", "/admin/users", "/admin/audit"):
        response = client.get(path, {"page": value})
        assert response.status_code == 200, (path, value)


def test_pages_clamp_a_huge_page_to_the_last_allowed_one(admin):
    from core.params import MAX_PAGE

    page = signed_in(admin).get("/history", {"page": "9" * 40})
    assert page.status_code == 200
    assert page.context["page"] == MAX_PAGE


def test_one_parser_reads_ascii_digits_only():
    from core.params import ascii_whole_number

    assert ascii_whole_number("0042") == 42
    for raw in ("²", "٣", "\uff11", "-1", "+1", " 1", "1_000", "", "9" * 19):
        assert ascii_whole_number(raw) is None, raw


@pytest.mark.parametrize("value", ["²", "٣", "9" * 4301])
def test_multipart_numbers_are_read_by_the_same_parser(alice, value):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.generation.test_generation_api import PNG_1PX

    upload = SimpleUploadedFile("frame.png", PNG_1PX, content_type="image/png")
    response = alice.client.post(
        "/api/generate/video/from-image",
        {"model": "google/veo-3.1-fast", "prompt": "move", "seed": value, "image": upload},
        headers={"Authorization": f"Bearer {alice.access}"},
    )  # fmt: skip
    assert response.status_code == 400
    assert "seed" in response.json()["error"]["fields"]
