"""Throttle and lockout state is shared by every process (issue 7, A4): a second process,
with its own cache connection to the same backend (the database cache, or Redis when
CACHE_URL says so), spends the live-scoring rate and an account's failed sign-ins, and this
process sees both."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.core.cache import cache
from django.db import connection

from annotation.services.accounts import login_throttle_wait
from models_bridge.api.views import LiveScoreThrottle

ROOT = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent(
    """
    import django
    django.setup()
    from types import SimpleNamespace
    from annotation.services.accounts import login_failure_record
    from models_bridge.api.views import LiveScoreThrottle

    class Throttle(LiveScoreThrottle):
        rate = "2/minute"

    request = SimpleNamespace(user=SimpleNamespace(is_authenticated=True, pk=987654), META={})
    print([Throttle().allow_request(request, None) for _ in range(2)])
    for _ in range(5):
        login_failure_record(username="cross-process-victim", address=None)
    """
)


def _database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


class Throttle(LiveScoreThrottle):
    rate = "2/minute"


@pytest.mark.django_db(transaction=True)
def test_a_second_process_spends_the_same_limits() -> None:
    cache.clear()
    try:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="counterpoint.settings_test", DATABASE_URL=_database_url()
        )
        child = subprocess.run(
            [sys.executable, "-c", CHILD],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert child.returncode == 0, child.stderr[-2000:]
        assert child.stdout.strip().splitlines()[-1] == "[True, True]"
        request = SimpleNamespace(user=SimpleNamespace(is_authenticated=True, pk=987654), META={})
        assert Throttle().allow_request(request, None) is False  # type: ignore[arg-type]
        assert login_throttle_wait(username="cross-process-victim", address=None) > 0
    finally:
        # A transactional test's flush leaves the cache table alone.
        cache.clear()


def test_cache_url_chooses_redis_and_a_bad_one_is_named(tmp_path: Path) -> None:
    from tests.test_settings_env import _settings_in_subprocess

    base = {"DEBUG": "1", "COUNTERPOINT_VAR_DIR": str(tmp_path)}
    bad = _settings_in_subprocess(**base, CACHE_URL="memcached://127.0.0.1:11211")
    assert bad.returncode != 0 and "CACHE_URL" in bad.stderr
    ok = _settings_in_subprocess(**base, CACHE_URL="redis://127.0.0.1:6379/12")
    assert ok.returncode == 0, ok.stderr


def test_the_embedded_default_is_the_database_cache(settings: object) -> None:
    if os.environ.get("CACHE_URL"):
        pytest.skip("CACHE_URL chooses Redis for this run")
    backend = settings.CACHES["default"]["BACKEND"]  # type: ignore[attr-defined]
    assert backend == "django.core.cache.backends.db.DatabaseCache"
