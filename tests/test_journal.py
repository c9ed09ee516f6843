"""The journal (core/db/journal.py, decision 52): an acknowledged settle is on disk before
the database commits it, a crash in between is replayed at the next open — once — and
reads wait for what was acknowledged."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from core.clock import utcnow
from core.db import DuckDBDatabase
from core.db import database as backend
from core.db.journal import Journal, encode_line, read_lines, replay_lines
from generation import ledger
from generation import repository as repo
from generation.repository import Generation, UsageRecord

pytestmark = pytest.mark.duckdb_only  # the journal is the DuckDB backend's (PostgreSQL commits)

MODEL = "openai/gpt-4o-mini"


def settled_call(user_id: uuid.UUID, status: str = "completed") -> tuple[Generation, UsageRecord]:
    now = utcnow()
    final = Generation(
        id=uuid.uuid4(), user_id=user_id, kind="text", model=MODEL, prompt="hello",
        params={"temperature": 0.2}, status=status, output_text="hi there", media=(),
        error_code=None, error_message=None, tokens_in=3, tokens_out=5, cost=0.00042,
        created_at=now, finished_at=now, reserved_cost=0.01,
    )  # fmt: skip
    usage = UsageRecord(
        occurred_at=now.replace(tzinfo=None), user_id=user_id, kind="text", model=MODEL,
        tokens_in=3, tokens_out=5, cost=0.00042, latency_ms=12.5, status="ok",
        generation_id=final.id,
    )  # fmt: skip
    return final, usage


@pytest.fixture
def stalled(database: Any) -> Iterator[threading.Event]:
    """The writer thread busy with a long write: nothing queued after it commits until the
    event is set (set at the end of the test in any case)."""
    gate = threading.Event()
    database.write_soon(lambda tx: gate.wait(30))
    yield gate
    gate.set()


def acknowledge(database: Any, write: Any, item: Any) -> None:
    """Journal the write and wait until it is durable (its line synced)."""

    async def durable() -> None:
        await database.journal(write, item).durable()

    asyncio.run(durable())


def keep(database: Any, final: Generation, usage: UsageRecord) -> None:
    """Journal the call's settle and return once it is kept (written, not yet synced)."""

    async def kept() -> None:
        await database.journal(ledger.SETTLE, ledger.Settle(final, usage, 0.0, None, False)).kept()

    asyncio.run(kept())


def crash_image(database: Any, folder: Path) -> Path:
    """The files as a kill -9 at this instant would leave them (the page cache is the file)."""
    folder.mkdir()
    source = Path(database.path)
    for suffix in ("", ".wal", ".journal"):
        if Path(f"{source}{suffix}").exists():
            shutil.copy(f"{source}{suffix}", folder / f"{source.name}{suffix}")
    return folder / source.name


def stored(db: DuckDBDatabase, generation_id: uuid.UUID) -> tuple[Any, list[Any]]:
    row = db.read(
        lambda con: con.execute(
            "SELECT status, cost, output_text FROM generations WHERE id = ?", [generation_id]
        ).fetchone()
    )
    usage = db.read(
        lambda con: con.execute(
            "SELECT kind, status, cost FROM usage_records WHERE generation_id = ?", [generation_id]
        ).fetchall()
    )
    return row, usage


def booked_at_restart(image: Path) -> tuple[int, list[tuple[Any, ...]]]:
    """Open a crash image as the next start would: the calls it books as interrupted, and
    each call's status with its usage row's status and cost."""
    reopened = DuckDBDatabase(image).open()
    try:
        interrupted = reopened.write(repo.book_interrupted_calls, utcnow())
        calls = reopened.read(
            lambda con: con.execute(
                "SELECT g.status, u.status, u.cost FROM generations g"
                " JOIN usage_records u ON u.generation_id = g.id"
            ).fetchall()
        )
        return interrupted, calls
    finally:
        reopened.close()


def test_an_acknowledged_settle_survives_a_crash_before_its_commit(
    alice, database, stalled, tmp_path
):
    final, usage = settled_call(uuid.UUID(alice.id))
    acknowledge(database, ledger.SETTLE, ledger.Settle(final, usage, 0.0, None, False))
    image = crash_image(database, tmp_path / "crash")
    assert "hi there" in Path(f"{image}.journal").read_text()

    reopened = DuckDBDatabase(image).open()
    try:
        assert stored(reopened, final.id) == (
            ("completed", 0.00042, "hi there"),
            [("text", "ok", 0.00042)],
        )
        assert Path(f"{image}.journal").stat().st_size == 0  # replayed, then emptied
    finally:
        reopened.close()


