"""Walk every graph of a loaded TorchScript module and list its ops, for the allowlist in
models_bridge.op_policy. Runs in the sandboxed child (models_bridge.adapters.sandbox), never
on a module the server has not already seen cleared.

Every method of every submodule is walked, `__setstate__`/`__getstate__` included, with
function and method calls inlined into a copy of the graph and the nested blocks of
prim::If / prim::Loop followed, so a call hidden behind a branch or a helper is seen."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch


def _block_ops(block: Any, where: str) -> Iterator[tuple[str, str]]:
    for node in block.nodes():
        yield node.kind(), where
        for sub in node.blocks():
            yield from _block_ops(sub, where)


def _method_graph(cmod: Any, name: str) -> Any:
    graph = cmod._get_method(name).graph.copy()
    torch._C._jit_pass_inline(graph)
    return graph


def _methods(cmod: Any) -> list[str]:
    names = list(cmod._method_names())
    # __setstate__/__getstate__ are methods of the type; make sure they are walked even when
    # a torch version leaves them out of _method_names().
    for special in ("__setstate__", "__getstate__"):
        if special not in names and cmod._has_method(special):
            names.append(special)
    return names


def module_ops(module: Any) -> list[tuple[str, str]]:
    """(op kind, "submodule.path.method") for every node of every graph of `module`."""
    out: list[tuple[str, str]] = []
    seen: set[int] = set()

    def walk(mod: Any, path: str) -> None:
        cmod = mod._c if hasattr(mod, "_c") else mod
        if id(cmod) in seen:
            return
        seen.add(id(cmod))
        for name in _methods(cmod):
            out.extend(_block_ops(_method_graph(cmod, name), f"{path}{name}"))
        for child_name, child in mod.named_children():
            walk(child, f"{path}{child_name}.")

    walk(module, "")
    return out
