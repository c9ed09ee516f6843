"""The staff API's shapes: each serializer renders its shape and is what the OpenAPI schema
shows for it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

from adminops.repository import AuditEntry, StorageInfo, TokenCounts
from adminops.services import (
    MAX_STATS_DAYS,
    STATS_DAYS,
    TOP_MODELS,
    TOP_USERS,
    Breakdown,
    DatabaseHealth,
    Stats,
    UserTotals,
)
from core.db.backup import BackupFile
from core.serializers import PageQuerySerializer, QueryIntegerField

MAX_FILTER_LENGTH = 320

# -- query strings -------------------------------------------------------------------------


class StatsQuerySerializer(serializers.Serializer[Any]):
    days = QueryIntegerField(
        min_value=1,
        max_value=MAX_STATS_DAYS,
        default=STATS_DAYS,
        help_text=f"Window in UTC days, today included (default {STATS_DAYS}).",
    )


class AuditQuerySerializer(PageQuerySerializer):
    actor = serializers.CharField(
        required=False, allow_blank=True, max_length=MAX_FILTER_LENGTH,
        help_text="A user id or an email.",
    )  # fmt: skip
    action = serializers.CharField(
        required=False, allow_blank=True, max_length=MAX_FILTER_LENGTH,
        help_text="e.g. user.role_changed, tokens.purged.",
    )  # fmt: skip
    target = serializers.CharField(
        required=False, allow_blank=True, max_length=MAX_FILTER_LENGTH,
        help_text="The id of the object acted on.",
    )  # fmt: skip


# -- responses -----------------------------------------------------------------------------


class CountsSerializer(serializers.Serializer[Breakdown]):
    generations = serializers.IntegerField(help_text="Generations started (generations table).")
    failed_generations = serializers.IntegerField(
        help_text="Of those, failed, cancelled or expired."
    )
    calls = serializers.IntegerField(help_text="Calls to OpenRouter (usage_records).")
    errors = serializers.IntegerField(help_text="Of those, failed calls.")  # type: ignore[assignment]
    tokens_in = serializers.IntegerField(help_text="Prompt tokens (usage_records).")
    tokens_out = serializers.IntegerField(help_text="Completion tokens (usage_records).")
    cost = serializers.FloatField(help_text="USD as reported by OpenRouter (usage_records).")


class KindCountsSerializer(CountsSerializer):
    kind = serializers.CharField(source="key")


class ModelCountsSerializer(CountsSerializer):
    model = serializers.CharField(source="key", allow_null=True)


class DayCountsSerializer(CountsSerializer):
    day = serializers.DateField(source="key", help_text="UTC day.")


class UserCountsSerializer(CountsSerializer):
    # Renders an adminops.services.UserSpend: its breakdown's counts, user id and email.
    user_id = serializers.UUIDField(source="breakdown.key")
    email = serializers.CharField(allow_null=True, help_text="null once the user is deleted.")

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields = super().get_fields()
        for name in CountsSerializer._declared_fields:
            fields[name].source = f"breakdown.{name}"
        return fields


class WindowSerializer(serializers.Serializer[Stats]):
    days = serializers.IntegerField()
    since = serializers.DateTimeField(help_text="Start of the first UTC day counted.")


class RolesSerializer(serializers.Serializer[Mapping[str, int]]):
    user = serializers.IntegerField()
    admin = serializers.IntegerField()


class UserTotalsSerializer(serializers.Serializer[UserTotals]):
    total = serializers.IntegerField()
    active = serializers.IntegerField()
    disabled = serializers.IntegerField()
    by_role = RolesSerializer()


class TokenTotalsSerializer(serializers.Serializer[TokenCounts]):
    active = serializers.IntegerField(help_text="Neither revoked nor expired.")
    revoked = serializers.IntegerField(help_text="Revoked (rotated, signed out), expired or not.")
    expired = serializers.IntegerField(help_text="Expired without being revoked.")


class StatsSerializer(serializers.Serializer[Stats]):
    generated_at = serializers.DateTimeField()
    window = WindowSerializer(source="*")
    users = UserTotalsSerializer()
    refresh_tokens = TokenTotalsSerializer(source="tokens")
    totals = CountsSerializer(source="total")
    by_kind = KindCountsSerializer(many=True)
    by_model = ModelCountsSerializer(many=True, help_text=f"Top {TOP_MODELS} models by cost.")
    by_day = DayCountsSerializer(many=True, help_text="Every day of the window, oldest first.")
    top_users = UserCountsSerializer(many=True, help_text=f"Top {TOP_USERS} users by cost.")


class BlocksSerializer(serializers.Serializer[StorageInfo]):
    block_size = serializers.IntegerField()
    total = serializers.IntegerField(source="total_blocks")
    used = serializers.IntegerField(source="used_blocks")
    free = serializers.IntegerField(source="free_blocks")


class PoolSerializer(serializers.Serializer[Mapping[str, int]]):
    max_size = serializers.IntegerField(help_text="DATABASE_POOL_SIZE.")
    size = serializers.IntegerField(help_text="Connections this process holds now.")
    available = serializers.IntegerField(help_text="Of those, idle.")
    waiting = serializers.IntegerField(help_text="Requests waiting for a connection.")
    server_connections = serializers.IntegerField(
        help_text="Sessions on the database from every process (pg_stat_activity)."
    )


class DatabaseHealthSerializer(serializers.Serializer[DatabaseHealth]):
    status = serializers.ChoiceField(choices=("ok", "migrations_pending"))
    engine = serializers.ChoiceField(choices=("duckdb", "postgresql"))
    version = serializers.CharField(help_text="DuckDB's version, or the PostgreSQL server's.")
    duckdb_version = serializers.CharField(
        source="storage.duckdb_version", allow_null=True, help_text="null on PostgreSQL."
    )
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
    blocks = BlocksSerializer(
        source="storage", allow_null=True, help_text="DuckDB only; null on PostgreSQL."
    )
    pool = PoolSerializer(
        source="pool_usage", allow_null=True, help_text="PostgreSQL only; null on DuckDB."
    )
    table_rows = serializers.DictField(
        child=serializers.IntegerField(), help_text="Rows per table."
    )


class PurgeResultSerializer(serializers.Serializer[Mapping[str, int]]):
    purged = serializers.IntegerField(help_text="Refresh tokens deleted.")


class AuditActorSerializer(serializers.Serializer[AuditEntry]):
    """Who acted: null for the command line (manage.py createadmin)."""

    id = serializers.UUIDField(source="actor_id", allow_null=True)
    email = serializers.CharField(
        source="actor_email", allow_null=True, help_text="The actor's email at the time."
    )

    def get_attribute(self, entry: AuditEntry) -> AuditEntry | None:
        return entry if entry.actor_id or entry.actor_email else None


class AuditTargetSerializer(serializers.Serializer[AuditEntry]):
    """What was acted on, if anything."""

    type = serializers.CharField(source="target_type", allow_null=True)
    id = serializers.CharField(source="target_id", allow_null=True)
    label = serializers.CharField(source="target_label", allow_null=True)  # type: ignore[assignment]

    def get_attribute(self, entry: AuditEntry) -> AuditEntry | None:
        return entry if entry.target_type or entry.target_id else None


class AuditEntrySerializer(serializers.Serializer[AuditEntry]):
    id = serializers.IntegerField()
    occurred_at = serializers.DateTimeField()
    actor = AuditActorSerializer(source="*", allow_null=True)
    action = serializers.CharField(help_text="e.g. user.role_changed, tokens.purged.")
    target = AuditTargetSerializer(source="*", allow_null=True)
    detail = serializers.DictField(help_text="Action-specific facts, e.g. {from, to}.")
    ip = serializers.SerializerMethodField()

    class Meta:
        ref_name = "AuditEntry"

    def get_ip(self, entry: AuditEntry) -> str | None:
        return entry.ip or None


class BackupSerializer(serializers.Serializer[BackupFile]):
    file = serializers.CharField(source="path.name")
    path = serializers.CharField(help_text="Absolute path on the server, inside BACKUP_DIR.")
    size_bytes = serializers.IntegerField()
    schema_version = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    duration_ms = serializers.SerializerMethodField()

    def get_duration_ms(self, backup: BackupFile) -> float:
        return round(backup.duration_ms, 1)