def test_a_replayed_settle_of_a_pending_row_is_not_booked_as_interrupted(alice, database, tmp_path):
    final, usage = settled_call(uuid.UUID(alice.id))
    database.write(repo.insert_generations, [replace(final, status="pending", finished_at=None)])
    gate = threading.Event()
    database.write_soon(lambda tx: gate.wait(30))
    try:
        acknowledge(database, ledger.SETTLE, ledger.Settle(final, usage, 0.0, None, True))
        image = crash_image(database, tmp_path / "crash")
    finally:
        gate.set()

    reopened = DuckDBDatabase(image).open()
    try:
        assert reopened.write(repo.book_interrupted_calls, utcnow()) == 0
        assert stored(reopened, final.id)[0] == ("completed", 0.00042, "hi there")
    finally:
        reopened.close()


def test_replaying_a_line_twice_books_the_call_once(alice, database):
    final, usage = settled_call(uuid.UUID(alice.id))
    line = encode_line(ledger.INSERT_SETTLED.key, repo.settled_line(final, usage))
    journal = Path(f"{database.path}.journal")
    database.close()
    journal.write_bytes(line + line)  # committed, then the same line again (crash before empty)
    lines = read_lines(str(journal))

    reopened = DuckDBDatabase(database.path).open()  # replays both lines
    try:
        reopened.write(replay_lines, lines)  # and a third time
        assert stored(reopened, final.id)[1] == [("text", "ok", 0.00042)]
    finally:
        reopened.close()


def test_a_deleted_users_replayed_call_keeps_its_cost_but_not_its_history(database):
    final, usage = settled_call(uuid.uuid4())  # nobody has this id (any more)
    journal = Path(f"{database.path}.journal")
    database.close()
    journal.write_bytes(encode_line(ledger.INSERT_SETTLED.key, repo.settled_line(final, usage)))

    reopened = DuckDBDatabase(database.path).open()
    try:
        assert stored(reopened, final.id) == (None, [("text", "ok", 0.00042)])
    finally:
        reopened.close()


def test_a_torn_last_line_is_skipped_and_the_rest_replayed(alice, database, caplog):
    final, usage = settled_call(uuid.UUID(alice.id))
    line = encode_line(ledger.INSERT_SETTLED.key, repo.settled_line(final, usage))
    journal = Path(f"{database.path}.journal")
    database.close()
    journal.write_bytes(line + line[: len(line) // 2])  # a power loss cut the second write

    reopened = DuckDBDatabase(database.path).open()
    try:
        assert stored(reopened, final.id)[0] == ("completed", 0.00042, "hi there")
        assert "line 2 is incomplete" in caplog.text
    finally:
        reopened.close()


def test_a_line_this_version_cannot_replay_is_kept_and_the_database_opens(database, caplog):
    journal = Path(f"{database.path}.journal")
    database.close()
    journal.write_bytes(encode_line("generation.ledger:NO_SUCH_WRITE", [1, 2]))

    reopened = DuckDBDatabase(database.path).open()
    try:
        assert "could not be replayed and is kept" in caplog.text
        assert "NO_SUCH_WRITE" in journal.read_text()
    finally:
        reopened.close()
    assert "NO_SUCH_WRITE" in journal.read_text()  # still there for a version that knows it


def test_reads_wait_for_what_was_acknowledged(alice, database, stalled):
    final, usage = settled_call(uuid.UUID(alice.id))
    acknowledge(database, ledger.SETTLE, ledger.Settle(final, usage, 0.0, None, False))
    seen: list[Any] = []
    reader = threading.Thread(target=lambda: seen.append(stored(database, final.id)))
    reader.start()
    reader.join(0.3)
    assert reader.is_alive()  # waiting for the writer, not reading a past without the row
    stalled.set()
    reader.join(10)
    assert seen == [(("completed", 0.00042, "hi there"), [("text", "ok", 0.00042)])]
    assert Path(f"{database.path}.journal").stat().st_size == 0  # caught up: emptied


def test_the_journal_syncs_lines_written_together_once(tmp_path, monkeypatch):
    import os

    syncs: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (syncs.append(fd), real(fd))[1])
    journal = Journal(str(tmp_path / "j"))
    synced: list[Any] = []
    try:
        with journal._cond:  # the sync thread cannot look until both lines are in
            marks = [journal.write(b'["k",1]\n'), journal.write(b'["k",2]\n')]
            assert [journal.on_disk(mark, synced.append) for mark in marks] == [False, False]
        journal.close()  # syncs what was written first
        assert synced == [None, None]
        assert len(syncs) == 1
        assert read_lines(str(tmp_path / "j")) == [("k", 1), ("k", 2)]
    finally:
        if journal._thread.is_alive():
            journal.close()


def test_a_line_is_in_the_file_once_written_and_on_disk_once_synced(tmp_path, monkeypatch):
    """Decision 56: a written line survives the process (the page cache is the file); the
    journal's thread syncs it, and a caller asks to hear when."""
    import os

    gate = threading.Event()
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (gate.wait(10), real(fd))[1])
    journal = Journal(str(tmp_path / "j"))
    heard = threading.Event()
    try:
        mark = journal.write(b'["k",1]\n')
        assert read_lines(str(tmp_path / "j")) == [("k", 1)]
        assert not journal.on_disk(mark, lambda error: heard.set())
        assert not heard.wait(0.2)  # the sync is stuck
        gate.set()
        assert heard.wait(10)
        assert journal.on_disk(mark, lambda error: None)  # on disk now: nothing to wait for
    finally:
        gate.set()
        journal.close()


