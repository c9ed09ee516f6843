"""Recording the audit log: who did what to whom, written in the same transaction as the act.

Every app records its own actions here; adminops owns reading and showing the log.
"""

from __future__ import annotations

import json
from typing import Any, Protocol
from uuid import UUID

from core.clock import utcnow
from core.db import Tx


class Actor(Protocol):
    """Whoever acts: a signed-in user (id and email are all the log keeps)."""

    @property
    def id(self) -> UUID: ...

    @property
    def email(self) -> str: ...


def record_audit(
    tx: Tx,
    *,
    action: str,
    actor: Actor | None,
    target_type: str | None = None,
    target_id: str | None = None,
    target_label: str | None = None,
    detail: dict[str, Any] | None = None,
    ip: str | None = None,
) -> None:
    tx.execute(
        "INSERT INTO audit_log (occurred_at, actor_id, actor_email, action, target_type, target_id,"
        " target_label, detail, ip) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            utcnow(),
            actor.id if actor else None,
            actor.email if actor else None,
            action,
            target_type,
            target_id,
            target_label,
            json.dumps(detail or {}, sort_keys=True),
            ip,
        ],
    )
