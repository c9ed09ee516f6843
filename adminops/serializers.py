"""JSON shapes of the staff API: the functions that render them, and the serializers that
document them in the OpenAPI schema (the views render with the functions)."""

from __future__ import annotations

from datetime import date
from typing import Any

from rest_framework import serializers

from adminops.repository import AuditEntry
from adminops.services import TOP_MODELS, TOP_USERS, Breakdown, DatabaseHealth, Stats
from core.clock import aware, iso
from core.db.backup import BackupFile


def _key(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    return str(value) if value is not None and not isinstance(value, str) else value


def breakdown_json(row: Breakdown, key_name: str) -> dict[str, Any]:
    return {
        key_name: _key(row.key),
        "generations": row.generations,
        "failed_generations": row.failed_generations,
        "calls": row.calls,
        "errors": row.errors,
        "tokens_in": row.tokens_in,
        "tokens_out": row.tokens_out,
        "cost": row.cost,
    }


def stats_json(stats: Stats) -> dict[str, Any]:
    by_role = {role.role: role.active + role.disabled for role in stats.roles}
    active = sum(role.active for role in stats.roles)
    disabled = sum(role.disabled for role in stats.roles)
    total = breakdown_json(stats.total, "key")
    total.pop("key")
    return {
        "generated_at": iso(aware(stats.generated_at)),
        "window": {"days": stats.days, "since": iso(aware(stats.since))},
        "users": {
            "total": active + disabled,
            "active": active,
            "disabled": disabled,
            "by_role": {"user": by_role.get("user", 0), "admin": by_role.get("admin", 0)},
        },
        "refresh_tokens": {
            "active": stats.tokens.active,
            "revoked": stats.tokens.revoked,
            "expired": stats.tokens.expired,
        },
        "totals": total,
        "by_kind": [breakdown_json(row, "kind") for row in stats.by_kind],
        "by_model": [breakdown_json(row, "model") for row in stats.by_model],
        "by_day": [breakdown_json(row, "day") for row in stats.by_day],
        "top_users": [
            {**breakdown_json(spend.breakdown, "user_id"), "email": spend.email}
            for spend in stats.top_users
        ],
    }


def health_json(health: DatabaseHealth) -> dict[str, Any]:
    storage, pool = health.storage, health.pool
    return {
        "status": "ok" if not health.pending_migrations else "migrations_pending",
        "engine": health.engine,
        "version": health.version,
        "duckdb_version": storage.duckdb_version if storage else None,
        "path": health.path,
        "database_size_bytes": health.database_size_bytes,
        "file_size_bytes": health.file_size_bytes,
        "wal_size_bytes": health.wal_size_bytes,
        "read_latency_ms": health.read_latency_ms,
        "write_latency_ms": health.write_latency_ms,
        "schema_version": health.schema_version,
        "latest_migration": health.latest_migration,
        "pending_migrations": health.pending_migrations,
        "blocks": (
            {
                "block_size": storage.block_size,
                "total": storage.total_blocks,
                "used": storage.used_blocks,
                "free": storage.free_blocks,
            }
            if storage
            else None
        ),
        "pool": (
            {
                "max_size": pool.get("pool_max", 0),
                "size": pool.get("pool_size", 0),
                "available": pool.get("pool_available", 0),
                "waiting": pool.get("requests_waiting", 0),
                "server_connections": health.server.connections if health.server else 0,
            }
            if pool is not None
            else None
        ),
        "table_rows": health.table_rows,
    }


def audit_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "occurred_at": iso(entry.occurred_at),
        "actor": (
            {"id": str(entry.actor_id) if entry.actor_id else None, "email": entry.actor_email}
            if entry.actor_id or entry.actor_email
            else None
        ),
        "action": entry.action,
        "target": (
            {"type": entry.target_type, "id": entry.target_id, "label": entry.target_label}
            if entry.target_type or entry.target_id
            else None
        ),
        "detail": entry.detail,
        "ip": entry.ip or None,
    }


def backup_json(backup: BackupFile) -> dict[str, Any]:
    return {
        "file": backup.path.name,
        "path": str(backup.path),
        "size_bytes": backup.size_bytes,
        "schema_version": backup.schema_version,
        "created_at": iso(backup.created_at),
        "duration_ms": round(backup.duration_ms, 1),
    }


# -- OpenAPI documentation of the shapes above ----------------------------------------------


class _Counts(serializers.Serializer):
    generations = serializers.IntegerField(help_text="Generations started (generations table).")
    failed_generations = serializers.IntegerField(
        help_text="Of those, failed, cancelled or expired."
    )
    calls = serializers.IntegerField(help_text="Calls to OpenRouter (usage_records).")
    errors = serializers.IntegerField(help_text="Of those, failed calls.")  # type: ignore[assignment]
    tokens_in = serializers.IntegerField(help_text="Prompt tokens (usage_records).")
    tokens_out = serializers.IntegerField(help_text="Completion tokens (usage_records).")
    cost = serializers.FloatField(help_text="USD as reported by OpenRouter (usage_records).")


class KindCountsSerializer(_Counts):
    kind = serializers.CharField()


