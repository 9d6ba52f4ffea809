"""The local Redis the rate-limit and event-buffer tests use (``INTRANET_TEST_REDIS_URL``)."""
from __future__ import annotations

import os

import pytest
import redis

REDIS_URL = os.environ.get("INTRANET_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() == "true"


def reachable_redis() -> redis.Redis:
    """A client of the test Redis; skips the test when it does not answer, and fails it in CI
    (``.ci/run`` starts Redis, so an unreachable one there is a broken set-up, not a reason to skip)."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        if IN_CI:
            pytest.fail(f"Redis is unreachable at {REDIS_URL} (CI=true: .ci/run starts it): {exc}")
        pytest.skip(f"Redis is unreachable at {REDIS_URL}: {exc}")
    return client
