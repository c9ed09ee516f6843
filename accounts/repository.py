"""SQL for users, refresh tokens and API keys. Reads take a cursor, writes take the writer's Tx."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from core.clock import aware, utcnow
from core.db import POSTGRESQL, Connection, Tx

ROLES = ("user", "admin")


@dataclass(frozen=True, slots=True)
class User:
    id: UUID
    email: str
    role: str
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None

    is_authenticated = True

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> User:
        id_, email, role, is_active, created_at, last_login_at = row
        return cls(id_, email, role, is_active, aware(created_at), aware(last_login_at))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class RefreshTokenRow:
    jti: str
    user_id: UUID
    family: str
    issued_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    replaced_by: str | None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> RefreshTokenRow:
        jti, user_id, family, issued, expires, revoked, replaced = row
        return cls(jti, user_id, family, aware(issued), aware(expires), aware(revoked), replaced)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: UUID
    user_id: UUID
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> ApiKey:
        id_, user_id, name, prefix, created_at, last_used_at = row
        return cls(id_, user_id, name, prefix, aware(created_at), aware(last_used_at))  # type: ignore[arg-type]


USER_COLUMNS = "id, email, role, is_active, created_at, last_login_at"
TOKEN_COLUMNS = "jti, user_id, family, issued_at, expires_at, revoked_at, replaced_by"  # noqa: S105
KEY_COLUMNS = "id, user_id, name, prefix, created_at, last_used_at"

# -- users -------------------------------------------------------------------------------


def all_users(con: Connection | Tx) -> list[User]:
    rows = con.execute(f"SELECT {USER_COLUMNS} FROM users").fetchall()  # noqa: S608
    return [User.from_row(row) for row in rows]


def get_user(con: Connection | Tx, user_id: UUID) -> User | None:
    row = con.execute(f"SELECT {USER_COLUMNS} FROM users WHERE id = ?", [user_id]).fetchone()  # noqa: S608
    return User.from_row(row) if row else None


def find_credentials(con: Connection | Tx, email_key: str) -> tuple[User, str] | None:
    row = con.execute(
        f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE email_key = ?",  # noqa: S608
        [email_key],
    ).fetchone()
    return (User.from_row(row[:-1]), row[-1]) if row else None


def password_hash_of(con: Connection | Tx, user_id: UUID) -> str | None:
    row = con.execute("SELECT password_hash FROM users WHERE id = ?", [user_id]).fetchone()
    return row[0] if row else None


def email_taken(tx: Tx, email_key: str, *, except_id: UUID | None = None) -> bool:
    row = tx.execute(
        "SELECT 1 FROM users WHERE email_key = ? AND id IS DISTINCT FROM ?", [email_key, except_id]
    ).fetchone()
    return row is not None


def insert_user(
    tx: Tx, *, user_id: UUID, email: str, password_hash: str, role: str, now: datetime
) -> User:
    row = tx.execute(
        f"INSERT INTO users (id, email, email_key, password_hash, role, is_active, created_at,"  # noqa: S608
        f" updated_at) VALUES (?, ?, ?, ?, ?, TRUE, ?, ?) RETURNING {USER_COLUMNS}",
        [user_id, email, email.lower(), password_hash, role, now, now],
    ).fetchone()
    assert row is not None
    return User.from_row(row)


def update_user(tx: Tx, user_id: UUID, **changes: Any) -> User | None:
    """Set the given columns (a fixed whitelist) and return the new row."""
    allowed = {"email", "password_hash", "role", "is_active", "last_login_at"}
    if not changes or not set(changes) <= allowed:
        raise ValueError(f"cannot update {sorted(set(changes) - allowed)}")
    if "email" in changes:
        changes["email_key"] = changes["email"].lower()
    changes["updated_at"] = utcnow()
    assignments = ", ".join(f"{column} = ?" for column in changes)  # column names, never values
    row = tx.execute(
        f"UPDATE users SET {assignments} WHERE id = ? RETURNING {USER_COLUMNS}",  # noqa: S608
        [*changes.values(), user_id],
    ).fetchone()
    return User.from_row(row) if row else None


def delete_user(tx: Tx, user_id: UUID) -> list[str]:
    """Delete the user with their refresh tokens and API keys; return the deleted key hashes."""
    hashes = [
        row[0]
        for row in tx.execute(
            "SELECT key_hash FROM api_keys WHERE user_id = ?", [user_id]
        ).fetchall()
    ]
    tx.execute("DELETE FROM api_keys WHERE user_id = ?", [user_id])
    tx.execute("DELETE FROM refresh_tokens WHERE user_id = ?", [user_id])
    tx.execute("DELETE FROM oidc_identities WHERE user_id = ?", [user_id])
    tx.execute("DELETE FROM password_login_exemptions WHERE user_id = ?", [user_id])
    tx.execute("DELETE FROM users WHERE id = ?", [user_id])
    return hashes


# The advisory lock that serializes changes to who is an active admin (any number).
ADMIN_ROSTER_LOCK = 0x61677701


def lock_admin_roster(tx: Tx) -> None:
    """Take before reading a user to demote, disable or delete and counting the admins left:
    no other such change, in any process, can then slip between the count and the write.
    On DuckDB the one writer runs a transaction at a time already."""
    if tx.dialect == POSTGRESQL:
        tx.execute("SELECT pg_advisory_xact_lock(?::BIGINT)", [ADMIN_ROSTER_LOCK])


def count_admins(tx: Tx, *, active_only: bool = True) -> int:
    sql = "SELECT count(*) FROM users WHERE role = 'admin'"
    if active_only:
        sql += " AND is_active"
    row = tx.execute(sql).fetchone()
    return int(row[0]) if row else 0


def search_users(
    con: Connection, *, query: str, role: str | None, limit: int, offset: int
) -> tuple[list[User], int]:
    pattern = (
        "%" + query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    )
    where = "email_key LIKE ? ESCAPE '\\' AND (?::VARCHAR IS NULL OR role = ?)"
    params: list[Any] = [pattern, role, role]
    total_row = con.execute(f"SELECT count(*) FROM users WHERE {where}", params).fetchone()  # noqa: S608
    rows = con.execute(
        f"SELECT {USER_COLUMNS} FROM users WHERE {where}"  # noqa: S608
        " ORDER BY created_at, id LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).fetchall()
    return [User.from_row(row) for row in rows], int(total_row[0]) if total_row else 0


# -- refresh tokens ---------------------------------------------------------------------


def insert_refresh_token(
    tx: Tx, *, jti: str, user_id: UUID, family: str, issued_at: datetime, expires_at: datetime
) -> None:
    tx.execute(
        "INSERT INTO refresh_tokens (jti, user_id, family, issued_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?)",
        [jti, user_id, family, issued_at, expires_at],
    )


# A successor token: (jti, user_id, family, issued_at, expires_at).
TokenRow = tuple[str, UUID, str, datetime, datetime]

_CONSUME_REFRESH_TOKENS = (
    "UPDATE refresh_tokens SET revoked_at = ?, replaced_by = s.successor"
    " FROM (SELECT unnest(?::VARCHAR[]) AS jti, unnest(?::VARCHAR[]) AS successor) AS s"
    " WHERE refresh_tokens.jti = s.jti AND refresh_tokens.revoked_at IS NULL"
    " AND refresh_tokens.expires_at > ? RETURNING refresh_tokens.jti"
)
_INSERT_REFRESH_TOKENS = (
    "INSERT INTO refresh_tokens (jti, user_id, family, issued_at, expires_at)"
    " SELECT unnest(?::VARCHAR[]), unnest(?::UUID[]), unnest(?::VARCHAR[]),"
    " unnest(?::TIMESTAMP[]), unnest(?::TIMESTAMP[])"
)
# PostgreSQL: both of the above as one statement (DuckDB has no data-modifying WITH), so
# a rotation is one round trip before its COMMIT. The UPDATE's row lock makes a concurrent
# rotation of the same token wait and re-check `revoked_at IS NULL`: one winner, as before.
_ROTATE_REFRESH_TOKENS_POSTGRESQL = (
    "WITH s AS (SELECT unnest(?::VARCHAR[]) AS jti, unnest(?::VARCHAR[]) AS successor,"
    " unnest(?::UUID[]) AS user_id, unnest(?::VARCHAR[]) AS family,"
    " unnest(?::TIMESTAMP[]) AS issued_at, unnest(?::TIMESTAMP[]) AS expires_at),"
    " consumed AS (UPDATE refresh_tokens SET revoked_at = ?, replaced_by = s.successor FROM s"
    " WHERE refresh_tokens.jti = s.jti AND refresh_tokens.revoked_at IS NULL"
    " AND refresh_tokens.expires_at > ?"
    " RETURNING refresh_tokens.jti, s.successor, s.user_id, s.family, s.issued_at,"
    " s.expires_at),"
    " inserted AS (INSERT INTO refresh_tokens (jti, user_id, family, issued_at, expires_at)"
    " SELECT successor, user_id, family, issued_at, expires_at FROM consumed)"
    " SELECT jti FROM consumed"
)


def rotate_refresh_tokens(tx: Tx, successors: dict[str, TokenRow], now: datetime) -> set[str]:
    """Revoke each live token {jti: successor row} in favour of its successor and insert
    the successor; the jtis that were live (and are now consumed)."""
    if not successors:
        return set()
    if tx.dialect == POSTGRESQL:
        columns = [list(column) for column in zip(*successors.values(), strict=True)]
        rows = tx.execute(
            _ROTATE_REFRESH_TOKENS_POSTGRESQL, [list(successors), *columns, now, now]
        ).fetchall()
        return {row[0] for row in rows}
    rows = tx.execute(
        _CONSUME_REFRESH_TOKENS,
        [now, list(successors), [row[0] for row in successors.values()], now],
    ).fetchall()
    consumed = {row[0] for row in rows}
    insert_refresh_tokens(tx, [row for jti, row in successors.items() if jti in consumed])
    return consumed


def insert_refresh_tokens(tx: Tx, rows: list[TokenRow]) -> None:
    """Insert (jti, user_id, family, issued_at, expires_at) rows in one statement."""
    if rows:
        columns = [list(column) for column in zip(*rows, strict=True)]
        tx.execute(_INSERT_REFRESH_TOKENS, columns)


def get_refresh_token(con: Connection | Tx, jti: str) -> RefreshTokenRow | None:
    row = con.execute(
        f"SELECT {TOKEN_COLUMNS} FROM refresh_tokens WHERE jti = ?",  # noqa: S608
        [jti],
    ).fetchone()
    return RefreshTokenRow.from_row(row) if row else None


def revoke_family(tx: Tx, family: str, now: datetime) -> int:
    rows = tx.execute(
        "UPDATE refresh_tokens SET revoked_at = ? WHERE family = ? AND revoked_at IS NULL"
        " RETURNING jti",
        [now, family],
    ).fetchall()
    return len(rows)


def revoke_user_tokens(tx: Tx, user_id: UUID, now: datetime) -> list[str]:
    """Revoke every live refresh token of a user; return the families that were live."""
    rows = tx.execute(
        "UPDATE refresh_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL"
        " RETURNING family",
        [now, user_id],
    ).fetchall()
    return sorted({row[0] for row in rows})


def live_families(con: Connection | Tx, now: datetime) -> list[str]:
    rows = con.execute(
        "SELECT DISTINCT family FROM refresh_tokens WHERE revoked_at IS NULL AND expires_at > ?",
        [now],
    ).fetchall()
    return [row[0] for row in rows]


def family_is_live(con: Connection | Tx, family: str, now: datetime) -> bool:
    row = con.execute(
        "SELECT 1 FROM refresh_tokens WHERE family = ? AND revoked_at IS NULL AND expires_at > ?"
        " LIMIT 1",
        [family, now],
    ).fetchone()
    return row is not None


def families_of_user(tx: Tx, user_id: UUID) -> list[str]:
    rows = tx.execute(
        "SELECT DISTINCT family FROM refresh_tokens WHERE user_id = ?", [user_id]
    ).fetchall()
    return [row[0] for row in rows]


# -- API keys ---------------------------------------------------------------------------


def insert_api_key(
    tx: Tx, *, key_id: UUID, user_id: UUID, name: str, prefix: str, key_hash: str, now: datetime
) -> ApiKey:
    row = tx.execute(
        f"INSERT INTO api_keys (id, user_id, name, prefix, key_hash, created_at)"  # noqa: S608
        f" VALUES (?, ?, ?, ?, ?, ?) RETURNING {KEY_COLUMNS}",
        [key_id, user_id, name, prefix, key_hash, now],
    ).fetchone()
    assert row is not None
    return ApiKey.from_row(row)


def count_api_keys(tx: Tx, user_id: UUID) -> int:
    row = tx.execute("SELECT count(*) FROM api_keys WHERE user_id = ?", [user_id]).fetchone()
    return int(row[0]) if row else 0


def list_api_keys(con: Connection, user_id: UUID) -> list[ApiKey]:
    rows = con.execute(
        f"SELECT {KEY_COLUMNS} FROM api_keys WHERE user_id = ? ORDER BY created_at DESC",  # noqa: S608
        [user_id],
    ).fetchall()
    return [ApiKey.from_row(row) for row in rows]


def delete_api_key(tx: Tx, *, key_id: UUID, user_id: UUID) -> tuple[ApiKey, str] | None:
    """Delete one of the user's keys; return it and its hash, or None if it is not theirs."""
    row = tx.execute(
        f"DELETE FROM api_keys WHERE id = ? AND user_id = ? RETURNING {KEY_COLUMNS}, key_hash",  # noqa: S608
        [key_id, user_id],
    ).fetchone()
    return (ApiKey.from_row(row[:-1]), row[-1]) if row else None


