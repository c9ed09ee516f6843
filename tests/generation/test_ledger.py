"""The call ledger (decision 20): nothing acknowledged is lost, a refused call changes
nothing, and what a crash cuts off is booked as interrupted."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from core.clock import utcnow
from generation import repository as repo
from generation.ledger import book_interrupted_calls
from generation.repository import Generation
from tests.accounts.test_auth_api import error_code

TEXT_MODEL = "openai/gpt-4o-mini"
VIDEO_MODEL = "google/veo-3.1-fast"


def rows(database: Any, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    from generation.recorder import get_recorder

    get_recorder().flush_soon()
    database.flush_writes()
    return database.read(lambda con: con.execute(sql, list(params)).fetchall())


def generation_rows(database: Any) -> list[tuple[Any, ...]]:
    return rows(database, "SELECT id, kind, status FROM generations")


def billable_usage(database: Any) -> list[tuple[Any, ...]]:
    return rows(
        database,
        "SELECT kind, status, error_code, cost, generation_id FROM usage_records"
        " WHERE kind <> 'models' ORDER BY occurred_at",
    )


def generation_requests(stub: Any) -> list[dict[str, Any]]:
    return [r for r in stub.requests("/api/v1/") if "/models" not in r["path"]]


# -- a response that carries an id or a cost means the row is committed -------------------


def test_a_text_answer_is_committed_before_it_is_returned(alice, stub, database):
    answer = alice.client.call("POST", "/api/generate/text", {"model": TEXT_MODEL, "prompt": "hi"})
    assert answer.status_code == 200, answer.content
    body = answer.json()
    # Read straight from the file, without flushing any buffer.
    stored = database.read(
        lambda con: con.execute(
            "SELECT status, cost, output_text FROM generations WHERE id = ?", [body["id"]]
        ).fetchone()
    )
    assert stored == ("completed", body["usage"]["cost"], body["text"])
    usage = database.read(
        lambda con: con.execute(
            "SELECT kind, status, cost FROM usage_records WHERE generation_id = ?", [body["id"]]
        ).fetchall()
    )
    assert usage == [("text", "ok", body["usage"]["cost"])]


@pytest.mark.anyio
async def test_a_streamed_answer_is_committed_before_its_done_event(alice, stub, database):
    from tests.generation.test_generation_api import stream_chat

    response = await stream_chat(alice, "hi there")
    assert response.status_code == 200
    done_id = None
    async for chunk in response.streaming_content:
        text = chunk.decode()
        if "event: done" in text:
            done_id = text.split('"id":"', 1)[1].split('"', 1)[0]
            # The done event is out: its row must be committed by now.
            status = database.read(
                lambda con, gid=done_id: con.execute(
                    "SELECT status FROM generations WHERE id = ?", [gid]
                ).fetchone()
            )
            assert status == ("completed",)
    assert done_id is not None
    usage = billable_usage(database)
    assert [(k, s) for k, s, *_ in usage] == [("chat", "ok")]
    assert usage[0][4] == uuid.UUID(done_id)


def test_a_video_job_and_its_row_are_committed_before_the_202(alice, stub, database):
    submitted = alice.client.call(
        "POST", "/api/generate/video", {"model": VIDEO_MODEL, "prompt": "a boat"}
    )
    assert submitted.status_code == 202, submitted.content
    job_id = submitted.json()["id"]
    found = database.read(
        lambda con: con.execute(
            "SELECT j.status, g.status FROM video_jobs j JOIN generations g ON g.id = j.id"
            " WHERE j.id = ?",
            [job_id],
        ).fetchone()
    )
    assert found is not None and found[0] == found[1]


def counting(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """How many rows each call of the repository function `name` wrote."""
    calls: list[int] = []
    real = getattr(repo, name)

    def spy(tx: Any, items: Any) -> Any:
        calls.append(len(items))
        return real(tx, items)

    monkeypatch.setattr(repo, name, spy)
    return calls


@pytest.mark.duckdb_only  # PostgreSQL commits the pending row as the call starts
def test_a_fast_call_settles_with_one_insert_and_no_pending_row(alice, stub, database, monkeypatch):
    """Decision 56: its pending row is only a journal line, which the settle's commit
    retires; the writer inserts the final row."""
    monkeypatch.setattr("generation.ledger.PENDING_ROW_DELAY", 30.0)
    inserted = counting(monkeypatch, "insert_generations")
    answer = alice.client.call("POST", "/api/generate/text", {"model": TEXT_MODEL, "prompt": "hi"})
    assert answer.status_code == 200, answer.content
    assert rows(database, "SELECT status FROM generations") == [("completed",)]
    assert inserted == [0, 1]  # no pending row, the final row; committed in the background


@pytest.mark.anyio
async def test_a_slow_call_has_its_pending_row_committed_while_upstream_works(
    alice, stub, database, monkeypatch
):
    import asyncio

    from accounts.repository import get_user
    from generation.openrouter import get_openrouter_client
    from generation.services import generate_text

    monkeypatch.setattr("generation.ledger.PENDING_ROW_DELAY", 0.01)
    stub.configure(latency=0.6)
    user = database.read(get_user, uuid.UUID(alice.id))
    call = asyncio.ensure_future(generate_text(user, TEXT_MODEL, "hi"))
    seen: list[tuple[Any, ...]] = []
    for _ in range(50):  # until the row shows, read straight from the database
        await asyncio.sleep(0.02)
        seen = database.read(lambda con: con.execute("SELECT status FROM generations").fetchall())
        if seen:
            break
    assert seen == [("pending",)] and not call.done()
    answer = await call
    await get_openrouter_client().aclose()  # its connections belong to this test's loop
    assert rows(database, "SELECT id, status FROM generations") == [
        (answer.generation_id, "completed")
    ]


@pytest.mark.duckdb_only  # PostgreSQL commits writes concurrently: the settle waits there
@pytest.mark.anyio
async def test_a_settle_waits_for_no_pending_row_and_writes_the_row_if_that_write_failed(
    alice, stub, database, monkeypatch
):
    """DuckDB's writer commits in queue order, so a settle queued behind its pending row
    answers once the pending row's line is on disk and its own written (decisions 54, 56);
    and should the pending row's write fail meanwhile, the settle inserts the final row."""
    import asyncio
    import threading

    from accounts.repository import get_user
    from core.db import DatabaseError
    from generation.openrouter import get_openrouter_client
    from generation.services import generate_text

    monkeypatch.setattr("generation.ledger.PENDING_ROW_DELAY", 0.01)
    stub.configure(latency=0.2)
    released = threading.Event()

    real = repo.insert_pending_generations

    def stalled_then_failing(tx: Any, items: Any) -> Any:
        if not items:  # a batch of settles alone
            return real(tx, items)
        released.wait(10)  # the writer is stuck on the pending row until the answer is out
        raise DatabaseError("disk trouble")

    monkeypatch.setattr(repo, "insert_pending_generations", stalled_then_failing)
    user = database.read(get_user, uuid.UUID(alice.id))
    try:
        answer = await asyncio.wait_for(generate_text(user, TEXT_MODEL, "hi"), 5)
    finally:
        released.set()
        await get_openrouter_client().aclose()  # its connections belong to this test's loop
    assert rows(database, "SELECT id, status FROM generations") == [
        (answer.generation_id, "completed")
    ]
    assert [usage[:2] for usage in billable_usage(database)] == [("text", "ok")]


