"""Plausible, deterministic values for a JSON Schema: tool-call arguments and `json_schema`
answers.

Covers what tool definitions and the OpenAI SDK's Pydantic-derived schemas use: `type` (also
as a list), `properties`/`required`, `items`/`minItems`, `enum`, `const`, `default`,
`anyOf`/`oneOf`/`allOf`, local `$ref`s into `$defs`/`definitions`, string `format`s and
`minLength`/`maxLength`, number bounds. `pattern` is not honoured.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 12
STRING_FORMATS = {
    "date-time": "2026-01-01T12:00:00Z",
    "date": "2026-01-01",
    "time": "12:00:00",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
}
NAMED_STRINGS = {
    "email": "user@example.com",
    "url": "https://example.com/",
    "city": "Paris",
    "location": "Paris, France",
    "country": "France",
    "name": "Ada Lovelace",
    "language": "en",
    "unit": "celsius",
}


def sample_for_schema(schema: Any) -> Any:
    """A value valid for `schema` (within the subset above), always the same for one schema."""
    root = schema if isinstance(schema, dict) else {}
    return _sample(root, root, "value", 0)


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while isinstance(schema.get("$ref"), str) and seen < MAX_DEPTH:
        target: Any = root
        for part in schema["$ref"].removeprefix("#").strip("/").split("/"):
            target = target.get(part, {}) if isinstance(target, dict) and part else target
        merged = {key: value for key, value in schema.items() if key != "$ref"}
        schema = {**(target if isinstance(target, dict) else {}), **merged}
        seen += 1
    return schema


def _merge_all_of(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    parts = [_resolve(part, root) for part in schema.get("allOf", []) if isinstance(part, dict)]
    merged: dict[str, Any] = {key: value for key, value in schema.items() if key != "allOf"}
    for part in parts:
        properties = {**part.get("properties", {}), **merged.get("properties", {})}
        required = [*part.get("required", []), *merged.get("required", [])]
        merged = {**part, **merged}
        if properties:
            merged["properties"] = properties
        if required:
            merged["required"] = list(dict.fromkeys(required))
    return merged


def _sample(schema: dict[str, Any], root: dict[str, Any], name: str, depth: int) -> Any:
    schema = _resolve(schema, root)
    if "allOf" in schema:
        schema = _merge_all_of(schema, root)
    if depth > MAX_DEPTH:
        return None
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf"):
        options = [o for o in schema.get(key, []) if isinstance(o, dict)]
        if options:
            usable = [o for o in options if _resolve(o, root).get("type") != "null"]
            return _sample((usable or options)[0], root, name, depth + 1)
    kind = _type_of(schema)
    if kind == "object":
        return _sample_object(schema, root, depth)
    if kind == "array":
        return _sample_array(schema, root, name, depth)
    if kind == "string":
        return _sample_string(schema, name)
    if kind in ("integer", "number"):
        return _sample_number(schema, kind)
    if kind == "boolean":
        return True
    return None


def _type_of(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((item for item in kind if item != "null"), "null")
    if isinstance(kind, str):
        return kind
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return "string"


def _sample_object(schema: dict[str, Any], root: dict[str, Any], depth: int) -> dict[str, Any]:
    properties = schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    required = schema.get("required")
    names = required if isinstance(required, list) and required else list(properties)
    return {
        key: _sample(properties.get(key, {}) or {}, root, key, depth + 1)
        for key in names
        if isinstance(key, str)
    }


def _sample_array(schema: dict[str, Any], root: dict[str, Any], name: str, depth: int) -> Any:
    items = schema.get("items")
    items = items if isinstance(items, dict) else {}
    count = max(schema.get("minItems", 1), 1)
    if isinstance(schema.get("maxItems"), int):
        count = min(count, schema["maxItems"])
    return [_sample(items, root, name, depth + 1) for _ in range(count)]


def _sample_string(schema: dict[str, Any], name: str) -> str:
    text = STRING_FORMATS.get(str(schema.get("format")))
    if text is None:
        text = NAMED_STRINGS.get(name.lower(), f"stub {name}")
    minimum = schema.get("minLength")
    if isinstance(minimum, int) and len(text) < minimum:
        text = text + "x" * (minimum - len(text))
    maximum = schema.get("maxLength")
    if isinstance(maximum, int):
        text = text[:maximum]
    return text


def _sample_number(schema: dict[str, Any], kind: str) -> int | float:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    value: float = 1
    if isinstance(low, int | float):
        value = low + (1 if "exclusiveMinimum" in schema and "minimum" not in schema else 0)
    if isinstance(high, int | float) and value > high:
        value = high - (1 if "exclusiveMaximum" in schema and "maximum" not in schema else 0)
    return int(value) if kind == "integer" else float(value)
