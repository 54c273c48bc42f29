"""A model package is code the server runs (issue 7, A1): every op of every graph must be on
the allowlist of pure tensor ops, the first load, scan and test forward happen in a confined
child process, and every in-process model call has a wall-time limit."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
import torch
from django.core.management import CommandError, call_command
from torch import Tensor, nn

from annotation.models import Dataset
from counterpoint.errors import Unavailable, ValidationFailed
from models_bridge.adapters.package import Package, read_package
from models_bridge.adapters.sandbox import package_check, run_child
from models_bridge.adapters.scan import module_ops
from models_bridge.models import ModelVersion
from models_bridge.op_policy import op_allowed, op_verdict
from models_bridge.services.registry import REFERENCE_MODELS, model_register
from models_bridge.services.scoring import score
from tests.conftest import client_for
from tests.models_bridge.conftest import lease, package_dir

SECRET = b"s3cret-password\n"


# --- crafted packages -------------------------------------------------------------------
class FromFile(nn.Module):
    """The probe of issue 7: reads a server file baked into the model, returns its bytes."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        n = inputs["text"].shape[0]
        if n > 0:
            data = torch.from_file(self.path, shared=False, size=2, dtype=torch.uint8)
            return data.to(torch.float32).unsqueeze(0).expand(n, 2)
        return torch.zeros(n, 2)


class Hidden(nn.Module):
    """from_file behind a submodule, a loop and a branch."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.inner = FromFile(path)

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        out = torch.zeros(inputs["text"].shape[0], 2)
        for _ in range(2):
            if bool(inputs["text"].sum() > 1000):
                out = out + self.inner(inputs)
        return out


class ReadsOnLoad(nn.Module):
    """A __setstate__ that reads a file while the archive is being loaded."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.w = torch.zeros(2)

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        return self.w.unsqueeze(0).expand(inputs["text"].shape[0], 2)

    @torch.jit.export
    def __getstate__(self) -> tuple[str, Tensor, bool]:
        return (self.path, self.w, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, Tensor, bool]) -> None:
        self.path = state[0]
        self.w = torch.from_file(self.path, shared=False, size=2, dtype=torch.uint8).float()
        self.training = state[2]