def delete_api_keys_of_user(tx: Tx, user_id: UUID) -> list[tuple[ApiKey, str]]:
    """Delete every key of the user; return each with its hash."""
    rows = tx.execute(
        f"DELETE FROM api_keys WHERE user_id = ? RETURNING {KEY_COLUMNS}, key_hash",  # noqa: S608
        [user_id],
    ).fetchall()
    return [(ApiKey.from_row(row[:-1]), row[-1]) for row in rows]


def all_api_key_hashes(con: Connection | Tx) -> list[tuple[str, UUID, UUID]]:
    rows = con.execute("SELECT key_hash, id, user_id FROM api_keys").fetchall()
    return [(row[0], row[1], row[2]) for row in rows]


def api_key_by_hash(con: Connection | Tx, key_hash: str) -> tuple[UUID, UUID] | None:
    """(key id, user id) of the key with this hash, or None."""
    row = con.execute("SELECT id, user_id FROM api_keys WHERE key_hash = ?", [key_hash]).fetchone()
    return (row[0], row[1]) if row else None


def stamp_api_keys_used(tx: Tx, stamps: dict[UUID, datetime]) -> None:
    for key_id, used_at in stamps.items():
        tx.execute(
            "UPDATE api_keys SET last_used_at = ? WHERE id = ?"
            " AND (last_used_at IS NULL OR last_used_at < ?)",
            [used_at, key_id, used_at],
        )


