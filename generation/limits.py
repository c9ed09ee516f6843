"""Limits: which models a user may call and how much they may spend (decision 40).

Each role has defaults (`role_limits`); a user may override them field by field
(`user_limits`, where None inherits the role's value). Both tables are small and cached
whole in the process; every change drops the cache after its commit and tells the other
worker processes (`limits_changed()`, core/invalidation.py, decision 45), which drop
theirs before their next request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any
from uuid import UUID

from accounts.repository import User
from core import invalidation
from core.audit import Actor, record_audit
from core.clock import utcnow
from core.db import Database, DatabaseError, Tx, get_database
from core.errors import ApiError, NotFound
from generation import repository as repo
from generation.repository import LimitsRow

PERIODS = ("day", "week", "month")
ROLES = ("user", "admin")
DEFAULT_PERIOD = "month"
MAX_PATTERNS = 200
PATTERN_RE = re.compile(r"^[a-z0-9*][a-z0-9*._:/@+-]{0,199}$")
LIMIT_FIELDS = ("allowed_models", "budget_usd", "budget_period")


class LimitsUnavailable(ApiError):
    status = 503
    code = "limits_unavailable"
    message = "Your limits could not be read, so no call was made; try again shortly."


class ModelNotAllowed(ApiError):
    status = 403
    code = "model_not_allowed"


# -- periods ---------------------------------------------------------------------------


def period_bounds(period: str, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the UTC calendar day, ISO week (from Monday) or month holding now."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day, day + timedelta(days=1)
    if period == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    start = day.replace(day=1)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, end


# -- patterns --------------------------------------------------------------------------


def normalize_patterns(patterns: Sequence[str]) -> tuple[str, ...]:
    """Lower-cased, trimmed, de-duplicated in order; ValueError with a sentence if one is
    not a model-id pattern (letters, digits, `/ . _ - : @ +`, and `*` for any run)."""
    if len(patterns) > MAX_PATTERNS:
        raise ValueError(f"Give at most {MAX_PATTERNS} patterns.")
    cleaned: list[str] = []
    for raw in patterns:
        pattern = raw.strip().lower()
        if not PATTERN_RE.match(pattern):
            raise ValueError(
                f"'{raw[:60]}' is not a model pattern: use model ids such as openai/gpt-4o-mini,"
                " with * for any characters (openai/*, *:free)."
            )
        if pattern not in cleaned:
            cleaned.append(pattern)
    return tuple(cleaned)


@lru_cache(maxsize=256)
def _matcher(patterns: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = ("".join(".*" if p == "*" else re.escape(p) for p in re.split(r"(\*)", pattern))
                    for pattern in patterns)  # fmt: skip
    return re.compile("(?:" + "|".join(alternatives) + r")\Z") if patterns else re.compile(r"(?!)")


# -- effective limits ------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """What applies to one user: None allows every model / sets no budget."""

    allowed_models: tuple[str, ...] | None = None
    budget_usd: Decimal | None = None
    budget_period: str = DEFAULT_PERIOD

    def allows(self, model_id: str) -> bool:
        if self.allowed_models is None:
            return True
        return _matcher(self.allowed_models).match(model_id.lower()) is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "allowed_models": list(self.allowed_models)
            if self.allowed_models is not None
            else None,
            "budget_usd": self.budget_usd,
            "budget_period": self.budget_period,
        }


@dataclass(frozen=True)
class LimitRules:
    """Every role's defaults and every user's override, as the database holds them."""

    roles: Mapping[str, LimitsRow] = field(default_factory=dict)
    users: Mapping[UUID, LimitsRow] = field(default_factory=dict)

    def role(self, role: str) -> Limits:
        row = self.roles.get(role)
        if row is None:
            return Limits()
        return Limits(row.allowed_models, row.budget_usd, row.budget_period or DEFAULT_PERIOD)

    def override(self, user_id: UUID) -> LimitsRow | None:
        return self.users.get(user_id)

    def effective(self, user: User) -> Limits:
        base = self.role(user.role)
        own = self.users.get(user.id)
        if own is None:
            return base
        return Limits(
            own.allowed_models if own.allowed_models is not None else base.allowed_models,
            own.budget_usd if own.budget_usd is not None else base.budget_usd,
            own.budget_period or base.budget_period,
        )


class _Cache:
    rules: LimitRules | None = None

    def forget(self) -> None:
        self.rules = None


TOPIC = "generation.limits"  # what other processes are told; the key is the role or user


def _cache() -> _Cache:
    return get_database().extension("generation.limits", _subscribed_cache)


def _subscribed_cache(db: Database) -> _Cache:
    cache = _Cache()

    def forget(key: str = "") -> None:
        # As a write holding the publication lock, so that a load that read the rules
        # before the other process's commit installs them before this drops them.
        def drop(tx: Tx) -> None:
            tx.serialize_publication()
            tx.on_commit(cache.forget)

        db.write(drop)

    invalidation.subscribe(TOPIC, on_change=forget, on_reset=forget)
    return cache


def invalidate_limits() -> None:
    """Forget the cached rules; the next call reads them again."""
    _cache().forget()


def limits_changed(key: str) -> None:
    """After the commit of any change to the limits: forget them here and in every other
    worker process (before this change is reported)."""
    invalidate_limits()
    invalidation.publish(TOPIC, key, here=False)


async def limit_rules() -> LimitRules:
    """The cached rules, read once after each change; 503 if the database cannot say."""
    cache = _cache()
    rules = cache.rules
    if rules is not None:
        return rules
    try:
        return await get_database().awrite(_load, cache)
    except DatabaseError as exc:
        raise LimitsUnavailable() from exc


def _load(tx: Tx, cache: _Cache) -> LimitRules:
    # Read as a write under the publication lock, so a change that commits meanwhile
    # publishes its invalidation after this install, never before (decision 36).
    tx.serialize_publication()
    roles, users = repo.all_limits(tx)
    rules = LimitRules({r.key: r for r in roles}, {UUID(r.key): r for r in users})

    def install() -> None:
        cache.rules = rules

    tx.on_commit(install)
    return rules


async def limits_for(user: User) -> Limits:
    return (await limit_rules()).effective(user)


async def allowed(user: User, model_id: str) -> bool:
    return (await limits_for(user)).allows(model_id)


async def check_model(user: User, model_id: str, limits: Limits | None = None) -> Limits:
    """The user's limits, or 403 model_not_allowed if they exclude this model."""
    limits = limits or await limits_for(user)
    if not limits.allows(model_id):
        raise ModelNotAllowed(
            f"You may not use the model '{model_id}'; ask an administrator to allow it.",
            fields={"model": "This model is not allowed for your account."},
        )
    return limits