class Plain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(8, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        return self.head(self.embed(inputs["text"]).mean(1))


class SlowOnRealText(nn.Module):
    """Fast on the all-padding probe, a runaway on real words: what the time limit is for."""

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        x = torch.zeros(inputs["text"].shape[0], 2)
        for _ in range(int(inputs["text"].sum()) * 300000):
            x = x + 0.0
        return x


def _custom_op_module() -> nn.Module:
    if not hasattr(torch.ops.cp_test, "peek"):

        @torch.library.custom_op("cp_test::peek", mutates_args=())
        def peek(x: Tensor) -> Tensor:
            return x.clone()

    class Custom(nn.Module):
        def forward(self, inputs: dict[str, Tensor]) -> Tensor:
            return torch.ops.cp_test.peek(inputs["text"].to(torch.float32))[:, :2]

    return Custom()


MANIFEST = {
    "format": "counterpoint-torchscript/1",
    "name": "crafted",
    "version": "1",
    "labels": ["yes", "no"],
    "modalities": ["text"],
    "preprocessing": {
        "text": {"kind": "text", "vocab": ["<pad>", "<unk>", "a", "b"], "max_length": 4}
    },
}


def package_zip(module: nn.Module, *, name: str = "crafted") -> bytes:
    pt = io.BytesIO()
    torch.jit.save(torch.jit.script(module), pt)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("model.json", json.dumps({**MANIFEST, "name": name}))
        zf.writestr("model.pt", pt.getvalue())
    return buf.getvalue()


def package_of(module: nn.Module) -> Package:
    return read_package("crafted.zip", data=package_zip(module))


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secrets.env"
    path.write_bytes(SECRET)
    return path


@pytest.fixture
def text_dataset(db):  # type: ignore[no-untyped-def]
    return Dataset.objects.create(
        name="texts", modalities=[{"name": "text", "kind": "text"}], label_space=["yes", "no"]
    )


def stored_files(media_root: Path) -> list[str]:
    root = media_root / "models"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


# --- the allowlist (pure) ---------------------------------------------------------------
def test_allowlist_verdicts():
    assert op_allowed("aten::linear") and op_allowed("prim::If") and op_allowed("aten::add_")
    for op in (
        "aten::from_file",
        "aten::save",
        "aten::set_",
        "aten::empty",
        "aten::resize_",
        "prim::Print",
        "prim::CallFunction",
        "cp_test::peek",
        "torchvision::nms",
        "aten::no_such_op",
    ):
        assert not op_allowed(op), op
    verdict = op_verdict(
        [("aten::add", "forward"), ("aten::from_file", "inner.forward"), ("evil::x", "fuse")]
    )
    assert not verdict.ok
    assert verdict.details()["ops"] == [
        {"op": "aten::from_file", "where": ["inner.forward"], "count": 1},
        {"op": "evil::x", "where": ["fuse"], "count": 1},
    ]
    assert op_verdict([("aten::add", "forward")]).ok


def test_scan_walks_submodules_branches_loops_and_setstate(secret):
    ops = module_ops(torch.jit.script(Hidden(str(secret))))
    assert ("aten::from_file", "inner.forward") in ops
    # inlined into the caller's graph too, found inside the If inside the Loop
    assert ("aten::from_file", "forward") in ops
    ops = module_ops(torch.jit.script(ReadsOnLoad(str(secret))))
    assert ("aten::from_file", "__setstate__") in ops


# --- the sandbox ------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["auto", "root", "userns"])
def test_the_confined_child_cannot_open_files_outside_its_root(secret, mode):
    answer = run_child(
        {"self_test": str(secret), "cpu_s": 30, "memory_mb": 1024, "mode": mode}, timeout_s=60
    )
    assert answer["ok"] is True, answer
    assert answer["opened"] is None and "No such file" in answer["error"]
    if answer["mode"] == "root":
        assert answer["uid"] == 65534


def test_confinement_that_cannot_be_set_up_fails_closed():
    pkg = package_of(Plain())
    with pytest.raises(Exception) as exc:
        package_check(pkg, timeout_s=60, memory_mb=1024, mode="no-such-mode")
    assert exc.value.code == "package_sandbox_unavailable"  # type: ignore[attr-defined]


def test_setstate_reading_a_file_cannot_read_it_in_the_sandbox(secret):
    with pytest.raises(Exception) as exc:
        package_check(package_of(ReadsOnLoad(str(secret))), timeout_s=60, memory_mb=1024)
    assert exc.value.code == "package_unloadable"  # type: ignore[attr-defined]
    assert "unable to open file" in str(exc.value)


def test_the_reference_packages_pass():
    for name in REFERENCE_MODELS:
        package_check(read_package(package_dir(name)), timeout_s=120, memory_mb=2048)


def test_a_runaway_check_is_killed():
    class Forever(nn.Module):
        def forward(self, inputs: dict[str, Tensor]) -> Tensor:
            x = torch.zeros(inputs["text"].shape[0], 2)
            while bool(x.sum() >= 0.0):
                x = x + 0.0
            return x

    with pytest.raises(Exception) as exc:
        package_check(package_of(Forever()), timeout_s=3, memory_mb=1024)
    assert exc.value.code == "package_check_timeout"  # type: ignore[attr-defined]


# --- registration -------------------------------------------------------------------------
def test_from_file_package_is_refused_over_rest_even_for_staff(
    evqa_campaign, staff, secret, settings
):
    r = client_for(staff).post(
        "/api/v1/models/",
        {
            "dataset": evqa_campaign.dataset_id,
            "kind": "torchscript",
            "package": io.BytesIO(package_zip(Hidden(str(secret)))),
        },
        format="multipart",
    )
    assert r.status_code == 400, r.content
    error = r.json()["error"]
    assert error["code"] == "package_op_disallowed"
    (found,) = error["details"]["ops"]
    assert found["op"] == "aten::from_file" and "inner.forward" in found["where"]
    assert not ModelVersion.objects.exists()
    assert stored_files(Path(settings.MEDIA_ROOT)) == []


def test_from_file_package_is_refused_by_the_command(text_dataset, secret, tmp_path, settings):
    path = tmp_path / "leaky.zip"
    path.write_bytes(package_zip(FromFile(str(secret))))
    with pytest.raises(CommandError, match=r"package_op_disallowed.*aten::from_file"):
        call_command("register_model", str(path), dataset=text_dataset.name, stdout=io.StringIO())
    assert not ModelVersion.objects.exists()
    assert stored_files(Path(settings.MEDIA_ROOT)) == []


def test_custom_op_namespaces_are_refused(text_dataset, settings):
    with pytest.raises(ValidationFailed) as exc:
        model_register(
            dataset=text_dataset,
            kind="torchscript",
            location="",
            package_data=package_zip(_custom_op_module()),
        )
    assert exc.value.code == "package_op_disallowed"
    assert "cp_test::peek" in exc.value.message
    assert not ModelVersion.objects.exists()
    assert stored_files(Path(settings.MEDIA_ROOT)) == []


def test_a_clean_package_registers_and_scores(text_dataset):
    mv = model_register(
        dataset=text_dataset, kind="torchscript", location="", package_data=package_zip(Plain())
    )
    assert mv.location == f"media:models/{mv.package_sha256}"
    (r,) = score(model_version=mv, inputs=[{"text": "a b"}])
    assert set(r.probabilities) == {"yes", "no"}


# --- the per-call time limit ---------------------------------------------------------------
def test_a_runaway_torchscript_forward_is_cut_off_and_not_called_again(text_dataset, settings):
    mv = model_register(
        dataset=text_dataset,
        kind="torchscript",
        location="",
        package_data=package_zip(SlowOnRealText(), name="slow"),
    )
    settings.MODEL_CALL_TIMEOUT_S = 0.2
    with pytest.raises(Unavailable) as exc:
        score(model_version=mv, inputs=[{"text": "b b b b"}])
    assert exc.value.code == "model_unavailable" and "did not answer within" in exc.value.message
    with pytest.raises(Unavailable) as exc:
        score(model_version=mv, inputs=[{"text": "a"}])
    assert "overran its time limit recently" in exc.value.message


def test_live_scoring_reports_a_slow_model_unavailable_and_trips_its_breaker(
    evqa_campaign, evqa_people, settings
):
    from tests.models_bridge import example_entrypoint

    mv = model_register(
        dataset=evqa_campaign.dataset,
        kind="entrypoint",
        location="tests.models_bridge.example_entrypoint:slow_adapter",
        name="slow",
        version="1",
        options={"delay": 1.0},
    )
    evqa_campaign.model_versions.set([mv])
    settings.MODEL_CALL_TIMEOUT_S = 0.1
    example_entrypoint.SLOW_CALLS.clear()
    a = lease(evqa_campaign, evqa_people["shown"])
    api = client_for(evqa_people["shown"])
    for text in ("is there a circle?", "is there a square?"):
        r = api.post(
            "/api/v1/score/",
            {"assignment": a.pk, "modality": "text", "value": text},
            format="json",
        )
        assert r.status_code == 200, r.content
        (entry,) = r.json()["models"]
        assert entry["status"] == "unavailable"
    # The second draft never reached the model: the breaker was open.
    assert len(example_entrypoint.SLOW_CALLS) == 1


def test_a_version_registered_before_the_policy_is_scanned_before_it_loads(
    text_dataset, secret, tmp_path
):
    """Rows from before the allowlist (or from an older policy) carry no scan: the load
    path scans them in the sandbox first, so an old leaky package never loads in process."""
    from models_bridge.adapters.base import ModelError
    from models_bridge.services.loading import adapter_cache_clear, adapter_for

    mv = model_register(
        dataset=text_dataset, kind="torchscript", location="", package_data=package_zip(Plain())
    )
    leaky = tmp_path / "leaky.zip"
    leaky.write_bytes(package_zip(FromFile(str(secret))))
    pkg = read_package(leaky)
    manifest = {k: v for k, v in mv.manifest.items() if k != "op_scan"}
    # The state an installation upgraded to this version starts from.
    ModelVersion.objects.filter(pk=mv.pk).update(
        location=str(leaky), package_sha256=pkg.sha256, manifest=manifest
    )
    mv.refresh_from_db()
    adapter_cache_clear()
    with pytest.raises(ModelError, match="aten::from_file"):
        adapter_for(mv)


def test_live_calls_and_bulk_batches_have_their_own_limits(settings):
    from models_bridge.adapters.limits import call_timeout

    settings.MODEL_CALL_TIMEOUT_S = 3.0
    settings.MODEL_BATCH_CALL_TIMEOUT_S = 90.0
    assert [call_timeout(n) for n in (1, 2, 3, 256)] == [3.0, 3.0, 90.0, 90.0]


def test_the_admin_cannot_create_versions_or_repoint_them(text_dataset, staff):
    from django.test import Client

    mv = model_register(
        dataset=text_dataset, kind="torchscript", location="", package_data=package_zip(Plain())
    )
    web = Client()
    web.force_login(staff)
    assert web.get("/admin/models_bridge/modelversion/add/").status_code == 403
    r = web.post(
        f"/admin/models_bridge/modelversion/{mv.pk}/change/",
        {"description": "edited", "is_active": "on", "location": "/etc", "manifest": "{}"},
    )
    assert r.status_code == 302, r.content[:500]
    mv.refresh_from_db()
    assert mv.description == "edited"
    assert mv.location == f"media:models/{mv.package_sha256}" and "op_scan" in mv.manifest


def test_the_check_has_a_memory_limit():
    class Hungry(nn.Module):
        def forward(self, inputs: dict[str, Tensor]) -> Tensor:
            big = torch.ones(1024, 1024, 1024)  # 4 GiB
            return big[: inputs["text"].shape[0], :2, 0]

    with pytest.raises(Exception) as exc:
        package_check(package_of(Hungry()), timeout_s=60, memory_mb=512)
    assert exc.value.code in {"package_probe_failed", "package_check_failed"}  # type: ignore[attr-defined]
    assert "memory" in str(exc.value)
