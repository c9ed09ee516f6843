"""Staff reports and actions shared by the API and the pages: stats, database health, token
purge, audit log and backups. Every state change here writes an audit row."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from django.conf import settings

from accounts.identity import get_directory
from accounts.repository import ROLES, User
from adminops import repository as repo
from adminops.repository import (
    GenerationCounts,
    RoleCount,
    ServerInfo,
    StorageInfo,
    TokenCounts,
    UsageTotals,
)
from core.audit import record_audit
from core.clock import utcnow
from core.db import POSTGRESQL, Tx, get_database
from core.db.backup import BackupFile, BackupNotAvailable
from core.db.backup import backup_database as write_backup
from core.db.database import list_migrations, schema_version
from core.errors import ApiError
from generation.recorder import get_recorder

STATS_DAYS = 30
MAX_STATS_DAYS = 366
TOP_MODELS = 20
TOP_USERS = 10


# -- stats --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Breakdown:
    """One row of a breakdown: generations (from generations), the rest from usage_records."""

    key: Any
    generations: int = 0
    failed_generations: int = 0
    calls: int = 0
    errors: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0


@dataclass(frozen=True, slots=True)
class UserSpend:
    breakdown: Breakdown
    email: str | None  # None once the account is deleted (its usage stays)


@dataclass(frozen=True, slots=True)
class UserTotals:
    active: int
    disabled: int
    by_role: dict[str, int]  # every role, active and disabled together

    @property
    def total(self) -> int:
        return self.active + self.disabled


@dataclass(frozen=True, slots=True)
class Stats:
    generated_at: datetime
    since: datetime
    days: int
    roles: list[RoleCount]
    tokens: TokenCounts
    total: Breakdown
    by_kind: list[Breakdown]
    by_model: list[Breakdown]
    by_day: list[Breakdown]
    top_users: list[UserSpend]

    @property
    def users(self) -> UserTotals:
        counts = {role.role: role.active + role.disabled for role in self.roles}
        return UserTotals(
            active=sum(role.active for role in self.roles),
            disabled=sum(role.disabled for role in self.roles),
            by_role={role: counts.get(role, 0) for role in ROLES},
        )


def _row(key: Any, usage: UsageTotals | None, counts: GenerationCounts | None) -> Breakdown:
    row = Breakdown(key)
    if usage is not None:
        row = replace(
            row, calls=usage.calls, errors=usage.errors, tokens_in=usage.tokens_in,
            tokens_out=usage.tokens_out, cost=round(usage.cost, 9),
        )  # fmt: skip
    if counts is not None:
        row = replace(row, generations=counts.generations, failed_generations=counts.failed)
    return row


def _sum(rows: list[Breakdown], key: Any) -> Breakdown:
    """One row adding up rows; cost rounded so sums of floats read as people expect."""
    return Breakdown(
        key,
        generations=sum(r.generations for r in rows),
        failed_generations=sum(r.failed_generations for r in rows),
        calls=sum(r.calls for r in rows),
        errors=sum(r.errors for r in rows),
        tokens_in=sum(r.tokens_in for r in rows),
        tokens_out=sum(r.tokens_out for r in rows),
        cost=round(sum(r.cost for r in rows), 9),
    )


def _rollup(cells: list[Breakdown], part: int) -> dict[Any, Breakdown]:
    """Add up (day, kind) cells by day (part 0) or by kind (part 1)."""
    groups: dict[Any, list[Breakdown]] = {}
    for cell in cells:
        groups.setdefault(cell.key[part], []).append(cell)
    return {key: _sum(rows, key) for key, rows in groups.items()}


def _by_spend(row: Breakdown) -> tuple[float, int, int, str]:
    return (-row.cost, -row.calls, -row.generations, str(row.key))


async def collect_stats(days: int = STATS_DAYS) -> Stats:
    """Users, refresh tokens, and generations/calls/tokens/cost over the last `days` UTC days
    (today included), in total and by kind, model, day and user."""
    await get_recorder().flush()  # buffered usage rows count too
    db = get_database()
    now = utcnow()
    first_day = now.date() - timedelta(days=days - 1)
    since = datetime.combine(first_day, datetime.min.time())
    roles, tokens, usage_cells, models, users, generation_cells = await asyncio.gather(
        db.aread(repo.users_by_role),
        db.aread(repo.refresh_token_counts, now),
        db.aread(repo.usage_by_day_and_kind, since),
        db.aread(repo.usage_top_models, since, TOP_MODELS),
        db.aread(repo.usage_top_users, since, TOP_USERS),
        db.aread(repo.generations_by_day_and_kind, since),
    )
    model_counts, user_counts = await asyncio.gather(
        db.aread(repo.generations_of_models, since, [m.key for m in models if m.key]),
        db.aread(repo.generations_of_users, since, [u.key for u in users]),
    )
    usage_at = {u.key: u for u in usage_cells}
    counts_at = {g.key: g for g in generation_cells}
    cells = [_row(key, usage_at.get(key), counts_at.get(key)) for key in usage_at | counts_at]
    by_day = _rollup(cells, 0)
    generations_of_model = {g.key: g for g in model_counts}
    generations_of_user = {g.key: g for g in user_counts}
    directory = get_directory()
    top_users = []
    for usage in users:
        user = directory.user(usage.key)
        row = _row(usage.key, usage, generations_of_user.get(usage.key))
        top_users.append(UserSpend(row, user.email if user else None))
    return Stats(
        generated_at=now,
        since=since,
        days=days,
        roles=roles,
        tokens=tokens,
        total=_sum(cells, None),
        by_kind=sorted(_rollup(cells, 1).values(), key=_by_spend),
        by_model=[_row(m.key, m, generations_of_model.get(m.key)) for m in models],
        by_day=[by_day.get(day, Breakdown(day)) for day in _days(first_day, now.date())],
        top_users=top_users,
    )


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


# -- database health ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DatabaseHealth:
    engine: str  # duckdb | postgresql
    version: str  # DuckDB's, or the PostgreSQL server's
    path: str  # the DuckDB file, or the PostgreSQL URL without its password
    database_size_bytes: int | None
    file_size_bytes: int | None  # DuckDB only
    wal_size_bytes: int | None  # None when there is no WAL file (everything checkpointed)
    read_latency_ms: float
    write_latency_ms: float
    schema_version: int
    latest_migration: int
    pending_migrations: list[str]
    table_rows: dict[str, int]
    storage: StorageInfo | None  # DuckDB's blocks
    server: ServerInfo | None  # PostgreSQL's database
    pool: dict[str, int] | None  # PostgreSQL: this process's connection pool

    @property
    def status(self) -> str:
        return "migrations_pending" if self.pending_migrations else "ok"

    @property
    def pool_usage(self) -> dict[str, int] | None:
        """The pool's figures under the API's names, with the server's session count."""
        if self.pool is None:
            return None
        return {
            "max_size": self.pool.get("pool_max", 0),
            "size": self.pool.get("pool_size", 0),
            "available": self.pool.get("pool_available", 0),
            "waiting": self.pool.get("requests_waiting", 0),
            "server_connections": self.server.connections if self.server else 0,
        }


