"""`manage.py createadmin --email E [--password P]`: create an admin or promote a user."""

from __future__ import annotations

import asyncio
import getpass
import os
import sys
from typing import Any

from django.core.management.base import CommandError, CommandParser

from accounts.repository import User
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
        try:
            if password is None and sys.stdin.isatty():
                user, created = self._ask_until_accepted(options["email"])
            else:
                user, created = self._create(options["email"], password)
        except (KeyboardInterrupt, EOFError):
            # Ctrl-C or Ctrl-D at a prompt: a clean stop, not a traceback.
            self.stderr.write("")
            raise CommandError("Cancelled: nothing was changed.", returncode=130) from None
        except ApiError as exc:
            raise CommandError(_sentence(exc)) from None
        verb = "Created admin" if created else "Promoted to admin"
        self.stdout.write(self.style.SUCCESS(f"{verb}: {user.email} ({user.id})"))

    def _create(self, email: str, password: str | None) -> tuple[User, bool]:
        return asyncio.run(create_or_promote_admin(email, password or None))

    def _ask_until_accepted(self, email: str) -> tuple[User, bool]:
        """Prompt for the password, and ask again after a mismatch or a weak password."""
        while True:
            password = getpass.getpass("Password (leave empty to keep an existing user's): ")
            if password and password != getpass.getpass("Password again: "):
                self.stderr.write("The passwords do not match. Try again.")
                continue
            try:
                return self._create(email, password or None)
            except ApiError as exc:
                if "password" not in exc.fields:
                    raise
                self.stderr.write(f"{exc.fields['password']} Try another.")


def _sentence(exc: ApiError) -> str:
    detail = "; ".join(f"{field}: {text}" for field, text in exc.fields.items())
    return f"{exc.message} {detail}".strip()
