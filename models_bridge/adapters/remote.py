"""Remote models over the Open Inference Protocol (KServe V2 REST), as spoken by Triton,
KServe, MLServer and TorchServe:

    GET  {base}/v2/health/ready            server ready
    GET  {base}/v2/models/{name}           metadata: inputs, outputs (name, datatype, shape)
    GET  {base}/v2/models/{name}/ready     model ready
    POST {base}/v2/models/{name}/infer     {"inputs": [...]} → {"outputs": [...]}

Inputs are matched to modalities by tensor name. Text goes as a BYTES tensor of UTF-8
strings. An image goes as a BYTES tensor of base64 PNG (parameters content_type
"base64", which MLServer decodes) or, when the metadata declares an FP32 input of rank
4, as a tensor preprocessed here with the preprocessing spec the metadata (or the
registration) gives. Logits come back as an FP32 (B, C) output.

Every call has one deadline (`timeout_s`, whatever the retries); connection failures and
502/503/504/429 answers are retried with exponential backoff inside it. A circuit
breaker per (server, model), shared by the process, opens after `threshold`
consecutive failed calls and then fails fast for `reset_after_s`, so a dead model costs
the live path nothing instead of a timeout per draft; one trial call is let through
after the pause (half-open)."""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import requests
from PIL import Image

from models_bridge.adapters.base import Adapter, Batch, ModelError, check_logits
from models_bridge.preprocess import ImagePreprocessor, ImageValue, InputError, SpecError

RETRY_STATUSES = {429, 502, 503, 504}


class CircuitOpen(ModelError):
    """The breaker is open: the model failed repeatedly and is not being called."""


class CircuitBreaker:
    def __init__(
        self, *, threshold: int = 3, reset_after_s: float = 30.0, clock: Any = time.monotonic
    ) -> None:
        self.threshold = threshold
        self.reset_after_s = reset_after_s
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self._trial_in_flight = False
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self.opened_at is None:
            return "closed"
        if self.clock() - self.opened_at >= self.reset_after_s:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        with self._lock:
            state = self._state()
            if state == "closed":
                return True
            if state == "half-open" and not self._trial_in_flight:
                self._trial_in_flight = True
                return True
            return False

    def success(self) -> None:
        with self._lock:
            self.failures = 0
            self.opened_at = None
            self._trial_in_flight = False

    def failure(self) -> None:
        with self._lock:
            self.failures += 1
            self._trial_in_flight = False
            if self.failures >= self.threshold or self.opened_at is not None:
                self.opened_at = self.clock()


_breakers: dict[tuple[str, str], CircuitBreaker] = {}
_breakers_lock = threading.Lock()


def breaker_for(base_url: str, model_name: str, **kwargs: Any) -> CircuitBreaker:
    key = (base_url.rstrip("/"), model_name)
    with _breakers_lock:
        if key not in _breakers:
            _breakers[key] = CircuitBreaker(**kwargs)
        return _breakers[key]


def breakers_reset() -> None:
    with _breakers_lock:
        _breakers.clear()


@dataclass(frozen=True)
class InputPlan:
    tensor: str  # tensor name on the server
    modality: str
    kind: str  # text | image_bytes | image_fp32
    image: ImagePreprocessor | None = None


def _png_bytes(value: ImageValue | bytes) -> bytes:
    data = value.read() if isinstance(value, ImageValue) else bytes(value)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return data
    try:
        with Image.open(io.BytesIO(data)) as im:
            buf = io.BytesIO()
            im.save(buf, format="PNG")
            return buf.getvalue()
    except Exception as exc:
        raise InputError(f"the image cannot be decoded: {exc}", code="image_undecodable") from None


