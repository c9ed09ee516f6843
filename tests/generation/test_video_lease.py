"""The video-job lease (decision 46): of workers racing for a job, one polls it; a lease
ends when released or when it expires (its worker died)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from core.clock import utcnow
from generation import repository as repo
from generation.repository import Generation, VideoJob
from tests.conftest import make_persona


def make_job(database) -> uuid.UUID:
    user_id = uuid.UUID(make_persona("video@example.com").id)
    now = utcnow()
    job_id = uuid.uuid4()

    def insert(tx):
        repo.insert_generations(
            tx,
            [
                Generation(
                    id=job_id, user_id=user_id, kind="video", model="m/v", prompt="a cat",
                    params={}, status="pending", output_text=None, media=(), error_code=None,
                    error_message=None, tokens_in=None, tokens_out=None, cost=None,
                    created_at=now, finished_at=None, reserved_cost=0.5,
                )
            ],
        )  # fmt: skip
        repo.insert_video_job(
            tx,
            VideoJob(
                id=job_id, user_id=user_id, model="m/v", upstream_id="up-1",
                polling_url="https://example.test/poll/1", status="pending", error=None,
                cost=None, upstream_generation_id=None, video_file=None, created_at=now,
                updated_at=now, last_polled_at=None, completed_at=None, reserved_cost=0.5,
            ),
        )  # fmt: skip

    database.write(insert)
    return job_id


def test_one_of_two_workers_gets_the_lease_until_it_is_released(database):
    job_id = make_job(database)
    now = utcnow()
    until = now + timedelta(minutes=5)
    assert database.write(repo.lease_video_job, job_id, now, until) is True
    assert database.write(repo.lease_video_job, job_id, now, until) is False
    database.write(repo.release_video_job, job_id)
    assert database.write(repo.lease_video_job, job_id, now, until) is True


def test_a_lease_whose_worker_died_expires(database):
    job_id = make_job(database)
    now = utcnow()
    assert database.write(repo.lease_video_job, job_id, now, now + timedelta(minutes=5))
    later = now + timedelta(minutes=6)
    assert database.write(repo.lease_video_job, job_id, later, later + timedelta(minutes=5))
