"""Test settings: the real settings, with a fast password hasher and a fixed key."""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-that-is-long-enough-for-hs256-0123456789")
os.environ.setdefault("OPENROUTER_API_KEY", "")

from aigateway.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # tests only: speed

# The suite sends thousands of requests from one address; the rate-limit tests set their own.
RATE_LIMITS = {
    "user": "100000/min",
    "anon": "100000/min",
    "auth": "100000/min",
    "auth_failures": "100000/min",
}
