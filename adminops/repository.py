"""SQL for staff views: aggregates over users, tokens, generations and usage; the audit log.

The usage aggregates are a few narrow GROUP BYs rather than one wide one: DuckDB is
columnar, so each reads only the columns it names, and they run side by side on reader
threads. The breakdowns that are cut to a top N (models, users) are ranked in SQL, so only
those N rows reach Python; generation counts are then fetched for just those keys.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from core.clock import aware
from core.db import Connection, Dialects, Tx


@dataclass(frozen=True, slots=True)
class TokenCounts:
    active: int
    revoked: int
    expired: int


@dataclass(frozen=True, slots=True)
class RoleCount:
    role: str
    active: int
    disabled: int


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """Calls, errors, tokens and cost for one key (from usage_records)."""

    key: Any  # (day, kind), a model or a user id
    calls: int
    errors: int
    tokens_in: int
    tokens_out: int
    cost: float

    @classmethod
    def from_row(cls, key: Any, row: Sequence[Any]) -> UsageTotals:
        calls, errors, tokens_in, tokens_out, cost = row
        return cls(key, int(calls), int(errors), int(tokens_in), int(tokens_out), float(cost))


@dataclass(frozen=True, slots=True)
class GenerationCounts:
    """Generations started and how many of them failed, for one key (from generations)."""

    key: Any
    generations: int
    failed: int


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    occurred_at: datetime
    actor_id: UUID | None
    actor_email: str | None
    action: str
    target_type: str | None
    target_id: str | None
    target_label: str | None
    detail: dict[str, Any]
    ip: str | None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> AuditEntry:
        (id_, occurred_at, actor_id, actor_email, action, target_type, target_id, target_label,
         detail, ip) = row  # fmt: skip
        return cls(
            id_, aware(occurred_at), actor_id, actor_email, action, target_type, target_id,  # type: ignore[arg-type]
            target_label, json.loads(detail) if detail else {}, ip,
        )  # fmt: skip


# -- users and tokens ---------------------------------------------------------------------


def users_by_role(con: Connection) -> list[RoleCount]:
    rows = con.execute(
        "SELECT role, count(*) FILTER (WHERE is_active), count(*) FILTER (WHERE NOT is_active)"
        " FROM users GROUP BY role ORDER BY role"
    ).fetchall()
    return [RoleCount(role, int(active), int(disabled)) for role, active, disabled in rows]


def refresh_token_counts(con: Connection, now: datetime) -> TokenCounts:
    """Active: unrevoked and unexpired. Revoked: revoked (expired or not). Expired: the rest."""
    row = con.execute(
        "SELECT count(*) FILTER (WHERE revoked_at IS NULL AND expires_at > ?),"
        " count(*) FILTER (WHERE revoked_at IS NOT NULL),"
        " count(*) FILTER (WHERE revoked_at IS NULL AND expires_at <= ?)"
        " FROM refresh_tokens",
        [now, now],
    ).fetchone()
    assert row is not None
    return TokenCounts(*(int(value) for value in row))


# DuckDB answers a DELETE with the number of rows deleted; PostgreSQL with no rows at all.
_PURGE_REFRESH_TOKENS = Dialects(
    duckdb="DELETE FROM refresh_tokens WHERE revoked_at IS NOT NULL OR expires_at <= ?",
    postgresql="WITH purged AS (DELETE FROM refresh_tokens"
    " WHERE revoked_at IS NOT NULL OR expires_at <= ? RETURNING 1) SELECT count(*) FROM purged",
)


def purge_refresh_tokens(tx: Tx, now: datetime) -> int:
    """Delete every revoked or expired refresh token; the number deleted."""
    row = tx.execute(_PURGE_REFRESH_TOKENS.on(tx), [now]).fetchone()
    return int(row[0]) if row else 0


# -- usage and generations ----------------------------------------------------------------

_USAGE_SUMS = (
    "count(*), count(*) FILTER (WHERE status <> 'ok'), coalesce(sum(tokens_in), 0)::BIGINT,"
    " coalesce(sum(tokens_out), 0)::BIGINT, coalesce(sum(cost), 0)::DOUBLE PRECISION"
)
_GENERATION_COUNTS = (
    "count(*), count(*) FILTER (WHERE status IN ('failed', 'cancelled', 'expired'))"
)


def usage_by_day_and_kind(con: Connection, since: datetime) -> list[UsageTotals]:
    """Usage since `since` per (UTC day, kind): totals, kinds and days all add up from it."""
    rows = con.execute(
        f"SELECT occurred_at::DATE, kind, {_USAGE_SUMS} FROM usage_records"  # noqa: S608
        " WHERE occurred_at >= ? GROUP BY 1, 2",
        [since],
    ).fetchall()
    return [UsageTotals.from_row((row[0], row[1]), row[2:]) for row in rows]


def usage_top_models(con: Connection, since: datetime, limit: int) -> list[UsageTotals]:
    """The `limit` models with the highest cost (then most calls) since `since`."""
    rows = con.execute(
        f"SELECT model, {_USAGE_SUMS} FROM usage_records WHERE occurred_at >= ?"  # noqa: S608
        " GROUP BY model ORDER BY 6 DESC, 2 DESC, model LIMIT ?",
        [since, limit],
    ).fetchall()
    return [UsageTotals.from_row(row[0], row[1:]) for row in rows]


def usage_top_users(con: Connection, since: datetime, limit: int) -> list[UsageTotals]:
    """The `limit` users with the highest cost (then most calls) since `since`."""
    rows = con.execute(
        f"SELECT user_id, {_USAGE_SUMS} FROM usage_records"  # noqa: S608
        " WHERE occurred_at >= ? AND user_id IS NOT NULL"
        " GROUP BY user_id ORDER BY 6 DESC, 2 DESC, user_id LIMIT ?",
        [since, limit],
    ).fetchall()
    return [UsageTotals.from_row(row[0], row[1:]) for row in rows]


def generations_by_day_and_kind(con: Connection, since: datetime) -> list[GenerationCounts]:
    rows = con.execute(
        f"SELECT created_at::DATE, kind, {_GENERATION_COUNTS} FROM generations"  # noqa: S608
        " WHERE created_at >= ? GROUP BY 1, 2",
        [since],
    ).fetchall()
    return [GenerationCounts((day, kind), int(n), int(failed)) for day, kind, n, failed in rows]


_GENERATIONS_OF_MODELS = Dialects(
    duckdb=f"SELECT model, {_GENERATION_COUNTS} FROM generations"  # noqa: S608
    " WHERE created_at >= ? AND list_contains(?::VARCHAR[], model) GROUP BY model",
    postgresql=f"SELECT model, {_GENERATION_COUNTS} FROM generations"  # noqa: S608
    " WHERE created_at >= ? AND model = ANY(?::VARCHAR[]) GROUP BY model",
)
_GENERATIONS_OF_USERS = Dialects(
    duckdb=f"SELECT user_id, {_GENERATION_COUNTS} FROM generations"  # noqa: S608
    " WHERE created_at >= ? AND list_contains(?::UUID[], user_id) GROUP BY user_id",
    postgresql=f"SELECT user_id, {_GENERATION_COUNTS} FROM generations"  # noqa: S608
    " WHERE created_at >= ? AND user_id = ANY(?::UUID[]) GROUP BY user_id",
)


def generations_of_models(
    con: Connection, since: datetime, models: Sequence[str]
) -> list[GenerationCounts]:
    rows = con.execute(_GENERATIONS_OF_MODELS.on(con), [since, list(models)]).fetchall()
    return [GenerationCounts(model, int(n), int(failed)) for model, n, failed in rows]


def generations_of_users(
    con: Connection, since: datetime, user_ids: Sequence[UUID]
) -> list[GenerationCounts]:
    rows = con.execute(_GENERATIONS_OF_USERS.on(con), [since, list(user_ids)]).fetchall()
    return [GenerationCounts(user_id, int(n), int(failed)) for user_id, n, failed in rows]


# -- audit log ----------------------------------------------------------------------------

_AUDIT_COLUMNS = (
    "id, occurred_at, actor_id, actor_email, action, target_type, target_id, target_label,"
    " detail, ip"
)


def search_audit_log(
    con: Connection,
    *,
    actor_id: UUID | None,
    actor_email: str | None,
    action: str | None,
    target_id: str | None,
    limit: int,
    offset: int,
) -> tuple[list[AuditEntry], int]:
    """Newest first. An actor email matches the email recorded then or the actor's current one."""
    where = (
        "(?::UUID IS NULL OR actor_id = ?)"
        " AND (?::VARCHAR IS NULL OR lower(actor_email) = ?"
        "      OR actor_id IN (SELECT id FROM users WHERE email_key = ?))"
        " AND (?::VARCHAR IS NULL OR action = ?) AND (?::VARCHAR IS NULL OR target_id = ?)"
    )
    email = actor_email.lower() if actor_email is not None else None
    params: list[Any] = [
        actor_id, actor_id, email, email, email, action, action, target_id, target_id,
    ]  # fmt: skip
    total = con.execute(f"SELECT count(*) FROM audit_log WHERE {where}", params).fetchone()  # noqa: S608
    rows = con.execute(
        f"SELECT {_AUDIT_COLUMNS} FROM audit_log WHERE {where}"  # noqa: S608
        " ORDER BY occurred_at DESC, id DESC LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).fetchall()
    return [AuditEntry.from_row(row) for row in rows], int(total[0]) if total else 0


# -- database health ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StorageInfo:
    """DuckDB's side of the health page."""

    duckdb_version: str
    block_size: int
    total_blocks: int
    used_blocks: int
    free_blocks: int
    table_rows: dict[str, int]


def storage_info(con: Connection) -> StorageInfo:
    version = con.execute("SELECT version()").fetchone()
    size = con.execute(
        "SELECT block_size, total_blocks, used_blocks, free_blocks FROM pragma_database_size()"
        " WHERE database_name = current_database()"
    ).fetchone()
    names = [
        row[0]
        for row in con.execute(
            "SELECT table_name FROM duckdb_tables()"
            " WHERE database_name = current_database() AND schema_name = 'main'"
            " ORDER BY table_name"
        ).fetchall()
    ]
    # Table names come from the catalogue and are quoted as identifiers; counts are exact.
    counts = " UNION ALL ".join(
        f"SELECT ?, count(*) FROM {_identifier(name)}"  # noqa: S608
        for name in names
    )
    tables = con.execute(counts, names).fetchall() if names else []
    block_size, total, used, free = size if size else (0, 0, 0, 0)
    return StorageInfo(
        duckdb_version=version[0] if version else "",
        block_size=int(block_size),
        total_blocks=int(total),
        used_blocks=int(used),
        free_blocks=int(free),
        table_rows={name: int(rows) for name, rows in tables},
    )


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """PostgreSQL's side of the health page."""

    server_version: str
    database: str
    database_size_bytes: int
    connections: int  # sessions on this database, from every process (pg_stat_activity)
    table_rows: dict[str, int]


def server_info(con: Connection) -> ServerInfo:
    """Server version, database size and exact row counts of the tables in our schema."""
    row = con.execute(
        "SELECT current_setting('server_version'), current_database(),"
        " pg_database_size(current_database()),"
        " (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database())"
    ).fetchone()
    assert row is not None
    names = [
        name
        for (name,) in con.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
            " ORDER BY table_name"
        ).fetchall()
    ]
    counts = " UNION ALL ".join(
        f"SELECT ?::VARCHAR, count(*) FROM {_identifier(name)}"  # noqa: S608
        for name in names
    )
    tables = con.execute(counts, names).fetchall() if names else []
    version, database, size, connections = row
    return ServerInfo(
        server_version=str(version),
        database=str(database),
        database_size_bytes=int(size),
        connections=int(connections),
        table_rows={name: int(rows) for name, rows in tables},
    )


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def select_one(con: Connection) -> bool:
    row = con.execute("SELECT 1").fetchone()
    return bool(row == (1,))
