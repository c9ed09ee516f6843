"""`manage.py restore BACKUP`: put a backup in place of DUCKDB_PATH while the server is stopped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.db import DatabaseError
from core.db.backup import USE_PG_DUMP, restore_database


class Command(BaseCommand):
    help = (
        "Replace the database (DUCKDB_PATH, or --to) with a backup made by `manage.py backup` "
        "or POST /api/admin/backup. The server must be stopped. The replaced file is kept "
        "beside it as NAME.replaced-TIMESTAMP. DuckDB files only: PostgreSQL is restored "
        "with pg_restore."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("backup", help="The backup file to restore.")
        parser.add_argument("--to", default=None, help="Restore here instead of DUCKDB_PATH.")

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.DATABASE_URL and not options["to"]:
            raise CommandError(USE_PG_DUMP)
        target = Path(options["to"] or settings.DUCKDB_PATH).expanduser()
        try:
            restored = restore_database(Path(options["backup"]).expanduser(), target)
        except DatabaseError as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(f"The backup could not be restored: {exc}") from None
        kept = f" The previous file is kept as {restored.replaced}." if restored.replaced else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"Restored {restored.path} (schema version {restored.schema_version}).{kept} "
                "Start the server; it applies any newer migrations."
            )
        )
