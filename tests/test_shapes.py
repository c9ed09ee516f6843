"""One serializer per shape: it validates or renders, and the schema is read from it."""

from __future__ import annotations

from uuid import uuid4

import pytest

from core.api import validate
from core.errors import ApiError, ValidationFailed
from core.serializers import Page, page_of, render
from generation.serializers import ChatSerializer, TextSerializer, VideoJobSerializer

CHAT = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def fields_of(serializer, body):
    with pytest.raises(ValidationFailed) as caught:
        validate(serializer, body)
    return caught.value.fields


def test_a_valid_chat_body_comes_back_with_its_defaults():
    assert validate(ChatSerializer, CHAT) == {**CHAT, "stream": False}


@pytest.mark.parametrize("role", [["user"], {"a": 1}, None, 7])
def test_an_unhashable_or_odd_role_is_a_field_error_not_a_crash(role):
    body = {**CHAT, "messages": [{"role": role, "content": "hi"}]}
    assert set(fields_of(ChatSerializer, body)) == {"messages.0.role"}


def test_the_shared_serializer_keeps_nothing_between_bodies():
    assert "prompt" in fields_of(TextSerializer, {"model": "openai/gpt-4o-mini"})
    good = validate(TextSerializer, {"model": "openai/gpt-4o-mini", "prompt": "a"})
    assert good == {"model": "openai/gpt-4o-mini", "prompt": "a"}
    assert set(fields_of(TextSerializer, {"model": "x y", "prompt": "a"})) == {"model"}
    assert set(fields_of(TextSerializer, {"model": "m", "prompt": "a", "seed": 1})) == {"seed"}


@pytest.mark.parametrize("text", ["plain", "é ✓ 漢字 🙂", "x" * 100_000])
def test_text_of_any_script_up_to_the_limit_is_accepted(text):
    assert validate(TextSerializer, {"model": "m", "prompt": text})["prompt"] == text


@pytest.mark.parametrize("text", ["a\ud800b", "\udfff", "a\x00b", "x" * 100_001])
def test_lone_surrogates_nul_and_overlong_text_are_refused(text):
    assert set(fields_of(TextSerializer, {"model": "m", "prompt": text})) == {"prompt"}


def test_a_lone_surrogate_gets_drf_s_own_message():
    message = fields_of(TextSerializer, {"model": "m", "prompt": "a\ud800"})["prompt"]
    assert "Surrogate characters are not allowed: U+D800." in message


def test_a_page_serializer_exists_once_per_item_shape_and_renders_a_page():
    page_class = page_of(VideoJobSerializer)
    assert page_of(VideoJobSerializer) is page_class
    assert page_class.Meta.ref_name == "VideoJobPage"
    body = render(page_class, Page([], total=0, page=2, page_size=20))
    assert body == {"items": [], "total": 0, "page": 2, "page_size": 20}


def test_errors_render_in_the_one_error_shape():
    error = ApiError("Nope.", code="nope", status=409, fields={"email": "Taken."})
    assert error.as_dict() == {
        "error": {"code": "nope", "message": "Nope.", "fields": {"email": "Taken."}}
    }


def test_output_timestamps_are_utc_with_z_and_ids_are_strings():
    from datetime import UTC, datetime

    from generation.repository import VideoJob

    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    job_id = uuid4()
    job = VideoJob(
        job_id, uuid4(), "m", "job-1", "/api/v1/videos/job-1", "completed", None, 0.5,
        None, "videos/a.mp4", when, when, None, when,
    )  # fmt: skip
    body = render(VideoJobSerializer, job)
    assert body["id"] == str(job_id)
    assert body["created_at"] == "2026-01-02T03:04:05Z"
    assert body["video_url"] == f"/api/generate/video/{job_id}/content"
    assert body["completed_at"] == "2026-01-02T03:04:05Z"
    assert "last_polled_at" not in body and "upstream_id" not in body


def test_a_strict_serializers_own_validators_still_run():
    """StrictSerializer skips DRF's gathering of read-only defaults when a serializer has no
    validators of its own; one that has them keeps them."""
    from rest_framework import serializers

    from core.serializers import StrictIntegerField, StrictSerializer

    def ordered(value):
        if value["low"] > value["high"]:
            raise serializers.ValidationError("low must not exceed high.")

    class Range(StrictSerializer):
        low = StrictIntegerField()
        high = StrictIntegerField()

        class Meta:
            validators = [ordered]

    assert validate(Range, {"low": 1, "high": 2}) == {"low": 1, "high": 2}
    assert fields_of(Range, {"low": 3, "high": 2}) == {
        "non_field_errors": "low must not exceed high."
    }
