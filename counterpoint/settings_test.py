"""Settings for the test suite: production settings with a fixed test key. DATABASE_URL and
CELERY_BROKER_URL still come from the environment (CI points them at PostgreSQL and Redis)."""

from __future__ import annotations

import os

os.environ.setdefault("SECRET_KEY", "test-only-key-not-secret-0123456789abcdefghijklmnop")
os.environ.setdefault(
    "COUNTERPOINT_VAR_DIR", os.path.join(os.path.dirname(os.path.dirname(__file__)), "var", "test")
)

from counterpoint.settings import *  # noqa: F403
from counterpoint.settings import REST_FRAMEWORK

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"live_score": "1000/second"}}
WHITENOISE_AUTOREFRESH = True  # no collectstatic in tests
DASHBOARD_CACHE_SECONDS = 0.0  # tests pin the queries of a fresh read
