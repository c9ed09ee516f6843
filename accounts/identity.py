"""Who is calling: an exact in-process directory of users, live token families and API keys.

The server is one process and every write publishes its after-commit callbacks in commit
order (DuckDB's one writer; on PostgreSQL the publication lock, decision 36), so a directory
loaded as a write and updated by those callbacks is exactly the database's state.
Authenticating a request therefore costs dictionary lookups, not database queries, and a
deletion, deactivation, role change or revocation takes effect on the very next request.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from accounts import repository as repo
from accounts.repository import User
from core.clock import utcnow
from core.db import Database, Tx, get_database

# How stale a key's stored last-used time may get before a background write refreshes it.
LAST_USED_RESOLUTION = timedelta(seconds=60)


class Anonymous:
    """request.user when no credentials were sent."""

    id = None
    email = ""
    role = ""
    is_authenticated = False
    is_active = False
    is_admin = False


class Directory:
    """Users, live refresh-token families and API-key hashes, mirrored from the database."""

    def __init__(self) -> None:
        self._users: dict[UUID, User] = {}
        self._live_families: set[str] = set()
        self._keys: dict[str, tuple[UUID, UUID]] = {}  # key hash -> (key id, user id)
        self._key_used: dict[UUID, datetime] = {}  # in-memory last use, ahead of the table
        self._key_stamped: dict[UUID, datetime] = {}  # what the table holds

    def load(self, tx: Tx) -> None:
        """Fill from the database, run as a write so that no other write of this process
        publishes between these reads and the install (on PostgreSQL the publication lock
        gives what the single DuckDB writer gives)."""
        tx.serialize_publication()
        users = repo.all_users(tx)
        families = repo.live_families(tx, utcnow())
        keys = repo.all_api_key_hashes(tx)

        def install() -> None:
            self._users = {user.id: user for user in users}
            self._live_families = set(families)
            self._keys = {key_hash: (key_id, user_id) for key_hash, key_id, user_id in keys}

        tx.on_commit(install)

    # -- lookups (any thread, lock-free: single dict/set operations are atomic) ----------

    def user(self, user_id: UUID) -> User | None:
        return self._users.get(user_id)

    def family_is_live(self, family: str) -> bool:
        return family in self._live_families

    def api_key(self, key_hash: str) -> tuple[UUID, UUID] | None:
        return self._keys.get(key_hash)

    def key_last_used(self, key_id: UUID) -> datetime | None:
        return self._key_used.get(key_id)

    # -- updates (called from after-commit callbacks on the writer thread) --------------

    def put_user(self, user: User) -> None:
        self._users[user.id] = user

    def drop_user(self, user_id: UUID, key_hashes: list[str], families: list[str]) -> None:
        self._users.pop(user_id, None)
        for key_hash in key_hashes:
            self._keys.pop(key_hash, None)
        self._live_families.difference_update(families)

    def family_started(self, family: str) -> None:
        self._live_families.add(family)

    def families_ended(self, families: list[str]) -> None:
        self._live_families.difference_update(families)

    def put_key(self, key_hash: str, key_id: UUID, user_id: UUID) -> None:
        self._keys[key_hash] = (key_id, user_id)

    def drop_key(self, key_hash: str, key_id: UUID) -> None:
        self._keys.pop(key_hash, None)
        self._key_used.pop(key_id, None)
        self._key_stamped.pop(key_id, None)

    # -- API key last use: remembered per request, written to the table at most once a minute

    def note_key_used(self, key_id: UUID, now: datetime) -> bool:
        """Remember a use; True when the stored stamp is stale enough to write."""
        self._key_used[key_id] = now
        stamped = self._key_stamped.get(key_id)
        if stamped is not None and now - stamped < LAST_USED_RESOLUTION:
            return False
        self._key_stamped[key_id] = now
        return True

    def flush_key_use(self, tx: Tx) -> None:
        """Write the last-use times the table has not caught up with (on shutdown)."""
        pending = {
            key_id: used
            for key_id, used in list(self._key_used.items())
            if used != self._key_stamped.get(key_id)
        }
        if pending:
            repo.stamp_api_keys_used(tx, pending)


def _load_directory(db: Database) -> Directory:
    directory = Directory()
    db.write(directory.load)
    db.add_close_hook(directory.flush_key_use)
    return directory


def get_directory() -> Directory:
    """The directory of the process's database, loaded through the writer on first use."""
    return get_database().extension("accounts.directory", _load_directory)
