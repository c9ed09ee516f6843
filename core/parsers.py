"""Request bodies: JSON that can never crash the decoder, and multipart with its own error.

Every JSON body, from a client or from the upstream provider, goes through `load_json`:
Python's decoder recurses once per nesting level and raises RecursionError near 1,000
levels (about 2 KB of brackets), and a value nested a few hundred levels deep can still
overflow the stack later (a repr in an error message, a copy). Nothing this API accepts
nests more than a handful of levels, so anything deeper than MAX_JSON_DEPTH is refused.
"""

from __future__ import annotations

import json
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, MultiPartParser, get_encoding  # type: ignore[attr-defined]
from rest_framework.utils.json import strict_constant

from core.errors import ApiError

MAX_JSON_DEPTH = 100


class MalformedJson(ApiError):
    status = 400
    code = "malformed_json"
    message = "The body is not valid JSON."


class MalformedMultipart(ApiError):
    status = 400
    code = "malformed_multipart"
    message = (
        "The body is not a valid multipart form: check the boundary in the Content-Type "
        "header and keep each part's headers, such as the file name, under 1 KB."
    )


class JsonTooDeep(ValueError):
    pass


def load_json(raw: str | bytes, **options: Any) -> Any:
    """json.loads, raising ValueError (never RecursionError) for anything but sane JSON."""
    try:
        data = json.loads(raw, **options)
    except RecursionError:
        raise JsonTooDeep(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    if _openings(raw) > MAX_JSON_DEPTH and nests_deeper_than(data, MAX_JSON_DEPTH):
        raise JsonTooDeep(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return data


def _openings(raw: str | bytes) -> int:
    """How many `[` and `{` the text holds: a bound on its depth that costs a C scan, so the
    walk below runs only for text that could nest that deep (almost none does)."""
    if isinstance(raw, str):
        return raw.count("[") + raw.count("{")
    return raw.count(b"[") + raw.count(b"{")


def nests_deeper_than(data: Any, limit: int) -> bool:
    """Whether any array or object sits more than `limit` levels deep (without recursion)."""
    if not isinstance(data, dict | list):
        return False
    pending: list[tuple[dict[str, Any] | list[Any], int]] = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        for child in value.values() if isinstance(value, dict) else value:
            if isinstance(child, dict | list):
                if depth >= limit:
                    return True
                pending.append((child, depth + 1))
    return False


class JsonBodyParser(JSONParser):
    """DRF's JSON parser, through load_json: every bad body is a 400 `malformed_json`."""

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        encoding = get_encoding(parser_context or {})  # text codecs only
        options = {"parse_constant": strict_constant} if self.strict else {}
        try:
            return load_json(stream.read().decode(encoding), **options)
        except JsonTooDeep:
            raise MalformedJson(
                f"The body is not valid JSON: it nests deeper than {MAX_JSON_DEPTH} levels."
            ) from None
        except ValueError:
            raise MalformedJson() from None


class MultipartBodyParser(MultiPartParser):
    """DRF's multipart parser, whose failures say they are about a multipart form."""

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except ParseError:
            raise MalformedMultipart() from None