def _file_size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def _noop(tx: Tx) -> None:
    """A write that changes nothing: its round trip is the writer's queue plus a commit."""


async def database_health() -> DatabaseHealth:
    """Connectivity and round trips through a reader and the writer, sizes, schema version."""
    db = get_database()
    started = time.perf_counter()
    await db.aread(repo.select_one)
    read_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    await db.awrite(_noop)
    write_ms = (time.perf_counter() - started) * 1000
    version = await db.aread(schema_version)
    migrations = list_migrations()  # PostgreSQL's twins carry the same numbers and names
    storage = server = None
    size: int | None
    if db.dialect == POSTGRESQL:
        server = await db.aread(repo.server_info)
        engine_version, size, table_rows = (
            server.server_version,
            server.database_size_bytes,
            server.table_rows,
        )
        file_size = wal_size = None
    else:
        storage = await db.aread(repo.storage_info)
        file_size = _file_size(db.location)
        wal_size = _file_size(db.location + ".wal")
        engine_version, size, table_rows = storage.duckdb_version, file_size, storage.table_rows
    return DatabaseHealth(
        engine=db.dialect,
        version=engine_version,
        path=db.location,
        database_size_bytes=size,
        file_size_bytes=file_size,
        wal_size_bytes=wal_size,
        read_latency_ms=round(read_ms, 3),
        write_latency_ms=round(write_ms, 3),
        schema_version=version,
        latest_migration=max((number for number, _, _ in migrations), default=0),
        pending_migrations=[name for number, name, _ in migrations if number > version],
        table_rows=table_rows,
        storage=storage,
        server=server,
        pool=db.pool_stats(),
    )


# -- refresh-token purge ------------------------------------------------------------------


async def purge_refresh_tokens(actor: User, *, ip: str | None = None) -> int:
    """Delete every revoked or expired refresh token, audited; the number deleted.

    The in-process directory is left alone on purpose: it holds only live families, and a
    live token is neither revoked nor expired, so no purged row was ever in it.
    """

    def purge(tx: Tx) -> int:
        count = repo.purge_refresh_tokens(tx, utcnow())
        record_audit(
            tx, action="tokens.purged", actor=actor, target_type="refresh_tokens",
            detail={"count": count}, ip=ip,
        )  # fmt: skip
        return count

    return await get_database().awrite(purge)


# -- audit log ----------------------------------------------------------------------------


async def audit_log(
    *, actor: str | None, action: str | None, target: str | None, page: int, page_size: int
) -> tuple[list[repo.AuditEntry], int]:
    """Newest first; `actor` is a user id or an email."""
    actor_id: UUID | None = None
    actor_email: str | None = None
    if actor:
        try:
            actor_id = UUID(actor)
        except ValueError:
            actor_email = actor.strip()
    return await get_database().aread(
        repo.search_audit_log,
        actor_id=actor_id,
        actor_email=actor_email,
        action=action,
        target_id=target,
        limit=page_size,
        offset=(page - 1) * page_size,
    )


# -- backups ------------------------------------------------------------------------------


async def backup_database(actor: User, *, ip: str | None = None) -> BackupFile:
    """Write a consistent snapshot into BACKUP_DIR under a name of our choosing, audited."""
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    destination = Path(settings.BACKUP_DIR) / f"aigateway-{stamp}-{secrets.token_hex(3)}.duckdb"
    db = get_database()
    try:
        made = await asyncio.to_thread(write_backup, db, destination)
    except BackupNotAvailable as exc:
        raise ApiError(str(exc), code="backup_not_available", status=409) from None
    except OSError as exc:
        raise ApiError(
            f"The backup could not be written: {exc.strerror or exc}.",
            code="backup_failed",
            status=503,
        ) from None

    def audit(tx: Tx) -> None:
        record_audit(
            tx, action="database.backed_up", actor=actor, target_type="backup",
            target_id=made.path.name, target_label=str(made.path),
            detail={"size_bytes": made.size_bytes, "schema_version": made.schema_version},
            ip=ip,
        )  # fmt: skip

    await db.awrite(audit)
    return made
