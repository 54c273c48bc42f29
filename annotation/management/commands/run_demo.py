"""Run the web server (gunicorn on 127.0.0.1:8000) and one Celery worker side by side, and
stop both on Ctrl-C or when either dies: one command for the embedded demo."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve Counterpoint on 127.0.0.1:8000 with one Celery worker; Ctrl-C stops both."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--bind", default="127.0.0.1:8000")
        parser.add_argument("--web-workers", type=int, default=2)

    def handle(self, *args: Any, **opts: Any) -> None:
        bin_dir = os.path.dirname(sys.executable)
        env = dict(os.environ)
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--no-input", "-v", "0"],
            check=True,
            env=env,
        )
        web = subprocess.Popen(
            [
                os.path.join(bin_dir, "gunicorn"),
                "counterpoint.wsgi",
                "--bind",
                opts["bind"],
                "--workers",
                str(opts["web_workers"]),
                "--threads",
                "4",
                "--worker-class",
                "gthread",
                "--access-logfile",
                "-",
            ],
            env=env,
        )
        worker = subprocess.Popen(
            [
                os.path.join(bin_dir, "celery"),
                "-A",
                "counterpoint",
                "worker",
                "-Q",
                "celery,scoring,analysis,io",
                "--concurrency",
                "1",
                # Embedded beat for the periodic lease sweep; production runs one `celery beat`.
                "--beat",
                "--schedule",
                str(Path(settings.VAR_DIR) / "celerybeat-schedule"),
                "--loglevel",
                "info",
            ],
            env=env,
        )
        procs = {"web server": web, "celery worker": worker}
        self.stdout.write(
            self.style.SUCCESS(f"Counterpoint is up at http://{opts['bind']}/ — Ctrl-C stops it.")
        )
        stopping = False

        def stop(*_: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        code = 0
        try:
            while not stopping:
                for name, p in procs.items():
                    if p.poll() is not None:
                        self.stderr.write(
                            f"the {name} exited with {p.returncode}; stopping the demo"
                        )
                        code = p.returncode or 1
                        stopping = True
                time.sleep(0.5)
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 15
            for p in procs.values():
                try:
                    p.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    p.kill()
        if code:
            sys.exit(code)