def test_a_stream_whose_id_was_sent_is_booked_after_a_crash_even_if_never_committed(
    alice, database, stalled, tmp_path
):
    final, _ = settled_call(uuid.UUID(alice.id))
    pending = replace(final, status="pending", finished_at=None, output_text=None, cost=None)
    acknowledge(database, ledger.PENDING, pending)  # what Call.durable() waits for
    image = crash_image(database, tmp_path / "crash")

    # at the reserved upper bound: never free
    assert booked_at_restart(image) == (1, [("interrupted", "error", 0.01)])


def test_journaled_writes_gather_into_one_commit_until_a_reader_hurries_them(
    alice, database, monkeypatch
):
    monkeypatch.setattr(backend, "JOURNAL_LINGER", 5.0)
    groups: list[int] = []
    real = backend.DuckDBDatabase._run_group
    monkeypatch.setattr(
        backend.DuckDBDatabase,
        "_run_group",
        lambda self, con, batch: (groups.append(len(batch)), real(self, con, batch))[1],
    )
    calls = [settled_call(uuid.UUID(alice.id)) for _ in range(3)]
    for final, usage in calls:
        acknowledge(database, ledger.SETTLE, ledger.Settle(final, usage, 0.0, None, False))
    started = time.monotonic()
    seen = [stored(database, final.id)[0] for final, _ in calls]  # hurries the writer
    assert time.monotonic() - started < 4  # not the 5 s linger
    assert seen == [("completed", 0.00042, "hi there")] * 3
    assert groups == [3]  # one transaction for the three answers


def test_a_reader_that_hurried_a_busy_writer_is_not_kept_waiting_for_the_linger(
    alice, database, stalled, monkeypatch
):
    """The hurry may be queued before the writer takes the write it is about: the writer
    finds both at once and commits without lingering."""
    monkeypatch.setattr(backend, "JOURNAL_LINGER", 5.0)
    final, usage = settled_call(uuid.UUID(alice.id))
    keep(database, final, usage)  # queued behind the stalled write
    seen: list[Any] = []
    reader = threading.Thread(target=lambda: seen.append(stored(database, final.id)[0]))
    reader.start()  # waits for the settle, and hurries the writer
    time.sleep(0.2)
    started = time.monotonic()
    stalled.set()
    reader.join(10)
    assert time.monotonic() - started < 3  # not the 5 s linger
    assert seen == [("completed", 0.00042, "hi there")]


def test_a_lingering_writer_is_woken_only_by_what_must_not_wait(alice, database, monkeypatch):
    monkeypatch.setattr(backend, "JOURNAL_LINGER", 5.0)
    writer = database._writer.native_id
    calls = [settled_call(uuid.UUID(alice.id)) for _ in range(31)]
    keep(database, *calls[0])  # the writer starts to linger for the next 5 s
    time.sleep(0.2)
    before = _sleeps(writer)
    for final, usage in calls[1:]:
        keep(database, final, usage)
    assert _sleeps(writer) - before < 5  # thirty journaled writes, and the writer slept on
    started = time.monotonic()
    database.write(lambda tx: None)  # a write that is not journaled ends the linger at once
    assert time.monotonic() - started < 4
    assert database.read(
        lambda con: con.execute(
            "SELECT count(*) FROM generations WHERE user_id = ?", [alice.id]
        ).fetchone()
    ) == (31,)


