from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from counterpoint import env


def test_env_helpers_fail_loudly(monkeypatch):
    monkeypatch.setenv("X_BOOL", "maybe")
    with pytest.raises(ImproperlyConfigured, match="X_BOOL='maybe' is not a boolean"):
        env.env_bool("X_BOOL", False)
    monkeypatch.setenv("X_INT", "ten")
    with pytest.raises(ImproperlyConfigured, match="X_INT='ten' is not an integer"):
        env.env_int("X_INT", 1)
    monkeypatch.setenv("X_INT", "0")
    with pytest.raises(ImproperlyConfigured, match="below its minimum"):
        env.env_int("X_INT", 1, minimum=1)
    monkeypatch.setenv("X_LIST", "a, b,,c")
    assert env.env_list("X_LIST", []) == ["a", "b", "c"]
    monkeypatch.setenv("X_BOOL", "on")
    assert env.env_bool("X_BOOL", False) is True


def _settings_in_subprocess(**extra: str) -> subprocess.CompletedProcess[str]:
    # The child must see the embedded defaults, not what CI exported for the suite.
    inherited = {"SECRET_KEY", "DEBUG", "DATABASE_URL", "CELERY_BROKER_URL", "COUNTERPOINT_VAR_DIR"}
    child_env = {k: v for k, v in os.environ.items() if k not in inherited}
    child_env.update(extra)
    child_env["DJANGO_SETTINGS_MODULE"] = "counterpoint.settings"
    code = "import django; django.setup(); from django.conf import settings; print(settings.DATABASES['default']['ENGINE'])"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=child_env, timeout=60
    )


def test_secret_key_required_when_debug_off():
    proc = _settings_in_subprocess(DEBUG="0")
    assert proc.returncode != 0
    assert "SECRET_KEY is required when DEBUG is off" in proc.stderr


def test_bad_database_url_is_named():
    proc = _settings_in_subprocess(DEBUG="1", DATABASE_URL="nosuchdb://x")
    assert proc.returncode != 0
    assert "DATABASE_URL" in proc.stderr


def test_embedded_default_is_sqlite_wal_immediate(tmp_path):
    proc = _settings_in_subprocess(DEBUG="1", COUNTERPOINT_VAR_DIR=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "django.db.backends.sqlite3"
    assert (tmp_path / "celery" / "queue").is_dir()


def test_sqlite_options_take_write_lock_at_begin(settings):
    if settings.DATABASE_IS_POSTGRES:
        pytest.skip("SQLite-only settings")
    opts = settings.DATABASES["default"]["OPTIONS"]
    assert opts["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in opts["init_command"]


def test_every_variable_settings_read_is_documented() -> None:
    """README's table and .env.example name every variable counterpoint/settings.py reads."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    read = set(
        re.findall(
            r'env_\w+\(\s*"([A-Z][A-Z0-9_]+)"', (root / "counterpoint/settings.py").read_text()
        )
    )
    readme = (root / "README.md").read_text()
    example = (root / ".env.example").read_text()
    assert read, "no env_* calls found in settings.py"
    assert sorted(v for v in read if f"`{v}`" not in readme) == []
    assert sorted(v for v in read if not re.search(rf"^#?\s*{v}=", example, re.M)) == []
