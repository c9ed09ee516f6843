"""`manage.py copy_database --to postgresql://…`: move a DuckDB installation to PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.db import DatabaseError, DatabaseLocked


class Command(BaseCommand):
    help = (
        "Copy every table of the DuckDB database (DUCKDB_PATH, or --from) into an empty "
        "PostgreSQL database, checking the row counts of every table. Stop the server first. "
        "A target that holds any row is refused and left unchanged. Afterwards set "
        "DATABASE_URL to the target and start the server; copy MEDIA_ROOT alongside."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--to", required=True, help="The PostgreSQL URL to copy into.")
        parser.add_argument(
            "--from", dest="source", default=None, help="The DuckDB file (default DUCKDB_PATH)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from core.db.copy import copy_duckdb_to_postgres

        target = options["to"]
        if not target.startswith(("postgresql://", "postgres://")):
            raise CommandError("--to must be a PostgreSQL URL (postgresql://user@host/database).")
        source = Path(options["source"] or settings.DUCKDB_PATH).expanduser()
        try:
            copied = copy_duckdb_to_postgres(source, target)
        except DatabaseLocked:
            raise CommandError(
                f"The database {source} is in use by another process (normally the running "
                "aigateway server): stop the server, then copy."
            ) from None
        except DatabaseError as exc:
            raise CommandError(str(exc)) from None
        for table in copied.tables:
            self.stdout.write(f"  {table.name}: {table.rows:,} rows")
        self.stdout.write(
            self.style.SUCCESS(
                f"Copied {len(copied.tables)} tables ({copied.rows:,} rows, every count checked) "
                f"from {copied.source} to {copied.target} at schema version "
                f"{copied.schema_version} in {copied.seconds:.1f} s. Set DATABASE_URL to it and "
                "start the server; copy MEDIA_ROOT alongside."
            )
        )