def test_a_sparse_trickle_lingers_until_it_has_company_and_a_burst_does_not(
    alice, database, monkeypatch
):
    """Decision 58: calls that arrive far apart share a commit instead of one each; calls
    that arrive together commit after the short linger, as before."""
    monkeypatch.setattr(backend, "JOURNAL_COMPANY", 4)
    monkeypatch.setattr(backend, "JOURNAL_LINGER_SPARSE", 3.0)
    sizes: list[int] = []
    real = backend._WriteQueue.linger

    def linger(queue: Any, batch: list[Any]) -> bool:
        stop = real(queue, batch)
        sizes.append(len(batch))
        return stop

    monkeypatch.setattr(backend._WriteQueue, "linger", linger)

    def settle_until(expected: list[int]) -> None:
        deadline = time.monotonic() + 2  # well short of the sparse linger's 3 s
        while sizes != expected and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sizes == expected

    for _ in range(4):  # together: company enough within the first 50 ms
        keep(database, *settled_call(uuid.UUID(alice.id)))
    settle_until([4])
    for _ in range(6):  # each 0.1 s after the last, twice the short linger
        keep(database, *settled_call(uuid.UUID(alice.id)))
        time.sleep(0.1)
    settle_until([4, 4])  # the fourth of the trickle ended its linger
    database.flush_writes()  # the last two wait for company until a write that cannot wait
    assert sizes == [4, 4, 3]  # ...which joins them
    assert database.read(
        lambda con: con.execute(
            "SELECT count(*) FROM generations WHERE user_id = ?", [alice.id]
        ).fetchone()
    ) == (10,)


def _sleeps(thread_id: int) -> int:
    """How often a thread of this process has gone to sleep (Linux)."""
    status = Path(f"/proc/self/task/{thread_id}/status").read_text()
    return int(status.split("voluntary_ctxt_switches:")[1].split()[0])


def test_after_a_failed_sync_no_line_counts_as_synced_until_it_commits(
    alice, database, stalled, monkeypatch, caplog
):
    syncs: list[int] = []
    real = os.fdatasync

    def failing_once(fd: int) -> None:
        syncs.append(fd)
        if len(syncs) == 1:
            raise OSError(errno.EIO, "Input/output error")
        real(fd)

    monkeypatch.setattr(os, "fdatasync", failing_once)
    monkeypatch.setattr(backend, "JOURNAL_LINGER", 5.0)
    calls = [settled_call(uuid.UUID(alice.id)) for _ in range(2)]

    async def run() -> None:
        settles = [ledger.Settle(final, usage, 0.0, None, False) for final, usage in calls]
        first = database.journal(ledger.SETTLE, settles[0], sync_now=True)
        for _ in range(100):  # the journal's thread tries to sync it and fails
            if syncs:
                break
            await asyncio.sleep(0.05)
        second = database.journal(ledger.SETTLE, settles[1])
        # The kernel may have dropped the first line, and a sync now could succeed without
        # it: neither line is on disk until the database commits it (the writer is stalled).
        waits = [
            asyncio.ensure_future(first.synced()),
            asyncio.ensure_future(first.synced(here=True)),
            asyncio.ensure_future(second.synced(here=True)),
            asyncio.ensure_future(second.synced()),
        ]
        await asyncio.sleep(0.3)
        assert [wait.done() for wait in waits] == [False] * 4
        stalled.set()
        # Waited for, the commit is hurried: not the 5 s linger.
        await asyncio.wait_for(asyncio.gather(*waits), 3)

    asyncio.run(run())
    assert len(syncs) == 1  # no sync tried after the failure
    assert [stored(database, final.id)[0] for final, _ in calls] == [
        ("completed", 0.00042, "hi there")
    ] * 2
    assert "The journal could not be synced (Input/output error)" in caplog.text


def test_an_answer_waits_for_its_commit_once_the_writer_owes_too_many(
    alice, database, stalled, monkeypatch
):
    monkeypatch.setattr(backend, "JOURNAL_BACKLOG", 2)
    calls = [settled_call(uuid.UUID(alice.id)) for _ in range(3)]
    for final, usage in calls[:2]:  # within the backlog: answered while the writer is stuck
        acknowledge(database, ledger.SETTLE, ledger.Settle(final, usage, 0.0, None, False))
    third = threading.Thread(
        target=acknowledge,
        args=(database, ledger.SETTLE, ledger.Settle(*calls[2], 0.0, None, False)),
    )
    third.start()
    third.join(0.3)
    assert third.is_alive()  # the third waits for the writer
    stalled.set()
    third.join(10)
    assert not third.is_alive()
    assert stored(database, calls[2][0].id)[0] == ("completed", 0.00042, "hi there")