class ModelCountsSerializer(_Counts):
    model = serializers.CharField(allow_null=True)


class DayCountsSerializer(_Counts):
    day = serializers.DateField(help_text="UTC day.")


class UserCountsSerializer(_Counts):
    user_id = serializers.UUIDField()
    email = serializers.CharField(allow_null=True, help_text="null once the user is deleted.")


class WindowSerializer(serializers.Serializer):
    days = serializers.IntegerField()
    since = serializers.DateTimeField(help_text="Start of the first UTC day counted.")


class RolesSerializer(serializers.Serializer):
    user = serializers.IntegerField()
    admin = serializers.IntegerField()


class UserTotalsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    active = serializers.IntegerField()
    disabled = serializers.IntegerField()
    by_role = RolesSerializer()


class TokenTotalsSerializer(serializers.Serializer):
    active = serializers.IntegerField(help_text="Neither revoked nor expired.")
    revoked = serializers.IntegerField(help_text="Revoked (rotated, signed out), expired or not.")
    expired = serializers.IntegerField(help_text="Expired without being revoked.")


class StatsSerializer(serializers.Serializer):
    generated_at = serializers.DateTimeField()
    window = WindowSerializer()
    users = UserTotalsSerializer()
    refresh_tokens = TokenTotalsSerializer()
    totals = _Counts()
    by_kind = KindCountsSerializer(many=True)
    by_model = ModelCountsSerializer(many=True, help_text=f"Top {TOP_MODELS} models by cost.")
    by_day = DayCountsSerializer(many=True, help_text="Every day of the window, oldest first.")
    top_users = UserCountsSerializer(many=True, help_text=f"Top {TOP_USERS} users by cost.")


class BlocksSerializer(serializers.Serializer):
    block_size = serializers.IntegerField()
    total = serializers.IntegerField()
    used = serializers.IntegerField()
    free = serializers.IntegerField()


class PoolSerializer(serializers.Serializer):
    max_size = serializers.IntegerField(help_text="DATABASE_POOL_SIZE.")
    size = serializers.IntegerField(help_text="Connections this process holds now.")
    available = serializers.IntegerField(help_text="Of those, idle.")
    waiting = serializers.IntegerField(help_text="Requests waiting for a connection.")
    server_connections = serializers.IntegerField(
        help_text="Sessions on the database from every process (pg_stat_activity)."
    )


class DatabaseHealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=("ok", "migrations_pending"))
    engine = serializers.ChoiceField(choices=("duckdb", "postgresql"))
    version = serializers.CharField(help_text="DuckDB's version, or the PostgreSQL server's.")
    duckdb_version = serializers.CharField(allow_null=True, help_text="null on PostgreSQL.")
    path = serializers.CharField(
        help_text="The DuckDB file, or the PostgreSQL URL without its password."
    )
    database_size_bytes = serializers.IntegerField(allow_null=True)
    file_size_bytes = serializers.IntegerField(allow_null=True, help_text="null on PostgreSQL.")
    wal_size_bytes = serializers.IntegerField(
        allow_null=True, help_text="null when there is no write-ahead log file."
    )
    read_latency_ms = serializers.FloatField(help_text="SELECT 1 through a reader.")
    write_latency_ms = serializers.FloatField(help_text="An empty transaction through a writer.")
    schema_version = serializers.IntegerField()
    latest_migration = serializers.IntegerField()
    pending_migrations = serializers.ListField(child=serializers.CharField())
    blocks = BlocksSerializer(allow_null=True, help_text="DuckDB only; null on PostgreSQL.")
    pool = PoolSerializer(allow_null=True, help_text="PostgreSQL only; null on DuckDB.")
    table_rows = serializers.DictField(
        child=serializers.IntegerField(), help_text="Rows per table."
    )


class PurgeResultSerializer(serializers.Serializer):
    purged = serializers.IntegerField(help_text="Refresh tokens deleted.")


class AuditActorSerializer(serializers.Serializer):
    id = serializers.UUIDField(allow_null=True)
    email = serializers.CharField(allow_null=True, help_text="The actor's email at the time.")


class AuditTargetSerializer(serializers.Serializer):
    type = serializers.CharField(allow_null=True)
    id = serializers.CharField(allow_null=True)
    label = serializers.CharField(allow_null=True)  # type: ignore[assignment]


class AuditEntrySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    occurred_at = serializers.DateTimeField()
    actor = AuditActorSerializer(
        allow_null=True, help_text="null for the command line (manage.py createadmin)."
    )
    action = serializers.CharField(help_text="e.g. user.role_changed, tokens.purged.")
    target = AuditTargetSerializer(allow_null=True)
    detail = serializers.DictField(help_text="Action-specific facts, e.g. {from, to}.")
    ip = serializers.CharField(allow_null=True)


class AuditPageSerializer(serializers.Serializer):
    items = AuditEntrySerializer(many=True)
    total = serializers.IntegerField()
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()


class BackupSerializer(serializers.Serializer):
    file = serializers.CharField()
    path = serializers.CharField(help_text="Absolute path on the server, inside BACKUP_DIR.")
    size_bytes = serializers.IntegerField()
    schema_version = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    duration_ms = serializers.FloatField()
