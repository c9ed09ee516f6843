"""Liveness and readiness probes, without auth and without DRF, so they stay cheap."""

from __future__ import annotations

import asyncio

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET, require_safe

from core.db import DatabaseError, get_database
from core.db.database import list_migrations, schema_version


@require_safe  # probes use GET or HEAD; anything else is 405
async def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@require_GET
async def ping(request: HttpRequest) -> JsonResponse:
    """The cheapest JSON view through the full middleware stack (the benchmark's ceiling)."""
    return JsonResponse({"pong": True})


@require_safe
async def readyz(request: HttpRequest) -> JsonResponse:
    expected = max((version for version, _, _ in list_migrations()), default=0)
    try:
        db = get_database()
        version = await asyncio.wait_for(db.aread(schema_version), timeout=2)
    except (DatabaseError, TimeoutError) as exc:
        return JsonResponse({"status": "unavailable", "reason": type(exc).__name__}, status=503)
    if version < expected:
        return JsonResponse({"status": "migrating", "schema_version": version}, status=503)
    return JsonResponse({"status": "ready", "schema_version": version})
