"""JSON API for staff: stats, database health, token purge, audit log, backups (SPEC §2 "Admin")."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.authentication import request_user
from accounts.permissions import IsAdmin
from adminops import services
from adminops.serializers import (
    AuditEntrySerializer,
    AuditQuerySerializer,
    BackupSerializer,
    DatabaseHealthSerializer,
    PurgeResultSerializer,
    StatsQuerySerializer,
    StatsSerializer,
)
from core.api import ApiView, client_ip, validate
from core.openapi import errors
from core.serializers import Page, page_of, render
from generation.api import LIMITS_ERRORS
from generation.limits import ROLES, limit_rules, set_role_limits
from generation.serializers import (
    LimitsChangeSerializer,
    LimitsSerializer,
    RoleLimitsListSerializer,
)

TAGS = ["admin"]


class AdminView(ApiView):
    permission_classes = [IsAdmin]


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
        parameters=[StatsQuerySerializer],
        responses={200: StatsSerializer},
    )
    async def get(self, request: Request) -> Response:
        stats = await services.collect_stats(
            validate(StatsQuerySerializer, request.query_params)["days"]
        )
        return Response(render(StatsSerializer, stats))


class DatabaseHealthView(AdminView):
    @extend_schema(
        tags=TAGS,
        summary="Database health",
        description="Connectivity, read and write round trips, file and WAL size, schema version.",
        responses={200: DatabaseHealthSerializer},
    )
    async def get(self, request: Request) -> Response:
        return Response(render(DatabaseHealthSerializer, await services.database_health()))


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
        return Response(render(PurgeResultSerializer, {"purged": purged}))


class AuditLogView(AdminView):
    @extend_schema(
        tags=TAGS,
        summary="Audit log",
        description="Who did what to whom, when, from which IP; newest first.",
        parameters=[AuditQuerySerializer],
        responses={200: page_of(AuditEntrySerializer)},
    )
    async def get(self, request: Request) -> Response:
        query = validate(AuditQuerySerializer, request.query_params)
        page, page_size = query["page"], query["page_size"]
        entries, total = await services.audit_log(
            actor=query.get("actor") or None,
            action=query.get("action") or None,
            target=query.get("target") or None,
            page=page,
            page_size=page_size,
        )
        return Response(
            render(page_of(AuditEntrySerializer), Page(entries, total, page, page_size))
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
        return Response(render(BackupSerializer, made), status=201)


class LimitsView(AdminView):
    @extend_schema(
        tags=TAGS,
        summary="Every role's default limits",
        description=(
            "`allowed_models`: null (every model) or model-id patterns (`openai/*`, `*:free`; "
            "`[]` allows none). `budget_usd`: null (no budget) or USD per `budget_period` "
            "(`day`, `week`, `month`: UTC calendar periods, weeks from Monday). A user's "
            "override (`PUT /api/users/{id}/limits`) replaces a role's value field by field. "
            + LIMITS_ERRORS
        ),
        responses={200: RoleLimitsListSerializer},
    )
    async def get(self, request: Request) -> Response:
        rules = await limit_rules()
        roles = {role: rules.role(role) for role in ROLES}
        return Response(render(RoleLimitsListSerializer, {"roles": roles}))


class RoleLimitsView(AdminView):
    @extend_schema(
        tags=TAGS,
        summary="Change a role's default limits",
        description=(
            "Fields left out stay as they are; `null` allows every model or removes the "
            "budget. Audited as `limits.role_changed` with the old and new values."
        ),
        request=LimitsChangeSerializer,
        responses={200: LimitsSerializer, **errors(404)},
    )
    async def put(self, request: Request, role: str) -> Response:
        changes = validate(LimitsChangeSerializer, request.data)
        updated = await set_role_limits(request_user(request), role, changes, ip=client_ip(request))
        return Response(render(LimitsSerializer, updated))
