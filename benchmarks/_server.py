"""Helpers shared by the benchmarks that start their own gunicorn on 127.0.0.1. The free
port and the Chromium launch come from tests/tooling.py, the one copy the test suite uses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

# Benchmarks run as scripts from benchmarks/; the repository root holds the `tests` package.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.tooling import CHROMIUM, CHROMIUM_ARGS, chromium_missing, free_port  # noqa: E402

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "chromium_missing", "free_port", "stop_gunicorn"]


def stop_gunicorn(proc: subprocess.Popen[bytes] | None) -> None:
    """Stop a gunicorn started in its own process group (start_new_session=True): TERM,
    then KILL after 20 s, so no worker outlives the benchmark."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
