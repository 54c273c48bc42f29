"""What the test suite and the benchmarks both need to start servers and a browser: a free
local port and how Debian's Chromium is launched. Lives under tests/ (not in an installed
package) because nothing in production uses it; benchmarks import it through benchmarks/_server.py."""

from __future__ import annotations

import socket
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chromium_missing() -> bool:
    return not Path(CHROMIUM).exists()
