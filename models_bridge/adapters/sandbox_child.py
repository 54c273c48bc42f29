"""The throwaway process that first loads, scans and probes a TorchScript package
(`python -m models_bridge.adapters.sandbox_child`, started by models_bridge.adapters.sandbox).

Loading an archive already runs its `__setstate__`, so the first load must happen where the
package can do no harm: torch is imported, the request is read from stdin, and only then is
the process confined (resource limits; an empty root directory it cannot leave; no
privileges). If confinement cannot be set up the child refuses and says why: it never falls
back to loading unconfined. The answer is one JSON line on stdout.

Request on stdin: 4-byte big-endian length, a JSON header
{"root", "exports", "probe", "num_labels", "cpu_s", "memory_mb", "mode"}, then model.pt."""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import json
import math
import os
import resource
import sys
from typing import Any

import torch

from models_bridge.adapters.scan import module_ops
from models_bridge.op_policy import op_verdict

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
PR_SET_NO_NEW_PRIVS = 38
NOBODY = 65534


class ConfinementError(RuntimeError):
    pass


def _emit(answer: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


def _libc() -> Any:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _drop_capabilities(libc: Any) -> None:
    # struct __user_cap_header_struct {u32 version; int pid;} + two data structs (v3).
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    if libc.capset(ctypes.byref(header), ctypes.byref(data)) != 0:
        raise ConfinementError(f"capset failed: errno {ctypes.get_errno()}")


def _write(path: str, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)


def confine(*, root: str, cpu_s: int, memory_mb: int, mode: str) -> str:
    """Limits, then an empty root without privileges. Returns how it was done."""
    libc = _libc()
    with open("/proc/self/statm") as fh:
        baseline = int(fh.read().split()[0]) * resource.getpagesize()
    limit_as = baseline + memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit_as, limit_as))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (16, 16))
    uid, gid = os.getuid(), os.getgid()
    if mode == "auto":
        mode = "root" if os.geteuid() == 0 else "userns"
    if mode == "root":
        os.chroot(root)
        os.chdir("/")
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    elif mode == "userns":
        if libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0:
            raise ConfinementError(f"unshare(CLONE_NEWUSER) failed: errno {ctypes.get_errno()}")
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"0 {uid} 1")
        _write("/proc/self/gid_map", f"0 {gid} 1")
        os.chroot(root)
        os.chdir("/")
        # Root of the new namespace could chroot its way out again; without capabilities
        # it cannot.
        _drop_capabilities(libc)
    else:
        raise ConfinementError(f"unknown sandbox mode {mode!r}")
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise ConfinementError("prctl(PR_SET_NO_NEW_PRIVS) failed")
    if os.listdir("/"):
        raise ConfinementError("the sandbox root is not empty")
    return mode


def _probe_inputs(probe: dict[str, Any], size: int) -> dict[str, torch.Tensor]:
    out = {}
    for modality, spec in probe.items():
        dtype = torch.long if spec["dtype"] == "long" else torch.float32
        out[modality] = torch.full([size, *spec["shape"]], spec["fill"], dtype=dtype)
    return out


def check(header: dict[str, Any], weights: bytes) -> dict[str, Any]:
    try:
        module = torch.jit.load(io.BytesIO(weights), map_location="cpu")
    except Exception as exc:
        text = str(exc)
        # A custom op that torch does not know stops the load itself; it is still the
        # custom-namespace rule that refuses it.
        if "Unknown builtin op" in text:
            op = text.split("Unknown builtin op:", 1)[-1].split(".")[0].strip()
            return {
                "ok": False,
                "code": "package_op_disallowed",
                "message": f"the package calls an op torch does not provide: {op}",
                "disallowed": {op: ["(load)"]},
            }
        return {
            "ok": False,
            "code": "package_unloadable",
            "message": f"model.pt is not a loadable TorchScript module: {text[:2000]}",
        }
    verdict = op_verdict(module_ops(module))
    if not verdict.ok:
        return {
            "ok": False,
            "code": "package_op_disallowed",
            "message": verdict.message(),
            "disallowed": verdict.disallowed,
        }
    lacking = [name for name in header["exports"] if not hasattr(module, name)]
    if lacking:
        return {
            "ok": False,
            "code": "package_exports",
            "message": f"model.json lists exports the module does not have: {', '.join(lacking)}",
        }
    module.eval()
    for size in (1, 2):
        try:
            with torch.inference_mode():
                out = module(_probe_inputs(header["probe"], size))
        except Exception as exc:
            return {
                "ok": False,
                "code": "package_probe_failed",
                "message": f"the test forward failed: {str(exc)[:2000]}",
            }
        shape = list(out.shape) if isinstance(out, torch.Tensor) else None
        if shape != [size, header["num_labels"]]:
            return {
                "ok": False,
                "code": "package_probe_failed",
                "message": f"the test forward returned shape {shape}, expected "
                f"[{size}, {header['num_labels']}]",
            }
        if not all(math.isfinite(float(x)) for x in out.flatten().tolist()):
            return {
                "ok": False,
                "code": "package_probe_failed",
                "message": "the test forward returned non-finite logits",
            }
    return {"ok": True}


def main() -> int:
    raw = sys.stdin.buffer.read()
    size = int.from_bytes(raw[:4], "big")
    header = json.loads(raw[4 : 4 + size])
    weights = raw[4 + size :]
    del raw
    torch.set_num_threads(1)
    try:
        mode = confine(
            root=header["root"],
            cpu_s=int(header["cpu_s"]),
            memory_mb=int(header["memory_mb"]),
            mode=header.get("mode", "auto"),
        )
    except (OSError, ConfinementError, ValueError) as exc:
        _emit(
            {
                "ok": False,
                "code": "package_sandbox_unavailable",
                "message": f"the package sandbox could not be set up: {exc}",
            }
        )
        return 3
    if header.get("self_test"):
        # Tests ask the confined child to open a path outside its root.
        try:
            with open(header["self_test"], "rb") as fh:
                opened = fh.read(64).decode("latin-1")
        except OSError as exc:
            opened = None
            error = str(exc)
        else:
            error = ""
        _emit({"ok": True, "mode": mode, "opened": opened, "error": error, "uid": os.getuid()})
        return 0
    answer = check(header, weights)
    answer["mode"] = mode
    _emit(answer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
