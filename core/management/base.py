"""Base for management commands that open the database."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from core.db import DatabaseError, DatabaseLocked, close_database, get_database


class DatabaseCommand(BaseCommand):
    """Opens the database around handle_db(); a lock held by the server becomes one sentence."""

    def handle(self, *args: Any, **options: Any) -> str | None:
        try:
            get_database()
        except DatabaseLocked as exc:
            raise CommandError(str(exc)) from None
        except DatabaseError as exc:
            raise CommandError(f"The database could not be opened: {exc}") from None
        try:
            return self.handle_db(*args, **options)
        finally:
            close_database()

    def handle_db(self, *args: Any, **options: Any) -> str | None:
        raise NotImplementedError