# -- a 4xx changes nothing ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/generate/text", {"model": "evil/model", "prompt": "hi"}),
        ("/api/ai/chat", {"model": "evil/model", "messages": [{"role": "user", "content": "x"}]}),
        (
            "/api/ai/chat",
            {
                "model": "evil/model",
                "messages": [{"role": "user", "content": "x"}],
                "stream": True,
            },
        ),
        ("/api/generate/image", {"model": "evil/model", "prompt": "a cat"}),
        ("/api/generate/video", {"model": "evil/model", "prompt": "a boat"}),
        # A real model of the wrong kind is just as unknown to that endpoint.
        ("/api/generate/text", {"model": VIDEO_MODEL, "prompt": "hi"}),
    ],
)
def test_an_unknown_model_is_refused_before_upstream_and_leaves_nothing(
    alice, stub, database, path, body
):
    response = alice.client.call("POST", path, body)
    assert response.status_code == 400, response.content
    assert error_code(response) == "unknown_model"
    assert generation_rows(database) == []
    assert billable_usage(database) == []
    assert generation_requests(stub) == []


def test_an_upstream_refusal_is_one_failed_row_with_its_usage(alice, stub, database):
    stub.add_fault(path="/api/v1/chat/completions", status=400, message="bad parameter")
    response = alice.client.call("POST", "/api/generate/text", {"model": TEXT_MODEL, "prompt": "x"})
    assert response.status_code == 400
    assert [status for _, _, status in generation_rows(database)] == ["failed"]
    assert [(k, s) for k, s, *_ in billable_usage(database)] == [("text", "error")]


