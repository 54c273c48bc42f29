"""Helpers the tests and the benchmarks both need are written once (tests/tooling.py)."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import tests.tooling as tooling

ROOT = Path(__file__).resolve().parents[1]


def _definitions(name: str) -> list[str]:
    found = []
    for path in sorted([*ROOT.glob("tests/**/*.py"), *ROOT.glob("benchmarks/*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name == name:
                found.append(str(path.relative_to(ROOT)))
            elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in node.targets
            ):
                found.append(str(path.relative_to(ROOT)))
    return found


def test_free_port_and_chromium_launch_are_defined_once() -> None:
    assert _definitions("free_port") == ["tests/tooling.py"]
    assert _definitions("CHROMIUM_ARGS") == ["tests/tooling.py"]
    assert _definitions("CHROMIUM") == ["tests/tooling.py"]


def test_benchmarks_use_the_same_objects() -> None:
    spec = importlib.util.spec_from_file_location("_server", ROOT / "benchmarks" / "_server.py")
    assert spec is not None and spec.loader is not None
    server = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(server)
    assert server.free_port is tooling.free_port
    assert server.CHROMIUM_ARGS is tooling.CHROMIUM_ARGS
    port = server.free_port()
    assert 0 < port < 65536
