"""`manage.py createadmin`: creates or promotes an admin, scriptable, clear failures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from tests.accounts.test_auth_api import login
from tests.conftest import PASSWORD, ApiClient

REPO = Path(__file__).parents[2]


def test_it_creates_an_admin(capsys, database, settings):
    call_command("createadmin", "--email", "Boss@Example.com", "--password", PASSWORD)
    assert "Created admin: Boss@example.com" in capsys.readouterr().out
    reopened = _reopen(settings)
    tokens = login(ApiClient(), "boss@example.com").json()
    assert ApiClient(tokens["access_token"]).call("GET", "/api/users").status_code == 200
    reopened.close()


def test_it_promotes_an_existing_user(alice, capsys, settings):
    call_command("createadmin", "--email", alice.email)
    assert "Promoted to admin" in capsys.readouterr().out
    reopened = _reopen(settings)
    assert alice.client.call("GET", "/api/users").status_code == 200
    reopened.close()


def test_it_takes_the_password_from_the_environment(monkeypatch, settings):
    monkeypatch.setenv("ADMIN_PASSWORD", PASSWORD)
    call_command("createadmin", "--email", "env@example.com")
    reopened = _reopen(settings)
    assert login(ApiClient(), "env@example.com").status_code == 200
    reopened.close()


def test_it_refuses_a_weak_password(settings):
    with pytest.raises(CommandError, match="password"):
        call_command("createadmin", "--email", "weak@example.com", "--password", "123")
    _reopen(settings).close()


def test_it_says_in_one_sentence_when_the_server_holds_the_database(database):
    env = {**os.environ, "DUCKDB_PATH": database.path, "SECRET_KEY": "x" * 50}
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "createadmin",
            "--email",
            "a@example.com",
            "--password",
            PASSWORD,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "in use by another process" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _reopen(settings):
    """The command closes the process's database when it finishes; open it again."""
    from accounts.identity import get_directory
    from core.db import Database, use_database

    db = Database(settings.DUCKDB_PATH).open()
    use_database(db)
    get_directory()
    return db


def _prompting(monkeypatch, answers):
    """A terminal whose getpass prompts receive `answers` in turn (an exception is raised)."""
    import getpass

    replies = iter(answers)

    def fake_getpass(prompt=""):
        reply = next(replies)
        if isinstance(reply, BaseException):
            raise reply
        return reply

    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    monkeypatch.delenv("ADMIN_PASSWORD", raising=False)


def test_it_asks_again_after_a_weak_password(monkeypatch, capsys, settings):
    _prompting(monkeypatch, ["123", "123", "different one!", "not the same", PASSWORD, PASSWORD])
    call_command("createadmin", "--email", "retry@example.com")
    out, err = capsys.readouterr()
    assert "Try another." in err and "do not match" in err
    assert "Created admin: retry@example.com" in out
    _reopen(settings).close()


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt(), EOFError()])
def test_ctrl_c_or_ctrl_d_at_the_prompt_cancels_cleanly(monkeypatch, settings, interrupt):
    _prompting(monkeypatch, [interrupt])
    with pytest.raises(CommandError, match="Cancelled: nothing was changed") as raised:
        call_command("createadmin", "--email", "quit@example.com")
    assert raised.value.returncode == 130
    _reopen(settings).close()
    assert login(ApiClient(), "quit@example.com").status_code == 401
