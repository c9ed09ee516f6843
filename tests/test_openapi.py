"""The OpenAPI schema covers every /api/ and /v1/ route and method, with auth and the error
shape (OpenAI's under /v1/); the interactive docs are served from the app itself (no CDN)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.staticfiles import finders
from django.urls import URLPattern, URLResolver, get_resolver

from accounts.permissions import IsAdmin

METHODS = ("get", "post", "put", "patch", "delete")
NOT_API = ("/api/schema/", "/api/docs/")


def walk(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from walk(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield route, pattern.callback


def openapi_path(route: str) -> str:
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)


def api_routes() -> list[tuple[str, Any]]:
    found = [
        (openapi_path(route), callback)
        for route, callback in walk(get_resolver().url_patterns)
        if route.startswith(("api/", "v1/")) and "(?P" not in route  # not /v1/'s catch-all 404
    ]
    return [(path, callback) for path, callback in found if path not in NOT_API]


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    from django.test import Client

    response = Client().get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def test_the_schema_is_openapi_3_and_public(anon):
    response = anon.get("/api/schema/")
    assert response.status_code == 200
    assert response.content.startswith(b"openapi: 3")
    as_json = anon.get("/api/schema/?format=json", headers={"Authorization": "Bearer junk"})
    assert as_json.status_code == 200
    assert as_json.json()["openapi"].startswith("3.")


def test_every_api_route_and_method_is_in_the_schema(schema):
    routes = api_routes()
    assert len(routes) > 20
    missing = []
    for path, callback in routes:
        view = getattr(callback, "cls", None)
        methods = [m for m in METHODS if view is None or hasattr(view, m)]
        if view is None:
            methods = ["get"]
        for method in methods:
            if method not in schema["paths"].get(path, {}):
                missing.append(f"{method.upper()} {path}")
    assert missing == []


def test_the_schema_documents_nothing_that_is_not_routed(schema):
    routed = {path for path, _ in api_routes()} | {"/healthz", "/readyz"}
    assert set(schema["paths"]) - routed == set()


def _operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def test_bearer_auth_is_documented_on_every_signed_in_operation(schema):
    scheme = schema["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    assert "API key" in scheme["description"]
    public = {"/api/auth/register", "/api/auth/login", "/api/auth/refresh", "/api/auth/logout"}
    public |= {"/api/ping", "/healthz", "/readyz"}
    for path, method, operation in _operations(schema):
        if path in public:
            assert {"bearerAuth": []} not in operation.get("security", []), path
            continue
        assert operation["security"] == [{"bearerAuth": []}], (method, path)
        assert "401" in operation["responses"], (method, path)


def test_every_error_response_has_the_one_error_shape(schema):
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    detail = schema["components"]["schemas"]["ErrorDetail"]
    assert set(detail["required"]) == {"code", "message", "fields"}
    for path, method, operation in _operations(schema):
        if path in ("/api/ping", "/healthz", "/readyz"):
            continue
        shape = "OpenAIError" if path.startswith("/v1/") else "Error"
        for status, response in operation["responses"].items():
            if status >= "400":
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref == f"#/components/schemas/{shape}", (method, path, status)
        assert "429" in operation["responses"], (method, path)
        assert "Retry-After" in operation["responses"]["429"]["headers"]


def test_admin_operations_document_403_and_bodies_document_400(schema):
    for path, callback in api_routes():
        view = getattr(callback, "cls", None)
        if view is None:
            continue
        admin_only = any(issubclass(p, IsAdmin) for p in view.permission_classes)
        for method in METHODS:
            operation = schema["paths"][path].get(method)
            if operation is None:
                continue
            if admin_only:
                assert "403" in operation["responses"], (method, path)
            if "requestBody" in operation:
                assert {"400", "413", "415"} <= set(operation["responses"]), (method, path)
            if "{" in path:
                assert "404" in operation["responses"], (method, path)


def test_every_success_response_has_a_schema(schema):
    for path, method, operation in _operations(schema):
        for status, response in operation["responses"].items():
            if status.startswith("2") and status != "204":
                assert response.get("content"), (method, path, status)
                for media in response["content"].values():
                    assert media.get("schema"), (method, path, status)


def test_the_docs_are_served_from_the_app_without_a_cdn(anon):
    response = anon.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "/api/schema/" in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets
    for asset in assets:
        assert asset.startswith("/static/"), asset
        assert finders.find(asset.removeprefix("/static/")), asset
    assert "unpkg" not in html and "cdn" not in html.lower()


def test_the_openai_compatible_operations_are_grouped_apart(schema):
    v1 = [(p, m, op) for p, m, op in _operations(schema) if p.startswith("/v1/")]
    assert {(p, m) for p, m, _ in v1} == {
        ("/v1/models", "get"), ("/v1/models/{model_id}", "get"), ("/v1/embeddings", "post"),
        ("/v1/chat/completions", "post"), ("/v1/images/generations", "post"),
    }  # fmt: skip
    assert all(op["tags"] == ["openai"] for _, _, op in v1)
    assert not any(
        "openai" in op.get("tags", []) for p, _, op in _operations(schema) if p[:4] != "/v1/"
    )
    assert any(tag["name"] == "openai" for tag in schema["tags"])
    error = schema["components"]["schemas"]["OpenAIErrorDetail"]
    assert set(error["properties"]) == {"message", "type", "param", "code"}
