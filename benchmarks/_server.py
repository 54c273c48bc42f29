"""Helpers shared by the benchmarks that start their own gunicorn on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
