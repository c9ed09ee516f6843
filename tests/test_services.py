"""The suite's own services: PostgreSQL and Redis where they answer, or throwaway ones."""

from __future__ import annotations

import pytest

from tests import services


def test_a_redis_key_prefix_is_the_tests_own(redis_url, redis_key_prefix):
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        client.set(f"{redis_key_prefix}counter", 3)
        assert client.get(f"{redis_key_prefix}counter") == b"3"
        assert list(client.scan_iter(match=f"{redis_key_prefix}*")) == [
            f"{redis_key_prefix}counter".encode()
        ]
    finally:
        client.close()


@pytest.mark.postgresql_only
def test_a_throwaway_postgresql_starts_when_nothing_answers(monkeypatch):
    """What a machine without a PostgreSQL service gets (as the postgres user when root)."""
    import psycopg

    if services.postgres_bin_dir() is None:
        pytest.skip("PostgreSQL's server programs are not installed")
    server = services.start_postgres()
    try:
        with psycopg.connect(server.url) as con:
            assert con.execute("SELECT current_database()").fetchone() == ("test",)
    finally:
        server.stop()
        services._started.remove(server)
    assert not server.folder.exists()


def test_the_package_list_names_only_what_is_missing(monkeypatch):
    monkeypatch.setattr(services, "postgres_problem", lambda url: "refused")
    monkeypatch.setattr(services, "redis_problem", lambda url: None)
    monkeypatch.setattr(services, "postgres_bin_dir", lambda: None)
    assert services.needed_packages() == ["postgresql"]
