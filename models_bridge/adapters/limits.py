"""A wall-time limit for in-process model calls, with a breaker per model.

A forward pass cannot be pre-empted inside the process, so each call runs on a worker
thread and the caller waits at most MODEL_CALL_TIMEOUT seconds (a live call, one or two
inputs) or MODEL_BATCH_CALL_TIMEOUT seconds (a bulk batch). A call that overruns is
reported as the model failing (ModelTimeout, a ModelError: live scoring shows the model
as unavailable, bulk scoring stops) and trips the model's breaker: the model is not called
again while the runaway call is still running and for MODEL_CALL_COOLDOWN seconds after.

Residual risk (docs/models.md): the runaway call itself keeps its thread and a core until
it ends by itself; Python cannot kill a thread. The breaker makes sure there is at most one
such call per model per process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from models_bridge.adapters.base import ModelError, setting

T = TypeVar("T")

_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="model-call")


class ModelTimeout(ModelError):
    """The call overran its wall-time limit."""


class ModelBreakerOpen(ModelError):
    """A recent call overran; the model is not being called for a while."""


def _settings(name: str, default: float) -> float:
    return float(setting(name, default))


def call_timeout(batch_size: int) -> float:
    """Live scoring calls a model with one or two inputs; bulk scoring with batches of up to
    a few hundred, which a large model may legitimately need longer for."""
    if batch_size <= 2:
        return _settings("MODEL_CALL_TIMEOUT_S", 5.0)
    return _settings("MODEL_BATCH_CALL_TIMEOUT_S", 120.0)


class CallLimiter:
    def __init__(self, who: str) -> None:
        self.who = who
        self._lock = threading.Lock()
        self._running_over = 0
        self._closed_until = 0.0

    @property
    def state(self) -> str:
        with self._lock:
            return "open" if self._is_open() else "closed"

    def _is_open(self) -> bool:
        return self._running_over > 0 or time.monotonic() < self._closed_until

    def call(
        self, fn: Callable[..., T], *args: Any, batch_size: int = 1, timeout_s: float | None = None
    ) -> T:
        timeout = call_timeout(batch_size) if timeout_s is None else timeout_s
        with self._lock:
            if self._is_open():
                wait = max(0.0, self._closed_until - time.monotonic())
                raise ModelBreakerOpen(
                    f"{self.who} overran its time limit recently; not calling it "
                    + ("until that call ends" if self._running_over else f"for {wait:.0f} s")
                )
        future: Future[T] = _pool.submit(fn, *args)
        try:
            return future.result(timeout=timeout)
        except FutureTimeout:
            cooldown = _settings("MODEL_CALL_COOLDOWN_S", 60.0)
            with self._lock:
                self._running_over += 1
                self._closed_until = time.monotonic() + cooldown
            future.add_done_callback(self._overrun_ended)
            raise ModelTimeout(f"{self.who} did not answer within {timeout:g} s") from None

    def _overrun_ended(self, _future: Future[Any]) -> None:
        cooldown = _settings("MODEL_CALL_COOLDOWN_S", 60.0)
        with self._lock:
            self._running_over -= 1
            self._closed_until = max(self._closed_until, time.monotonic() + cooldown)