class RemoteAdapter(Adapter):
    kind = "remote"

    def __init__(
        self,
        *,
        base_url: str,
        model_name: str,
        modality_kinds: Mapping[str, str],
        labels: list[str] | None = None,
        preprocessing: Mapping[str, Any] | None = None,
        timeout_s: float = 2.0,
        retries: int = 2,
        backoff_s: float = 0.05,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("a remote model's URL must start with http:// or https://")
        self.base_url = base_url.rstrip("/")
        self.model_name = model_name
        self.modality_kinds = dict(modality_kinds)
        self._labels = list(labels) if labels else None
        self.preprocessing = dict(preprocessing or {})
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.breaker = breaker or breaker_for(self.base_url, model_name)
        self._local = threading.local()
        self._meta: dict[str, Any] | None = None
        self._plan: list[InputPlan] | None = None
        self._output: str | None = None
        self._meta_lock = threading.Lock()

    # --- HTTP ----------------------------------------------------------------------
    @property
    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
        return s

    def _url(self, suffix: str) -> str:
        return f"{self.base_url}/v2/models/{self.model_name}{suffix}"

    def _call(self, method: str, url: str, body: Any = None) -> Any:
        """One logical call: deadline, retries with backoff, breaker bookkeeping."""
        if not self.breaker.allow():
            raise CircuitOpen(
                f"{self.model_name} at {self.base_url} failed {self.breaker.failures} times in a row; "
                f"not calling it for {self.breaker.reset_after_s:.0f}s (circuit open)"
            )
        deadline = time.monotonic() + self.timeout_s
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise requests.Timeout(f"no time left within {self.timeout_s}s")
                resp = self._session.request(method, url, json=body, timeout=remaining)
                if resp.status_code in RETRY_STATUSES:
                    raise _Retryable(f"HTTP {resp.status_code}: {resp.text[:200]}")
                if resp.status_code >= 400:
                    # The server understood and refused: retrying would get the same answer.
                    self.breaker.success()
                    raise ModelError(
                        f"{self.model_name} answered HTTP {resp.status_code}: {resp.text[:300]}"
                    )
                # Health endpoints may answer 200 with an empty body.
                payload = resp.json() if resp.content.strip() else {}
                self.breaker.success()
                return payload
            except (requests.ConnectionError, _Retryable) as exc:
                attempt += 1
                pause = self.backoff_s * (2 ** (attempt - 1))
                if attempt > self.retries or time.monotonic() + pause >= deadline:
                    self.breaker.failure()
                    raise ModelError(
                        f"{self.model_name} at {self.base_url} is unreachable: {exc}"
                    ) from None
                time.sleep(pause)
            except requests.Timeout:
                self.breaker.failure()
                raise ModelError(
                    f"{self.model_name} at {self.base_url} did not answer within {self.timeout_s}s"
                ) from None
            except (requests.RequestException, ValueError) as exc:
                self.breaker.failure()
                raise ModelError(
                    f"{self.model_name} at {self.base_url}: bad answer: {exc}"
                ) from None

    # --- metadata ------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        with self._meta_lock:
            if self._meta is None:
                meta = self._call("GET", self._url(""))
                if not isinstance(meta, dict):
                    raise ModelError(f"{self.model_name}: metadata is not a JSON object")
                self._plan, self._output, labels = self._plan_from(meta)
                if self._labels is None:
                    self._labels = labels
                self._meta = meta
            return self._meta

    def _plan_from(self, meta: dict[str, Any]) -> tuple[list[InputPlan], str, list[str] | None]:
        plan: list[InputPlan] = []
        for spec in meta.get("inputs") or []:
            name = str(spec.get("name", ""))
            params = spec.get("parameters") or {}
            modality = str(params.get("modality", name))
            kind = self.modality_kinds.get(modality)
            datatype = str(spec.get("datatype", "")).upper()
            if kind is None:
                raise ModelError(
                    f"{self.model_name} has input {name!r}, which names no modality of the dataset "
                    f"({', '.join(self.modality_kinds)})"
                )
            if kind == "text" and datatype == "BYTES":
                plan.append(InputPlan(name, modality, "text"))
            elif kind == "image" and datatype == "BYTES":
                plan.append(InputPlan(name, modality, "image_bytes"))
            elif kind == "image" and datatype == "FP32":
                prep = params.get("preprocessing") or self.preprocessing.get(modality)
                if not isinstance(prep, Mapping):
                    raise ModelError(
                        f"{self.model_name} takes {name!r} as a preprocessed FP32 tensor but gives no "
                        "preprocessing (size, mode, mean, std) in its metadata or registration"
                    )
                try:
                    plan.append(
                        InputPlan(
                            name,
                            modality,
                            "image_fp32",
                            ImagePreprocessor.from_spec(prep, modality),
                        )
                    )
                except SpecError as exc:
                    raise ModelError(f"{self.model_name}: {exc}") from None
            else:
                raise ModelError(
                    f"{self.model_name}: input {name!r} ({datatype}) cannot carry {kind} values"
                )
        if not plan:
            raise ModelError(f"{self.model_name} declares no inputs in its metadata")
        outputs = meta.get("outputs") or []
        if not outputs:
            raise ModelError(f"{self.model_name} declares no outputs in its metadata")
        out = next((o for o in outputs if o.get("name") == "logits"), outputs[0])
        labels = (out.get("parameters") or {}).get("labels")
        return plan, str(out["name"]), list(labels) if isinstance(labels, list) else None

    @property
    def labels(self) -> list[str]:  # type: ignore[override]
        if self._labels is None:
            self.metadata()
        if not self._labels:
            raise ModelError(f"{self.model_name} gives no labels; pass them at registration")
        return self._labels

    @property
    def modalities(self) -> list[str]:  # type: ignore[override]
        self.metadata()
        assert self._plan is not None
        return [p.modality for p in self._plan]

    # --- inference -----------------------------------------------------------------
    def prepare(self, batch: Batch) -> dict[str, Any]:
        self.metadata()
        assert self._plan is not None
        inputs: list[dict[str, Any]] = []
        for p in self._plan:
            values = batch.column(p.modality)
            if p.kind == "text":
                texts = []
                for v in values:
                    if not isinstance(v, str):
                        raise InputError("text must be a string", code="text_not_a_string")
                    texts.append(v)
                inputs.append(
                    {"name": p.tensor, "datatype": "BYTES", "shape": [len(texts)], "data": texts}
                )
            elif p.kind == "image_bytes":
                data = [base64.b64encode(_png_bytes(v)).decode("ascii") for v in values]
                inputs.append(
                    {
                        "name": p.tensor,
                        "datatype": "BYTES",
                        "shape": [len(data)],
                        "parameters": {"content_type": "base64"},
                        "data": data,
                    }
                )
            else:
                assert p.image is not None
                arr = p.image(values)
                inputs.append(
                    {
                        "name": p.tensor,
                        "datatype": "FP32",
                        "shape": list(arr.shape),
                        "data": arr.ravel().tolist(),
                    }
                )
        return {"inputs": inputs, "outputs": [{"name": self._output}], "_size": batch.size}

    def run(self, prepared: dict[str, Any]) -> np.ndarray:
        size = prepared["_size"]
        body = {k: v for k, v in prepared.items() if k != "_size"}
        payload = self._call("POST", self._url("/infer"), body)
        outputs = payload.get("outputs") if isinstance(payload, dict) else None
        if not outputs:
            raise ModelError(f"{self.model_name} answered without outputs")
        out = next((o for o in outputs if o.get("name") == self._output), outputs[0])
        try:
            arr = np.asarray(out["data"], dtype=np.float32).reshape(size, -1)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{self.model_name} answered unreadable logits: {exc}") from None
        return check_logits(arr, batch_size=size, num_labels=len(self.labels), who=self.model_name)

    def predict(self, batch: Batch) -> np.ndarray:
        return self.run(self.prepare(batch))

    def health(self) -> dict[str, Any]:
        ready = self._call("GET", f"{self.base_url}/v2/health/ready")
        model_ready = self._call("GET", self._url("/ready"))
        if isinstance(model_ready, dict) and model_ready.get("ready") is False:
            raise ModelError(f"{self.model_name} is loaded but not ready")
        self.metadata()
        return {"server": ready, "model": model_ready, "breaker": self.breaker.state}


class _Retryable(Exception):
    pass
