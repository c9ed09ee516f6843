"""JSON API for staff: stats, database health, token purge, audit log, backups (SPEC §2 "Admin")."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.authentication import request_user
from accounts.permissions import IsAdmin
from adminops import services
from adminops.serializers import (
    AuditPageSerializer,
    BackupSerializer,
    DatabaseHealthSerializer,
    PurgeResultSerializer,
    StatsSerializer,
    audit_json,
    backup_json,
    health_json,
    stats_json,
)
from core.api import ApiView, client_ip, page_params, paginated
from core.errors import ValidationFailed
from core.openapi import PAGE_PARAMETERS, errors, integer
from core.params import whole_number_param

TAGS = ["admin"]
MAX_FILTER_LENGTH = 320


class AdminView(ApiView):
    permission_classes = [IsAdmin]


def _days(request: Request) -> int:
    return whole_number_param(
        request.query_params, "days", default=services.STATS_DAYS,
        minimum=1, maximum=services.MAX_STATS_DAYS,
    )  # fmt: skip


class StatsView(AdminView):
    @extend_schema(
        tags=TAGS,
        summary="Usage statistics",
        description=(
            "Users by role, refresh tokens by state, and for the last `days` UTC days "
            "(today included): generations, calls, tokens and cost in total and by kind, "
            "model, day and user. Generation counts come from the generations table; calls, "
            "errors, tokens and cost from usage_records (one row per call to OpenRouter, "
            "including catalogue listings and video polls, which cost nothing)."
        ),
        parameters=[
            OpenApiParameter(
                "days",
                integer(1, services.MAX_STATS_DAYS),
                description="Window in UTC days, today included (default 30).",
                required=False,
            )
        ],
        responses={200: StatsSerializer},
    )
    async def get(self, request: Request) -> Response:
        stats = await services.collect_stats(_days(request))
        return Response(stats_json(stats))


class DatabaseHealthView(AdminView):
    @extend_schema(
        tags=TAGS,
        summary="Database health",
        description="Connectivity, read and write round trips, file and WAL size, schema version.",
        responses={200: DatabaseHealthSerializer},
    )
    async def get(self, request: Request) -> Response:
        return Response(health_json(await services.database_health()))


class TokenPurgeView(AdminView):
    @extend_schema(
        tags=TAGS,
        summary="Delete revoked and expired refresh tokens",
        description="Live tokens are kept. Audited as `tokens.purged` with the count.",
        request=None,
        responses={200: PurgeResultSerializer},
    )
    async def post(self, request: Request) -> Response:
        purged = await services.purge_refresh_tokens(request_user(request), ip=client_ip(request))
        return Response({"purged": purged})


def _filter(request: Request, name: str) -> str | None:
    value = request.query_params.get(name, "").strip()
    if len(value) > MAX_FILTER_LENGTH:
        raise ValidationFailed(fields={name: f"Use at most {MAX_FILTER_LENGTH} characters."})
    return value or None


class AuditLogView(AdminView):
    @extend_schema(
        tags=TAGS,
        summary="Audit log",
        description="Who did what to whom, when, from which IP; newest first.",
        parameters=[
            OpenApiParameter("actor", str, description="A user id or an email.", required=False),
            OpenApiParameter(
                "action", str, description="e.g. user.role_changed, tokens.purged.", required=False
            ),
            OpenApiParameter(
                "target", str, description="The id of the object acted on.", required=False
            ),
            *PAGE_PARAMETERS,
        ],
        responses={200: AuditPageSerializer},
    )
    async def get(self, request: Request) -> Response:
        page, page_size = page_params(request)
        entries, total = await services.audit_log(
            actor=_filter(request, "actor"),
            action=_filter(request, "action"),
            target=_filter(request, "target"),
            page=page,
            page_size=page_size,
        )
        return Response(
            paginated([audit_json(e) for e in entries], total=total, page=page, page_size=page_size)
        )


class BackupView(AdminView):
    @extend_schema(
        tags=TAGS,
        summary="Back up the database",
        description=(
            "Writes a consistent snapshot of the running server's database into BACKUP_DIR "
            "(through the writer, so no write interleaves; writes wait meanwhile). "
            "Audited as `database.backed_up`. Restore: see README. On PostgreSQL: 409 "
            "`backup_not_available`, with a sentence pointing at pg_dump."
        ),
        request=None,
        responses={201: BackupSerializer, **errors(409)},
    )
    async def post(self, request: Request) -> Response:
        made = await services.backup_database(request_user(request), ip=client_ip(request))
        return Response(backup_json(made), status=201)
