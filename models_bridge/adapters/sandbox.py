"""The package check: load, scan and probe a TorchScript package in a throwaway, confined
child process (models_bridge.adapters.sandbox_child) before the server ever loads it.

The parent sends the bytes of model.pt on stdin, so what the child scanned is exactly what
the caller then loads (the caller holds the same bytes and their sha256). The child gets a
clean environment (none of the server's settings or secrets), an empty root directory,
resource limits, and a wall-time limit enforced here by killing it. Torch-free."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from models_bridge.adapters.base import setting
from models_bridge.adapters.package import Manifest, Package, PackageError
from models_bridge.op_policy import POLICY_VERSION, OpVerdict

BASE_DIR = Path(__file__).resolve().parents[2]

_verdicts: dict[tuple[str, int], bool] = {}
_verdicts_lock = threading.Lock()


def probe_spec(manifest: Manifest) -> dict[str, dict[str, Any]]:
    """Synthetic inputs of the right shapes per modality (all padding; mid-grey images),
    without the batch dimension."""
    out: dict[str, dict[str, Any]] = {}
    for m, pre in manifest.preprocessors.items():
        spec = manifest.preprocessing[m]
        if spec["kind"] == "text":
            out[m] = {
                "shape": [int(spec["max_length"])],
                "dtype": "long",
                "fill": int(spec.get("pad_id", 0)),
            }
        elif spec["kind"] == "image":
            w, h = spec["size"]
            channels = int(getattr(pre, "channels", 3))
            out[m] = {"shape": [channels, int(h), int(w)], "dtype": "float", "fill": 0.0}
        else:
            out[m] = {"shape": [len(spec["features"])], "dtype": "float", "fill": 0.0}
    return out


def run_child(header: dict[str, Any], weights: bytes = b"", *, timeout_s: float) -> dict[str, Any]:
    """Start the confined child with `header` (its root is filled in here) and return its
    JSON answer; a child that overruns `timeout_s` is killed."""
    with tempfile.TemporaryDirectory(prefix="cp-sandbox-") as root:
        os.chmod(root, 0o555)
        head = json.dumps({**header, "root": root}).encode()
        payload = len(head).to_bytes(4, "big") + head + weights
        env = {
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(BASE_DIR),
            "PYTHONDONTWRITEBYTECODE": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }
        try:
            done = subprocess.run(
                [sys.executable, "-m", "models_bridge.adapters.sandbox_child"],
                input=payload,
                capture_output=True,
                timeout=timeout_s,
                env=env,
                cwd=str(BASE_DIR),
                start_new_session=True,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return {
                "ok": False,
                "code": "package_check_timeout",
                "message": f"loading and test-running the package took over {timeout_s:g} s",
            }
    lines = [ln for ln in done.stdout.decode("utf-8", "replace").splitlines() if ln.strip()]
    try:
        answer = json.loads(lines[-1])
        if not isinstance(answer, dict):
            raise ValueError
    except (IndexError, ValueError):
        # Killed by a limit (memory, CPU) or crashed in native code.
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        return {
            "ok": False,
            "code": "package_check_failed",
            "message": f"the package check process ended without an answer (exit "
            f"{done.returncode}; over the memory or CPU limit?): {' / '.join(tail)[:1000]}",
        }
    return answer


def package_check(
    package: Package,
    *,
    timeout_s: float | None = None,
    memory_mb: int | None = None,
    mode: str | None = None,
) -> None:
    """Raise PackageError unless the package loads, passes the op allowlist and answers a
    test forward of the right shape inside the sandbox. A passing verdict is remembered per
    process by package hash (same bytes, same answer). Limits default to the settings
    MODEL_PACKAGE_CHECK_TIMEOUT_S, MODEL_PACKAGE_CHECK_MEMORY_MB, MODEL_SANDBOX_MODE."""
    if timeout_s is None:
        timeout_s = float(setting("MODEL_PACKAGE_CHECK_TIMEOUT_S", 60.0))
    if memory_mb is None:
        memory_mb = int(setting("MODEL_PACKAGE_CHECK_MEMORY_MB", 2048))
    if mode is None:
        mode = str(setting("MODEL_SANDBOX_MODE", "auto"))
    key = (package.sha256, POLICY_VERSION)
    with _verdicts_lock:
        if _verdicts.get(key):
            return
    header = {
        "exports": list(package.manifest.exports),
        "probe": probe_spec(package.manifest),
        "num_labels": len(package.manifest.labels),
        "cpu_s": max(1, int(timeout_s)),
        "memory_mb": int(memory_mb),
        "mode": mode,
    }
    answer = run_child(header, package.weights, timeout_s=timeout_s)
    if not answer.get("ok"):
        details: dict[str, Any] | None = None
        if answer.get("disallowed"):
            details = OpVerdict(ok=False, disallowed=answer["disallowed"]).details()
        raise PackageError(
            str(answer.get("message") or "the package check failed"),
            code=str(answer.get("code") or "package_check_failed"),
            details=details,
        )
    with _verdicts_lock:
        _verdicts[key] = True
