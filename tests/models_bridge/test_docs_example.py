"""The worked example of docs/models.md runs as written, and its package registers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from annotation.models import Dataset
from models_bridge.services.registry import model_register
from models_bridge.services.scoring import score

DOC = Path(settings.BASE_DIR) / "docs" / "models.md"


def worked_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    return next(b for b in blocks if b.startswith("# worked example"))


@pytest.mark.django_db
def test_worked_example_packages_and_registers(tmp_path):
    # Run as the doc says: saved to a file and run with the project's Python (TorchScript
    # reads the class's source from that file).
    script = tmp_path / "package_my_model.py"
    script.write_text(worked_example())
    env = {**os.environ, "PYTHONPATH": str(settings.BASE_DIR)}
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "logits" in done.stdout
    ds = Dataset.objects.create(
        name="doc",
        modalities=[{"name": "image", "kind": "image"}, {"name": "text", "kind": "text"}],
        label_space=["yes", "no"],
    )
    mv = model_register(dataset=ds, kind="torchscript", location=str(tmp_path / "my-vqa"))
    assert (mv.name, mv.version, mv.factorized) == ("my-vqa", "1", True)
    from annotation.services.media import media_store_bytes
    from tests.factories import png_bytes

    media = media_store_bytes(data=png_bytes(size=(64, 64)))
    (r,) = score(
        model_version=mv, inputs=[{"text": "is there a red circle?", "image": media.sha256}]
    )
    assert set(r.probabilities) == {"yes", "no"}
    assert np.isclose(sum(r.probabilities.values()), 1.0)