# -- single sign-on identities and break-glass admins -----------------------------------


def user_of_identity(tx: Tx, issuer: str, sub: str) -> User | None:
    row = tx.execute(
        f"SELECT {USER_COLUMNS} FROM users WHERE id ="  # noqa: S608
        " (SELECT user_id FROM oidc_identities WHERE issuer = ? AND sub = ?)",
        [issuer, sub],
    ).fetchone()
    return User.from_row(row) if row else None


def find_user_by_email(tx: Tx, email_key: str) -> User | None:
    row = tx.execute(
        f"SELECT {USER_COLUMNS} FROM users WHERE email_key = ?",  # noqa: S608
        [email_key],
    ).fetchone()
    return User.from_row(row) if row else None


def insert_identity(
    tx: Tx, *, issuer: str, sub: str, user_id: UUID, email: str | None, now: datetime
) -> None:
    tx.execute(
        "INSERT INTO oidc_identities (issuer, sub, user_id, email, created_at, last_login_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [issuer, sub, user_id, email, now, now],
    )


def stamp_identity_login(
    tx: Tx, *, issuer: str, sub: str, email: str | None, now: datetime
) -> None:
    tx.execute(
        "UPDATE oidc_identities SET last_login_at = ?, email = ? WHERE issuer = ? AND sub = ?",
        [now, email, issuer, sub],
    )


def identities_of_user(con: Connection | Tx, user_id: UUID) -> list[tuple[str, str]]:
    rows = con.execute(
        "SELECT issuer, sub FROM oidc_identities WHERE user_id = ? ORDER BY created_at",
        [user_id],
    ).fetchall()
    return [(row[0], row[1]) for row in rows]


def grant_password_login(tx: Tx, user_id: UUID, now: datetime) -> None:
    tx.execute(
        "INSERT INTO password_login_exemptions (user_id, granted_at) VALUES (?, ?)"
        " ON CONFLICT (user_id) DO NOTHING",
        [user_id, now],
    )


def may_log_in_with_password(con: Connection | Tx, user_id: UUID) -> bool:
    """Whether createadmin made this user a break-glass admin (PASSWORD_LOGIN=false)."""
    row = con.execute(
        "SELECT 1 FROM password_login_exemptions WHERE user_id = ?", [user_id]
    ).fetchone()
    return row is not None