def test_a_chat_page_send_the_upstream_refused_returns_the_new_conversation(alice, stub, database):
    from tests.pages.test_pages import browser as signed_in_browser

    browser = signed_in_browser(alice)
    stub.add_fault(path="/api/v1/chat/completions", status=502, message="provider down")
    response = browser.post("/chat/stream", {"model": TEXT_MODEL, "content": "hello?"})
    assert response.status_code == 502
    conversation_id = response["X-Conversation-Id"]
    stored = rows(database, "SELECT id FROM conversations")
    assert [str(row[0]) for row in stored] == [conversation_id]
    messages = rows(database, "SELECT role, content FROM conversation_messages")
    assert messages == [("user", "hello?")]


def test_a_chat_page_send_with_an_unknown_model_creates_no_conversation(alice, stub, database):
    from tests.pages.test_pages import browser as signed_in_browser

    browser = signed_in_browser(alice)
    response = browser.post("/chat/stream", {"model": "evil/model", "content": "hello?"})
    assert response.status_code == 400
    assert "X-Conversation-Id" not in response
    assert rows(database, "SELECT id FROM conversations") == []
    assert generation_rows(database) == []


# -- what a crash leaves pending is booked, never free and never lost -----------------------


def pending_row(user_id: uuid.UUID, kind: str, reserved: float | None) -> Generation:
    now = utcnow() - timedelta(seconds=3)
    return Generation(
        id=uuid.uuid4(), user_id=user_id, kind=kind, model=TEXT_MODEL, prompt="cut off",
        params={}, status="pending", output_text=None, media=(), error_code=None,
        error_message=None, tokens_in=None, tokens_out=None, cost=None, created_at=now,
        finished_at=None, reserved_cost=reserved,
    )  # fmt: skip


def test_start_up_books_calls_a_crash_cut_off_as_interrupted_at_their_reserved_cost(
    alice, database
):
    user_id = uuid.UUID(alice.id)
    cut_off = pending_row(user_id, "text", 0.0125)
    database.write(repo.insert_generations, [cut_off])

    assert book_interrupted_calls() == 1
    status, code = rows(
        database, "SELECT status, error_code FROM generations WHERE id = ?", cut_off.id
    )[0]
    assert (status, code) == ("interrupted", "interrupted")
    assert billable_usage(database) == [("text", "error", "interrupted", 0.0125, cut_off.id)]
    assert book_interrupted_calls() == 0  # booked once


def test_start_up_leaves_running_video_jobs_alone(alice, stub, database):
    submitted = alice.client.call(
        "POST", "/api/generate/video", {"model": VIDEO_MODEL, "prompt": "a boat"}
    )
    assert submitted.status_code == 202
    assert book_interrupted_calls() == 0
    status = rows(database, "SELECT status FROM generations")[0][0]
    assert status in ("pending", "in_progress")


# -- a video job the upstream forgot ends -----------------------------------------------


def test_a_video_job_the_upstream_no_longer_knows_fails_after_three_404s(
    alice, stub, database, monkeypatch
):
    from generation import services

    monkeypatch.setattr(services, "POLL_INTERVAL", timedelta(0))
    submitted = alice.client.call(
        "POST", "/api/generate/video", {"model": VIDEO_MODEL, "prompt": "a boat"}
    )
    job_id = submitted.json()["id"]
    stub.state.jobs.clear()  # the upstream forgets every job

    statuses = []
    for _ in range(3):
        job = alice.client.call("GET", f"/api/generate/video/{job_id}").json()
        statuses.append(job["status"])
    assert statuses[0] != "failed" and statuses[1] != "failed"
    assert statuses[-1] == "failed"
    assert "no longer knows this job" in job["error"]
    history = alice.client.call("GET", f"/api/generations/{job_id}").json()
    assert history["status"] == "failed"
    assert "no longer knows this job" in history["error"]["message"]
    polls = rows(
        database,
        "SELECT status, error_code FROM usage_records WHERE kind = 'video_poll' ORDER BY id",
    )
    assert [status for status, _ in polls] == ["error", "error", "error"]
    # Finished: it is not polled again.
    before = len(stub.requests("/api/v1/videos"))
    alice.client.call("GET", f"/api/generate/video/{job_id}")
    assert len(stub.requests("/api/v1/videos")) == before
