"""The remote adapter against a real MLServer process serving a reference package through
models_bridge.mlserver_runtime, plus models that are down or slow."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from django.conf import settings

from models_bridge.adapters.base import Batch, ImageValue, ModelError
from models_bridge.adapters.remote import CircuitBreaker, CircuitOpen, RemoteAdapter
from models_bridge.adapters.torchscript import TorchScriptAdapter
from tests.models_bridge.conftest import package_dir
from tests.tooling import free_port

KINDS = {"image": "image", "text": "text"}
START_TIMEOUT_S = 90
MODEL = "easyvqa-additive"


@contextlib.contextmanager
def mlserver(tmp: Path, models: dict[str, tuple[Path, str]]) -> Iterator[str]:
    """Start `mlserver start` on 127.0.0.1 with free ports; stop it on exit."""
    root = tmp / "mlserver"
    root.mkdir()
    http_port, grpc_port = free_port(), free_port()
    (root / "settings.json").write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "http_port": http_port,
                "grpc_port": grpc_port,
                "metrics_endpoint": None,
                "parallel_workers": 0,
                "load_models_at_startup": True,
                "debug": False,
                "metrics_dir": str(tmp / "metrics"),
                "environments_dir": str(tmp / "envs"),
            }
        )
    )
    for name, (path, image_input) in models.items():
        d = root / name
        d.mkdir()
        (d / "model-settings.json").write_text(
            json.dumps(
                {
                    "name": name,
                    "implementation": "models_bridge.mlserver_runtime.runtime.CounterpointRuntime",
                    "parameters": {"uri": str(path), "extra": {"image_input": image_input}},
                }
            )
        )
    env = {**os.environ, "PYTHONPATH": str(settings.BASE_DIR), "COUNTERPOINT_TORCH_THREADS": "1"}
    log = open(tmp / "mlserver.log", "wb")
    mlserver_bin = Path(sys.executable).with_name("mlserver")
    proc = subprocess.Popen(
        [str(mlserver_bin), "start", str(root)],
        cwd=tmp,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlserver exited: {(tmp / 'mlserver.log').read_text()[-3000:]}")
            try:
                ready = all(
                    requests.get(f"{base}/v2/models/{name}/ready", timeout=1).status_code == 200
                    for name in models
                )
                if ready:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"mlserver not ready in {START_TIMEOUT_S}s: {(tmp / 'mlserver.log').read_text()[-3000:]}"
                )
            time.sleep(0.5)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


def rows(n: int = 5) -> list[dict]:
    import easy_vqa

    texts, _, image_ids = easy_vqa.get_test_questions()
    paths = easy_vqa.get_test_image_paths()
    out = []
    for i in range(n):
        data = Path(paths[image_ids[i]]).read_bytes()
        out.append(
            {
                "text": texts[i],
                "image": ImageValue(sha256=hashlib.sha256(data).hexdigest(), data=data),
            }
        )
    return out


@pytest.fixture(scope="module")
def served(tmp_path_factory):  # type: ignore[no-untyped-def]
    path = package_dir(MODEL)
    tmp = tmp_path_factory.mktemp("remote")
    with mlserver(tmp, {MODEL: (path, "png"), f"{MODEL}-fp32": (path, "fp32")}) as base:
        yield base, path


@pytest.mark.slow
def test_remote_png_and_fp32_match_the_in_process_model(served):
    base, path = served
    local = TorchScriptAdapter.load(path)
    batch = Batch.from_rows(rows(), ["image", "text"])
    expected = local.predict(batch)
    for name in (MODEL, f"{MODEL}-fp32"):
        remote = RemoteAdapter(base_url=base, model_name=name, modality_kinds=KINDS, timeout_s=10)
        assert remote.labels == local.labels
        assert sorted(remote.modalities) == ["image", "text"]
        assert remote.health()["breaker"] == "closed"
        np.testing.assert_allclose(remote.predict(batch), expected, rtol=1e-4, atol=1e-4)
    fp32 = RemoteAdapter(
        base_url=base, model_name=f"{MODEL}-fp32", modality_kinds=KINDS, timeout_s=10
    )
    fp32.metadata()
    kinds = {p.modality: p.kind for p in fp32._plan or []}
    assert kinds == {"image": "image_fp32", "text": "text"}


@pytest.mark.slow
def test_server_refusing_an_input_is_a_model_error_not_a_crash(served):
    base, _ = served
    remote = RemoteAdapter(base_url=base, model_name=MODEL, modality_kinds=KINDS, timeout_s=10)
    bad = Batch({"text": [" ".join(["word"] * 40)], "image": [rows(1)[0]["image"]]})
    with pytest.raises(ModelError, match="text_too_long"):
        remote.predict(bad)
    assert remote.breaker.state == "closed"  # a 400 is an answer, not an outage


@pytest.mark.slow
def test_registered_remote_model_scores_through_the_live_endpoint(
    served, evqa_campaign, evqa_people
):
    from models_bridge.services.registry import model_register
    from tests.conftest import client_for
    from tests.models_bridge.conftest import lease

    base, _ = served
    mv = model_register(
        dataset=evqa_campaign.dataset,
        kind="remote",
        location=base,
        remote_model_name=MODEL,
        name="additive-remote",
        version="1",
    )
    assert mv.labels and sorted(mv.modalities) == ["image", "text"]
    evqa_campaign.model_versions.set([mv])
    a = lease(evqa_campaign, evqa_people["shown"])
    r = client_for(evqa_people["shown"]).post(
        "/api/v1/score/",
        {"assignment": a.pk, "modality": "text", "value": "is there a circle?"},
        format="json",
    )
    assert r.status_code == 200, r.content
    assert r.json()["models"][0]["status"] == "ok"


# --- down and slow ------------------------------------------------------------------------
def test_nothing_listening_is_unavailable_then_circuit_open():
    breaker = CircuitBreaker(threshold=2, reset_after_s=3600)
    remote = RemoteAdapter(
        base_url=f"http://127.0.0.1:{free_port()}",
        model_name="m",
        modality_kinds=KINDS,
        labels=["yes", "no"],
        timeout_s=1.0,
        retries=2,
        backoff_s=0.01,
        breaker=breaker,
    )
    for _ in range(2):
        with pytest.raises(ModelError, match="unreachable"):
            remote.predict(Batch({"text": ["x"]}))
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen):
        remote.predict(Batch({"text": ["x"]}))


class _Handler(http.server.BaseHTTPRequestHandler):
    delay_s = 2.0
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        time.sleep(self.delay_s)
        with contextlib.suppress(OSError):  # the client gave up long ago
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")

    do_POST = do_GET

    def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
        pass


@contextlib.contextmanager
def sleepy_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_slow_model_times_out_and_opens_the_circuit():
    breaker = CircuitBreaker(threshold=1, reset_after_s=3600)
    with sleepy_server() as base:
        remote = RemoteAdapter(
            base_url=base,
            model_name="m",
            modality_kinds=KINDS,
            labels=["yes", "no"],
            timeout_s=0.2,
            breaker=breaker,
        )
        _Handler.hits = 0
        with pytest.raises(ModelError, match="did not answer"):
            remote.health()
        assert breaker.state == "open"
        with pytest.raises(CircuitOpen):
            remote.health()
        assert _Handler.hits == 1  # the open circuit made no call


def test_half_open_lets_one_trial_through():
    now = [0.0]
    b = CircuitBreaker(threshold=1, reset_after_s=10, clock=lambda: now[0])
    b.failure()
    assert (b.state, b.allow()) == ("open", False)
    now[0] = 11
    assert b.allow() is True and b.allow() is False  # one trial at a time
    b.success()
    assert b.state == "closed"


@pytest.mark.django_db
def test_down_remote_model_is_unavailable_in_live_scoring(evqa_campaign, evqa_people):
    """Registered while up (metadata), then the server is gone: live scoring answers
    unavailable for it and ok for the in-process model."""
    from models_bridge.models import ModelVersion
    from models_bridge.services.registry import model_register
    from tests.conftest import client_for
    from tests.models_bridge.conftest import lease

    local = model_register(
        dataset=evqa_campaign.dataset, kind="torchscript", location="easyvqa-text-only"
    )
    gone = ModelVersion.objects.create(
        name="gone",
        version="1",
        kind="remote",
        location=f"http://127.0.0.1:{free_port()}",
        remote_model_name="m",
        dataset=evqa_campaign.dataset,
        labels=["yes", "no"],
        label_map={"yes": "yes", "no": "no"},
        modalities=["text"],
        manifest={"modality_kinds": KINDS},
        package_sha256="x" * 64,
    )
    evqa_campaign.model_versions.set([local, gone])
    a = lease(evqa_campaign, evqa_people["shown"])
    r = client_for(evqa_people["shown"]).post(
        "/api/v1/score/",
        {"assignment": a.pk, "modality": "text", "value": "is there a circle?"},
        format="json",
    )
    assert r.status_code == 200
    assert [m["status"] for m in r.json()["models"]] == ["ok", "unavailable"]


@pytest.mark.django_db
def test_registering_an_unreachable_remote_model_is_a_4xx(evqa, staff):
    from tests.conftest import client_for

    r = client_for(staff).post(
        "/api/v1/models/",
        {
            "dataset": evqa.pk,
            "kind": "remote",
            "location": f"http://127.0.0.1:{free_port()}",
            "remote_model_name": "m",
            "name": "r",
            "version": "1",
        },
        format="json",
    )
    assert (r.status_code, r.json()["error"]["code"]) == (400, "model_unreachable")
