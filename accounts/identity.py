"""Who is calling: an exact in-process directory of users, live token families and API keys.

Within a process every write publishes its after-commit callbacks in commit order
(DuckDB's one writer; on PostgreSQL the publication lock, decision 36), so a directory
loaded as a write and updated by those callbacks is exactly the database's state. Those
callbacks also announce each change to the other worker processes (core/invalidation.py,
decision 45), which re-read the changed user, family or key, in commit order too, before
they serve their next request. Authenticating a request therefore costs dictionary
lookups, not database queries, and a deletion, deactivation, role change or revocation
takes effect on the very next request, on every worker.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from accounts import repository as repo
from accounts.repository import User
from core import invalidation
from core.clock import utcnow
from core.db import Database, Tx, get_database

# What other processes are told about (core/invalidation.py); the key is the user id, the
# family, or the key hash.
USERS, FAMILIES, KEYS = "accounts.user", "accounts.family", "accounts.key"

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

    def __init__(self, db: Database) -> None:
        self._db = db
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
        invalidation.publish(USERS, str(user.id), here=False)

    def drop_user(self, user_id: UUID, key_hashes: list[str], families: list[str]) -> None:
        self._users.pop(user_id, None)
        for key_hash in key_hashes:
            self._keys.pop(key_hash, None)
        self._live_families.difference_update(families)
        # Others drop the user's keys with the user; its families then name nobody.
        invalidation.publish(USERS, str(user_id), here=False)

    def family_started(self, family: str) -> None:
        self._live_families.add(family)
        invalidation.publish(FAMILIES, family, here=False)

    def families_ended(self, families: list[str]) -> None:
        self._live_families.difference_update(families)
        for family in families:
            invalidation.publish(FAMILIES, family, here=False)

    def put_key(self, key_hash: str, key_id: UUID, user_id: UUID) -> None:
        self._keys[key_hash] = (key_id, user_id)
        invalidation.publish(KEYS, key_hash, here=False)

    def drop_key(self, key_hash: str, key_id: UUID) -> None:
        self._forget_key(key_hash, key_id)
        invalidation.publish(KEYS, key_hash, here=False)

    def _forget_key(self, key_hash: str, key_id: UUID) -> None:
        self._keys.pop(key_hash, None)
        self._key_used.pop(key_id, None)
        self._key_stamped.pop(key_id, None)

    # -- another process's commits (core/invalidation.py; on a worker thread) -----------
    # Each re-reads the row as a write that holds the publication lock, so that its result
    # is installed in commit order with this process's own changes.

    def subscribe(self) -> None:
        invalidation.subscribe(USERS, on_change=self._user_changed, on_reset=self.reload)
        invalidation.subscribe(FAMILIES, on_change=self._family_changed, on_reset=self.reload)
        invalidation.subscribe(KEYS, on_change=self._key_changed, on_reset=self.reload)

    def reload(self) -> None:
        self._db.write(self.load)

    def _user_changed(self, key: str) -> None:
        user_id = UUID(key)

        def reread(tx: Tx) -> None:
            tx.serialize_publication()
            user = repo.get_user(tx, user_id)

            def install() -> None:
                if user is not None:
                    self._users[user_id] = user
                    return
                self._users.pop(user_id, None)
                for key_hash, (key_id, owner) in list(self._keys.items()):
                    if owner == user_id:
                        self._forget_key(key_hash, key_id)

            tx.on_commit(install)

        self._db.write(reread)

    def _family_changed(self, family: str) -> None:
        def reread(tx: Tx) -> None:
            tx.serialize_publication()
            live = repo.family_is_live(tx, family, utcnow())
            tx.on_commit(
                lambda: (self._live_families.add if live else self._live_families.discard)(family)
            )

        self._db.write(reread)

    def _key_changed(self, key_hash: str) -> None:
        def reread(tx: Tx) -> None:
            tx.serialize_publication()
            found = repo.api_key_by_hash(tx, key_hash)

            def install() -> None:
                if found is not None:
                    self._keys[key_hash] = found
                elif (known := self._keys.get(key_hash)) is not None:
                    self._forget_key(key_hash, known[0])

            tx.on_commit(install)

        self._db.write(reread)

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
    directory = Directory(db)
    db.write(directory.load)
    db.add_close_hook(directory.flush_key_use)
    directory.subscribe()
    return directory


def get_directory() -> Directory:
    """The directory of the process's database, loaded through the writer on first use."""
    return get_database().extension("accounts.directory", _load_directory)
