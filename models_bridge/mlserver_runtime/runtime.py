"""CounterpointRuntime: serve a counterpoint-torchscript/1 package with MLServer.

model-settings.json:

    {"name": "easyvqa-additive",
     "implementation": "models_bridge.mlserver_runtime.runtime.CounterpointRuntime",
     "parameters": {"uri": "/path/to/fixtures/models/easyvqa-additive",
                    "extra": {"image_input": "png"}}}

Tensors (named after the modalities the package reads):
- text: BYTES [B], UTF-8 strings; tokenised here with the package's vocabulary.
- image: with image_input "png" (default), BYTES [B] of base64-encoded PNG (or any
  format Pillow reads; request parameter content_type "base64"); with "fp32", an FP32
  [B, C, H, W] tensor already preprocessed by the client with the spec this runtime
  publishes in its metadata (input parameters.preprocessing).
- output "logits": FP32 [B, num_labels], labels in output parameters.labels.

A bad input (undecodable image, text over max_length) answers HTTP 400. Imports no
Django: the server process needs only this repository on PYTHONPATH."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import torch
from mlserver import MLModel
from mlserver.errors import MLServerError
from mlserver.types import (
    InferenceRequest,
    InferenceResponse,
    MetadataModelResponse,
    MetadataTensor,
    Parameters,
    RequestInput,
    ResponseOutput,
)
from mlserver.utils import get_model_uri

from models_bridge.adapters.base import ModelError
from models_bridge.adapters.torchscript import TorchScriptAdapter
from models_bridge.preprocess import InputError

IMAGE_INPUTS = ("png", "fp32")


class CounterpointRuntime(MLModel):
    async def load(self) -> bool:
        uri = await get_model_uri(self._settings)
        extra: dict[str, Any] = {}
        if self._settings.parameters is not None and self._settings.parameters.extra:
            extra = dict(self._settings.parameters.extra)
        self.image_input = str(extra.get("image_input", "png"))
        if self.image_input not in IMAGE_INPUTS:
            raise MLServerError(f"image_input must be one of {IMAGE_INPUTS}")
        self.adapter = TorchScriptAdapter.load(uri)
        self.manifest = self.adapter.manifest
        return True

    def _input_meta(self, modality: str) -> MetadataTensor:
        spec = self.manifest.preprocessing[modality]
        kind = spec["kind"]
        if kind == "text":
            return MetadataTensor(
                name=modality,
                datatype="BYTES",
                shape=[-1],
                parameters=Parameters(content_type="str", max_length=spec["max_length"]),
            )
        if kind == "image" and self.image_input == "fp32":
            w, h = spec["size"]
            channels = len(spec.get("mean", [0, 0, 0]))
            prep = {k: spec[k] for k in ("kind", "size", "mode", "mean", "std") if k in spec}
            return MetadataTensor(
                name=modality,
                datatype="FP32",
                shape=[-1, channels, h, w],
                parameters=Parameters(preprocessing=prep),
            )
        if kind == "image":
            return MetadataTensor(
                name=modality,
                datatype="BYTES",
                shape=[-1],
                parameters=Parameters(content_type="base64"),
            )
        return MetadataTensor(name=modality, datatype="FP32", shape=[-1, len(spec["features"])])

    async def metadata(self) -> MetadataModelResponse:
        return MetadataModelResponse(
            name=self.name,
            versions=[self.manifest.version],
            platform="counterpoint-torchscript",
            inputs=[self._input_meta(m) for m in self.manifest.modalities],
            outputs=[
                MetadataTensor(
                    name="logits",
                    datatype="FP32",
                    shape=[-1, len(self.manifest.labels)],
                    parameters=Parameters(labels=self.manifest.labels),
                )
            ],
        )

    def _tensor(self, inp: RequestInput) -> torch.Tensor:
        modality = inp.name
        kind = self.manifest.kind_of(modality)
        data = inp.data.root if hasattr(inp.data, "root") else inp.data
        if kind == "text":
            texts = [x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in data]
            return self.adapter.prepare_modality(modality, texts)
        if kind == "image" and inp.datatype == "FP32":
            arr = np.asarray(data, dtype=np.float32).reshape(inp.shape)
            return torch.from_numpy(arr)
        if kind == "image":
            blobs = []
            for x in data:
                raw = x if isinstance(x, bytes) else str(x).encode("ascii")
                try:
                    blobs.append(base64.b64decode(raw, validate=True))
                except ValueError:
                    raise MLServerError(
                        f"{modality}: items must be base64-encoded images"
                    ) from None
            return self.adapter.prepare_modality(modality, blobs)
        return self.adapter.prepare_modality(modality, list(data))

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        by_name = {inp.name: inp for inp in payload.inputs}
        missing = [m for m in self.manifest.modalities if m not in by_name]
        if missing:
            raise MLServerError(f"missing input tensors: {', '.join(missing)}")
        try:
            prepared = {m: self._tensor(by_name[m]) for m in self.manifest.modalities}
            logits = self.adapter.run(prepared)
        except InputError as exc:
            raise MLServerError(f"{exc.code}: {exc.message}") from None
        except ModelError as exc:
            raise MLServerError(str(exc), status_code=500) from None
        return InferenceResponse(
            model_name=self.name,
            model_version=self.manifest.version,
            id=payload.id,
            outputs=[
                ResponseOutput(
                    name="logits",
                    datatype="FP32",
                    shape=list(logits.shape),
                    data=logits.ravel().tolist(),
                    parameters=Parameters(labels=self.manifest.labels),
                )
            ],
        )
