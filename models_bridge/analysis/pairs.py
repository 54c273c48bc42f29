"""Model outputs on recombined pairs f(a_i, b_j): the one place the analyses call a model.

Three ways to get them, same numbers (tests/models_bridge/test_analysis_emap.py):
- `FactorizedPairs`: each modality encoded once (adapter.encode), the fusion head
  (adapter.fuse) run on index-gathered encodings in large batches;
- `BlackBoxPairs`: the whole model on every pair in batches; for a TorchScript package each
  modality is preprocessed once and pairs are gathered from the prepared tensors, for any
  other adapter (entry point, remote) the raw values are paired and sent as Batches;
- `PerPairLoop`: the published algorithm as written, one call per pair (benchmarks only).

Values lists may hold extra entries past the N examples (a null input for the ablation); the
indices say which entries pair up."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from models_bridge.adapters.base import Adapter, Batch

# A batch of gathered pairs stays under this many bytes of model input, so one chunk of a
# 10,000-wide row never holds the whole row's inputs at once.
PAIR_BATCH_BYTES = 64 * 1024 * 1024
MAX_PAIR_BATCH = 65_536
ENCODE_BATCH = 256
# The whole model runs its encoders on every pair: batches of the bulk scorer's size, since a
# convolutional encoder's activations over thousands of images outgrow the caches (measured:
# 1,365-pair batches ran 6x slower per pair than one call per pair).
BLACK_BOX_BATCH = 256


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(n, s + size)) for s in range(0, n, size)]


class Pairs:
    """f on pairs: `pairs(ia, ib)` → (len, C) logits of f(a[ia[k]], b[ib[k]])."""

    variant: str = ""
    modalities: tuple[str, str]

    def __init__(self, adapter: Adapter, modalities: tuple[str, str]) -> None:
        self.adapter = adapter
        self.modalities = modalities
        self.reads = [m for m in modalities if m in adapter.modalities]
        self.calls = 0

    @property
    def pair_batch(self) -> int:
        return MAX_PAIR_BATCH

    def pairs(self, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def rows(self, start: int, stop: int, n: int) -> np.ndarray:
        """(stop-start, n, C): grid rows start..stop-1 against columns 0..n-1."""
        r = stop - start
        ia = np.repeat(np.arange(start, stop), n)
        ib = np.tile(np.arange(n), r)
        return self.pairs(ia, ib).reshape(r, n, -1)

    def rows_per_chunk(self, n: int) -> int:
        return max(1, self.pair_batch // max(1, n))


class FactorizedPairs(Pairs):
    variant = "factorized"

    def __init__(
        self,
        adapter: Adapter,
        modalities: tuple[str, str],
        values: Mapping[str, Sequence[Any]],
    ) -> None:
        import torch

        super().__init__(adapter, modalities)
        self.enc: dict[str, Any] = {}
        for m in self.reads:
            vals = values[m]
            parts = [
                torch.as_tensor(adapter.encode(m, vals[s:e]))
                for s, e in _chunks(len(vals), ENCODE_BATCH)
            ]
            self.enc[m] = torch.cat(parts) if parts else torch.zeros(0)
        per_pair = sum(int(t[0].numel()) * t.element_size() for t in self.enc.values() if len(t))
        self._batch = int(min(MAX_PAIR_BATCH, max(1, PAIR_BATCH_BYTES // max(1, per_pair))))

    @property
    def pair_batch(self) -> int:
        return self._batch

    def extended(self, extra: Mapping[str, Sequence[Any]]) -> FactorizedPairs:
        """The same pairs with `extra` values appended to each modality (encoded now; the
        existing encodings are reused, so a background pool is encoded once)."""
        import torch

        out = object.__new__(FactorizedPairs)
        out.__dict__.update(self.__dict__)
        out.calls = 0
        out.enc = {
            m: torch.cat([self.enc[m], torch.as_tensor(self.adapter.encode(m, extra[m]))])
            for m in self.reads
        }
        return out

    def pairs(self, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
        import torch

        a, b = self.modalities
        index = {
            a: torch.from_numpy(np.asarray(ia, dtype=np.int64)),
            b: torch.from_numpy(np.asarray(ib, dtype=np.int64)),
        }
        out = []
        for s, e in _chunks(len(ia), self._batch):
            enc = {m: self.enc[m].index_select(0, index[m][s:e]) for m in self.reads}
            self.calls += 1
            out.append(torch.as_tensor(self.adapter.fuse(enc)).float().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.adapter.labels)))


class BlackBoxPairs(Pairs):
    variant = "black-box"

    def __init__(
        self,
        adapter: Adapter,
        modalities: tuple[str, str],
        values: Mapping[str, Sequence[Any]],
        *,
        batch: int = BLACK_BOX_BATCH,
    ) -> None:
        super().__init__(adapter, modalities)
        self.values = values
        self._batch = batch
        self.prepared: dict[str, Any] | None = None
        prepare_modality = getattr(adapter, "prepare_modality", None)
        if prepare_modality is not None:
            import torch

            self.prepared = {}
            for m in self.reads:
                vals = values[m]
                self.prepared[m] = torch.cat(
                    [prepare_modality(m, vals[s:e]) for s, e in _chunks(len(vals), ENCODE_BATCH)]
                )
            per_pair = sum(
                int(t[0].numel()) * t.element_size() for t in self.prepared.values() if len(t)
            )
            self._batch = int(min(batch, max(1, PAIR_BATCH_BYTES // max(1, per_pair))))

    @property
    def pair_batch(self) -> int:
        return self._batch

    def pairs(self, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
        a, b = self.modalities
        index = {a: np.asarray(ia, dtype=np.int64), b: np.asarray(ib, dtype=np.int64)}
        out = []
        for s, e in _chunks(len(ia), self._batch):
            self.calls += 1
            if self.prepared is not None:
                import torch

                inputs = {
                    m: self.prepared[m].index_select(0, torch.from_numpy(index[m][s:e]))
                    for m in self.reads
                }
                out.append(self.adapter.run(inputs))
            else:
                cols = {m: [self.values[m][k] for k in index[m][s:e]] for m in self.reads}
                out.append(self.adapter.predict(Batch(cols)))
        return np.concatenate(out) if out else np.zeros((0, len(self.adapter.labels)))


class PerPairLoop(Pairs):
    """One model call per pair on raw values, as the published algorithm is written."""

    variant = "per-pair loop"

    def __init__(
        self, adapter: Adapter, modalities: tuple[str, str], values: Mapping[str, Sequence[Any]]
    ) -> None:
        super().__init__(adapter, modalities)
        self.values = values

    def pairs(self, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
        a, b = self.modalities
        index = {a: ia, b: ib}
        out = []
        for k in range(len(ia)):
            self.calls += 1
            cols = {m: [self.values[m][int(index[m][k])]] for m in self.reads}
            out.append(self.adapter.predict(Batch(cols))[0])
        return np.stack(out) if out else np.zeros((0, len(self.adapter.labels)))


def make_pairs(
    adapter: Adapter,
    modalities: tuple[str, str],
    values: Mapping[str, Sequence[Any]],
    *,
    path: str = "auto",
) -> Pairs:
    """`path`: "factorized", "black-box" or "auto" (factorized when the adapter has it)."""
    if path == "auto":
        path = "factorized" if adapter.factorized else "black-box"
    if path == "factorized":
        return FactorizedPairs(adapter, modalities, values)
    if path == "black-box":
        return BlackBoxPairs(adapter, modalities, values)
    if path == "per-pair":
        return PerPairLoop(adapter, modalities, values)
    raise ValueError(f"unknown EMAP path {path!r}")
