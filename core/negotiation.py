"""Content negotiation: JSON everywhere, and Server-Sent Events where a view streams them."""

from __future__ import annotations

from collections.abc import Iterable

from django.utils.http import parse_header_parameters
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.utils.mediatypes import media_type_matches

EVENT_STREAM = "text/event-stream"


class GatewayContentNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, except that a view marked `streams_events = True` also suits a
    client that accepts text/event-stream (as SSE clients announce).

    The view still decides from the body whether to stream (`stream: true`); whatever it
    answers in one piece, errors included, is rendered by its first renderer, JSON. A view
    that never streams keeps answering 406 to a client that accepts only an event stream.
    """

    def select_renderer(
        self,
        request: Request,
        renderers: Iterable[BaseRenderer],
        format_suffix: str | None = None,
    ) -> tuple[BaseRenderer, str]:
        renderers = list(renderers)
        plain = _plain_choice(self, request, renderers, format_suffix)
        if plain is not None:
            return plain
        view = (getattr(request, "parser_context", None) or {}).get("view")
        if getattr(view, "streams_events", False) and accepts(
            self.get_accept_list(request), EVENT_STREAM
        ):
            return renderers[0], str(renderers[0].media_type)
        chosen: tuple[BaseRenderer, str] = super().select_renderer(
            request, renderers, format_suffix
        )
        return chosen


def _plain_choice(
    negotiation: DefaultContentNegotiation,
    request: Request,
    renderers: list[BaseRenderer],
    format_suffix: str | None,
) -> tuple[BaseRenderer, str] | None:
    """DRF's answer for what nearly every API client sends (no Accept header, `*/*` or
    `application/json`, no format override), without parsing media types: the first
    renderer, or a JSON first renderer. ~20 µs a request; tests/test_negotiation.py holds it to
    DRF's own choice. None for anything else."""
    accept = request.META.get("HTTP_ACCEPT", "*/*")  # as DRF: "" accepts nothing
    if accept not in ("*/*", "application/json") or format_suffix or not renderers:
        return None
    override = negotiation.settings.URL_FORMAT_OVERRIDE
    if override and request.query_params.get(override):
        return None
    first = renderers[0]
    if accept == "*/*" or first.media_type == accept:
        return first, str(first.media_type)
    return None


def accepts(accept_list: list[str], media_type: str) -> bool:
    """Whether an Accept header's entries admit media_type (wildcards count; q=0 refuses)."""
    for entry in accept_list:
        try:
            _, params = parse_header_parameters(entry)
        except ValueError:  # longer than Django will parse: it admits nothing
            continue
        if _is_zero(params.get("q", "1")):
            continue
        if media_type_matches(media_type, entry):
            return True
    return False


def _is_zero(quality: str) -> bool:
    try:
        return float(quality) == 0
    except ValueError:
        return False
