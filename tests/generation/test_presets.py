"""Summarize and shorten (generation/presets.py): through the API and the text page, through
the same call ledger as /api/generate/text, so history and usage rows come with them."""

from __future__ import annotations

import pytest

from generation.presets import PRESETS
from tests.generation.test_generation_api import usage_rows
from tests.pages.test_pages import browser, text_of

MODEL = "openai/gpt-4o-mini"
ARTICLE = "The committee met on Tuesday. " * 40


def generation_usage(database):
    """The usage rows of generations (the catalogue's own fetch is a "models" row)."""
    return [row for row in usage_rows(database) if row[0] != "models"]


def history_rows(database):
    database.flush_writes()
    return database.read(
        lambda con: con.execute(
            "SELECT kind, prompt, params, status, output_text FROM generations ORDER BY created_at"
        ).fetchall()
    )


@pytest.mark.parametrize("kind", ["summarize", "shorten"])
def test_a_preset_answers_with_text_model_and_usage_and_records_its_kind(
    alice, stub, database, kind
):
    response = alice.client.call(
        "POST", f"/api/generate/{kind}", {"model": MODEL, "text": ARTICLE, "length": "short"}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"id", "text", "model", "usage"}
    assert body["model"] == MODEL and body["text"]
    assert body["usage"]["prompt_tokens"] > 0 and body["usage"]["cost"] > 0
    sent = stub.requests("/api/v1/chat/completions")[-1]["json"]
    assert sent["messages"] == [
        {"role": "system", "content": PRESETS[kind].system_prompt("short")},
        {"role": "user", "content": ARTICLE},
    ]
    assert sent["user"]  # the per-user pseudonym, as for every generation
    [usage] = generation_usage(database)
    assert usage[:2] == (kind, MODEL) and usage[5] == "ok"
    assert usage[4] == pytest.approx(body["usage"]["cost"])
    assert str(usage[7]) == alice.id
    [row] = history_rows(database)
    assert row[0] == kind and row[1] == ARTICLE and '"length": "short"' in row[2]
    history = alice.client.call("GET", f"/api/generations?kind={kind}").json()
    assert [item["id"] for item in history["items"]] == [body["id"]]
    assert history["items"][0]["kind"] == kind


def test_the_length_defaults_to_medium_and_changes_the_system_prompt(alice, stub):
    alice.client.call("POST", "/api/generate/summarize", {"model": MODEL, "text": "abc"})
    sent = stub.requests("/api/v1/chat/completions")[-1]["json"]
    assert sent["messages"][0]["content"] == PRESETS["summarize"].system_prompt("medium")
    prompts = {PRESETS["summarize"].system_prompt(length) for length in ("short", "medium", "long")}
    assert len(prompts) == 3


@pytest.mark.parametrize(
    "body",
    [
        {"model": MODEL},
        {"text": "x"},
        {"model": MODEL, "text": "x", "length": "tiny"},
        {"model": MODEL, "text": 5},
        {"model": MODEL, "text": "x", "prompt": "extra"},
        {"model": "black-forest-labs/flux.2-klein-4b", "text": "x"},
    ],
)
def test_preset_input_is_checked_before_any_upstream_call(alice, stub, database, body):
    assert alice.client.call("POST", "/api/generate/shorten", body).status_code == 400
    assert stub.requests("/api/v1/chat/completions") == []
    assert history_rows(database) == []


def test_presets_need_a_signed_in_user(anon, stub):
    assert (
        anon.call("POST", "/api/generate/summarize", {"model": MODEL, "text": "x"}).status_code
        == 401
    )


def test_an_upstream_failure_is_recorded_as_a_failed_preset(alice, stub, database):
    stub.add_fault(path="/api/v1/chat/completions", status=500)
    response = alice.client.call("POST", "/api/generate/summarize", {"model": MODEL, "text": "x"})
    assert response.status_code == 502
    [usage] = generation_usage(database)
    assert usage[0] == "summarize" and usage[5] != "ok"
    [row] = history_rows(database)
    assert row[0] == "summarize" and row[3] == "failed"


# -- the text page ----------------------------------------------------------------------


def test_the_text_page_offers_the_modes(alice, stub):
    page = text_of(browser(alice).get("/generate/text"))
    assert 'href="/generate/text?mode=summarize"' in page and ">Summarize<" in page
    assert 'href="/generate/text?mode=shorten"' in page and ">Shorten<" in page
    summarize = text_of(browser(alice).get("/generate/text?mode=summarize"))
    assert 'name="text"' in summarize and 'name="length"' in summarize
    assert 'name="system_prompt"' not in summarize


@pytest.mark.parametrize("kind", ["summarize", "shorten"])
def test_the_page_runs_a_preset_and_records_it(alice, stub, database, kind):
    client = browser(alice)
    response = client.post(
        f"/generate/text?mode={kind}",
        {"mode": kind, "model": MODEL, "text": ARTICLE, "length": "long"},
    )
    page = text_of(response)
    assert response.status_code == 200
    assert 'data-testid="text-result"' in page
    assert f'value="{kind}"' in page  # the page stays in its mode
    sent = stub.requests("/api/v1/chat/completions")[-1]["json"]
    assert sent["messages"][0]["content"] == PRESETS[kind].system_prompt("long")
    [usage] = generation_usage(database)
    assert usage[0] == kind
    assert history_rows(database)[0][0] == kind
    history = text_of(client.get(f"/history?kind={kind}"))
    assert "1 generation of kind " + kind in history


def test_the_page_keeps_the_text_and_shows_field_errors(alice, stub):
    client = browser(alice)
    page = text_of(
        client.post(
            "/generate/text", {"mode": "shorten", "model": MODEL, "text": "", "length": "huge"}
        )
    )
    assert "This field is required." in page
    assert stub.requests("/api/v1/chat/completions") == []