def test_past_its_size_limit_the_journal_is_left_to_empty_and_writes_wait_for_their_commit(
    alice, database, stalled, monkeypatch
):
    """Decision 55: under steady load the writer may never owe nothing, so the journal would
    never be emptied; past JOURNAL_MAX_BYTES writes skip it until it has been."""
    first, first_usage = settled_call(uuid.UUID(alice.id))
    acknowledge(database, ledger.SETTLE, ledger.Settle(first, first_usage, 0.0, None, False))
    journal = Path(f"{database.path}.journal")
    size = journal.stat().st_size
    monkeypatch.setattr(backend, "JOURNAL_MAX_BYTES", size)

    second, second_usage = settled_call(uuid.UUID(alice.id))
    answered = threading.Event()

    def answer() -> None:
        acknowledge(database, ledger.SETTLE, ledger.Settle(second, second_usage, 0.0, None, False))
        answered.set()

    caller = threading.Thread(target=answer)
    caller.start()
    assert not answered.wait(0.3)  # no line to acknowledge it: it waits for its commit
    assert journal.stat().st_size == size
    stalled.set()
    assert answered.wait(10)
    caller.join()
    assert stored(database, second.id)[0] == ("completed", 0.00042, "hi there")
    assert read_lines(str(journal)) == []  # caught up: emptied, and journaling again
    third, third_usage = settled_call(uuid.UUID(alice.id))
    with_stall = threading.Event()
    database.write_soon(lambda tx: with_stall.wait(30))
    try:
        acknowledge(database, ledger.SETTLE, ledger.Settle(third, third_usage, 0.0, None, False))
        assert [key for key, _ in read_lines(str(journal))] == [ledger.SETTLE.key]
    finally:
        with_stall.set()


def test_reads_do_not_wait_for_a_write_nobody_has_heard_of(alice, database, stalled):
    """A call's pending row is journaled as it starts (decision 56); until someone is told of
    it (kept(), durable()), reads need not wait for the writer to commit it."""
    final, _ = settled_call(uuid.UUID(alice.id))
    pending = replace(final, status="pending", finished_at=None, output_text=None, cost=None)
    database.journal(ledger.PENDING, pending)
    done = threading.Event()
    reader = threading.Thread(target=lambda: (stored(database, final.id), done.set()))
    reader.start()
    assert done.wait(5)  # the writer is stuck: a read waiting for it would never end
    reader.join()


# -- the ledger on the journal (decision 56) ------------------------------------------------


