"""`manage.py backup PATH`: a consistent copy of the database, made while the server is stopped."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from core.db import DatabaseLocked, get_database
from core.db.backup import USE_PG_DUMP, BackupError, backup_database
from core.management.base import DatabaseCommand


class Command(DatabaseCommand):
    help = (
        "Write a consistent copy of the database to PATH (a new file, or a folder to put a "
        "time-stamped file in). The server must be stopped; while it runs, use "
        "POST /api/admin/backup instead. DuckDB only: PostgreSQL is backed up with pg_dump."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="The new backup file, or an existing folder.")

    def handle(self, *args: Any, **options: Any) -> str | None:
        if settings.DATABASE_URL:
            raise CommandError(USE_PG_DUMP)
        try:
            get_database()
        except DatabaseLocked:
            raise CommandError(
                "The database is in use by another process (normally the running aigateway "
                "server): back it up through the server with POST /api/admin/backup, or stop "
                "the server first."
            ) from None
        return super().handle(*args, **options)

    def handle_db(self, *args: Any, **options: Any) -> None:
        destination = Path(options["path"]).expanduser()
        if destination.is_dir():
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            destination = destination / f"aigateway-{stamp}.duckdb"
        try:
            made = backup_database(get_database(), destination)
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(f"The backup could not be written: {exc}") from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Backed up to {made.path} ({made.size_bytes:,} bytes, schema version "
                f"{made.schema_version}, {made.duration_ms:.0f} ms)."
            )
        )
