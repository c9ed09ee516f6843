"""`manage.py createadmin --email E [--password P]`: create an admin or promote a user."""

from __future__ import annotations

import asyncio
import getpass
import os
import sys
from typing import Any

from django.core.management.base import CommandError, CommandParser

from accounts.services import create_or_promote_admin
from core.errors import ApiError
from core.management.base import DatabaseCommand


class Command(DatabaseCommand):
    help = (
        "Create an admin account, or promote an existing user to admin. The password comes "
        "from --password, the ADMIN_PASSWORD environment variable, or a prompt."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", required=True)
        parser.add_argument("--password", default=None)

    def handle_db(self, *args: Any, **options: Any) -> None:
        password = options["password"] or os.environ.get("ADMIN_PASSWORD") or None
        if password is None and sys.stdin.isatty():
            password = getpass.getpass("Password (leave empty to keep an existing user's): ")
            if password and password != getpass.getpass("Password again: "):
                raise CommandError("The passwords do not match.")
        try:
            user, created = asyncio.run(create_or_promote_admin(options["email"], password or None))
        except ApiError as exc:
            detail = "; ".join(f"{field}: {text}" for field, text in exc.fields.items())
            raise CommandError(f"{exc.message} {detail}".strip()) from None
        verb = "Created admin" if created else "Promoted to admin"
        self.stdout.write(self.style.SUCCESS(f"{verb}: {user.email} ({user.id})"))
