"""SQL for generations, video jobs, usage records and conversations."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from core.clock import aware
from core.db import DUCKDB, Connection, Dialects, Tx

TERMINAL_VIDEO_STATES = frozenset({"completed", "failed", "cancelled", "expired"})


@dataclass(frozen=True, slots=True)
class MediaFile:
    file: str  # relative to MEDIA_ROOT
    type: str  # MIME type


@dataclass(frozen=True, slots=True)
class Generation:
    id: UUID
    user_id: UUID
    kind: str
    model: str
    prompt: str
    params: dict[str, Any]
    status: str
    output_text: str | None
    media: tuple[MediaFile, ...]
    error_code: str | None
    error_message: str | None
    tokens_in: int | None
    tokens_out: int | None
    cost: float | None
    created_at: datetime
    finished_at: datetime | None
    reserved_cost: float | None = None  # upper bound of the call's cost, booked if interrupted
    conversation_id: UUID | None = None

    @property
    def media_json(self) -> str:
        return json.dumps([{"file": m.file, "type": m.type} for m in self.media])

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Generation:
        (id_, user_id, kind, model, prompt, params, status, output_text, media, error_code,
         error_message, tokens_in, tokens_out, cost, created_at, finished_at, reserved_cost,
         conversation_id) = row  # fmt: skip
        return cls(
            id_, user_id, kind, model, prompt, json.loads(params), status, output_text,
            tuple(MediaFile(**item) for item in json.loads(media)), error_code, error_message,
            tokens_in, tokens_out, cost, aware(created_at), aware(finished_at),  # type: ignore[arg-type]
            reserved_cost, conversation_id,
        )  # fmt: skip

    def as_insert_row(self) -> list[Any]:
        return [
            self.id, self.user_id, self.kind, self.model, self.prompt,
            json.dumps(self.params, sort_keys=True), self.status, self.output_text,
            self.media_json, self.error_code, self.error_message, self.tokens_in,
            self.tokens_out, self.cost, _naive(self.created_at), _naive(self.finished_at),
            self.reserved_cost, self.conversation_id,
        ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class VideoJob:
    id: UUID
    user_id: UUID
    model: str
    upstream_id: str
    polling_url: str
    status: str
    error: str | None
    cost: float | None
    upstream_generation_id: str | None
    video_file: str | None
    created_at: datetime
    updated_at: datetime
    last_polled_at: datetime | None
    completed_at: datetime | None
    reserved_cost: float | None = None  # held from submission until the job ends
    missed_polls: int = 0  # consecutive polls the upstream answered 404

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_VIDEO_STATES

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> VideoJob:
        values = list(row)
        for index in (10, 11, 12, 13):
            values[index] = aware(values[index])
        return cls(*values)


@dataclass(frozen=True, slots=True)
class UsageRecord:
    occurred_at: datetime  # naive UTC
    user_id: UUID | None
    kind: str
    model: str | None
    tokens_in: int | None
    tokens_out: int | None
    cost: float | None
    latency_ms: float
    status: str  # ok | error
    error_code: str | None = None
    generation_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str  # user | assistant
    content: str
    stopped: bool = False  # an answer the person stopped before it was finished


@dataclass(frozen=True, slots=True)
class Conversation:
    id: UUID
    user_id: UUID
    title: str
    model: str
    created_at: datetime
    updated_at: datetime
    messages: tuple[ChatMessage, ...] = field(default=())


def _naive(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=None) if value is not None else None


GENERATION_COLUMNS = (
    "id, user_id, kind, model, prompt, params, status, output_text, media, error_code,"
    " error_message, tokens_in, tokens_out, cost, created_at, finished_at, reserved_cost,"
    " conversation_id"
)
VIDEO_JOB_COLUMNS = (
    "id, user_id, model, upstream_id, polling_url, status, error, cost, upstream_generation_id,"
    " video_file, created_at, updated_at, last_polled_at, completed_at, reserved_cost,"
    " coalesce(missed_polls, 0)"
)
_VIDEO_JOB_INSERT_COLUMNS = VIDEO_JOB_COLUMNS.replace("coalesce(missed_polls, 0)", "missed_polls")
# DOUBLE PRECISION, not DuckDB's DOUBLE: both engines know the standard name.
_GENERATION_TYPES = (
    "UUID", "UUID", "VARCHAR", "VARCHAR", "VARCHAR", "VARCHAR", "VARCHAR", "VARCHAR", "VARCHAR",
    "VARCHAR", "VARCHAR", "INTEGER", "INTEGER", "DOUBLE PRECISION", "TIMESTAMP", "TIMESTAMP",
    "DOUBLE PRECISION", "UUID",
)  # fmt: skip
_USAGE_COLUMNS = (
    "occurred_at, user_id, kind, model, tokens_in, tokens_out, cost, latency_ms, status,"
    " error_code, generation_id"
)
_USAGE_TYPES = (
    "TIMESTAMP", "UUID", "VARCHAR", "VARCHAR", "INTEGER", "INTEGER", "DOUBLE PRECISION",
    "DOUBLE PRECISION", "VARCHAR", "VARCHAR", "UUID",
)  # fmt: skip


def _unnest_select(types: Sequence[str]) -> str:
    """SELECT unnest(?::T[]), ... : a batch insert of column lists in one statement."""
    return "SELECT " + ", ".join(f"unnest(?::{sql_type}[])" for sql_type in types)


class _RowsInsert:
    """INSERT of a batch of rows: set-based (unnest) for several, plain VALUES for one.

    A lone row is the common case of the call ledger's settle at low concurrency, and
    DuckDB spends about 2 ms less CPU on VALUES than on the unnest form (decision 48)."""

    def __init__(self, table: str, columns: str, types: Sequence[str]) -> None:
        self.width = len(types)
        marks = ", ".join("?" * self.width)
        self.one = f"INSERT INTO {table} ({columns}) VALUES ({marks})"  # noqa: S608 - constants
        self.many = f"INSERT INTO {table} ({columns}) {_unnest_select(types)}"

    def __call__(self, tx: Tx, rows: Sequence[Sequence[Any]]) -> None:
        if len(rows) == 1:
            tx.execute(self.one, list(rows[0]))
        elif rows:
            tx.execute(self.many, _columns(rows, self.width))


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    return [[row[index] for row in rows] for index in range(width)]


_insert_generation_rows = _RowsInsert("generations", GENERATION_COLUMNS, _GENERATION_TYPES)
_insert_usage_rows = _RowsInsert("usage_records", _USAGE_COLUMNS, _USAGE_TYPES)


# -- generations --------------------------------------------------------------------------


def insert_generations(tx: Tx, generations: Sequence[Generation]) -> None:
    _insert_generation_rows(tx, [g.as_insert_row() for g in generations])


# The call ledger (decision 20): a pending row while the upstream call runs, settled in one
# commit before the client hears of it; start-up books what a crash left pending.

_SETTLE_COLUMNS = (
    ("id", "UUID"), ("model", "VARCHAR"), ("status", "VARCHAR"), ("output_text", "VARCHAR"),
    ("media", "VARCHAR"), ("error_code", "VARCHAR"), ("error_message", "VARCHAR"),
    ("tokens_in", "INTEGER"), ("tokens_out", "INTEGER"), ("cost", "DOUBLE PRECISION"),
    ("finished_at", "TIMESTAMP"), ("conversation_id", "UUID"),
)  # fmt: skip
_SETTLE_GENERATIONS = (
    "UPDATE generations AS g SET "  # noqa: S608 - column names from the tuple above
    + ", ".join(f"{name} = s.{name}" for name, _ in _SETTLE_COLUMNS[1:])
    + " FROM (SELECT "
    + ", ".join(f"unnest(?::{sql_type}[]) AS {name}" for name, sql_type in _SETTLE_COLUMNS)
    + ") AS s WHERE g.id = s.id"
)


def insert_pending_generations(tx: Tx, generations: Sequence[Generation]) -> None:
    """The rows of calls about to go upstream (part of the ledger's batched write)."""
    insert_generations(tx, generations)


def record_settled(
    tx: Tx,
    updated: Sequence[tuple[Generation, UsageRecord | None]],
    inserted: Sequence[tuple[Generation, UsageRecord | None]],
) -> None:
    """Settled calls in a few statements: the final rows of `updated` replace their pending
    rows, those of `inserted` are new, and the usage rows of both are inserted together.

    On DuckDB the ledger queues a settle behind its pending row's write without waiting for
    it (decision 54), so should that write have failed, the final row is inserted instead.
    The count of updated rows comes with DuckDB's UPDATE; on PostgreSQL it would cost a
    round trip, and there the ledger has waited for each pending row."""
    usage = [usage for _, usage in (*updated, *inserted) if usage is not None]
    if updated:
        rows = [
            (g.id, g.model, g.status, g.output_text, g.media_json, g.error_code,
             g.error_message, g.tokens_in, g.tokens_out, g.cost, _naive(g.finished_at),
             g.conversation_id)
            for g, _ in updated
        ]  # fmt: skip
        cursor = tx.execute(_SETTLE_GENERATIONS, _columns(rows, len(_SETTLE_COLUMNS)))
        if tx.dialect == DUCKDB and cursor.fetchone()[0] < len(rows):
            found = _existing_generations(tx, [g.id for g, _ in updated])
            inserted = [*inserted, *((g, u) for g, u in updated if g.id not in found)]
    insert_generations(tx, [g for g, _ in inserted])
    insert_usage(tx, usage)


def settled_line(final: Generation, usage: UsageRecord) -> list[Any]:
    """What the journal keeps of a settled call (core/db/journal.py, decision 52)."""
    return [final.as_insert_row(), _usage_row(usage)]


def replay_pending(tx: Tx, lines: Sequence[Sequence[Any]]) -> None:
    """Journal replay of pending rows, idempotent: inserted unless the row exists, the call
    has been booked (its usage row) or its user deleted. A call the journal does not settle
    afterwards is then booked as interrupted at start-up."""
    for row in lines:
        pending = Generation.from_row(row)
        if (
            not _exists(tx, "generations WHERE id = ?", pending.id)
            and not _exists(tx, "usage_records WHERE generation_id = ?", pending.id)
            and _exists(tx, "users WHERE id = ?", pending.user_id)
        ):
            insert_generations(tx, [pending])


def replay_settled(tx: Tx, lines: Sequence[Sequence[Any]]) -> None:
    """Journal replay of settled calls, idempotent. A call whose usage row exists has
    committed (the settle writes both rows in one transaction, and usage rows are never
    deleted); otherwise its pending row is settled, or its row inserted — unless its user
    has been deleted since, whose history goes while the spend stays."""
    for generation_row, usage_row in lines:
        final, usage = Generation.from_row(generation_row), UsageRecord(*usage_row)
        if _exists(tx, "usage_records WHERE generation_id = ? AND kind = ?", final.id, usage.kind):
            continue
        if _exists(tx, "generations WHERE id = ?", final.id):
            record_settled(tx, [(final, usage)], ())
        elif _exists(tx, "users WHERE id = ?", final.user_id):
            record_settled(tx, (), [(final, usage)])
        else:
            insert_usage(tx, [usage])


def _existing_generations(tx: Tx, ids: Sequence[UUID]) -> set[UUID]:
    found = tx.execute("SELECT id FROM generations WHERE id IN (SELECT unnest(?::UUID[]))", [ids])
    return {row[0] for row in found.fetchall()}


def _exists(tx: Tx, where: str, *params: Any) -> bool:
    return tx.execute(f"SELECT 1 FROM {where} LIMIT 1", list(params)).fetchone() is not None  # noqa: S608 - constants


def book_late_cost(
    tx: Tx,
    generation_id: UUID,
    usage_kind: str,
    tokens_in: int | None,
    tokens_out: int | None,
    cost: float,
) -> bool:
    """The cost OpenRouter reported afterwards for a call whose stream was abandoned: on
    its usage row and history row, unless they already have one. True if it was booked."""
    values = [cost, tokens_in, tokens_out]
    booked = tx.execute(
        "UPDATE usage_records SET cost = ?, tokens_in = coalesce(tokens_in, ?),"
        " tokens_out = coalesce(tokens_out, ?)"
        " WHERE generation_id = ? AND kind = ? AND cost IS NULL RETURNING generation_id",
        [*values, generation_id, usage_kind],
    ).fetchall()
    tx.execute(
        "UPDATE generations SET cost = ?, tokens_in = coalesce(tokens_in, ?),"
        " tokens_out = coalesce(tokens_out, ?) WHERE id = ? AND cost IS NULL",
        [*values, generation_id],
    )
    return bool(booked)


def book_interrupted_calls(tx: Tx, now: datetime) -> int:
    """At start-up: every call still pending without a video job behind it was cut off by
    a crash. Book it as interrupted, with a usage row at the upper bound it reserved
    (the provider may have billed it; never free, never lost)."""
    orphans = tx.execute(
        "UPDATE generations SET status = 'interrupted', error_code = 'interrupted',"
        " error_message = 'The server stopped before this call finished.', finished_at = ?"
        " WHERE status IN ('pending', 'in_progress')"
        " AND id NOT IN (SELECT id FROM video_jobs)"
        " RETURNING id, user_id, kind, model, reserved_cost",
        [now],
    ).fetchall()
    booked = [
        UsageRecord(
            occurred_at=now,
            user_id=user_id,
            kind=_USAGE_KIND.get(kind, kind),
            model=model,
            tokens_in=None,
            tokens_out=None,
            cost=reserved,
            latency_ms=0.0,
            status="error",
            error_code="interrupted",
            generation_id=generation_id,
        )
        for generation_id, user_id, kind, model, reserved in orphans
    ]
    insert_usage(tx, booked)
    # Only a process serving alone runs this: every reservation left is a dead process's,
    # booked above with its call (a call that died before its pending row was written is
    # the loss decision 48 accepts).
    tx.execute("DELETE FROM budget_reservations")
    return len(orphans)


# The usage kind of a generation's upstream call, where the two differ.
_USAGE_KIND = {"video": "video_submit"}


def get_generation(con: Connection, generation_id: UUID, user_id: UUID) -> Generation | None:
    row = con.execute(
        f"SELECT {GENERATION_COLUMNS} FROM generations WHERE id = ? AND user_id = ?",  # noqa: S608
        [generation_id, user_id],
    ).fetchone()
    return Generation.from_row(row) if row else None


def list_generations(
    con: Connection, user_id: UUID, *, kind: str | None, limit: int, offset: int
) -> tuple[list[Generation], int]:
    where = "user_id = ? AND (?::VARCHAR IS NULL OR kind = ?)"
    params = [user_id, kind, kind]
    total = con.execute(f"SELECT count(*) FROM generations WHERE {where}", params).fetchone()  # noqa: S608
    rows = con.execute(
        f"SELECT {GENERATION_COLUMNS} FROM generations WHERE {where}"  # noqa: S608
        " ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).fetchall()
    return [Generation.from_row(row) for row in rows], int(total[0]) if total else 0


def finish_generation(
    tx: Tx,
    generation_id: UUID,
    *,
    status: str,
    media: Sequence[MediaFile] | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
    cost: float | None = None,
    finished_at: datetime | None = None,
) -> None:
    tx.execute(
        "UPDATE generations SET status = ?, media = coalesce(?, media), error_code = ?,"
        " error_message = ?, cost = coalesce(?, cost), finished_at = ? WHERE id = ?",
        [
            status,
            json.dumps([{"file": m.file, "type": m.type} for m in media]) if media else None,
            error_code,
            error_message,
            cost,
            _naive(finished_at),
            generation_id,
        ],
    )


# -- video jobs ---------------------------------------------------------------------------


def insert_video_job(tx: Tx, job: VideoJob) -> None:
    tx.execute(
        f"INSERT INTO video_jobs ({_VIDEO_JOB_INSERT_COLUMNS}) VALUES ({', '.join('?' * 16)})",  # noqa: S608
        [
            job.id, job.user_id, job.model, job.upstream_id, job.polling_url, job.status,
            job.error, job.cost, job.upstream_generation_id, job.video_file,
            _naive(job.created_at), _naive(job.updated_at), _naive(job.last_polled_at),
            _naive(job.completed_at), job.reserved_cost, job.missed_polls,
        ],
    )  # fmt: skip


def get_video_job(
    con: Connection | Tx, job_id: UUID, user_id: UUID | None = None
) -> VideoJob | None:
    row = con.execute(
        f"SELECT {VIDEO_JOB_COLUMNS} FROM video_jobs"  # noqa: S608
        " WHERE id = ? AND (?::UUID IS NULL OR user_id = ?)",
        [job_id, user_id, user_id],
    ).fetchone()
    return VideoJob.from_row(row) if row else None


_FIND_BY_POLLING_URL = Dialects(
    duckdb=f"SELECT {VIDEO_JOB_COLUMNS} FROM video_jobs"  # noqa: S608
    " WHERE user_id = ? AND list_contains(?::VARCHAR[], polling_url) LIMIT 1",
    postgresql=f"SELECT {VIDEO_JOB_COLUMNS} FROM video_jobs"  # noqa: S608
    " WHERE user_id = ? AND polling_url = ANY(?::VARCHAR[]) LIMIT 1",
)


def find_video_job_by_polling_url(
    con: Connection, user_id: UUID, polling_urls: Sequence[str]
) -> VideoJob | None:
    row = con.execute(_FIND_BY_POLLING_URL.on(con), [user_id, list(polling_urls)]).fetchone()
    return VideoJob.from_row(row) if row else None


def unfinished_video_jobs(con: Connection) -> list[VideoJob]:
    rows = con.execute(
        f"SELECT {VIDEO_JOB_COLUMNS} FROM video_jobs"  # noqa: S608
        " WHERE status NOT IN ('failed', 'cancelled', 'expired')"
        " AND (status <> 'completed' OR video_file IS NULL) ORDER BY created_at",
    ).fetchall()
    return [VideoJob.from_row(row) for row in rows]


def lease_video_job(tx: Tx, job_id: UUID, now: datetime, until: datetime) -> bool:
    """Take the job for polling until `until`, unless another worker holds an unexpired
    lease; True when taken. One statement: of workers racing for it, one wins."""
    row = tx.execute(
        "UPDATE video_jobs SET leased_until = ? WHERE id = ?"
        " AND (leased_until IS NULL OR leased_until < ?) RETURNING id",
        [_naive(until), job_id, _naive(now)],
    ).fetchone()
    return row is not None


def release_video_job(tx: Tx, job_id: UUID) -> None:
    tx.execute("UPDATE video_jobs SET leased_until = NULL WHERE id = ?", [job_id])


def update_video_job(tx: Tx, job_id: UUID, **changes: Any) -> VideoJob | None:
    allowed = {
        "status", "error", "cost", "upstream_generation_id", "video_file", "updated_at",
        "last_polled_at", "completed_at", "reserved_cost", "missed_polls",
    }  # fmt: skip
    if not changes or not set(changes) <= allowed:
        raise ValueError(f"cannot update {sorted(set(changes) - allowed)}")
    values = [_naive(v) if isinstance(v, datetime) else v for v in changes.values()]
    assignments = ", ".join(f"{column} = ?" for column in changes)  # column names, never values
    row = tx.execute(
        f"UPDATE video_jobs SET {assignments} WHERE id = ? RETURNING {VIDEO_JOB_COLUMNS}",  # noqa: S608
        [*values, job_id],
    ).fetchone()
    return VideoJob.from_row(row) if row else None


# -- usage --------------------------------------------------------------------------------


def insert_usage(tx: Tx, records: Sequence[UsageRecord]) -> None:
    _insert_usage_rows(tx, [_usage_row(r) for r in records])


def _usage_row(r: UsageRecord) -> list[Any]:
    """The row's values in _USAGE_COLUMNS order, which is also UsageRecord's field order."""
    return [
        r.occurred_at, r.user_id, r.kind, r.model, r.tokens_in, r.tokens_out, r.cost,
        r.latency_ms, r.status, r.error_code, r.generation_id,
    ]  # fmt: skip


# -- user deletion ------------------------------------------------------------------------


def delete_user_content(tx: Tx, user_id: UUID) -> None:
    """Remove what belongs to a user. Usage records stay: spend must still add up."""
    tx.execute(
        "DELETE FROM conversation_messages WHERE conversation_id IN"
        " (SELECT id FROM conversations WHERE user_id = ?)",
        [user_id],
    )
    tx.execute("DELETE FROM conversations WHERE user_id = ?", [user_id])
    tx.execute("DELETE FROM video_jobs WHERE user_id = ?", [user_id])
    tx.execute("DELETE FROM generations WHERE user_id = ?", [user_id])
    tx.execute("DELETE FROM user_limits WHERE user_id = ?", [user_id])
    tx.execute("DELETE FROM budget_reservations WHERE user_id = ?", [user_id])


# -- conversations ------------------------------------------------------------------------

CONVERSATION_COLUMNS = "id, user_id, title, model, created_at, updated_at"


def _conversation(row: Sequence[Any], messages: tuple[ChatMessage, ...] = ()) -> Conversation:
    id_, user_id, title, model, created_at, updated_at = row
    return Conversation(id_, user_id, title, model, aware(created_at), aware(updated_at), messages)  # type: ignore[arg-type]


def insert_conversation(tx: Tx, *, conversation_id: UUID, user_id: UUID, title: str, model: str,
                        now: datetime) -> None:  # fmt: skip
    tx.execute(
        f"INSERT INTO conversations ({CONVERSATION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",  # noqa: S608
        [conversation_id, user_id, title, model, now, now],
    )


def add_message(tx: Tx, conversation_id: UUID, message: ChatMessage, now: datetime) -> None:
    tx.execute(
        "INSERT INTO conversation_messages (conversation_id, role, content, stopped, created_at)"
        " VALUES (?, ?, ?, ?, ?)",
        [conversation_id, message.role, message.content, message.stopped, now],
    )
    tx.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", [now, conversation_id])


def get_conversation(
    con: Connection | Tx, conversation_id: UUID, user_id: UUID
) -> Conversation | None:
    row = con.execute(
        f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ? AND user_id = ?",  # noqa: S608
        [conversation_id, user_id],
    ).fetchone()
    if row is None:
        return None
    messages = con.execute(
        "SELECT role, content, coalesce(stopped, false) FROM conversation_messages"
        " WHERE conversation_id = ? ORDER BY id",
        [conversation_id],
    ).fetchall()
    return _conversation(row, tuple(ChatMessage(*message) for message in messages))


def list_conversations(con: Connection, user_id: UUID, limit: int = 50) -> list[Conversation]:
    rows = con.execute(
        f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE user_id = ?"  # noqa: S608
        " ORDER BY updated_at DESC LIMIT ?",
        [user_id, limit],
    ).fetchall()
    return [_conversation(row) for row in rows]


_CONVERSATION_TITLES = Dialects(
    duckdb="SELECT id, title FROM conversations WHERE user_id = ? AND list_contains(?, id)",
    postgresql="SELECT id, title FROM conversations WHERE user_id = ? AND id = ANY(?::UUID[])",
)


def conversation_titles(con: Connection, user_id: UUID, ids: Sequence[UUID]) -> dict[UUID, str]:
    """Titles of the user's conversations among `ids` (for linking history entries)."""
    if not ids:
        return {}
    rows = con.execute(_CONVERSATION_TITLES.on(con), [user_id, list(ids)]).fetchall()
    return {conversation_id: title for conversation_id, title in rows}


def delete_conversation(tx: Tx, conversation_id: UUID, user_id: UUID) -> bool:
    deleted = tx.execute(
        "DELETE FROM conversations WHERE id = ? AND user_id = ? RETURNING id",
        [conversation_id, user_id],
    ).fetchone()
    if deleted:
        tx.execute("DELETE FROM conversation_messages WHERE conversation_id = ?", [conversation_id])
    return deleted is not None


# -- dashboard ----------------------------------------------------------------------------


def usage_since(con: Connection, user_id: UUID, since: datetime) -> dict[str, Any]:
    row = con.execute(
        "SELECT count(*), coalesce(sum(tokens_in), 0), coalesce(sum(tokens_out), 0),"
        " coalesce(sum(cost), 0) FROM usage_records WHERE user_id = ? AND occurred_at >= ?",
        [user_id, since],
    ).fetchone()
    by_kind = con.execute(
        "SELECT kind, count(*) FROM generations WHERE user_id = ? AND created_at >= ?"
        " GROUP BY kind",
        [user_id, since],
    ).fetchall()
    calls, tokens_in, tokens_out, cost = row if row else (0, 0, 0, 0)
    return {
        "calls": calls, "tokens_in": tokens_in, "tokens_out": tokens_out, "cost": cost,
        "generations": dict(by_kind),
    }  # fmt: skip


# -- limits and spend (decisions 40 and 41) -----------------------------------------------


@dataclass(frozen=True, slots=True)
class LimitsRow:
    """One row of role_limits (key: the role) or user_limits (key: the user id); None in a
    field means "every model" / "no budget" for a role and "the role's" for a user."""

    key: str
    allowed_models: tuple[str, ...] | None
    budget_usd: Decimal | None
    budget_period: str | None
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> LimitsRow:
        key, patterns, budget, period, updated_at = row
        allowed = None if patterns is None else tuple(json.loads(patterns))
        budget = None if budget is None else Decimal(budget).quantize(Decimal("0.000001"))
        return cls(str(key), allowed, budget, period, updated_at)


def all_limits(con: Connection | Tx) -> tuple[list[LimitsRow], list[LimitsRow]]:
    """(role rows, user rows): small tables, cached whole in the process."""
    roles = con.execute(
        "SELECT role, allowed_models, budget_usd, budget_period, updated_at FROM role_limits"
    ).fetchall()
    users = con.execute(
        "SELECT user_id, allowed_models, budget_usd, budget_period, updated_at FROM user_limits"
    ).fetchall()
    return [LimitsRow.from_row(r) for r in roles], [LimitsRow.from_row(r) for r in users]


def _patterns_json(patterns: Sequence[str] | None) -> str | None:
    return None if patterns is None else json.dumps(list(patterns))


def put_role_limits(tx: Tx, row: LimitsRow) -> None:
    values = [_patterns_json(row.allowed_models), row.budget_usd, row.budget_period, row.updated_at]
    tx.execute("DELETE FROM role_limits WHERE role = ?", [row.key])
    tx.execute(
        "INSERT INTO role_limits (role, allowed_models, budget_usd, budget_period, updated_at)"
        " VALUES (?, ?, ?, ?, ?)",
        [row.key, *values],
    )


def put_user_limits(tx: Tx, row: LimitsRow) -> None:
    """Store a user's override; an override with every field inherited is no row at all."""
    tx.execute("DELETE FROM user_limits WHERE user_id = ?", [UUID(row.key)])
    if row.allowed_models is None and row.budget_usd is None and row.budget_period is None:
        return
    tx.execute(
        "INSERT INTO user_limits (user_id, allowed_models, budget_usd, budget_period, updated_at)"
        " VALUES (?, ?, ?, ?, ?)",
        [UUID(row.key), _patterns_json(row.allowed_models), row.budget_usd, row.budget_period,
         row.updated_at],
    )  # fmt: skip


def spent_between(con: Connection | Tx, user_id: UUID, start: datetime, end: datetime) -> float:
    """What OpenRouter billed a user's calls booked in [start, end)."""
    row = con.execute(
        "SELECT coalesce(sum(cost), 0) FROM usage_records"
        " WHERE user_id = ? AND occurred_at >= ? AND occurred_at < ?",
        [user_id, start, end],
    ).fetchone()
    return float(row[0]) if row else 0.0


def held_video_reservations(con: Connection | Tx, user_id: UUID) -> float:
    """The reservations a user's unfinished video jobs hold until they end."""
    row = con.execute(
        "SELECT coalesce(sum(reserved_cost), 0) FROM video_jobs"
        " WHERE user_id = ? AND status NOT IN ('completed', 'failed', 'cancelled', 'expired')",
        [user_id],
    ).fetchone()
    return float(row[0]) if row else 0.0


# -- budget reservations in the database (PostgreSQL, several workers; decision 49) ------

BUDGET_LOCK = 490049  # the first key of the per-user budget advisory lock (PostgreSQL)


def lock_budget(tx: Tx, user_id: UUID) -> None:
    """Until this transaction ends, no other reservation for this user is being decided."""
    tx.execute("SELECT pg_advisory_xact_lock(?::INTEGER, hashtext(?::VARCHAR))",
               [BUDGET_LOCK, str(user_id)])  # fmt: skip


def budget_in_use(
    con: Connection | Tx, user_id: UUID, start: datetime, end: datetime, now: datetime
) -> tuple[float, float]:
    """(spent in [start, end), held by live reservations and unfinished video jobs), read
    by ONE statement so that both come from one snapshot: a commit that books a cost and
    ends its reservation is seen whole or not at all."""
    row = con.execute(
        "SELECT (SELECT coalesce(sum(cost), 0) FROM usage_records"
        "        WHERE user_id = ? AND occurred_at >= ? AND occurred_at < ?),"
        "       (SELECT coalesce(sum(amount), 0) FROM budget_reservations"
        "        WHERE user_id = ? AND expires_at > ?)"
        "     + (SELECT coalesce(sum(reserved_cost), 0) FROM video_jobs"
        "        WHERE user_id = ?"
        "        AND status NOT IN ('completed', 'failed', 'cancelled', 'expired'))",
        [user_id, start, end, user_id, now, user_id],
    ).fetchone()
    return (float(row[0]), float(row[1])) if row else (0.0, 0.0)


def insert_budget_reservation(
    tx: Tx, reservation_id: UUID, user_id: UUID, amount: float, expires_at: datetime
) -> None:
    tx.execute(
        "INSERT INTO budget_reservations (id, user_id, amount, expires_at) VALUES (?, ?, ?, ?)",
        [reservation_id, user_id, amount, expires_at],
    )


def delete_budget_reservations(tx: Tx, reservation_ids: Sequence[UUID]) -> None:
    """End reservations: in the transaction that books their calls' costs, or given back."""
    for reservation_id in reservation_ids:
        tx.execute("DELETE FROM budget_reservations WHERE id = ?", [reservation_id])


def spent_by_user(con: Connection, since: datetime, until: datetime) -> dict[UUID, float]:
    """Every user's spend in [since, until), for the staff pages."""
    rows = con.execute(
        "SELECT user_id, sum(cost) FROM usage_records"
        " WHERE occurred_at >= ? AND occurred_at < ? AND user_id IS NOT NULL GROUP BY 1",
        [since, until],
    ).fetchall()
    return {user_id: float(total or 0) for user_id, total in rows}
