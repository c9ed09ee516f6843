"""Content negotiation's shortcut for the Accept headers nearly every API client sends
(core/negotiation.py) chooses exactly what DRF's own negotiation chooses."""

from __future__ import annotations

import pytest
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from core.negotiation import GatewayContentNegotiation, _plain_choice


class PlainText(BaseRenderer):
    media_type = "text/plain"
    format = "txt"


RENDERERS = {
    "json": [JSONRenderer()],
    "json first": [JSONRenderer(), BrowsableAPIRenderer()],
    "text first": [PlainText(), JSONRenderer()],
}


def drf_request(accept: str | None, query: str = "") -> Request:
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    return Request(APIRequestFactory().get(f"/api/ping{query}", **headers))


@pytest.mark.parametrize("accept", [None, "", "*/*", "application/json"])
@pytest.mark.parametrize("renderers", list(RENDERERS))
@pytest.mark.parametrize("query", ["", "?format=json", "?format=api", "?format=txt"])
def test_the_shortcut_chooses_what_drf_chooses(accept, renderers, query):
    request = drf_request(accept, query)
    choices = RENDERERS[renderers]
    try:
        expected = DefaultContentNegotiation().select_renderer(request, choices)
    except Exception as exc:  # e.g. no renderer for ?format=txt: the shortcut must step aside
        expected = type(exc)
    shortcut = _plain_choice(GatewayContentNegotiation(), request, choices, None)
    assert shortcut is None or shortcut == expected
    if not query and accept != "" and (accept != "application/json" or renderers != "text first"):
        assert shortcut == expected  # taken whenever it can be ("" accepts nothing: a 406)
    chosen = _chosen(request, choices)
    assert chosen == expected


def _chosen(request: Request, choices: list[BaseRenderer]) -> object:
    try:
        return GatewayContentNegotiation().select_renderer(request, choices)
    except Exception as exc:
        return type(exc)


def test_other_accept_headers_take_drfs_way():
    request = drf_request("application/json, text/plain, */*")
    assert _plain_choice(GatewayContentNegotiation(), request, RENDERERS["json"], None) is None
    assert (
        _plain_choice(GatewayContentNegotiation(), drf_request("*/*"), [JSONRenderer()], "json")
        is None
    )