# -- changes ---------------------------------------------------------------------------


def _limits_json(row: LimitsRow | None) -> dict[str, Any]:
    if row is None:
        return {name: None for name in LIMIT_FIELDS}
    return {
        "allowed_models": list(row.allowed_models) if row.allowed_models is not None else None,
        "budget_usd": _decimal_text(row.budget_usd),
        "budget_period": row.budget_period,
    }


def _decimal_text(value: Decimal | None) -> str | None:
    """5.000000 as "5", 2.50 as "2.5": the audit log's spelling of an amount."""
    return None if value is None else format(value.normalize(), "f")


def _changed(row: LimitsRow, changes: Mapping[str, Any]) -> LimitsRow:
    values = {name: changes[name] for name in LIMIT_FIELDS if name in changes}
    if "allowed_models" in values and values["allowed_models"] is not None:
        values["allowed_models"] = tuple(values["allowed_models"])
    return replace(row, **values, updated_at=utcnow())


async def set_role_limits(
    actor: Actor, role: str, changes: Mapping[str, Any], *, ip: str | None = None
) -> Limits:
    """Change a role's defaults (fields left out stay); audited with old and new values."""
    if role not in ROLES:
        raise NotFound(f"There is no role '{role}'.", code="role_not_found")
    if changes.get("budget_period", "") is None:
        changes = {**changes, "budget_period": DEFAULT_PERIOD}  # a role always has a period

    def write(tx: Tx) -> LimitsRow:
        old = next((r for r in repo.all_limits(tx)[0] if r.key == role), None)
        base = old or LimitsRow(role, None, None, DEFAULT_PERIOD, utcnow())
        new = _changed(base, changes)
        repo.put_role_limits(tx, new)
        record_audit(
            tx, action="limits.role_changed", actor=actor, target_type="role", target_id=role,
            target_label=role, detail={"old": _limits_json(old), "new": _limits_json(new)}, ip=ip,
        )  # fmt: skip
        tx.on_commit(lambda: limits_changed(role))
        return new

    row = await _write(write)
    return Limits(row.allowed_models, row.budget_usd, row.budget_period or DEFAULT_PERIOD)


async def set_user_limits(
    actor: Actor, user: User, changes: Mapping[str, Any], *, ip: str | None = None
) -> None:
    """Change a user's override (fields left out stay; None inherits the role's)."""

    def write(tx: Tx) -> None:
        old = next((r for r in repo.all_limits(tx)[1] if r.key == str(user.id)), None)
        base = old or LimitsRow(str(user.id), None, None, None, utcnow())
        new = _changed(base, changes)
        repo.put_user_limits(tx, new)
        record_audit(
            tx, action="limits.user_changed", actor=actor, target_type="user",
            target_id=str(user.id), target_label=user.email,
            detail={"old": _limits_json(old), "new": _limits_json(new)}, ip=ip,
        )  # fmt: skip
        tx.on_commit(lambda: limits_changed(str(user.id)))

    await _write(write)


async def _write(write: Any) -> Any:
    try:
        return await get_database().awrite(write)
    except DatabaseError as exc:
        if type(exc) is not DatabaseError:  # busy, integrity: the usual mapping
            raise
        raise LimitsUnavailable("The limits could not be saved; try again shortly.") from exc