@pytest.fixture
def ledger_stalled(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """The writer stopped at the ledger's first write until the event is set: a call's rows
    are then only in the journal."""
    gate = threading.Event()
    real = repo.insert_pending_generations
    monkeypatch.setattr(
        repo, "insert_pending_generations", lambda tx, rows: (gate.wait(30), real(tx, rows))[1]
    )
    yield gate
    gate.set()


class SyncGate:
    """The journal's thread held at a gate before each fdatasync after its first `free`;
    `threads` names the threads that synced."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, free: int) -> None:
        import os

        self.calls = 0
        self.free = free
        self.gate = threading.Event()
        self.threads: list[str] = []
        real = os.fdatasync

        def gated(fd: int) -> None:
            name = threading.current_thread().name
            if name == "journal-sync":
                self.calls += 1
                if self.calls > self.free:
                    self.gate.wait(30)
            real(fd)
            self.threads.append(name)

        monkeypatch.setattr(os, "fdatasync", gated)


@pytest.mark.anyio
async def test_a_process_killed_while_upstream_works_books_the_call_as_interrupted(
    alice, stub, database, ledger_stalled, tmp_path
):
    """Issue 8, item 1: once the request has gone upstream, a crash before the settle books
    the call as interrupted at its upper bound, never free and never lost, however quick
    the call (there used to be a 25 ms window with no row at all)."""
    from accounts.repository import get_user
    from generation.openrouter import get_openrouter_client
    from generation.services import generate_text

    stub.configure(latency=1.0)
    user = database.read(get_user, uuid.UUID(alice.id))
    call = asyncio.ensure_future(generate_text(user, MODEL, "hi"))
    try:
        await asyncio.sleep(0.4)  # the request has gone upstream, which takes a second
        assert not call.done()
        image = crash_image(database, tmp_path / "crash")  # the writer has committed nothing
        assert [key for key, _ in read_lines(f"{image}.journal")] == [ledger.PENDING.key]
    finally:
        ledger_stalled.set()
        await call
        await get_openrouter_client().aclose()

    interrupted, [(status, usage_status, cost)] = booked_at_restart(image)
    assert (interrupted, status, usage_status) == (1, "interrupted", "error")
    assert cost > 0  # at its upper bound: never free


@pytest.mark.anyio
@pytest.mark.parametrize("others", [0, 1])
async def test_an_answer_waits_for_its_pending_rows_sync(
    alice, stub, database, monkeypatch, others
):
    """Alone, a call whose pending row's line the journal's thread has not synced yet syncs
    it on the event loop (decision 54); with other calls in flight it waits to hear from
    that thread. Either way the answer comes once the line is on disk."""
    from accounts.repository import get_user
    from generation.openrouter import get_openrouter_client
    from generation.services import generate_text

    monkeypatch.setattr(ledger, "_running", others)
    syncs = SyncGate(monkeypatch, free=0)
    user = database.read(get_user, uuid.UUID(alice.id))
    call = asyncio.ensure_future(generate_text(user, MODEL, "hi"))
    try:
        await asyncio.wait({call}, timeout=0.5)
        # held until the pending row is on disk, or synced by the loop's own thread
        assert call.done() == (not others)
        assert syncs.threads == ([] if others else [threading.current_thread().name])
    finally:
        syncs.gate.set()
        answer = await asyncio.wait_for(call, 10)
        await get_openrouter_client().aclose()
    assert answer.generation_id


@pytest.mark.anyio
async def test_an_answer_does_not_wait_for_its_settles_sync_and_a_kill_keeps_it(
    alice, stub, database, ledger_stalled, monkeypatch, tmp_path
):
    """The settle's line is written before the answer and synced after it: a killed
    process keeps it (the page cache is the file); only a power loss could take it, and
    then the synced pending row books the call as interrupted."""
    from accounts.repository import get_user
    from generation.openrouter import get_openrouter_client
    from generation.services import generate_text

    stub.configure(latency=0.3)  # the pending row's sync ends before the upstream answers
    syncs = SyncGate(monkeypatch, free=1)
    user = database.read(get_user, uuid.UUID(alice.id))
    try:
        answer = await asyncio.wait_for(generate_text(user, MODEL, "hi"), 10)
        image = crash_image(database, tmp_path / "crash")  # no sync has passed the gate since
        assert [key for key, _ in read_lines(f"{image}.journal")] == [
            ledger.PENDING.key,
            ledger.SETTLE.key,
        ]
    finally:
        syncs.gate.set()
        ledger_stalled.set()
        await get_openrouter_client().aclose()

    reopened = DuckDBDatabase(image).open()
    try:
        assert reopened.write(repo.book_interrupted_calls, utcnow()) == 0
        assert stored(reopened, answer.generation_id) == (
            ("completed", answer.cost, answer.text),
            [("text", "ok", answer.cost)],
        )
    finally:
        reopened.close()


def test_a_deferred_line_stays_in_the_journal_until_the_write_replacing_it_commits(alice, database):
    """A fast call's pending row is only a journal line (decision 56): the commits of other
    writes must not empty the journal under it, and its settle's commit retires it."""
    final, usage = settled_call(uuid.UUID(alice.id))
    pending = replace(final, status="pending", finished_at=None, output_text=None, cost=None)
    journal = Path(f"{database.path}.journal")

    async def run() -> None:
        entry = database.journal(ledger.PENDING, pending, sync_now=True, defer=True)
        await entry.synced()
        other, other_usage = settled_call(uuid.UUID(alice.id))
        await database.journal(
            ledger.SETTLE, ledger.Settle(other, other_usage, 0.0, None, False)
        ).kept()
        await database.acaught_up()  # the other call has committed
        assert [key for key, _ in read_lines(str(journal))] == [
            ledger.PENDING.key,
            ledger.SETTLE.key,
        ]
        settled = ledger.Settle(final, usage, 0.0, None, row_written=False)
        await database.journal(ledger.SETTLE, settled, replaces=entry).kept()
        await database.acaught_up()

    asyncio.run(run())
    assert read_lines(str(journal)) == []  # the settle retired the pending line: emptied
    assert stored(database, final.id)[0] == ("completed", 0.00042, "hi there")
