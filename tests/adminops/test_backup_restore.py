"""`manage.py backup` and `manage.py restore`: a consistent copy, and putting it back."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import duckdb
import pytest
from django.core.management import CommandError, call_command

from accounts import repository as accounts_repo
from core.audit import record_audit
from core.db import DuckDBDatabase as Database
from tests.conftest import PASSWORD

REPO = Path(__file__).parents[2]


def _manage(*args: str, db_path: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DUCKDB_PATH": db_path, "SECRET_KEY": "x" * 50}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.duckdb_only
def test_a_backup_restored_into_a_new_path_has_all_the_data(alice, admin, tmp_path, capsys):
    key = alice.client.call("POST", "/api/auth/keys", {"name": "laptop"}).json()
    backup = tmp_path / "backups" / "copy.duckdb"
    call_command("backup", str(backup))  # closes the process's database when done
    assert "Backed up to" in capsys.readouterr().out
    restored_path = tmp_path / "restored" / "aigateway.duckdb"
    call_command("restore", str(backup), "--to", str(restored_path))
    assert "Restored" in capsys.readouterr().out

    restored = Database(restored_path).open()
    try:
        con = restored._reader()
        emails = {row[0] for row in con.execute("SELECT email FROM users").fetchall()}
        assert emails == {alice.email, admin.email}
        keys = con.execute("SELECT name, prefix FROM api_keys").fetchall()
        assert keys == [("laptop", key["prefix"])]
        # Sequences come back at their values: new audit rows do not collide with old ones.
        before = con.execute("SELECT max(id) FROM audit_log").fetchone()[0]
        restored.write(record_audit, action="test.after_restore", actor=None)
        after = con.execute("SELECT max(id) FROM audit_log").fetchone()[0]
        assert after == before + 1
        versions = con.execute("SELECT version FROM schema_migrations").fetchall()
        assert versions and all(version for (version,) in versions)
    finally:
        restored.close()


@pytest.mark.duckdb_only
def test_a_restored_database_serves_logins(alice, tmp_path, settings):
    from accounts.identity import get_directory
    from core.db import use_database
    from tests.accounts.test_auth_api import login
    from tests.conftest import ApiClient

    backup = tmp_path / "copy.duckdb"
    call_command("backup", str(backup))
    target = tmp_path / "live.duckdb"
    call_command("restore", str(backup), "--to", str(target))
    settings.DUCKDB_PATH = str(target)
    db = Database(target).open()
    use_database(db)
    try:
        get_directory()
        assert login(ApiClient(), alice.email, PASSWORD).status_code == 200
    finally:
        db.close()


@pytest.mark.duckdb_only
def test_backup_into_a_folder_makes_a_time_stamped_file(alice, tmp_path):
    folder = tmp_path / "backups"
    folder.mkdir()
    call_command("backup", str(folder))
    [made] = folder.iterdir()
    assert made.name.startswith("aigateway-") and made.suffix == ".duckdb"


@pytest.mark.duckdb_only
def test_backup_refuses_to_overwrite_a_file(alice, tmp_path):
    existing = tmp_path / "copy.duckdb"
    existing.write_bytes(b"precious")
    with pytest.raises(CommandError, match="already exists"):
        call_command("backup", str(existing))
    assert existing.read_bytes() == b"precious"


@pytest.mark.duckdb_only
def test_backup_says_in_one_sentence_when_the_server_holds_the_database(database, tmp_path):
    result = _manage("backup", str(tmp_path / "copy.duckdb"), db_path=database.path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "in use by another process" in result.stderr
    assert "/api/admin" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "copy.duckdb").exists()


@pytest.mark.duckdb_only
def test_restore_refuses_while_the_server_holds_the_database(database, tmp_path):
    backup = tmp_path / "other.duckdb"
    other = Database(backup).open()
    other.close()
    result = _manage("restore", str(backup), db_path=database.path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "in use by another process" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.duckdb_only
def test_restore_keeps_the_file_it_replaces(alice, tmp_path):
    backup = tmp_path / "copy.duckdb"
    call_command("backup", str(backup))
    target = tmp_path / "target.duckdb"
    con = duckdb.connect(str(target))
    con.execute("CREATE TABLE marker (x INTEGER)")
    con.close()
    journal = tmp_path / "target.duckdb.journal"
    journal.write_text('["generation.ledger:PENDING",["a line of the replaced file"]]\n')
    call_command("restore", str(backup), "--to", str(target))
    [kept] = (p for p in tmp_path.glob("target.duckdb.replaced-*") if p.suffix != ".journal")
    assert not journal.exists()  # never replayed onto the restored file
    assert "replaced file" in kept.with_name(kept.name + ".journal").read_text()
    check = duckdb.connect(str(kept), read_only=True)
    assert check.execute("SELECT count(*) FROM marker").fetchone() == (0,)
    check.close()
    restored = duckdb.connect(str(target), read_only=True)
    assert restored.execute("SELECT count(*) FROM users").fetchone() == (1,)
    restored.close()


@pytest.mark.parametrize("content", [b"", b"not a database at all" * 100])
def test_restore_refuses_a_file_that_is_not_a_backup(tmp_path, content):
    bogus = tmp_path / "bogus.duckdb"
    bogus.write_bytes(content)
    target = tmp_path / "target.duckdb"
    with pytest.raises(CommandError, match="not"):
        call_command("restore", str(bogus), "--to", str(target))
    assert not target.exists()


@pytest.mark.duckdb_only
def test_restore_refuses_a_duckdb_file_of_another_application(tmp_path):
    foreign = tmp_path / "foreign.duckdb"
    duckdb.connect(str(foreign)).close()
    with pytest.raises(CommandError, match="not an aigateway database"):
        call_command("restore", str(foreign), "--to", str(tmp_path / "target.duckdb"))


@pytest.mark.duckdb_only
def test_a_backup_holds_no_write_made_after_it(alice, admin, tmp_path, database):
    backup = tmp_path / "copy.duckdb"
    from core.db.backup import backup_database

    backup_database(database, backup)
    database.write(accounts_repo.update_user, uuid.UUID(alice.id), role="admin")
    copy = duckdb.connect(str(backup), read_only=True)
    assert copy.execute(
        "SELECT role FROM users WHERE id = ?", [uuid.UUID(alice.id)]
    ).fetchone() == ("user",)
    copy.close()


@pytest.mark.postgresql_only
@pytest.mark.parametrize("command", ["backup", "restore"])
def test_on_postgresql_backup_and_restore_point_at_pg_dump(command, tmp_path):
    with pytest.raises(CommandError, match="pg_dump") as refused:
        call_command(command, str(tmp_path / "copy.duckdb"))
    assert "pg_restore" in str(refused.value)
    assert not (tmp_path / "copy.duckdb").exists()
